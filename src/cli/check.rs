//! `sipc check FILE… [--format human|json] [--deny-warnings] [-D NAME=VALUE]…`
//!
//! Checks each file independently and prints every diagnostic. Exit codes:
//! 0 clean, 1 errors (or warnings with `--deny-warnings`), 2 usage or I/O
//! trouble. The rendering lives in [`crate::diag::render`]; this module only
//! decides where output goes and what the exit code is.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::diag::render::{self, Style};
use crate::diag::{Code, Diagnostic};
use crate::sema::{self, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Route files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors for the exit code.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Define a feature switch (`-D WITH_AUTH`) or override a constant (`-D MAX_HOPS=20`).
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
    /// Turn on every feature switch the files declare, to check code that is
    /// off by default (run once without it to check the `else` branches).
    #[arg(long)]
    pub all_features: bool,
}

/// Parses `NAME` or `NAME=VALUE`.
pub fn parse_define(s: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (s, None),
    };
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok((name.to_string(), value))
    } else {
        Err(format!("`-D {s}`: `{name}` is not a valid name"))
    }
}

/// Result of checking some files, before printing.
#[derive(Debug, Default)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub io_failed: bool,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let mut defines = Vec::new();
    for d in &args.define {
        match parse_define(d) {
            Ok(x) => defines.push(x),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let opts = Options { defines, all_features: args.all_features };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let style = Style { color, unicode: true, width: 100 };
    let mut summary = Summary::default();
    let mut json_out = Vec::new();
    let mut stderr = std::io::stderr().lock();
    let mut unmatched: Option<Vec<String>> = None;
    let mut define_names: Vec<String> = Vec::new();
    for file in &args.files {
        let name = file.to_string_lossy().into_owned();
        let out = match sema::check_path(file, &name, &opts) {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot read `{name}`: {e}");
                summary.io_failed = true;
                continue;
            }
        };
        unmatched = Some(match unmatched {
            None => out.unmatched_defines.clone(),
            Some(prev) => prev.into_iter().filter(|n| out.unmatched_defines.contains(n)).collect(),
        });
        define_names.extend(out.define_names.iter().cloned());
        summary.errors += out.errors();
        summary.warnings += out.warnings();
        match args.format {
            Format::Human => {
                for d in &out.diagnostics {
                    let _ = write!(stderr, "{}", render::human(&out.sources, d, style));
                }
            }
            Format::Json => {
                json_out.extend(out.diagnostics.iter().map(|d| render::json(&out.sources, d)))
            }
        }
    }
    for name in unmatched.unwrap_or_default() {
        let mut d = Diagnostic::new(
            Code::BadDefineOption,
            format!("`-D {name}` matches no `const` or `define` in any checked file"),
        );
        d = match crate::sema::resolve::suggest(&name, define_names.iter().map(String::as_str)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!(
                "declare it with `define {name} = false;` or `const {name} = …;`"
            )),
        };
        summary.errors += 1;
        match args.format {
            Format::Human => {
                let map = crate::syntax::span::SourceMap::new();
                let _ = write!(stderr, "{}", render::human(&map, &d, style));
            }
            Format::Json => json_out.push(render::json(&crate::syntax::span::SourceMap::new(), &d)),
        }
    }
    match args.format {
        Format::Human => {
            let files = args.files.len();
            let _ = writeln!(
                stderr,
                "checked {files} file{}: {} error{}, {} warning{}",
                if files == 1 { "" } else { "s" },
                summary.errors,
                if summary.errors == 1 { "" } else { "s" },
                summary.warnings,
                if summary.warnings == 1 { "" } else { "s" },
            );
        }
        Format::Json => {
            let doc = serde_json::json!({
                "diagnostics": json_out,
                "errors": summary.errors,
                "warnings": summary.warnings,
            });
            println!("{doc:#}");
        }
    }
    if summary.io_failed {
        ExitCode::from(2)
    } else if summary.errors > 0 || (args.deny_warnings && summary.warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Renders diagnostics exactly as the UI tests expect (no colour, 100 columns).
pub fn render_plain(out: &sema::Output) -> String {
    let mut s = String::new();
    for d in &out.diagnostics {
        s.push_str(&render::human(&out.sources, d, Style::plain()));
    }
    s
}
