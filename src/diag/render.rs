//! Rendering diagnostics: miette for people, JSON for tools.
//!
//! miette wants one source per report, so labels in a file other than the
//! primary label's are turned into notes naming `file:line:col`. The human
//! renderer takes a [`Style`] so tests can fix the width and drop colour.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use super::{Diagnostic, Severity};
use crate::syntax::span::{SourceMap, Span};

/// How human output looks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub unicode: bool,
    pub width: usize,
}

impl Style {
    /// Stable output for snapshot tests: no colour, unicode box drawing, 100 columns.
    pub fn plain() -> Style {
        Style { color: false, unicode: true, width: 100 }
    }
}

struct Report<'a> {
    diag: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report").field("diag", self.diag).finish()
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.full()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display + 'b>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() { None } else { Some(Box::new(self.labels.iter().cloned())) }
    }
}

fn source_span(span: Span) -> SourceSpan {
    SourceSpan::new((span.start as usize).into(), span.len())
}

/// `file:line:col` of a span.
pub fn location(map: &SourceMap, span: Span) -> String {
    let file = map.get(span.file);
    let (line, col) = file.line_col(span.start);
    format!("{}:{line}:{col}", file.name)
}

/// Renders one diagnostic the way `sipc check` prints it.
pub fn human(map: &SourceMap, diag: &Diagnostic, style: Style) -> String {
    let mut labels = Vec::new();
    let mut notes = Vec::new();
    let mut source = None;
    if let Some(primary) = &diag.primary {
        let file = map.get(primary.span.file);
        source = Some(NamedSource::new(file.name.clone(), file.text.to_string()));
        labels.push(LabeledSpan::new_primary_with_span(
            Some(primary.message.clone()).filter(|m| !m.is_empty()),
            source_span(primary.span),
        ));
        for l in &diag.secondary {
            if l.span.file == primary.span.file {
                labels
                    .push(LabeledSpan::new_with_span(Some(l.message.clone()), source_span(l.span)));
            } else {
                notes.push(format!("{}: {}", location(map, l.span), l.message));
            }
        }
    } else {
        for l in &diag.secondary {
            notes.push(format!("{}: {}", location(map, l.span), l.message));
        }
    }
    notes.extend(diag.notes.iter().cloned());
    let mut help = diag.help.clone();
    if !notes.is_empty() {
        let joined = notes.iter().map(|n| format!("note: {n}")).collect::<Vec<_>>().join("\n");
        help = Some(match help {
            Some(h) => format!("{h}\n{joined}"),
            None => joined,
        });
    }
    let report = Report { diag, source, labels, help };
    let theme = match (style.unicode, style.color) {
        (true, true) => GraphicalTheme::unicode(),
        (true, false) => GraphicalTheme::unicode_nocolor(),
        (false, _) => GraphicalTheme::ascii(),
    };
    let handler =
        GraphicalReportHandler::new_themed(theme).with_width(style.width).with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("{}: {}\n", diag.code.full(), diag.message);
    }
    out
}

#[derive(serde::Serialize)]
struct JsonLabel {
    file: String,
    line: usize,
    column: usize,
    start: u32,
    end: u32,
    message: String,
}

#[derive(serde::Serialize)]
struct JsonDiag {
    code: String,
    severity: Severity,
    message: String,
    primary: Option<JsonLabel>,
    secondary: Vec<JsonLabel>,
    notes: Vec<String>,
    help: Option<String>,
}

fn json_label(map: &SourceMap, span: Span, message: &str) -> JsonLabel {
    let file = map.get(span.file);
    let (line, column) = file.line_col(span.start);
    JsonLabel {
        file: file.name.clone(),
        line,
        column,
        start: span.start,
        end: span.end,
        message: message.to_string(),
    }
}

/// One diagnostic as a JSON value.
pub fn json(map: &SourceMap, diag: &Diagnostic) -> serde_json::Value {
    let d = JsonDiag {
        code: diag.code.full(),
        severity: diag.severity,
        message: diag.message.clone(),
        primary: diag.primary.as_ref().map(|l| json_label(map, l.span, &l.message)),
        secondary: diag.secondary.iter().map(|l| json_label(map, l.span, &l.message)).collect(),
        notes: diag.notes.clone(),
        help: diag.help.clone(),
    };
    serde_json::to_value(d).unwrap_or(serde_json::Value::Null)
}
