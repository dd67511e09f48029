//! The outline: document symbols from the (recovered) syntax tree.
//!
//! Routes, constants, feature switches, flags, tables, settings blocks and
//! modules (with their parameters as children), listens, domains, includes,
//! and `ifdef` blocks holding the items they guard.

use lsp_types::{DocumentSymbol, SymbolKind};

use super::document::SourceDoc;
use crate::syntax::ast::{Item, ItemKind, Setting};
use crate::syntax::span::Span;

pub fn document_symbols(doc: &SourceDoc) -> Vec<DocumentSymbol> {
    items(doc, &doc.ast.items)
}

fn items(doc: &SourceDoc, items: &[Item]) -> Vec<DocumentSymbol> {
    items.iter().filter_map(|i| item(doc, i)).collect()
}

fn item(doc: &SourceDoc, item: &Item) -> Option<DocumentSymbol> {
    let span = item.span;
    Some(match &item.kind {
        ItemKind::Route(r) => match &r.name {
            Some(n) => {
                symbol(doc, &n.name, r.kind.keyword(), SymbolKind::FUNCTION, span, n.span, None)
            }
            None => symbol(doc, r.kind.keyword(), "", SymbolKind::FUNCTION, span, r.head, None),
        },
        ItemKind::Const { name, .. } => {
            symbol(doc, &name.name, "const", SymbolKind::CONSTANT, span, name.span, None)
        }
        ItemKind::Define { name, .. } => {
            symbol(doc, &name.name, "define", SymbolKind::BOOLEAN, span, name.span, None)
        }
        ItemKind::Flag { name, .. } => {
            symbol(doc, &name.name, "flag", SymbolKind::KEY, span, name.span, None)
        }
        ItemKind::Table { name, .. } | ItemKind::RouteTable { name, .. } => {
            symbol(doc, &name.name, "table", SymbolKind::STRUCT, span, name.span, None)
        }
        ItemKind::Trunk(t) => {
            symbol(doc, &t.name.name, "trunk", SymbolKind::OBJECT, span, t.name.span, None)
        }
        ItemKind::TrunkGroup { name, .. } => {
            symbol(doc, &name.name, "trunk_group", SymbolKind::ARRAY, span, name.span, None)
        }
        ItemKind::Limit { name, .. } => {
            symbol(doc, &name.name, "limit", SymbolKind::OPERATOR, span, name.span, None)
        }
        ItemKind::Acl { name, .. } => {
            symbol(doc, &name.name, "acl", SymbolKind::ENUM, span, name.span, None)
        }
        ItemKind::Settings(s) => {
            symbol(doc, "settings", "", SymbolKind::NAMESPACE, span, span, Some(settings(doc, s)))
        }
        ItemKind::Module { name, params } => symbol(
            doc,
            &name.name,
            "module",
            SymbolKind::MODULE,
            span,
            name.span,
            Some(settings(doc, params)),
        ),
        ItemKind::Listen { proto, addr, .. } => {
            let label = format!("listen {} {}", proto.name, slice(doc, addr.span));
            symbol(doc, &label, "", SymbolKind::EVENT, span, span, None)
        }
        ItemKind::Domain(_) => {
            let label = slice(doc, span).trim_end_matches(';').to_string();
            symbol(doc, &label, "", SymbolKind::STRING, span, span, None)
        }
        ItemKind::Include(lit) => {
            symbol(doc, &lit.value, "include", SymbolKind::FILE, span, lit.span, None)
        }
        ItemKind::Ifdef { negate, name, then_items, else_items } => {
            let mut children = items(doc, then_items);
            children.extend(items(doc, else_items));
            let kw = if *negate { "ifndef" } else { "ifdef" };
            let label = format!("{kw} {}", name.name);
            symbol(doc, &label, "", SymbolKind::NAMESPACE, span, name.span, Some(children))
        }
        ItemKind::Error => return None,
    })
}

fn settings(doc: &SourceDoc, s: &[Setting]) -> Vec<DocumentSymbol> {
    s.iter()
        .map(|s| {
            let value = slice(doc, s.value.span).to_string();
            symbol(doc, &s.name.name, &value, SymbolKind::PROPERTY, s.span, s.name.span, None)
        })
        .collect()
}

fn slice(doc: &SourceDoc, span: Span) -> &str {
    doc.text.get(span.range()).unwrap_or("")
}

#[allow(deprecated, reason = "DocumentSymbol::deprecated must still be initialised")]
fn symbol(
    doc: &SourceDoc,
    name: &str,
    detail: &str,
    kind: SymbolKind,
    full: Span,
    selection: Span,
    children: Option<Vec<DocumentSymbol>>,
) -> DocumentSymbol {
    let range = doc.index.range(&doc.text, full.start as usize, full.end as usize);
    let mut selection_range =
        doc.index.range(&doc.text, selection.start as usize, selection.end as usize);
    // The selection must lie inside the range.
    if selection_range.start < range.start || selection_range.end > range.end {
        selection_range = range;
    }
    DocumentSymbol {
        name: if name.is_empty() { "?".into() } else { name.to_string() },
        detail: (!detail.is_empty()).then(|| detail.to_string()),
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range,
        children,
    }
}
