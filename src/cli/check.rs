//! `sipc check PATH… [--format human|json] [--deny-warnings] [-D NAME=VALUE]…`
//!
//! Checks each file independently and prints every diagnostic. A directory
//! stands for every `.route` file under it, recursively (hidden directories
//! skipped). Exit codes: 0 clean, 1 errors (or warnings with
//! `--deny-warnings`), 2 usage or I/O trouble: a file that cannot be read,
//! or a directory without `.route` files, is reported (code E0201, counted
//! as an error) and makes the exit code 2. The rendering lives in
//! [`crate::diag::render`]; this module only decides where output goes and
//! what the exit code is.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    /// Route files to check; a directory stands for every `.route` file
    /// under it.
    #[arg(required = true, value_name = "PATH")]
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

/// The files `paths` stand for: a file as given, a directory as every
/// `.route` file under it (sorted, hidden directories skipped). A directory
/// that cannot be read or holds no `.route` file is returned as a problem.
pub fn route_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let before = files.len();
        if let Err(e) = walk(p, &mut files) {
            problems.push((p.clone(), e.to_string()));
        } else if files.len() == before {
            problems.push((p.clone(), "the directory holds no `.route` file".to_string()));
        }
    }
    (files, problems)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        // Not followed through symbolic links, so a link cannot loop.
        if e.file_type()?.is_dir() {
            if !e.file_name().to_string_lossy().starts_with('.') {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|x| x == "route") && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
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
    let no_sources = crate::syntax::span::SourceMap::new();
    let (files, problems) = route_files(&args.files);
    // Problems without a place in a source file: unreadable files and
    // directories, `-D` options that match nothing.
    let mut unplaced = Vec::new();
    for (path, why) in problems {
        unplaced.push(cannot_read(&path, why));
    }
    for file in &files {
        let name = file.to_string_lossy().into_owned();
        let out = match sema::check_path(file, &name, &opts) {
            Ok(o) => o,
            Err(e) => {
                unplaced.push(cannot_read(file, e.to_string()));
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
    if !unplaced.is_empty() {
        summary.io_failed = true;
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
        unplaced.push(d);
    }
    for d in &unplaced {
        summary.errors += usize::from(d.is_error());
        match args.format {
            Format::Human => {
                let _ = write!(stderr, "{}", render::human(&no_sources, d, style));
            }
            Format::Json => json_out.push(render::json(&no_sources, d)),
        }
    }
    match args.format {
        Format::Human => {
            let files = files.len();
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

/// A file or directory given on the command line that cannot be checked.
fn cannot_read(path: &Path, why: String) -> Diagnostic {
    Diagnostic::new(Code::IncludeNotFound, format!("cannot read `{}`: {why}", path.display()))
        .with_help("check the path; a directory stands for every `.route` file under it")
}

/// Renders diagnostics exactly as the UI tests expect (no colour, 100 columns).
pub fn render_plain(out: &sema::Output) -> String {
    let mut s = String::new();
    for d in &out.diagnostics {
        s.push_str(&render::human(&out.sources, d, Style::plain()));
    }
    s
}

/// Checks `file` with `-D` switches `define` for a command that reads its
/// settings (`sipc cdr`, `sipc db`): the program, or why not.
pub fn load_for(file: &std::path::Path, define: &[String]) -> Result<crate::sema::Output, String> {
    let mut defines = Vec::new();
    for d in define {
        defines.push(parse_define(d)?);
    }
    let opts = crate::sema::Options { defines, all_features: false };
    let name = file.to_string_lossy().into_owned();
    let out = crate::sema::check_path(file, &name, &opts)
        .map_err(|e| format!("cannot read `{name}`: {e}"))?;
    if out.errors() > 0 {
        return Err(format!("`{name}` has errors: run `sipc check {name}`"));
    }
    Ok(out)
}
