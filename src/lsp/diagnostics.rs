//! The checker's diagnostics, as LSP diagnostics.
//!
//! There is one checker: this module runs [`crate::sema::check_with_loader`]
//! exactly as `sipc check` does (includes read through the open buffers) and
//! only converts the result: byte spans to UTF-16 ranges, the help line
//! appended to the message, secondary labels as related information.
//! Diagnostics located in an included file are published for the including
//! document only when they point into it; the included file gets its own
//! when it is opened.

use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range,
    Url,
};

use super::document::OpenDocs;
use super::position::LineIndex;
use crate::diag::{Diagnostic, Severity};
use crate::sema::{self, Options};
use crate::syntax::span::FileId;

/// Checks the document and returns its diagnostics.
pub fn check(uri: &Url, text: &str, docs: &OpenDocs) -> Vec<lsp_types::Diagnostic> {
    let path = uri.to_file_path().unwrap_or_else(|_| uri.path().into());
    let name = path.to_string_lossy().into_owned();
    let out = sema::check_with_loader(&name, &path, text.to_string(), docs, &Options::default());
    let index = LineIndex::new(text);
    out.diagnostics
        .iter()
        .filter(|d| d.span().is_none_or(|s| s.file == FileId(0)))
        .map(|d| convert(uri, text, &index, d))
        .collect()
}

fn convert(uri: &Url, text: &str, index: &LineIndex, d: &Diagnostic) -> lsp_types::Diagnostic {
    let range = match d.span() {
        Some(s) => index.range(text, s.start as usize, s.end as usize),
        None => Range::new(Position::new(0, 0), Position::new(0, 0)),
    };
    let mut message = d.message.clone();
    if let Some(label) = d.primary.as_ref().filter(|l| !l.message.is_empty()) {
        message.push_str(&format!(" ({})", label.message));
    }
    for note in &d.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter(|l| l.span.file == FileId(0))
        .map(|l| DiagnosticRelatedInformation {
            location: Location {
                uri: uri.clone(),
                range: index.range(text, l.span.start as usize, l.span.end as usize),
            },
            message: l.message.clone(),
        })
        .collect();
    lsp_types::Diagnostic {
        range,
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.full())),
        source: Some("sipc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}
