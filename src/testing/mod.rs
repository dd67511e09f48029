//! `sipc test`: tests of a config, written by its users, run without
//! sockets through the same compiled program and proxy core `sipc run`
//! serves (docs/testing.md).
//!
//! A test file `NAME.test.toml` sits beside `NAME.route` ([`spec`]); each
//! test gets a fresh world (registrations, subscribers, trunk health) and
//! a fresh core, sends its messages and compares what the proxy sent and
//! what its routes decided ([`run`]).

mod compare;
pub mod run;
pub mod spec;
mod uac;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use run::{Mismatch, Outcome};
use spec::TestFile;

use crate::sema::{self, Options};

/// The suffix of test files.
pub const SUFFIX: &str = ".test.toml";

/// The results of one test file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    pub config: PathBuf,
    /// The file could not be run at all: unreadable, not a test file, or
    /// the config does not check (its diagnostics, rendered).
    pub error: Option<String>,
    pub tests: Vec<Outcome>,
    /// With `--coverage`: for each source file, each line that holds a
    /// statement and whether a test ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<BTreeMap<String, BTreeMap<usize, bool>>>,
}

impl FileReport {
    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|t| t.passed()).count()
    }
    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed()
    }
}

/// The test file of a config (`a.route` → `a.test.toml`).
pub fn test_file_of(config: &Path) -> PathBuf {
    let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    config.with_file_name(format!("{stem}{SUFFIX}"))
}

/// The config a test file tests by default (`a.test.toml` → `a.route`).
pub fn config_of(test_file: &Path) -> PathBuf {
    let name = test_file.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(SUFFIX).unwrap_or(&name);
    test_file.with_file_name(format!("{stem}.route"))
}

/// Every test file under `dir`, sorted.
pub fn find_test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().ends_with(SUFFIX) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn parse_define(d: &str) -> Result<(String, Option<String>), String> {
    crate::cli::check::parse_define(d).map_err(|e| format!("`defines`: {e}"))
}

/// Runs every test of one test file.
pub fn run_file(file: &Path, opts: run::Options) -> FileReport {
    let mut report = FileReport {
        file: file.to_path_buf(),
        config: config_of(file),
        error: None,
        tests: vec![],
        coverage: None,
    };
    let parsed = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))
        .and_then(|text| spec::parse(&text).map_err(|e| format!("`{}`: {e}", file.display())));
    // The `[[test]]` header lines, in order: where each test starts.
    let headers: Vec<usize> = std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[test]]")
        .map(|(i, _)| i + 1)
        .collect();
    let tf: TestFile = match parsed {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    if let Some(c) = &tf.config {
        report.config = file.parent().unwrap_or(Path::new("")).join(c);
    }
    if tf.tests.is_empty() {
        report.error = Some(format!("`{}` has no `[[test]]`", file.display()));
        return report;
    }
    // One check per set of switches: tests that share them share it.
    let mut checked: BTreeMap<Vec<String>, Result<sema::Output, String>> = BTreeMap::new();
    for test in &tf.tests {
        let mut defines: Vec<String> = tf.defines.iter().chain(&test.defines).cloned().collect();
        defines.sort();
        defines.dedup();
        let out = checked.entry(defines.clone()).or_insert_with(|| check(&report.config, &defines));
        match out {
            Ok(out) => {
                let outcome = run::run_test(out, &tf.world.with(&test.world), test, opts);
                if opts.coverage {
                    let lines = report.coverage.get_or_insert_with(BTreeMap::new);
                    for span in &outcome.ran {
                        let (file, line) = file_line(&out.sources, *span);
                        lines.entry(file).or_default().insert(line, true);
                    }
                }
                let mut outcome = outcome;
                outcome.line = headers.get(report.tests.len()).copied().unwrap_or(0);
                report.tests.push(outcome);
            }
            Err(e) => {
                report.error = Some(e.clone());
                report.tests.clear();
                return report;
            }
        }
    }
    // Every statement of every variant checked counts, run or not.
    if let Some(lines) = report.coverage.as_mut() {
        for out in checked.values().flatten() {
            for r in &out.program.routes {
                sema::ir::visit_stmts(&r.body, &mut |st| {
                    if let sema::ir::Stmt::Mark(span) = st {
                        let (file, line) = file_line(&out.sources, *span);
                        lines.entry(file).or_default().entry(line).or_insert(false);
                    }
                });
            }
        }
    }
    report
}

/// The file name and 1-based line where `span` starts.
fn file_line(
    sources: &crate::syntax::span::SourceMap,
    span: crate::syntax::span::Span,
) -> (String, usize) {
    let f = sources.get(span.file);
    (f.name.clone(), f.line_col(span.start).0)
}

/// Checks the config with `defines`; errors come back rendered.
fn check(config: &Path, defines: &[String]) -> Result<sema::Output, String> {
    let defines = defines.iter().map(|d| parse_define(d)).collect::<Result<Vec<_>, _>>()?;
    let opts = Options { defines, all_features: false };
    let name = config.to_string_lossy().into_owned();
    let out = sema::check_path(config, &name, &opts)
        .map_err(|e| format!("cannot read the config `{name}`: {e}"))?;
    if out.errors() > 0 {
        let style = crate::diag::render::Style { color: false, unicode: true, width: 100 };
        let mut text = format!("the config `{name}` has errors:\n");
        for d in out.diagnostics.iter().filter(|d| d.severity == crate::diag::Severity::Error) {
            text.push_str(&crate::diag::render::human(&out.sources, d, style));
        }
        return Err(text);
    }
    if let Some(d) = out.unmatched_defines.first() {
        return Err(format!("`-D {d}` matches no `const` or `define` in `{name}`"));
    }
    Ok(out)
}
