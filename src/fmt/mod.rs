//! The formatter: one canonical layout for `.route` files.
//!
//! It works on the token stream plus the comments recovered by
//! [`crate::syntax::trivia`], not on the AST: the layout of this language is
//! decided by a handful of tokens (`{`, `}`, `;`, case labels), and printing
//! tokens keeps every comment where it was without attaching comments to
//! tree nodes. The parser still runs first, and a file with syntax errors is
//! left alone, so formatting never turns a half-typed file into something
//! else. See [`layout`] for the rules.

pub mod layout;

use crate::diag::Diagnostic;
use crate::syntax::lexer;
use crate::syntax::parser;
use crate::syntax::span::FileId;
use crate::syntax::trivia;

/// Formats one file's text. Fails with the syntax errors when the file does
/// not parse; formatting the result again gives the same text.
pub fn format_source(file: FileId, src: &str) -> Result<String, Vec<Diagnostic>> {
    let (_, diags) = parser::parse(file, src);
    let errors: Vec<Diagnostic> = diags.into_iter().filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let (tokens, _) = lexer::lex(file, src);
    let comments = trivia::comments(src, &tokens);
    Ok(layout::print(src, &tokens, &comments))
}
