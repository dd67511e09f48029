//! The front end's syntax layer: spans, tokens, lexer, AST and parser.
//!
//! Callers use [`parser::parse`]; everything else here is the machinery
//! behind that one function, so the parser could be replaced without
//! touching the checker.

pub mod ast;
pub mod lexer;
pub mod literal;
pub mod parser;
pub mod span;
pub mod token;
pub mod trivia;
