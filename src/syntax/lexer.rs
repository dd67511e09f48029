//! The lexer: logos tokens in, `(start, token, end)` triples out, never failing.
//!
//! logos does the scanning; this wrapper turns what logos rejects into
//! [`Tok::Error`] plus a diagnostic, drops comments, and validates literal
//! values (integer overflow, IP octets, string escapes and interpolations)
//! up front. That way the grammar's actions can convert literal text without
//! a failure path, and every lexical problem is reported exactly once.

use logos::Logos;

use super::literal;
use super::span::{FileId, Span};
use super::token::Tok;
use crate::diag::{Code, Diagnostic};

/// A token with its byte range, the shape lalrpop's extern lexers yield.
pub type Spanned<'a> = (usize, Tok<'a>, usize);

/// Lexes a whole file. Never fails: problems become `Tok::Error` tokens and
/// diagnostics.
pub fn lex(file: FileId, src: &str) -> (Vec<Spanned<'_>>, Vec<Diagnostic>) {
    let mut toks = Vec::with_capacity(src.len() / 4);
    let mut diags = Vec::new();
    let mut lexer = Tok::lexer(src);
    // Runs of unrecognised characters are reported once, as one token.
    let mut bad: Option<(usize, usize)> = None;
    while let Some(res) = lexer.next() {
        let range = lexer.span();
        let (start, end) = (range.start, range.end);
        let tok = match res {
            Ok(t) => t,
            Err(()) => {
                let text = &src[start..end];
                // A lone `&` or `|` is read as `&&` or `||` after reporting it,
                // so the condition around it still parses.
                if text == "&" || text == "|" {
                    if let Some((s, e)) = bad.take() {
                        flush_bad(file, src, s, e, &mut toks, &mut diags);
                    }
                    let (tok, want) =
                        if text == "&" { (Tok::AndAnd, "&&") } else { (Tok::OrOr, "||") };
                    diags.push(
                        Diagnostic::new(
                            Code::InvalidToken,
                            format!("unexpected character `{text}`"),
                        )
                        .at(Span::new(file, start, end), "not an operator")
                        .with_help(format!("logical operators are `&&` and `||`: write `{want}`")),
                    );
                    toks.push((start, tok, end));
                    continue;
                }
                // Swallow the name glued to the bad character (`@proxy`), so it is
                // reported as one token instead of leaving a stray name behind.
                let glued = lexer
                    .remainder()
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                lexer.bump(glued);
                let end = end + glued;
                bad = match bad {
                    Some((s, e)) if e == start => Some((s, end)),
                    Some((s, e)) => {
                        flush_bad(file, src, s, e, &mut toks, &mut diags);
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
                continue;
            }
        };
        if let Some((s, e)) = bad.take() {
            flush_bad(file, src, s, e, &mut toks, &mut diags);
        }
        let span = Span::new(file, start, end);
        match tok {
            Tok::BlockComment(true) => continue,
            Tok::BlockComment(false) => {
                diags.push(
                    Diagnostic::new(Code::UnterminatedComment, "unterminated block comment")
                        .at(Span::new(file, start, start + 2), "this comment is never closed")
                        .with_help("add `*/` where the comment should end"),
                );
                continue;
            }
            Tok::UnterminatedStr(_) => {
                diags.push(
                    Diagnostic::new(Code::UnterminatedString, "unterminated string literal")
                        .at(span, "this string has no closing `\"`")
                        .with_help("strings end on the line they start; add the closing `\"`"),
                );
                toks.push((start, Tok::Error, end));
                continue;
            }
            Tok::Int(text) if text.parse::<i64>().is_err() => {
                diags.push(
                    Diagnostic::new(Code::InvalidNumber, "integer literal is too large")
                        .at(span, "does not fit in a 64-bit signed integer"),
                );
            }
            Tok::Duration(text) if literal::duration_ms(text).is_none() => {
                diags.push(
                    Diagnostic::new(Code::InvalidNumber, "duration literal is too large")
                        .at(span, "does not fit in 64 bits of milliseconds"),
                );
            }
            Tok::Ip(text) => {
                if let Err(why) = literal::check_address(text) {
                    diags.push(
                        Diagnostic::new(Code::InvalidAddress, format!("invalid address `{text}`"))
                            .at(span, why),
                    );
                }
            }
            Tok::Str(text) => {
                literal::check_string(file, start, text, &mut diags);
            }
            _ => {}
        }
        toks.push((start, tok, end));
    }
    if let Some((s, e)) = bad.take() {
        flush_bad(file, src, s, e, &mut toks, &mut diags);
    }
    (toks, diags)
}

fn flush_bad<'a>(
    file: FileId,
    src: &str,
    start: usize,
    end: usize,
    toks: &mut Vec<Spanned<'a>>,
    diags: &mut Vec<Diagnostic>,
) {
    let text = src.get(start..end).unwrap_or("?");
    let mut d = Diagnostic::new(Code::InvalidToken, format!("unexpected character `{text}`"))
        .at(Span::new(file, start, end), "not part of any token");
    if text.starts_with('$') {
        d = d.with_help("a pseudo-variable is `$name` or `$name(arg)`");
    }
    diags.push(d);
    toks.push((start, Tok::Error, end));
}
