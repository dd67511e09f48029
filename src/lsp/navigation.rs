//! Go to definition and find references.
//!
//! Names in this language are global (routes, constants, flags, tables,
//! feature switches), declared once per configuration and referred to by a
//! bare name token, so both directions are answered from the token streams
//! of the document and its includes: a definition is a declaration with
//! that name, a reference is any name token spelled the same. An include's
//! string leads to the included file; its references are the includes of
//! the same file.

use lsp_types::{Location, Position, Range};

use super::document::{Analysis, token_at};
use crate::syntax::span::Span;
use crate::syntax::token::Tok;

/// What the cursor is on, for navigation.
enum Target<'a> {
    Name(&'a str),
    Include(usize),
}

fn target<'a>(
    a: &'a Analysis,
    tokens: &[crate::syntax::lexer::Spanned<'a>],
    offset: usize,
) -> Option<Target<'a>> {
    let (_, (start, tok, _)) = token_at(tokens, offset)?;
    match tok {
        Tok::Ident(name) => Some(Target::Name(name)),
        Tok::RequestRoute => Some(Target::Name("request_route")),
        Tok::ReplyRoute => Some(Target::Name("reply_route")),
        Tok::Str(_) => a
            .includes
            .iter()
            .position(|i| i.span.file.0 == 0 && i.span.start as usize == start)
            .map(Target::Include),
        _ => None,
    }
}

pub fn definition(a: &Analysis, offset: usize) -> Vec<Location> {
    let tokens = a.files[0].tokens(0);
    match target(a, &tokens, offset) {
        Some(Target::Name(name)) => a.defs_named(name).map(|d| a.location(d.name_span)).collect(),
        Some(Target::Include(i)) => match a.includes[i].file {
            Some(f) => vec![Location {
                uri: a.files[f].uri.clone(),
                range: Range::new(Position::new(0, 0), Position::new(0, 0)),
            }],
            None => Vec::new(),
        },
        None => Vec::new(),
    }
}

pub fn references(a: &Analysis, offset: usize, include_declaration: bool) -> Vec<Location> {
    let tokens = a.files[0].tokens(0);
    let mut spans: Vec<Span> = Vec::new();
    match target(a, &tokens, offset) {
        Some(Target::Name(name)) => {
            let decls: Vec<Span> = a.defs_named(name).map(|d| d.name_span).collect();
            for (id, f) in a.files.iter().enumerate() {
                for (s, tok, e) in f.tokens(id) {
                    if matches!(tok, Tok::Ident(n) if n == name) {
                        spans.push(Span::new(crate::syntax::span::FileId(id as u32), s, e));
                    }
                }
            }
            spans.retain(|s| !decls.contains(s));
            if include_declaration {
                spans.splice(0..0, decls);
            }
        }
        Some(Target::Include(i)) => {
            let path = &a.includes[i].path;
            spans.extend(a.includes.iter().filter(|inc| inc.path == *path).map(|inc| inc.span));
        }
        None => {}
    }
    spans.into_iter().map(|s| a.location(s)).collect()
}
