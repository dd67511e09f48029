//! Hover: what a name under the cursor is, from the catalog or the source.
//!
//! Builtin functions and pseudo-variables show their signature, the route
//! kinds that allow them and the catalog's doc string (the same text as
//! docs/builtins.md); settings show their type and doc; routes, constants,
//! flags, tables and feature switches show their declaration and the
//! comment lines above it; an include shows the file it resolves to.

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};

use super::document::{Analysis, DefKind, token_at};
use crate::sema::builtins::{self, Func, Kinds, PseudoVar, PvArg};
use crate::syntax::ast::ItemKind;
use crate::syntax::token::Tok;

pub fn hover(a: &Analysis, offset: usize) -> Option<Hover> {
    let doc = &a.files[0];
    let tokens = doc.tokens(0);
    let (i, (start, tok, end)) = token_at(&tokens, offset)?;
    let next_is_paren = matches!(tokens.get(i + 1), Some((_, Tok::LParen, _)));
    let text = match tok {
        Tok::Pv(t) => builtins::pseudo_var(pv_name(t)).map(|(_, p)| pv_markdown(p))?,
        Tok::Ident(name) if next_is_paren => match builtins::function(name) {
            Some((_, f)) => function_markdown(f),
            None => def_markdown(a, name)?,
        },
        Tok::Ident(name) => setting_markdown(a, start)
            .or_else(|| def_markdown(a, name))
            .or_else(|| builtins::function(name).map(|(_, f)| function_markdown(f)))?,
        Tok::Str(_) => {
            let inc =
                a.includes.iter().find(|i| i.span.file.0 == 0 && i.span.start as usize == start)?;
            match inc.file {
                Some(_) => format!("includes `{}`", inc.path.display()),
                None => format!("includes `{}` (cannot be read)", inc.path.display()),
            }
        }
        _ => return None,
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: text }),
        range: Some(doc.index.range(&doc.text, start, end)),
    })
}

/// `$hdr(To)` → `hdr`.
pub fn pv_name(token: &str) -> &str {
    let t = token.trim_start_matches('$');
    t.split('(').next().unwrap_or(t)
}

fn kinds_text(k: Kinds) -> String {
    if k == Kinds::ALL {
        "any route".into()
    } else if k.is_empty() {
        "nowhere".into()
    } else {
        k.names().join(", ")
    }
}

pub fn signature(f: &Func) -> String {
    let ret =
        if f.ret == builtins::Ty::Void { String::new() } else { format!(" -> {}", f.ret.name()) };
    format!("{}({}){ret}", f.name, f.params_text().join(", "))
}

pub fn function_markdown(f: &Func) -> String {
    format!("```sipc\n{}\n```\n{}\n\nAllowed in: {}", signature(f), f.doc, kinds_text(f.kinds))
}

pub fn pv_label(p: &PseudoVar) -> String {
    match p.arg {
        PvArg::None => format!("${}", p.name),
        PvArg::Name | PvArg::Header => format!("${}(name)", p.name),
        PvArg::Index => format!("${}(N)", p.name),
    }
}

pub fn pv_markdown(p: &PseudoVar) -> String {
    let ty = if p.ty == builtins::Ty::Unknown { "set by first assignment" } else { p.ty.name() };
    let write = if p.write.is_empty() {
        "read-only".to_string()
    } else {
        format!("writable in {}", kinds_text(p.write))
    };
    format!(
        "```sipc\n{}: {ty}\n```\n{}\n\nReadable in {}; {write}.",
        pv_label(p),
        p.doc,
        kinds_text(p.read)
    )
}

fn setting_markdown(a: &Analysis, start: usize) -> Option<String> {
    for item in &a.files[0].ast.items {
        let (module, params) = match &item.kind {
            ItemKind::Settings(p) => ("", p),
            ItemKind::Module { name, params } => {
                if name.span.start as usize == start {
                    let names: Vec<String> = builtins::SETTINGS
                        .iter()
                        .filter(|s| s.module == name.name)
                        .map(|s| format!("`{}`", s.name))
                        .collect();
                    return Some(format!("module `{}`: {}", name.name, names.join(", ")));
                }
                (name.name.as_str(), params)
            }
            _ => continue,
        };
        if let Some(s) = params.iter().find(|s| s.name.span.start as usize == start) {
            let def = builtins::setting(module, &s.name.name)?;
            let scope = if module.is_empty() { String::new() } else { format!("{module}.") };
            return Some(format!(
                "```sipc\n{scope}{}: {}\n```\n{}",
                def.name,
                def.ty.name(),
                def.doc
            ));
        }
    }
    None
}

fn def_markdown(a: &Analysis, name: &str) -> Option<String> {
    let def = a.defs_named(name).next()?;
    let file = &a.files[def.item_span.file.0 as usize];
    let what = match def.kind {
        DefKind::Route(_) => "route",
        DefKind::Const => "constant",
        DefKind::Define => "feature switch",
        DefKind::Flag => "flag",
        DefKind::Table => "table",
    };
    let decl = a.text(def.item_span).lines().next().unwrap_or("").trim_end();
    let mut md = format!("```sipc\n{decl}\n```\n{what}");
    if def.item_span.file.0 != 0 {
        md.push_str(&format!(" in `{}`", file.uri.path().rsplit('/').next().unwrap_or("")));
    }
    let comments = comment_above(&file.text, def.item_span.start as usize);
    if !comments.is_empty() {
        md.push_str("\n\n");
        md.push_str(&comments);
    }
    Some(md)
}

/// The `#`/`//` comment lines right above the line holding `offset`.
fn comment_above(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut lines: Vec<&str> = Vec::new();
    for line in text[..line_start].lines().rev() {
        let t = line.trim();
        let Some(body) = t.strip_prefix('#').or_else(|| t.strip_prefix("//")) else { break };
        lines.push(body.strip_prefix(' ').unwrap_or(body));
    }
    lines.reverse();
    lines.join("\n")
}
