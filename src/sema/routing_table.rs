//! Checking and compiling one routing table (`table NAME by prefix($rU)
//! [from "FILE.csv"] { KEY => group NAME strip N prefix "S"; }`).
//!
//! Rows written in the config and rows of the CSV file are one list: keys
//! borrow the source text (a million-row CSV allocates no key strings),
//! row actions are interned (most rows of a big table share a handful of
//! actions), and the index of [`crate::routing::index`] is built once here
//! and reports duplicate, overlapping and shadowed keys by row position,
//! which maps back to the config or the CSV line.

use std::collections::HashMap;
use std::sync::Arc;

use super::check::Checker;
use super::ir::{self, DestRef, MatchKind, RowAction, Target};
use crate::diag::{Code, Diagnostic};
use crate::routing::index::{self, BuildError, RangeProblem};
use crate::syntax::ast::{self, ExprKind};
use crate::syntax::span::{FileId, Span};

const ROW_HELP: &str = "a row is `KEY => group NAME|trunk NAME [strip N] [prefix \"S\"] [replace \"REGEX\" \"S\"] [attr NAME \"V\"];`";
const CSV_HELP: &str = "CSV rows are `key,group:NAME|trunk:NAME|NAME[,strip[,prefix]]`";

fn bad(c: &mut Checker<'_>, code: Code, span: Span, msg: impl Into<String>, help: &str) {
    c.error(Diagnostic::new(code, msg).at(span, "here").with_help(help.to_string()));
}

struct Rows<'a> {
    keys: Vec<&'a str>,
    actions: Vec<u32>,
    spans: Vec<Span>,
    table: Vec<RowAction>,
    interned: HashMap<RowAction, u32>,
}

impl Rows<'_> {
    fn intern(&mut self, a: RowAction) -> u32 {
        if let Some(&i) = self.interned.get(&a) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(a.clone());
        self.interned.insert(a, i);
        i
    }
}

