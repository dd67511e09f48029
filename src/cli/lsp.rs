//! `sipc lsp`: the language server on standard input and output.
//!
//! Editors start it as a child process; everything it does lives in
//! [`crate::lsp`]. Exit code 0 after an orderly `shutdown`/`exit`, 2 when the
//! connection broke.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct LspArgs {
    /// Accepted for clients that pass it; stdio is the only transport.
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(_args: LspArgs) -> ExitCode {
    match crate::lsp::serve_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipc lsp: {e}");
            ExitCode::from(2)
        }
    }
}
