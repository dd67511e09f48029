//! Loading, includes, feature switches, and did-you-mean.
//!
//! Resolution runs in two passes so the AST arena is never borrowed while it
//! grows: [`load`] parses the root file and, transitively, every file any
//! `include` names (in active and inactive `ifdef` branches alike), noting
//! cycles; [`expand`] then walks the items in source order, evaluating
//! `define`/`ifdef` exactly like Kamailio's preprocessor would, splicing
//! active includes, and collecting the declarations the checker needs.
//! Problems with an include are reported only when the include is active.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, Ident, Item, ItemKind};
use crate::syntax::parser;
use crate::syntax::span::{FileId, SourceMap, Span};

/// Where source text comes from; tests and fuzzing use [`NoFiles`].
pub trait Loader {
    fn load(&self, path: &Path) -> std::io::Result<String>;
}

/// Reads files from disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Has no files: every `include` fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl Loader for NoFiles {
    fn load(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "includes are disabled"))
    }
}

#[derive(Debug, Clone)]
enum IncludeResult {
    Loaded(FileId),
    Failed(String),
    Cycle(Vec<PathBuf>),
}

/// All parsed files of one run.
#[derive(Debug, Default)]
pub struct Sources {
    pub map: SourceMap,
    pub asts: Vec<ast::File>,
    paths: Vec<PathBuf>,
    includes: HashMap<Span, IncludeResult>,
    /// CSV files of routing tables (`from "routes.csv"`), by the span of
    /// the file name: loaded into the source map so bad rows are reported
    /// with file and line, or the error reading them.
    pub csv: HashMap<Span, Result<FileId, String>>,
}

/// Parses `text` as the root file, then every file it includes.
pub fn load(
    name: &str,
    path: &Path,
    text: String,
    loader: &dyn Loader,
    diags: &mut Vec<Diagnostic>,
) -> Sources {
    let mut s = Sources::default();
    let root = add_file(&mut s, name.to_string(), path.to_path_buf(), text, diags);
    let mut stack = vec![path.to_path_buf()];
    load_includes(&mut s, root, loader, &mut stack, diags);
    load_csv_files(&mut s, loader);
    s
}