pub fn table<'a>(
    c: &mut Checker<'a>,
    name: &ast::Ident,
    head: &'a [ast::Expr],
    rows: &'a [ast::RouteRow],
    csv: &HashMap<Span, Result<FileId, String>>,
) -> Option<ir::RouteTable> {
    let mut kind = None;
    let mut key = None;
    let mut file = None;
    let mut from_db = None;
    let mut query = None;
    let mut refresh = None;
    let mut notify = None;
    let mut i = 0;
    while i < head.len() {
        let w = &head[i];
        i += 1;
        match &w.kind {
            ExprKind::Name(n) if n.name == "by" => {
                let Some(by) = head.get(i) else {
                    bad(
                        c,
                        Code::BadDeclaration,
                        w.span,
                        "`by` needs `prefix(…)`, `exact(…)` or `range(…)`",
                        "",
                    );
                    continue;
                };
                i += 1;
                match &by.kind {
                    ExprKind::Call { name: f, args } if args.len() == 1 => {
                        kind = match f.name.as_str() {
                            "prefix" => Some(MatchKind::Prefix),
                            "exact" => Some(MatchKind::Exact),
                            "range" => Some(MatchKind::Range),
                            _ => {
                                bad(
                                    c,
                                    Code::BadDeclaration,
                                    f.span,
                                    format!("unknown match `{}`", f.name),
                                    "use prefix(…), exact(…) or range(…)",
                                );
                                None
                            }
                        };
                        key = key_pv(c, &args[0]);
                    }
                    _ => bad(
                        c,
                        Code::BadDeclaration,
                        by.span,
                        "expected `prefix($pv)`, `exact($pv)` or `range($pv)`",
                        "",
                    ),
                }
            }
            ExprKind::Name(n) if n.name == "from" => match head.get(i).map(|e| (&e.kind, e.span)) {
                Some((ExprKind::Str(lit), span)) => {
                    i += 1;
                    let database = crate::routing::sql::is_database(&lit.value);
                    if database {
                        from_db = Some((lit.value.clone(), span));
                    }
                    match csv.get(&span) {
                        Some(Ok(id)) => file = Some(*id),
                        Some(Err(e)) if database => bad(
                            c,
                            Code::BadCsvRow,
                            span,
                            format!("cannot read the table's rows: {e}"),
                            "the query gives key, destination[, strip[, prefix]]; on a reload the previous rows keep serving",
                        ),
                        Some(Err(e)) => bad(
                            c,
                            Code::BadCsvRow,
                            span,
                            format!("cannot read the table's CSV file: {e}"),
                            "the path is relative to the file declaring the table",
                        ),
                        None => {}
                    }
                }
                _ => bad(
                    c,
                    Code::BadDeclaration,
                    w.span,
                    "`from` needs a file name",
                    "like `from \"routes.csv\"`",
                ),
            },
            ExprKind::Name(n) if n.name == "query" => match head.get(i).map(|e| &e.kind) {
                Some(ExprKind::Str(q)) => {
                    i += 1;
                    query = Some((q.value.clone(), w.span));
                }
                _ => bad(
                    c,
                    Code::BadDeclaration,
                    w.span,
                    "`query` needs the SQL text",
                    "like `query \"SELECT prefix, gateway FROM routes\"`",
                ),
            },
            ExprKind::Name(n) if n.name == "refresh" => match head.get(i).map(|e| &e.kind) {
                Some(ExprKind::Duration(ms)) if *ms > 0 => {
                    i += 1;
                    refresh = Some(*ms);
                }
                _ => bad(
                    c,
                    Code::BadDeclaration,
                    w.span,
                    "`refresh` needs an interval",
                    "like `refresh 30s`",
                ),
            },
            ExprKind::Name(n) if n.name == "notify" => match head.get(i).map(|e| &e.kind) {
                Some(ExprKind::Str(ch)) if crate::cluster::is_table_name(&ch.value) => {
                    i += 1;
                    notify = Some(ch.value.clone());
                }
                _ => bad(
                    c,
                    Code::BadDeclaration,
                    w.span,
                    "`notify` needs a PostgreSQL channel name",
                    "like `notify \"routes_changed\"` (lower-case letters, digits and `_`)",
                ),
            },
            _ => bad(
                c,
                Code::BadDeclaration,
                w.span,
                "expected `by …`, `from \"FILE\"`, `query`, `refresh` or `notify`",
                "like `table outbound by prefix($rU) { … }`",
            ),
        }
    }
    let source = match (from_db, query) {
        (Some((url, _)), Some((query, _))) => {
            let dir = c.map.get(name.span.file).name.clone();
            let dir = std::path::Path::new(&dir).parent().map(std::path::Path::to_path_buf);
            Some(crate::routing::sql::SqlSource {
                url: super::resolve::sql_url(&url, &dir.unwrap_or_default()),
                query,
                refresh_ms: refresh,
                notify,
            })
        }
        (Some((_, span)), None) => {
            bad(
                c,
                Code::BadDeclaration,
                span,
                "rows from a database need a `query`",
                "like `from \"postgres://…\" query \"SELECT prefix, gateway FROM routes\"`",
            );
            None
        }
        (None, Some((_, span))) => {
            bad(
                c,
                Code::BadDeclaration,
                span,
                "`query` needs `from \"postgres://…\"` or `from \"sqlite:FILE\"`",
                "",
            );
            None
        }
        (None, None) => {
            if refresh.is_some() || notify.is_some() {
                bad(
                    c,
                    Code::BadDeclaration,
                    name.span,
                    "`refresh` and `notify` are for rows from a database",
                    "a CSV file is read again on every reload",
                );
            }
            None
        }
    };
    let (Some(kind), Some((key_pv, key_arg))) = (kind, key) else {
        if kind.is_none() {
            bad(
                c,
                Code::BadDeclaration,
                name.span,
                format!("table `{}` needs `by prefix(…)`, `exact(…)` or `range(…)`", name.name),
                "",
            );
        }
        return None;
    };
    let mut r = Rows {
        keys: Vec::new(),
        actions: Vec::new(),
        spans: Vec::new(),
        table: Vec::new(),
        interned: HashMap::new(),
    };
    for row in rows {
        let key = match &row.key.kind {
            ExprKind::Str(s) if s.is_plain() => s.value.as_str(),
            _ => {
                bad(
                    c,
                    Code::NotConstant,
                    row.key.span,
                    "a row key is a constant string",
                    "like \"0086\"",
                );
                continue;
            }
        };
        if let Some(a) = row_action(c, &row.words) {
            let id = r.intern(a);
            r.keys.push(key);
            r.actions.push(id);
            r.spans.push(row.key.span);
        }
    }
    if let Some(id) = file {
        csv_rows(c, id, &mut r);
    }
    let index = build(c, kind, &r);
    Some(ir::RouteTable {
        name: name.name.clone(),
        kind,
        key_pv,
        key_arg,
        rows: r.keys.len(),
        actions: r.table,
        index,
        source,
    })
}

