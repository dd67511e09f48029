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

/// Identifiers called in `text` (`name(`), in order.
fn calls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    for (i, _) in text.match_indices('(') {
        let start = b[..i]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(0, |p| p + 1);
        if start < i && !b[start].is_ascii_digit() && (start == 0 || b[start - 1] != b'$') {
            out.push(text[start..i].to_owned());
        }
    }
    out
}

#[test]
fn default_cfg_table_names_catalog_builtins() {
    use sipc::sema::kamailio::DEFAULT_CFG;
    // Words of the language that look like calls.
    const SYNTAX: &[&str] = &["route", "if", "switch", "while"];
    for (_, items) in DEFAULT_CFG {
        for item in *items {
            for name in calls(item.sipc) {
                assert!(
                    builtins::function(&name).is_some() || SYNTAX.contains(&name.as_str()),
                    "`{name}` in the sipc column of `{}` is not a builtin",
                    item.kamailio
                );
            }
            assert!(!item.sipc.is_empty() || !item.note.is_empty(), "{}", item.kamailio);
        }
    }
}

/// Every function and pseudo-variable of the installed Kamailio's default
/// config has a row (skipped when Kamailio is not installed).
#[test]
fn default_cfg_table_covers_the_installed_kamailio_cfg() {
    use sipc::sema::kamailio::DEFAULT_CFG;
    let Ok(cfg) = std::fs::read_to_string("/etc/kamailio/kamailio.cfg") else {
        eprintln!("/etc/kamailio/kamailio.cfg not installed; skipped");
        return;
    };
    let rows: String = DEFAULT_CFG
        .iter()
        .flat_map(|(_, items)| items.iter().map(|i| i.kamailio))
        .collect::<Vec<_>>()
        .join("\n");
    // Configuration syntax rather than functions.
    const SYNTAX: &[&str] = &["if", "route", "switch", "loadmodule", "modparam"];
    // Code outside comments (`#` lines; `#!` lines are the preprocessor).
    let code: String = cfg
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with('#') || t.starts_with("#!")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut code = strip_block_comments(&code);
    // SQL for the accounting tables, kept in a block that is never defined.
    if let Some(start) = code.find("#!ifdef ACCDB_COMMENT")
        && let Some(len) = code[start..].find("#!endif")
    {
        code.replace_range(start..start + len, "");
    }
    let mut missing = Vec::new();
    for name in calls(&code) {
        if SYNTAX.contains(&name.as_str()) || name.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        if !rows.contains(&format!("{name}(")) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    for (i, _) in code.match_indices('$') {
        let name: String =
            code[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && !rows.contains(&format!("${name}")) && !missing.contains(&name) {
            missing.push(format!("${name}"));
        }
    }
    assert!(missing.is_empty(), "kamailio.cfg items without a row: {missing:?}");
}

fn strip_block_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out
}