/// Reads the CSV file of every `table … from "FILE"`, relative to the file
/// declaring the table.
fn load_csv_files(s: &mut Sources, loader: &dyn Loader) {
    let mut wanted = Vec::new();
    for (i, ast) in s.asts.iter().enumerate() {
        collect_csv(&ast.items, i, &mut wanted);
    }
    for (file, span, rel, query, acl) in wanted {
        let dir = s.paths[file].parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(query) = query {
            // Rows from a database: read now, as the CSV text a file
            // would hold, so a bad row is reported with its number.
            let url = sql_url(&rel, &dir);
            let result = crate::routing::sql::fetch(&url, &query)
                .and_then(|rows| {
                    if acl {
                        crate::routing::sql::to_lines(&rows)
                    } else {
                        crate::routing::sql::to_csv(&rows)
                    }
                })
                .map(|text| {
                    let name = format!("{} (query)", crate::routing::sql::redact(&rel));
                    s.map.add(name, text)
                });
            s.csv.insert(span, result);
            continue;
        }
        let display_dir = Path::new(&s.map.get(FileId(file as u32)).name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let result = match loader.load(&normalize(&dir.join(&rel))) {
            Ok(text) => Ok(s.map.add(display_dir.join(&rel).to_string_lossy().into_owned(), text)),
            Err(e) => Err(e.to_string()),
        };
        s.csv.insert(span, result);
    }
}

/// A table's database URL with a relative `sqlite:` path resolved against
/// the declaring file's directory.
pub fn sql_url(from: &str, dir: &Path) -> String {
    match from.strip_prefix("sqlite:") {
        Some(p) => format!("sqlite:{}", normalize(&dir.join(p)).display()),
        None => from.to_owned(),
    }
}

/// A file (or database and query) a table or ACL reads its rows from, and
/// whether it is an ACL's (one address a row).
type Wanted = (usize, Span, String, Option<String>, bool);

fn collect_csv(items: &[Item], file: usize, out: &mut Vec<Wanted>) {
    for item in items {
        match &item.kind {
            ItemKind::RouteTable { head: words, .. } | ItemKind::Acl { words, .. } => {
                for (i, w) in words.windows(2).enumerate() {
                    if let (ast::ExprKind::Name(n), ast::ExprKind::Str(lit)) =
                        (&w[0].kind, &w[1].kind)
                        && n.name == "from"
                        // A feed is fetched when served, not read with the config.
                        && !lit.value.starts_with("https://")
                        && !lit.value.starts_with("http://")
                    {
                        let query =
                            words.get(i + 2..i + 4).and_then(|q| match (&q[0].kind, &q[1].kind) {
                                (ast::ExprKind::Name(k), ast::ExprKind::Str(q))
                                    if k.name == "query" =>
                                {
                                    Some(q.value.clone())
                                }
                                _ => None,
                            });
                        if crate::routing::sql::is_database(&lit.value) && query.is_none() {
                            continue; // the checker says a query is missing
                        }
                        let acl = matches!(item.kind, ItemKind::Acl { .. });
                        out.push((file, w[1].span, lit.value.clone(), query, acl));
                    }
                }
            }
            ItemKind::Ifdef { then_items, else_items, .. } => {
                collect_csv(then_items, file, out);
                collect_csv(else_items, file, out);
            }
            _ => {}
        }
    }
}

fn add_file(
    s: &mut Sources,
    name: String,
    path: PathBuf,
    text: String,
    diags: &mut Vec<Diagnostic>,
) -> FileId {
    let id = s.map.add(name, text);
    let (ast, d) = parser::parse(id, &s.map.get(id).text.clone());
    diags.extend(d);
    s.asts.push(ast);
    s.paths.push(path);
    id
}

fn collect_includes(items: &[Item], out: &mut Vec<(Span, String)>) {
    for item in items {
        match &item.kind {
            ItemKind::Include(lit) => out.push((item.span, lit.value.clone())),
            ItemKind::Ifdef { then_items, else_items, .. } => {
                collect_includes(then_items, out);
                collect_includes(else_items, out);
            }
            _ => {}
        }
    }
}

fn load_includes(
    s: &mut Sources,
    file: FileId,
    loader: &dyn Loader,
    stack: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut incs = Vec::new();
    collect_includes(&s.asts[file.0 as usize].items, &mut incs);
    let dir = s.paths[file.0 as usize].parent().map(Path::to_path_buf).unwrap_or_default();
    let display_dir =
        Path::new(&s.map.get(file).name).parent().map(Path::to_path_buf).unwrap_or_default();
    for (span, rel) in incs {
        let path = normalize(&dir.join(&rel));
        if stack.contains(&path) {
            let mut chain = stack.clone();
            chain.push(path);
            s.includes.insert(span, IncludeResult::Cycle(chain));
            continue;
        }
        if let Some(i) = s.paths.iter().position(|p| *p == path) {
            s.includes.insert(span, IncludeResult::Loaded(FileId(i as u32)));
            continue;
        }
        match loader.load(&path) {
            Ok(text) => {
                let name = display_dir.join(&rel).to_string_lossy().into_owned();
                let id = add_file(s, name, path.clone(), text, diags);
                s.includes.insert(span, IncludeResult::Loaded(id));
                stack.push(path);
                load_includes(s, id, loader, stack, diags);
                stack.pop();
            }
            Err(e) => {
                s.includes.insert(span, IncludeResult::Failed(e.to_string()));
            }
        }
    }
}

/// Removes `.` and resolves `..` lexically so one file has one path.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A feature switch's state.
#[derive(Debug, Clone)]
pub struct Feature {
    pub on: bool,
    pub span: Option<Span>,
}

/// Declarations of the active configuration, in source order.
#[derive(Debug, Default)]
pub struct Collected<'a> {
    pub routes: Vec<&'a ast::RouteDef>,
    pub consts: Vec<(&'a Ident, &'a ast::Expr)>,
    pub flags: Vec<(&'a Ident, Option<&'a ast::Expr>)>,
    pub tables: Vec<(&'a Ident, &'a [(ast::Expr, ast::Expr)])>,
    /// `trunk`, `trunk_group` and `table … by …` items.
    pub routing: Vec<&'a Item>,
    /// `limit` and `acl` items.
    pub limits: Vec<&'a Item>,
    pub settings: Vec<(Option<&'a Ident>, &'a ast::Setting)>,
    /// `module NAME { … }` blocks, empty ones too.
    pub modules: Vec<(&'a Ident, &'a [ast::Setting])>,
    pub listens: Vec<&'a Item>,
    pub domains: Vec<&'a ast::Expr>,
    pub features: HashMap<String, Feature>,
}

/// Walks the root file's items in order, applying defines and ifdefs and
/// splicing includes.
pub fn expand<'a>(
    s: &'a Sources,
    cli_defines: &HashMap<String, Option<String>>,
    all_features: bool,
    diags: &mut Vec<Diagnostic>,
) -> Collected<'a> {
    let mut c = Collected::default();
    for name in cli_defines.keys() {
        c.features.insert(name.clone(), Feature { on: true, span: None });
    }
    if let Some(root) = s.asts.first() {
        expand_items(s, &root.items, cli_defines, all_features, &mut c, diags);
    }
    c
}

