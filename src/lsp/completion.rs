//! Completion from the token stream, so it works in a half-typed file.
//!
//! The context (which route kind the cursor is in, whether it is inside a
//! `settings`/`module` block, which argument of which call) is read from the
//! tokens before the cursor, not from the tree: a file being typed rarely
//! parses. Candidates come from the catalog, filtered by the route kind
//! exactly as the checker would (a `reply_route` is not offered `reply`),
//! from the lexer's keyword table, and from the names the document and its
//! includes declare.

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, TextEdit,
};

use super::document::{Analysis, DefKind};
use super::hover::{function_markdown, pv_label, pv_markdown, signature};
use super::vocab::keywords;
use crate::sema::builtins::{self, Kinds, Param, PvArg};
use crate::syntax::ast::RouteKind;
use crate::syntax::lexer::Spanned;
use crate::syntax::token::{KeywordClass, Tok};

#[derive(Debug, Clone, Default)]
struct Frame {
    route: Option<RouteKind>,
    /// `Some("")` in `settings { }`, `Some(m)` in `module m { }`.
    settings: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Callee<'a> {
    Route,
    Func(&'a str),
}

/// What the tokens before the cursor say about it.
#[derive(Debug, Default)]
struct Context<'a> {
    frames: Vec<Frame>,
    call: Option<(Callee<'a>, usize)>,
    after_ifdef: bool,
}

fn context<'a>(toks: &[Spanned<'a>]) -> Context<'a> {
    let mut cx = Context::default();
    let mut calls: Vec<(Option<Callee<'a>>, usize)> = Vec::new();
    for (i, &(_, tok, _)) in toks.iter().enumerate() {
        let back = |n: usize| i.checked_sub(n).map(|j| toks[j].1);
        match tok {
            Tok::LBrace => {
                calls.clear();
                let mut f = Frame::default();
                match (back(2), back(1)) {
                    (_, Some(Tok::RequestRoute)) => f.route = Some(RouteKind::Request),
                    (_, Some(Tok::ReplyRoute)) => f.route = Some(RouteKind::Reply),
                    (Some(kw), Some(Tok::Ident(_) | Tok::Str(_))) if route_kind(kw).is_some() => {
                        f.route = route_kind(kw)
                    }
                    (_, Some(Tok::Settings)) => f.settings = Some(String::new()),
                    (Some(Tok::Module), Some(Tok::Ident(m))) => f.settings = Some(m.to_string()),
                    _ => {}
                }
                cx.frames.push(f);
            }
            Tok::RBrace => {
                calls.clear();
                cx.frames.pop();
            }
            Tok::Semi => calls.clear(),
            Tok::LParen => {
                let callee = match back(1) {
                    Some(Tok::Route) => Some(Callee::Route),
                    Some(Tok::Ident(n)) => Some(Callee::Func(n)),
                    _ => None,
                };
                calls.push((callee, 0));
            }
            Tok::Comma => {
                if let Some(c) = calls.last_mut() {
                    c.1 += 1;
                }
            }
            Tok::RParen => {
                calls.pop();
            }
            _ => {}
        }
    }
    cx.call = calls.last().and_then(|&(c, n)| c.map(|c| (c, n)));
    cx.after_ifdef = matches!(toks.last(), Some((_, Tok::Ifdef | Tok::Ifndef, _)));
    cx
}

fn route_kind(t: Tok<'_>) -> Option<RouteKind> {
    Some(match t {
        Tok::OnReplyRoute => RouteKind::OnReply,
        Tok::FailureRoute => RouteKind::Failure,
        Tok::BranchRoute => RouteKind::Branch,
        Tok::EventRoute => RouteKind::Event,
        Tok::Route => RouteKind::Sub,
        _ => return None,
    })
}