fn key_pv(c: &mut Checker<'_>, e: &ast::Expr) -> Option<(usize, Option<String>)> {
    if let ExprKind::Pv(pv) = &e.kind
        && let Some((i, def)) = super::builtins::pseudo_var(&pv.name)
        && def.scope == super::builtins::Scope::Message
        && def.ty == super::builtins::Ty::Str
    {
        if def.arg == super::builtins::PvArg::Header {
            c.header_pv(pv);
        }
        return Some((i, pv.arg.clone()));
    }
    bad(
        c,
        Code::BadDeclaration,
        e.span,
        "a table key is a string pseudo-variable of the message",
        "like `$rU`, `$fU` or `$hdr(X-Account)`",
    );
    None
}

fn target(c: &mut Checker<'_>, word: &str, name: &ast::Ident) -> Option<Target> {
    match (word, c.dests.get_mut(&name.name)) {
        ("group", Some((DestRef::Group(i), _, used))) => {
            *used = true;
            Some(Target::Group(*i))
        }
        ("trunk", Some((DestRef::Trunk(i), _, used))) => {
            *used = true;
            Some(Target::Trunk(*i))
        }
        (_, Some(_)) => {
            bad(c, Code::UnknownTrunk, name.span, format!("`{}` is not a {word}", name.name), "");
            None
        }
        (_, None) => {
            let names: Vec<&str> = c.dests.keys().map(String::as_str).collect();
            let mut d =
                Diagnostic::new(Code::UnknownTrunk, format!("cannot find {word} `{}`", name.name))
                    .at(name.span, format!("no {word} is declared with this name"));
            if let Some(s) = super::resolve::suggest(&name.name, names.into_iter()) {
                d = d.with_help(format!("a destination with a similar name exists: `{s}`"));
            }
            c.error(d);
            None
        }
    }
}

fn row_action(c: &mut Checker<'_>, words: &[ast::Expr]) -> Option<RowAction> {
    let mut a = RowAction {
        target: Target::Trunk(u32::MAX),
        strip: 0,
        prefix: String::new(),
        replace: None,
        attrs: Vec::new(),
    };
    let mut ok = true;
    let mut i = 0;
    let word_at = |i: usize| words.get(i).map(|e| &e.kind);
    while i < words.len() {
        let w = &words[i];
        i += 1;
        let ExprKind::Name(n) = &w.kind else {
            bad(c, Code::BadDeclaration, w.span, "expected a row option", ROW_HELP);
            ok = false;
            continue;
        };
        match (n.name.as_str(), word_at(i), word_at(i + 1)) {
            ("group" | "trunk", Some(ExprKind::Name(t)), _) => {
                i += 1;
                match target(c, &n.name, t) {
                    Some(t) => a.target = t,
                    None => ok = false,
                }
            }
            ("strip", Some(ExprKind::Int(v)), _) if (0..=64).contains(v) => {
                i += 1;
                a.strip = *v as u32;
            }
            ("prefix", Some(ExprKind::Str(s)), _) => {
                i += 1;
                a.prefix = s.value.clone();
            }
            ("replace", Some(ExprKind::Str(re)), Some(ExprKind::Str(with))) => {
                i += 2;
                if let Err(e) = regex::Regex::new(&re.value) {
                    c.error(
                        Diagnostic::new(Code::InvalidRegex, format!("invalid regex: {e}"))
                            .at(re.span, "in this pattern"),
                    );
                    ok = false;
                }
                a.replace = Some((re.value.clone(), with.value.clone()));
            }
            ("attr", Some(ExprKind::Name(k)), Some(ExprKind::Str(v))) => {
                i += 2;
                a.attrs.push((k.name.clone(), v.value.clone()));
            }
            (other, ..) => {
                bad(
                    c,
                    Code::BadDeclaration,
                    w.span,
                    format!("unknown or incomplete row option `{other}`"),
                    ROW_HELP,
                );
                ok = false;
            }
        }
    }
    if a.target == Target::Trunk(u32::MAX) {
        if ok {
            let span = words.first().map_or(Span::default(), |w| w.span);
            bad(
                c,
                Code::BadDeclaration,
                span,
                "a row needs a destination",
                "add `group NAME` or `trunk NAME`",
            );
        }
        return None;
    }
    ok.then_some(a)
}

