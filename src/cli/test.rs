//! `sipc test PATH… [--format human|json]`
//!
//! Runs the tests of configs (docs/testing.md). A PATH is a config
//! (`a.route`: its tests are `a.test.toml` beside it), a test file, or a
//! directory (every `*.test.toml` under it). Exit codes as `sipc check`:
//! 0 every test passed, 1 a test failed or a config or test file has
//! errors, 2 usage or I/O trouble (a path that does not exist).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::check::Format;
use crate::testing::{self, FileReport};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Configs, test files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// The test files the paths name; an error for a path that names none.
fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = testing::find_test_files(p)
                .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
            if found.is_empty() {
                return Err(format!("no `*{}` file under `{}`", testing::SUFFIX, p.display()));
            }
            out.extend(found);
        } else if p.to_string_lossy().ends_with(testing::SUFFIX) {
            if !p.is_file() {
                return Err(format!("`{}` does not exist", p.display()));
            }
            out.push(p.clone());
        } else {
            if !p.is_file() {
                return Err(format!("`{}` does not exist", p.display()));
            }
            let t = testing::test_file_of(p);
            if !t.is_file() {
                return Err(format!(
                    "`{}` has no tests: write them in `{}` (docs/testing.md)",
                    p.display(),
                    t.display()
                ));
            }
            out.push(t);
        }
    }
    out.dedup();
    Ok(out)
}

pub fn run(args: TestArgs) -> ExitCode {
    let files = match test_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let reports: Vec<FileReport> = files.iter().map(|f| testing::run_file(f)).collect();
    let passed: usize = reports.iter().map(FileReport::passed).sum();
    let failed: usize = reports.iter().map(FileReport::failed).sum();
    let broken = reports.iter().filter(|r| r.error.is_some()).count();
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "files": reports,
                "passed": passed,
                "failed": failed,
                "broken_files": broken,
            });
            let _ = writeln!(stdout, "{doc:#}");
        }
        Format::Human => {
            for r in &reports {
                let _ = write!(stdout, "{}", human(r));
            }
            let _ = writeln!(
                stdout,
                "\n{} test{}: {passed} passed, {failed} failed{}",
                passed + failed,
                if passed + failed == 1 { "" } else { "s" },
                match broken {
                    0 => String::new(),
                    n => format!(", {n} file{} could not run", if n == 1 { "" } else { "s" }),
                }
            );
        }
    }
    if failed > 0 || broken > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// One file's results as text: a line per test, and for a failing test a
/// diff of each expectation that did not hold (`-` expected, `+` actual).
pub fn human(r: &FileReport) -> String {
    let mut out = format!("{} ({})\n", r.file.display(), r.config.display());
    if let Some(e) = &r.error {
        out.push_str(&format!("  error: {}\n", e.trim_end().replace('\n', "\n  ")));
        return out;
    }
    for t in &r.tests {
        if t.passed() {
            out.push_str(&format!("  ok    {}\n", t.name));
            continue;
        }
        out.push_str(&format!("  FAIL  {}\n", t.name));
        if let Some(e) = &t.error {
            out.push_str(&format!("        error: {}\n", e.trim_end().replace('\n', "\n        ")));
        }
        let mut last_step = 0;
        for m in &t.mismatches {
            if m.step != last_step {
                out.push_str(&format!("        step {} ({}):\n", m.step, m.event));
                last_step = m.step;
            }
            out.push_str(&format!("        - {} = {}\n", m.key, m.expected));
            out.push_str(&format!("        + {} = {}\n", m.key, m.actual));
        }
    }
    out
}
