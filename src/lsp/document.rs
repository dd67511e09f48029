//! One document and the files it includes, parsed for navigation.
//!
//! Diagnostics come from the checker (see [`super::diagnostics`]); hover,
//! completion, definitions, references and the outline need the syntax of
//! every file the document reaches through `include`, and which names those
//! files declare. An [`Analysis`] is that: built from the open buffers (an
//! include that is open in the editor is read from the buffer, not the disk)
//! on each request, since route files are small and parsing is fast. The
//! parser recovers, so a half-typed document still has an outline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lsp_types::Url;

use super::position::LineIndex;
use crate::sema::Loader;
use crate::syntax::ast::{self, Item, ItemKind, RouteKind};
use crate::syntax::lexer::{self, Spanned};
use crate::syntax::parser;
use crate::syntax::span::{FileId, Span};

/// The open documents, by URI: the editor's view of the files.
#[derive(Debug, Default)]
pub struct OpenDocs {
    pub texts: HashMap<Url, String>,
}

impl OpenDocs {
    fn by_path(&self, path: &Path) -> Option<&String> {
        let url = Url::from_file_path(path).ok()?;
        self.texts.get(&url)
    }
}

/// Reads includes from open buffers first, then from disk.
impl Loader for OpenDocs {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        match self.by_path(path) {
            Some(t) => Ok(t.clone()),
            None => std::fs::read_to_string(path),
        }
    }
}

/// One file of an analysis; its index in [`Analysis::files`] is its `FileId`.
#[derive(Debug)]
pub struct SourceDoc {
    pub uri: Url,
    pub path: Option<PathBuf>,
    pub text: String,
    pub index: LineIndex,
    pub ast: ast::File,
}

impl SourceDoc {
    pub fn tokens(&self, id: usize) -> Vec<Spanned<'_>> {
        lexer::lex(FileId(id as u32), &self.text).0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefKind {
    Route(RouteKind),
    Const,
    /// A feature switch (`define NAME`).
    Define,
    Flag,
    Table,
}

/// A declared name.
#[derive(Debug, Clone)]
pub struct Def {
    pub kind: DefKind,
    pub name: String,
    /// The name as written (for request/reply routes, the keyword).
    pub name_span: Span,
    /// The whole declaration.
    pub item_span: Span,
}

/// An `include "…"`: the string's span and the file it names.
#[derive(Debug, Clone)]
pub struct Include {
    pub span: Span,
    pub path: PathBuf,
    /// Index in [`Analysis::files`] when it could be read.
    pub file: Option<usize>,
}

#[derive(Debug)]
pub struct Analysis {
    /// `files[0]` is the document itself.
    pub files: Vec<SourceDoc>,
    pub defs: Vec<Def>,
    pub includes: Vec<Include>,
}

impl Analysis {
    pub fn build(uri: &Url, text: &str, docs: &OpenDocs) -> Analysis {
        let mut a = Analysis { files: Vec::new(), defs: Vec::new(), includes: Vec::new() };
        a.add(uri.clone(), uri.to_file_path().ok(), text.to_string(), docs);
        a
    }

    fn add(&mut self, uri: Url, path: Option<PathBuf>, text: String, docs: &OpenDocs) -> usize {
        let id = self.files.len();
        let (ast, _) = parser::parse(FileId(id as u32), &text);
        let index = LineIndex::new(&text);
        let mut incs = Vec::new();
        collect(&ast.items, &mut self.defs, &mut incs);
        let dir = path.as_deref().and_then(Path::parent).map(Path::to_path_buf);
        self.files.push(SourceDoc { uri, path, text, index, ast });
        for (span, rel) in incs {
            let Some(dir) = &dir else { continue };
            let target = crate::sema::resolve::normalize(&dir.join(&rel));
            let known = self.files.iter().position(|f| f.path.as_deref() == Some(&target));
            let file = known.or_else(|| {
                let text = docs.load(&target).ok()?;
                let uri = Url::from_file_path(&target).ok()?;
                Some(self.add(uri, Some(target.clone()), text, docs))
            });
            self.includes.push(Include { span, path: target, file });
        }
        id
    }

    pub fn text(&self, span: Span) -> &str {
        self.files[span.file.0 as usize].text.get(span.range()).unwrap_or("")
    }

    pub fn location(&self, span: Span) -> lsp_types::Location {
        let f = &self.files[span.file.0 as usize];
        lsp_types::Location {
            uri: f.uri.clone(),
            range: f.index.range(&f.text, span.start as usize, span.end as usize),
        }
    }

    pub fn defs_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Def> + 'a {
        self.defs.iter().filter(move |d| d.name == name)
    }
}

fn collect(items: &[Item], defs: &mut Vec<Def>, incs: &mut Vec<(Span, String)>) {
    for item in items {
        let mut def = |kind, name: &ast::Ident| {
            defs.push(Def {
                kind,
                name: name.name.clone(),
                name_span: name.span,
                item_span: item.span,
            })
        };
        match &item.kind {
            ItemKind::Route(r) => match &r.name {
                Some(n) => def(DefKind::Route(r.kind), n),
                None => defs.push(Def {
                    kind: DefKind::Route(r.kind),
                    name: r.kind.keyword().to_string(),
                    name_span: r.head,
                    item_span: item.span,
                }),
            },
            ItemKind::Const { name, .. } => def(DefKind::Const, name),
            ItemKind::Define { name, .. } => def(DefKind::Define, name),
            ItemKind::Flag { name, .. } => def(DefKind::Flag, name),
            ItemKind::Table { name, .. }
            | ItemKind::RouteTable { name, .. }
            | ItemKind::TrunkGroup { name, .. }
            | ItemKind::Limit { name, .. }
            | ItemKind::Acl { name, .. } => def(DefKind::Table, name),
            ItemKind::Trunk(t) => def(DefKind::Table, &t.name),
            ItemKind::Include(lit) => incs.push((lit.span, lit.value.clone())),
            ItemKind::Ifdef { then_items, else_items, .. } => {
                collect(then_items, defs, incs);
                collect(else_items, defs, incs);
            }
            _ => {}
        }
    }
}

/// The token under (or just before) a byte offset.
pub fn token_at<'a>(tokens: &[Spanned<'a>], offset: usize) -> Option<(usize, Spanned<'a>)> {
    let i = tokens.partition_point(|t| t.2 < offset);
    let t = *tokens.get(i)?;
    (t.0 <= offset).then_some((i, t))
}
