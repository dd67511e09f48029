//! `sipc fmt [--check] FILE…`: rewrite route files in the canonical layout.
//!
//! The layout itself lives in [`crate::fmt`]; this module reads and writes
//! files and picks the exit code: 0 nothing to do (or all rewritten), 1 a
//! file would change under `--check` or has syntax errors, 2 I/O trouble.
//! `-` formats standard input to standard output (for editors' `formatprg`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::diag::render::{self, Style};
use crate::syntax::span::SourceMap;

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Route files to format; `-` reads standard input and writes standard output.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: FmtArgs) -> ExitCode {
    let mut unformatted = 0usize;
    let mut broken = false;
    let mut io_failed = false;
    for file in &args.files {
        let stdin = file.as_os_str() == "-";
        let name = if stdin { "<stdin>".to_string() } else { file.to_string_lossy().into_owned() };
        let text = if stdin {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{name}`: {e}");
                io_failed = true;
                continue;
            }
        };
        let mut map = SourceMap::new();
        let id = map.add(name.clone(), text.clone());
        let formatted = match crate::fmt::format_source(id, &text) {
            Ok(f) => f,
            Err(diags) => {
                for d in &diags {
                    eprint!("{}", render::human(&map, d, Style::plain()));
                }
                eprintln!("error: `{name}` has syntax errors; not formatted");
                broken = true;
                continue;
            }
        };
        if stdin {
            let _ = std::io::stdout().write_all(formatted.as_bytes());
            continue;
        }
        if formatted == text {
            continue;
        }
        unformatted += 1;
        if args.check {
            println!("{name}");
        } else if let Err(e) = std::fs::write(file, formatted) {
            eprintln!("error: cannot write `{name}`: {e}");
            io_failed = true;
        }
    }
    if args.check && unformatted > 0 {
        eprintln!(
            "{unformatted} file{} not formatted; run `sipc fmt` on {}",
            if unformatted == 1 { "" } else { "s" },
            if unformatted == 1 { "it" } else { "them" }
        );
    }
    if io_failed {
        ExitCode::from(2)
    } else if broken || (args.check && unformatted > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