fn expand_items<'a>(
    s: &'a Sources,
    items: &'a [Item],
    cli: &HashMap<String, Option<String>>,
    all: bool,
    c: &mut Collected<'a>,
    diags: &mut Vec<Diagnostic>,
) {
    for item in items {
        match &item.kind {
            ItemKind::Route(r) => c.routes.push(r),
            ItemKind::Const { name, value } => c.consts.push((name, value)),
            ItemKind::Flag { name, value } => c.flags.push((name, value.as_ref())),
            ItemKind::Table { name, entries } => c.tables.push((name, entries)),
            ItemKind::RouteTable { .. } | ItemKind::Trunk(_) | ItemKind::TrunkGroup { .. } => {
                c.routing.push(item)
            }
            ItemKind::Limit { .. } | ItemKind::Acl { .. } => c.limits.push(item),
            ItemKind::Settings(list) => c.settings.extend(list.iter().map(|s| (None, s))),
            ItemKind::Module { name, params } => {
                c.modules.push((name, params));
                c.settings.extend(params.iter().map(|s| (Some(name), s)))
            }
            ItemKind::Listen { .. } => c.listens.push(item),
            ItemKind::Domain(list) => c.domains.extend(list.iter()),
            ItemKind::Define { name, value } => {
                if let Some(prev) = c.features.get(&name.name).and_then(|f| f.span) {
                    diags.push(
                        Diagnostic::new(
                            Code::DuplicateDefinition,
                            format!("feature switch `{}` is defined twice", name.name),
                        )
                        .at(name.span, "defined again here")
                        .with_label(prev, "first defined here"),
                    );
                    continue;
                }
                let on = match (cli.get(&name.name), value) {
                    (Some(Some(v)), _) => !matches!(v.as_str(), "false" | "0" | "no" | "off"),
                    (Some(None), _) => true,
                    (None, _) if all => true,
                    (None, None) => true,
                    (None, Some(e)) => match &e.kind {
                        ast::ExprKind::Bool(b) => *b,
                        _ => {
                            diags.push(
                                Diagnostic::new(
                                    Code::TypeMismatch,
                                    "a feature switch is `true` or `false`",
                                )
                                .at(e.span, "expected `true` or `false`"),
                            );
                            false
                        }
                    },
                };
                c.features.insert(name.name.clone(), Feature { on, span: Some(name.span) });
            }
            ItemKind::Ifdef { negate, name, then_items, else_items } => {
                let on = feature_on(&c.features, name, diags) != *negate;
                let chosen = if on { then_items } else { else_items };
                expand_items(s, chosen, cli, all, c, diags);
            }
            ItemKind::Include(lit) => match s.includes.get(&item.span) {
                Some(IncludeResult::Loaded(id)) => {
                    expand_items(s, &s.asts[id.0 as usize].items, cli, all, c, diags)
                }
                Some(IncludeResult::Failed(why)) => diags.push(
                    Diagnostic::new(
                        Code::IncludeNotFound,
                        format!("cannot include `{}`: {why}", lit.value),
                    )
                    .at(lit.span, "included here")
                    .with_help("include paths are relative to the including file"),
                ),
                Some(IncludeResult::Cycle(chain)) => {
                    let names: Vec<String> = chain
                        .iter()
                        .map(|p| {
                            p.file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        })
                        .collect();
                    diags.push(
                        Diagnostic::new(
                            Code::IncludeCycle,
                            format!("include cycle: {}", names.join(" → ")),
                        )
                        .at(lit.span, "this include closes the cycle")
                        .with_help("remove one of the includes; each file can be included once"),
                    );
                }
                None => {}
            },
            ItemKind::Error => {}
        }
    }
}

/// Looks a feature switch up, reporting unknown ones (which count as off).
pub fn feature_on(
    features: &HashMap<String, Feature>,
    name: &Ident,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    match features.get(&name.name) {
        Some(f) => f.on,
        None => {
            let mut d = Diagnostic::new(
                Code::UnknownFeature,
                format!("unknown feature switch `{}`", name.name),
            )
            .at(name.span, "no `define` declares this switch")
            .with_help(format!(
                "declare it with `define {0} = false;` and turn it on with `-D {0}`",
                name.name
            ));
            if let Some(s) = suggest(&name.name, features.keys().map(String::as_str)) {
                d = d.with_help(format!("a switch with a similar name exists: `{s}`"));
            }
            diags.push(d);
            false
        }
    }
}

/// Levenshtein distance over chars, ASCII case-insensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Like [`edit_distance`], but swapping two adjacent characters is one edit
/// too (optimal string alignment): `Contcat` is one edit from `Contact`.
pub fn typo_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // d[i][j]: distance between the first i chars of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate within a third of the name's length, if any.
pub fn suggest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}
