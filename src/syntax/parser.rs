//! The parser facade: [`parse`] is the one entry point callers use.
//!
//! It lexes the file, runs the lalrpop-generated parser (which recovers from
//! errors at item and statement level), and turns lalrpop's errors into
//! diagnostics whose expected-token lists are named in words ("`;`", "an
//! expression", "a statement") instead of grammar terminal names. Keeping
//! this behind one function means the parser generator could be swapped
//! without touching the checker.

use lalrpop_util::{ErrorRecovery, ParseError};

use super::ast::File;
use super::lexer::{self, Spanned};
use super::span::{FileId, Span};
use super::token::Tok;
use crate::diag::{Code, Diagnostic};

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, missing_debug_implementations, unused_qualifications)]
    grammar,
    "/route.rs"
);

/// The lexer never fails, so the parser's lexical-error type is uninhabited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Never {}

/// Parses one file. Always returns a tree (with `Error` nodes where it
/// recovered) and every lexical and syntax diagnostic found.
pub fn parse(file: FileId, src: &str) -> (File, Vec<Diagnostic>) {
    let (tokens, mut diags) = lexer::lex(file, src);
    let mut errors: Vec<ErrorRecovery<usize, Tok<'_>, Never>> = Vec::new();
    let stream = tokens.iter().copied().map(Ok::<Spanned<'_>, Never>);
    let result = grammar::FileParser::new().parse(file, &mut errors, stream);
    let mut saw_eof = errors.iter().any(|e| matches!(e.error, ParseError::UnrecognizedEof { .. }));
    let mut syntax = Vec::new();
    for e in errors {
        syntax.extend(convert(file, src, &tokens, e.error));
    }
    let mut ast = match result {
        Ok(ast) => Some(ast),
        Err(e) => {
            saw_eof |= matches!(e, ParseError::UnrecognizedEof { .. });
            syntax.extend(convert(file, src, &tokens, e));
            None
        }
    };
    if saw_eof {
        ast = reparse_closed(file, &tokens, src.len()).or(ast);
    }
    let ast = ast.unwrap_or(File { items: Vec::new() });
    // One error per position: recovery can fail more than once at one token.
    syntax.dedup_by_key(|d| d.span());
    diags.extend(syntax);
    (ast, diags)
}

/// After an error at end of file (usually a truncated file), parses again
/// with the missing `}` supplied, so the part that was there is still
/// checked. Errors of this second run were already reported by the first.
fn reparse_closed(file: FileId, tokens: &[Spanned<'_>], end: usize) -> Option<File> {
    let depth = tokens.iter().fold(0i64, |d, t| match t.1 {
        Tok::LBrace => d + 1,
        Tok::RBrace => d - 1,
        _ => d,
    });
    if depth <= 0 {
        return None;
    }
    let mut toks = tokens.to_vec();
    toks.extend((0..depth).map(|_| (end, Tok::RBrace, end)));
    let mut errors = Vec::new();
    let stream = toks.into_iter().map(Ok::<Spanned<'_>, Never>);
    grammar::FileParser::new().parse(file, &mut errors, stream).ok()
}

fn convert(
    file: FileId,
    src: &str,
    tokens: &[Spanned<'_>],
    err: ParseError<usize, Tok<'_>, Never>,
) -> Option<Diagnostic> {
    match err {
        ParseError::UnrecognizedToken { token: (start, tok, end), expected } => {
            if tok == Tok::Error {
                // Already reported by the lexer.
                return None;
            }
            let found = tok.describe();
            let words = describe_expected(&expected);
            let span = Span::new(file, start, end);
            let mut d =
                Diagnostic::new(Code::SyntaxError, format!("expected {words}, found {found}"));
            let wants_semi = expected.iter().any(|e| e == "\";\"");
            let prev_end = tokens.iter().take_while(|t| t.0 < start).last().map(|t| t.2);
            match prev_end {
                Some(p) if wants_semi && line_of(src, p) < line_of(src, start) => {
                    d = d
                        .at(Span::new(file, p, p), "expected `;` here")
                        .with_label(span, format!("unexpected {found}"))
                        .with_help("statements end with `;`");
                }
                _ => d = d.at(span, format!("unexpected {found}")),
            }
            if matches!(
                tok,
                Tok::EqEq | Tok::NotEq | Tok::Match | Tok::Lt | Tok::Gt | Tok::Le | Tok::Ge
            ) {
                d = d.with_help("comparisons do not chain: combine them with `&&` or `||`");
            }
            if tok == Tok::Elif {
                d = d.with_help("write `else if`");
            }
            Some(d)
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let words = describe_expected(&expected);
            let at = location.min(src.len());
            Some(
                Diagnostic::new(
                    Code::UnexpectedEof,
                    format!("unexpected end of file, expected {words}"),
                )
                .at(Span::new(file, at, at), "the file ends here")
                .with_help("the file may be truncated, or a `}` may be missing"),
            )
        }
        ParseError::ExtraToken { token: (start, tok, end) } => Some(
            Diagnostic::new(Code::SyntaxError, format!("unexpected {}", tok.describe()))
                .at(Span::new(file, start, end), "not expected here"),
        ),
        ParseError::InvalidToken { location } => Some(
            Diagnostic::new(Code::InvalidToken, "invalid token")
                .at(Span::new(file, location, location + 1), "here"),
        ),
        ParseError::User { error } => match error {},
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())].iter().filter(|&&b| b == b'\n').count()
}

const EXPR_STARTS: &[&str] = &["INT", "STR", "PV", "\"(\"", "\"!\"", "DURATION", "ADDR"];
const STMT_STARTS: &[&str] = &["\"if\"", "\"exit\"", "\"return\"", "\"let\""];
const ITEM_STARTS: &[&str] = &["\"request_route\"", "\"listen\"", "\"const\""];
const OPERATORS: &[&str] = &[
    "\"+\"", "\"-\"", "\"*\"", "\"/\"", "\"%\"", "\"==\"", "\"!=\"", "\"=~\"", "\"<\"", "\">\"",
    "\"<=\"", "\">=\"", "\"&&\"", "\"||\"",
];
const ROUTE_KEYWORDS: &[&str] = &[
    "\"request_route\"",
    "\"reply_route\"",
    "\"onreply_route\"",
    "\"failure_route\"",
    "\"branch_route\"",
    "\"event_route\"",
    "\"route\"",
];

/// Names lalrpop's expected-terminal list in words.
pub fn describe_expected(expected: &[String]) -> String {
    let has = |t: &str| expected.iter().any(|e| e == t);
    let has_all = |set: &[&str]| set.iter().all(|t| has(t));
    let mut words: Vec<String> = Vec::new();
    let mut covered: Vec<&str> = Vec::new();
    if has_all(ITEM_STARTS) {
        words.push("a top-level item (a route block, `listen`, `const`, …)".into());
        covered.extend(ITEM_STARTS);
        covered.extend(ROUTE_KEYWORDS);
        covered.extend([
            "\"domain\"",
            "\"alias\"",
            "\"settings\"",
            "\"module\"",
            "\"include\"",
            "\"define\"",
            "\"ifdef\"",
            "\"ifndef\"",
            "\"flag\"",
            "\"table\"",
            "\"trunk\"",
            "\"trunk_group\"",
            "\"limit\"",
            "\"acl\"",
            "\"blocklist\"",
        ]);
    } else if ROUTE_KEYWORDS.iter().filter(|t| has(t)).count() >= 3 {
        words.push("a route block".into());
        covered.extend(ROUTE_KEYWORDS);
    }
    if has_all(STMT_STARTS) {
        words.push("a statement".into());
        covered.extend(STMT_STARTS);
        covered.extend([
            "IDENT",
            "PV",
            "\"switch\"",
            "\"while\"",
            "\"drop\"",
            "\"break\"",
            "\"{\"",
            "\"route\"",
            "\"ifdef\"",
            "\"ifndef\"",
        ]);
    }
    if has_all(EXPR_STARTS) {
        words.push("an expression".into());
        covered.extend(EXPR_STARTS);
        covered.extend(["IDENT", "\"-\"", "\"true\"", "\"false\"", "\"route\""]);
    }
    if OPERATORS.iter().filter(|t| has(t)).count() >= 3 {
        words.push("an operator".into());
        covered.extend(OPERATORS);
    }
    // After a statement, `}` is only accepted to report a missing `;`.
    if has("\";\"") {
        covered.push("\"}\"");
    }
    let mut rest: Vec<String> = expected
        .iter()
        .filter(|e| !covered.contains(&e.as_str()))
        .map(|e| terminal_words(e))
        .collect();
    rest.dedup();
    // Concrete punctuation first reads better: "`;` or an operator".
    rest.append(&mut words);
    match rest.len() {
        0 => "something else".into(),
        1 => rest.remove(0),
        n => {
            let last = rest.remove(n - 1);
            format!("{} or {}", rest.join(", "), last)
        }
    }
}

fn terminal_words(t: &str) -> String {
    match t {
        "IDENT" => "a name".into(),
        "INT" => "an integer".into(),
        "STR" => "a string".into(),
        "PV" => "a pseudo-variable".into(),
        "DURATION" => "a duration".into(),
        "ADDR" => "an address".into(),
        "ERROR" => "valid input".into(),
        _ => format!("`{}`", t.trim_matches('"')),
    }
}
