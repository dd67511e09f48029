//! The language server (`sipc lsp`): the compiler's front end, for editors.
//!
//! It is a thin layer over what `sipc check` already has, in the spirit of
//! nickel's `nls`: diagnostics are the checker's own, hover and completion
//! read the builtin catalog, the formatter is [`crate::fmt`]. What is new
//! here is only what an editor needs: UTF-16 positions ([`position`]), a
//! view of the document and its includes from the open buffers
//! ([`document`]), and one small module per request kind. The protocol loop
//! ([`server`]) is synchronous on `lsp-server`: route files are small and
//! every request is answered from a fresh parse in well under a millisecond.

pub mod completion;
pub mod diagnostics;
pub mod document;
pub mod hover;
pub mod navigation;
pub mod position;
pub mod server;
pub mod symbols;
pub mod vocab;

pub use server::serve_stdio;
