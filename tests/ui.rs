//! UI tests: every `tests/ui/**/*.route` is checked and its rendered
//! diagnostics are compared with the `.stderr` file beside it.
//!
//! To regenerate the expected files after an intended change, run
//!
//!     SIPC_BLESS=1 cargo test --test ui
//!
//! and review the diff. A first line `# sipc-flags: -D NAME=VALUE …` passes
//! `-D` options. The test also fails when some diagnostic code of the
//! registry has no UI test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sipc::cli::check::{parse_define, render_plain};
use sipc::diag::codes;
use sipc::sema::{self, Options};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/ui exists")
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "route") && !is_include(&p) {
            out.push(p);
        }
    }
}

/// Files under an `inc/` directory are only included by other tests.
fn is_include(p: &Path) -> bool {
    p.components().any(|c| c.as_os_str() == "inc")
}

fn options(text: &str) -> Options {
    let mut opts = Options::default();
    if let Some(flags) = text.lines().next().and_then(|l| l.strip_prefix("# sipc-flags:")) {
        let mut words = flags.split_whitespace();
        while let Some(w) = words.next() {
            if w == "-D" {
                let d = words.next().expect("-D needs a value");
                opts.defines.push(parse_define(d).expect("valid -D"));
            }
        }
    }
    opts
}

#[test]
fn ui() {
    let bless = std::env::var_os("SIPC_BLESS").is_some();
    let mut files = Vec::new();
    collect(Path::new("tests/ui"), &mut files);
    assert!(files.len() >= 50, "expected at least 50 UI tests, found {}", files.len());
    let mut failures = Vec::new();
    let mut seen_codes = BTreeSet::new();
    for path in &files {
        let name = path.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(path).expect("readable test");
        let out = sema::check_path(path, &name, &options(&text)).expect("readable test");
        for d in &out.diagnostics {
            seen_codes.insert(d.code.id());
        }
        let actual = render_plain(&out);
        let expected_path = path.with_extension("stderr");
        if bless {
            if actual.is_empty() {
                let _ = std::fs::remove_file(&expected_path);
            } else {
                std::fs::write(&expected_path, &actual).expect("write .stderr");
            }
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures
                .push(format!("--- {name}: expected ---\n{expected}\n--- actual ---\n{actual}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} UI test(s) differ (SIPC_BLESS=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
    let missing: Vec<&str> =
        codes::ALL.iter().map(|c| c.id()).filter(|c| !seen_codes.contains(c)).collect();
    assert!(missing.is_empty(), "codes without a UI test: {missing:?}");
}