/// Completion candidates at a byte offset of the analysis' first file.
pub fn complete(a: &Analysis, offset: usize) -> Vec<CompletionItem> {
    let doc = &a.files[0];
    let text = &doc.text;
    let offset = offset.min(text.len());
    let bytes = text.as_bytes();
    let mut start = offset;
    while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        start -= 1;
    }
    let dollar = start > 0 && bytes[start - 1] == b'$';
    if dollar {
        start -= 1;
    }
    let range = doc.index.range(text, start, offset);
    let tokens = doc.tokens(0);
    let before: Vec<Spanned<'_>> = tokens.into_iter().filter(|t| t.2 <= start).collect();
    let cx = context(&before);
    let route = cx.frames.iter().find_map(|f| f.route);
    let in_block = !cx.frames.is_empty();
    let mut out = Candidates { items: Vec::new(), range };

    if dollar {
        for p in builtins::PSEUDO_VARS {
            if route.is_some_and(|k| k != RouteKind::Sub && !p.read.contains(Kinds::of(k))) {
                continue;
            }
            let insert = match p.arg {
                PvArg::None => format!("${}", p.name),
                _ => format!("${}()", p.name),
            };
            out.push(pv_label(p), CompletionItemKind::VARIABLE, insert, None, Some(pv_markdown(p)));
        }
        return out.items;
    }
    if let Some((callee, arg)) = cx.call {
        let param = match callee {
            Callee::Route => Some(Param::Route(RouteKind::Sub)),
            Callee::Func(f) => {
                builtins::function(f).and_then(|(_, f)| f.params.get(arg)).map(|p| p.1)
            }
        };
        let wanted = match param {
            Some(Param::Route(k)) => Some(DefKind::Route(k)),
            Some(Param::Flag) => Some(DefKind::Flag),
            Some(Param::Table) => Some(DefKind::Table),
            Some(Param::Level) => {
                for l in builtins::LOG_LEVELS {
                    out.push(
                        l.to_string(),
                        CompletionItemKind::ENUM_MEMBER,
                        l.to_string(),
                        None,
                        None,
                    );
                }
                return out.items;
            }
            Some(Param::Word(words) | Param::Words(words)) => {
                for w in words {
                    out.push(
                        w.to_string(),
                        CompletionItemKind::ENUM_MEMBER,
                        format!("\"{w}\""),
                        None,
                        None,
                    );
                }
                return out.items;
            }
            _ => None,
        };
        if let Some(kind) = wanted {
            out.defs(a, |k| k == kind);
            return out.items;
        }
    }
    if cx.after_ifdef {
        out.defs(a, |k| k == DefKind::Define);
        return out.items;
    }
    if let Some(module) = cx.frames.iter().rev().find_map(|f| f.settings.clone()) {
        for s in builtins::SETTINGS.iter().filter(|s| s.module == module) {
            let detail = format!("{}: {}", s.name, s.ty.name());
            let doc = Some(s.doc.to_string());
            out.push(s.name.into(), CompletionItemKind::PROPERTY, s.name.into(), Some(detail), doc);
        }
        return out.items;
    }
    if route.is_some() || in_block {
        for f in builtins::FUNCTIONS {
            if route.is_some_and(|k| k != RouteKind::Sub && !f.kinds.contains(Kinds::of(k))) {
                continue;
            }
            let doc = Some(function_markdown(f));
            out.push(
                f.name.into(),
                CompletionItemKind::FUNCTION,
                f.name.into(),
                Some(signature(f)),
                doc,
            );
        }
        for class in [KeywordClass::Control, KeywordClass::Constant] {
            out.keywords(class);
        }
        for kw in ["let", "route", "ifdef", "ifndef"] {
            out.push(kw.into(), CompletionItemKind::KEYWORD, kw.into(), None, None);
        }
        out.defs(a, |k| k == DefKind::Const);
    } else {
        out.keywords(KeywordClass::RouteKind);
        for kw in keywords(KeywordClass::Declaration) {
            if !matches!(kw, "let" | "advertise") {
                out.push(kw.into(), CompletionItemKind::KEYWORD, kw.into(), None, None);
            }
        }
    }
    out.items
}

struct Candidates {
    items: Vec<CompletionItem>,
    range: lsp_types::Range,
}

impl Candidates {
    fn push(
        &mut self,
        label: String,
        kind: CompletionItemKind,
        insert: String,
        detail: Option<String>,
        doc: Option<String>,
    ) {
        if self.items.iter().any(|i| i.label == label) {
            return;
        }
        self.items.push(CompletionItem {
            label,
            kind: Some(kind),
            detail,
            documentation: doc.map(|value| {
                Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value })
            }),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                range: self.range,
                new_text: insert,
            })),
            ..Default::default()
        });
    }

    fn keywords(&mut self, class: KeywordClass) {
        for kw in keywords(class) {
            self.push(kw.into(), CompletionItemKind::KEYWORD, kw.into(), None, None);
        }
    }

    fn defs(&mut self, a: &Analysis, want: impl Fn(DefKind) -> bool) {
        for d in a.defs.iter().filter(|d| want(d.kind)) {
            if matches!(d.kind, DefKind::Route(RouteKind::Request | RouteKind::Reply)) {
                continue;
            }
            let kind = match d.kind {
                DefKind::Route(_) => CompletionItemKind::FUNCTION,
                DefKind::Table => CompletionItemKind::STRUCT,
                _ => CompletionItemKind::CONSTANT,
            };
            let decl = a.text(d.item_span).lines().next().unwrap_or("").trim_end().to_string();
            self.push(d.name.clone(), kind, d.name.clone(), Some(decl), None);
        }
    }
}
