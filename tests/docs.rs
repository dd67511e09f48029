//! Generated documentation must match the tables it is generated from.
//!
//! `docs/builtins.md` comes from the builtin catalog and
//! `docs/diagnostics.md` from the diagnostic code registry. When either
//! drifts this test fails; regenerate with
//!
//!     SIPC_BLESS=1 cargo test --test docs

use sipc::diag::codes;
use sipc::sema::builtins;

fn compare(path: &str, generated: &str) {
    if std::env::var_os("SIPC_BLESS").is_some() {
        std::fs::write(path, generated).expect("write generated doc");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is out of date with its source table; run `SIPC_BLESS=1 cargo test --test docs`"
    );
}

#[test]
fn builtins_doc_matches_catalog() {
    compare("docs/builtins.md", &builtins::markdown());
}

#[test]
fn diagnostics_doc_matches_registry() {
    compare("docs/diagnostics.md", &codes::markdown());
}

#[test]
fn catalog_is_consistent() {
    let mut names = std::collections::HashSet::new();
    for f in builtins::FUNCTIONS {
        assert!(names.insert(f.name), "function `{}` listed twice", f.name);
        assert_eq!(f.symbol, format!("sipc_rt_{}", f.name));
        assert!(f.min_args <= f.params.len(), "{}", f.name);
        assert!(!f.kinds.is_empty(), "{} is allowed nowhere", f.name);
        assert!(!f.doc.is_empty(), "{} has no doc", f.name);
    }
    let mut pvs = std::collections::HashSet::new();
    for p in builtins::PSEUDO_VARS {
        assert!(pvs.insert(p.name), "pseudo-variable `${}` listed twice", p.name);
        assert_eq!(p.symbol, format!("sipc_rt_pv_{}", p.name));
    }
    for (kam, ours) in builtins::KAMAILIO_NAMES {
        assert!(builtins::function(ours).is_some(), "{kam} maps to unknown {ours}");
        assert!(builtins::function(kam).is_none(), "{kam} is itself a builtin");
    }
}

#[test]
fn codes_are_unique() {
    let mut ids = std::collections::HashSet::new();
    for c in codes::ALL {
        assert!(ids.insert(c.id()), "code {} listed twice", c.id());
        assert_eq!(codes::Code::from_id(&c.full()), Some(*c));
    }
}
