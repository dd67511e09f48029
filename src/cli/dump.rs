//! `sipc dump …`: print what the parsers made of an input, for debugging.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DumpCommand {
    /// Parse a SIP message from a file and print its start line, headers and typed views.
    Sip {
        /// File holding one SIP message as it would arrive on the wire.
        file: PathBuf,
    },
    /// Parse a route file and print its syntax tree (no includes, no checks).
    Ast {
        /// The `.route` file.
        file: PathBuf,
    },
}

pub fn run(cmd: DumpCommand) -> ExitCode {
    match cmd {
        DumpCommand::Sip { file } => crate::sip::dump::dump_file(&file),
        DumpCommand::Ast { file } => dump_ast(&file),
    }
}

fn dump_ast(file: &std::path::Path) -> ExitCode {
    use crate::diag::render::{self, Style};
    use crate::syntax::span::SourceMap;
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let mut map = SourceMap::new();
    let id = map.add(file.to_string_lossy().into_owned(), text);
    let (ast, diags) = crate::syntax::parser::parse(id, &map.get(id).text.clone());
    println!("{ast:#?}");
    for d in &diags {
        eprint!("{}", render::human(&map, d, Style::plain()));
    }
    if diags.iter().any(|d| d.is_error()) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
