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
    /// Report which lines of the configs the tests ran (statement coverage).
    #[arg(long)]
    pub coverage: bool,
    /// Show, for each failing test, what its routes did step by step
    /// (statements run, values read, conditions, decisions).
    #[arg(long)]
    pub trace: bool,
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
    let opts = testing::run::Options { coverage: args.coverage, trace: args.trace };
    let reports: Vec<FileReport> = files.iter().map(|f| testing::run_file(f, opts)).collect();
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
        if !t.trace.is_empty() {
            out.push_str("        trace:\n");
            for l in &t.trace {
                out.push_str(&format!("          {l}\n"));
            }
        }
    }
    if let Some(files) = &r.coverage {
        for (file, lines) in files {
            out.push_str(&coverage_line(file, lines));
        }
    }
    out
}

/// `  coverage of FILE: 40/52 statement lines (76%); not run: 95-96, 180`.
pub fn coverage_line(file: &str, lines: &std::collections::BTreeMap<usize, bool>) -> String {
    let total = lines.len();
    let ran = lines.values().filter(|r| **r).count();
    let pct = (ran * 100).checked_div(total).unwrap_or(100);
    // Statement lines not run, consecutive ones (no statement line run
    // between them) shown as one range.
    let mut missed: Vec<(usize, usize)> = Vec::new();
    let mut open = false;
    for (&line, &hit) in lines {
        match (hit, open, missed.last_mut()) {
            (true, _, _) => open = false,
            (false, true, Some(last)) => last.1 = line,
            (false, _, _) => {
                missed.push((line, line));
                open = true;
            }
        }
    }
    let mut text = format!("  coverage of {file}: {ran}/{total} statement lines ({pct}%)");
    if !missed.is_empty() {
        let ranges: Vec<String> = missed
            .iter()
            .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect();
        text.push_str(&format!("; not run: {}", ranges.join(", ")));
    }
    text.push('\n');
    text
}
