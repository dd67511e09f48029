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
}

pub fn run(cmd: DumpCommand) -> ExitCode {
    match cmd {
        DumpCommand::Sip { file } => crate::sip::dump::dump_file(&file),
    }
}
