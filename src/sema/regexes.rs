//! Regexes are validated when the configuration is checked.
//!
//! A pattern is parsed and translated with `regex-syntax`, which finds every
//! syntax error and its position; the position is mapped back through the
//! string literal's escapes so the diagnostic points at the offending
//! character in the source. Building the automaton is left to run time.
//! Each distinct pattern is validated once and numbered in the program.

use super::check::Checker;
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast;
use crate::syntax::literal;
use crate::syntax::span::Span;

/// The first problem in `pattern`: message and byte range in the pattern.
fn problem(pattern: &str) -> Option<(String, usize, usize)> {
    let (msg, span) = match regex_syntax::Parser::new().parse(pattern) {
        Ok(_) => return None,
        Err(regex_syntax::Error::Parse(e)) => (e.kind().to_string(), *e.span()),
        Err(regex_syntax::Error::Translate(e)) => (e.kind().to_string(), *e.span()),
        Err(e) => return Some((e.to_string(), 0, pattern.len())),
    };
    Some((msg, span.start.offset, span.end.offset.max(span.start.offset + 1)))
}

const HELP: &str = "regexes use Rust `regex` syntax; write `\\\\` for a literal backslash";

impl Checker<'_> {
    /// Validates a string literal as a regex; errors point inside the literal.
    pub fn regex_literal(&mut self, lit: &ast::StrLit) -> Option<u32> {
        let pattern = &lit.value;
        if let Some(&r) = self.regex_ids.get(pattern) {
            return Some(r);
        }
        if let Some((msg, start, end)) = problem(pattern) {
            let token = self.map.snippet(lit.span);
            let a = literal::source_offset(token, lit.span.start, start);
            let b = literal::source_offset(token, lit.span.start, end.min(pattern.len()));
            let b = b.max(a + 1).min(lit.span.end);
            let span =
                Span { file: lit.span.file, start: a.min(lit.span.end.saturating_sub(1)), end: b };
            self.error(
                Diagnostic::new(Code::InvalidRegex, "invalid regular expression")
                    .at(span, msg)
                    .with_help(HELP),
            );
            return None;
        }
        Some(self.add_regex(pattern))
    }

    /// Validates the value of a string constant used as a regex.
    pub fn regex_const(&mut self, pattern: &str, span: Span) -> Option<u32> {
        if let Some(&r) = self.regex_ids.get(pattern) {
            return Some(r);
        }
        if let Some((msg, start, _)) = problem(pattern) {
            self.error(
                Diagnostic::new(Code::InvalidRegex, "invalid regular expression")
                    .at(span, format!("{msg}, at byte {start} of this constant"))
                    .with_help(HELP),
            );
            return None;
        }
        Some(self.add_regex(pattern))
    }

    fn add_regex(&mut self, pattern: &str) -> u32 {
        let id = self.regexes.len() as u32;
        self.regexes.push(pattern.to_string());
        self.regex_ids.insert(pattern.to_string(), id);
        id
    }

    /// The value of a string constant, marking it used.
    pub fn str_const(&mut self, name: &str) -> Option<String> {
        if self.lookup_local(name).is_some() {
            return None;
        }
        let c = self.consts.get_mut(name)?;
        match &c.value {
            Some(super::ir::Value::Str(s)) => {
                c.used = true;
                Some(s.clone())
            }
            _ => None,
        }
    }
}