/// Rows of a CSV file: `key,target[,strip[,prefix]]`; `#` comments and
/// blank lines are skipped, as is a first line starting with `key,`.
fn csv_rows<'a>(c: &mut Checker<'a>, id: FileId, r: &mut Rows<'a>) {
    let map = c.map;
    let text: &'a str = &map.get(id).text;
    // Actions by the text after the key: parsed once per distinct text.
    let mut seen: HashMap<&'a str, u32> = HashMap::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let at = start;
        start += line.len();
        let line = line.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || (at == 0 && line.starts_with("key,")) {
            continue;
        }
        let span = Span::new(id, at, at + line.len());
        let Some((key, rest)) = line.split_once(',') else {
            bad(c, Code::BadCsvRow, span, "a CSV row needs a key and a destination", CSV_HELP);
            continue;
        };
        let action = match seen.get(rest) {
            Some(&a) => a,
            None => match csv_action(c, rest, span) {
                Some(a) => {
                    let a = r.intern(a);
                    seen.insert(rest, a);
                    a
                }
                None => continue,
            },
        };
        r.keys.push(key.trim());
        r.actions.push(action);
        r.spans.push(span);
    }
}

fn csv_action(c: &mut Checker<'_>, rest: &str, span: Span) -> Option<RowAction> {
    let mut fields = rest.split(',').map(str::trim);
    let dest = fields.next().unwrap_or("");
    let (word, name) = match dest.split_once(':') {
        Some((w @ ("group" | "trunk"), n)) => (w, n),
        Some(_) => {
            bad(
                c,
                Code::BadCsvRow,
                span,
                format!("`{dest}` is not `group:NAME` or `trunk:NAME`"),
                CSV_HELP,
            );
            return None;
        }
        None => match c.dests.get(dest).map(|d| d.0) {
            Some(DestRef::Trunk(_)) => ("trunk", dest),
            _ => ("group", dest),
        },
    };
    let ident = ast::Ident { name: name.to_string(), span };
    let target = target(c, word, &ident)?;
    let strip = match fields.next() {
        None | Some("") => 0,
        Some(s) => match s.parse::<u32>() {
            Ok(v) if v <= 64 => v,
            _ => {
                bad(
                    c,
                    Code::BadCsvRow,
                    span,
                    format!("`{s}` is not a number of digits to strip"),
                    CSV_HELP,
                );
                return None;
            }
        },
    };
    let prefix = fields.next().unwrap_or("").trim_matches('"').to_string();
    if let Some(extra) = fields.next() {
        bad(c, Code::BadCsvRow, span, format!("unexpected field `{extra}`"), CSV_HELP);
        return None;
    }
    Some(RowAction { target, strip, prefix, replace: None, attrs: Vec::new() })
}

fn build(c: &mut Checker<'_>, kind: MatchKind, r: &Rows<'_>) -> ir::TableIndex {
    let rows = r.keys.iter().copied().zip(r.actions.iter().copied());
    let dup = |c: &mut Checker<'_>, a: usize, b: usize, what: &str| {
        c.error(
            Diagnostic::new(Code::DuplicateKey, format!("{what} `{}`", r.keys[b]))
                .at(r.spans[b], "this row is never used")
                .with_label(r.spans[a], "the key is first here"),
        );
    };
    match kind {
        MatchKind::Prefix => {
            let (idx, errors) = index::PrefixIndex::build(rows);
            for e in errors {
                match e {
                    BuildError::Duplicate(a, b) => dup(c, a, b, "duplicate key"),
                    BuildError::BadKey(a) => bad(
                        c,
                        Code::BadDeclaration,
                        r.spans[a],
                        format!("a prefix key has at most {} characters", index::MAX_PREFIX_LEN),
                        "",
                    ),
                }
            }
            ir::TableIndex::Prefix(Arc::new(idx))
        }
        MatchKind::Exact => {
            let (idx, errors) = index::ExactIndex::build(rows);
            for e in errors {
                if let BuildError::Duplicate(a, b) = e {
                    dup(c, a, b, "duplicate key");
                }
            }
            ir::TableIndex::Exact(Arc::new(idx))
        }
        MatchKind::Range => {
            let (idx, problems) = index::RangeIndex::build(rows);
            for p in problems {
                match p {
                    RangeProblem::BadKey(a) => bad(
                        c,
                        Code::BadDeclaration,
                        r.spans[a],
                        "a range key is `\"LOW-HIGH\"` or one number",
                        "like \"1000-1999\"",
                    ),
                    RangeProblem::Overlap(a, b) => dup(c, a, b, "overlapping range"),
                    RangeProblem::Shadowed(a, b) => c.error(
                        Diagnostic::new(
                            Code::ShadowedRow,
                            format!("range `{}` lies inside an earlier range", r.keys[b]),
                        )
                        .at(r.spans[b], "never chosen")
                        .with_label(r.spans[a], "this range covers it"),
                    ),
                }
            }
            ir::TableIndex::Range(Arc::new(idx))
        }
    }
}
