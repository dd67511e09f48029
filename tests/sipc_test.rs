//! `sipc test` end to end: the examples' own tests pass, mismatches are
//! reported as a diff (text and JSON), and bad test files, bad configs and
//! missing paths give the documented exit codes.

use std::process::Command;

fn sipc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run sipc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_config_has_tests_and_they_pass() {
    let mut configs = Vec::new();
    let mut todo = vec![std::path::PathBuf::from("examples")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "route") {
                configs.push(p);
            }
        }
    }
    assert!(configs.len() >= 5, "{configs:?}");
    for c in &configs {
        assert!(sipc::testing::test_file_of(c).is_file(), "{} has no tests", c.display());
    }
    let (code, out, err) = sipc(&["test", "examples/"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("FAIL"), "{out}");
    let summary = out.lines().last().unwrap();
    let total: usize = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(total >= 30, "{summary}");
    assert!(summary.ends_with(&format!("{total} passed, 0 failed")), "{summary}");
}

#[test]
fn mismatches_are_shown_as_a_diff_and_exit_1() {
    let (code, out, _) = sipc(&["test", "tests/data/sipc_test/failing.route"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  ok    passes\n"), "{out}");
    assert!(out.contains("  FAIL  wrong reply\n"), "{out}");
    assert!(out.contains("- reply = 404\n        + reply = 486\n"), "{out}");
    assert!(out.contains("- reason = Not Found\n        + reason = Busy Here\n"), "{out}");
    // A follow-up's step is named with what happened in it.
    assert!(out.contains("step 2 (503 Service Unavailable from udp:127.0.0.1:5080):"), "{out}");
    assert!(out.contains("- relay = [\"udp:127.0.0.1:5090\"]\n        + relay = []\n"), "{out}");
    assert!(out.contains("- flags = []\n        + flags = [\"SEEN\"]\n"), "{out}");
    assert!(out.ends_with("3 tests: 1 passed, 2 failed\n"), "{out}");
}

#[test]
fn json_lists_every_mismatch() {
    let (code, out, _) =
        sipc(&["test", "--format", "json", "tests/data/sipc_test/failing.test.toml"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((doc["passed"].as_u64(), doc["failed"].as_u64()), (Some(1), Some(2)));
    let tests = doc["files"][0]["tests"].as_array().unwrap();
    assert_eq!(tests[0]["passed"], true);
    let m = &tests[1]["mismatches"][0];
    assert_eq!((m["step"].as_u64(), m["key"].as_str()), (Some(1), Some("reply")));
    assert_eq!((m["expected"].as_str(), m["actual"].as_str()), (Some("404"), Some("486")));
    let keys: Vec<&str> = tests[2]["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["flags", "reply", "relay"]);
}

#[test]
fn a_misspelt_key_is_an_error_not_a_pass() {
    let (code, out, _) = sipc(&["test", "tests/data/sipc_test/typo.route"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown key `expcet` in test 1 `misspelt expectation key`"), "{out}");
    assert!(out.contains("1 file could not run"), "{out}");
}

#[test]
fn a_config_with_errors_shows_its_diagnostics() {
    let (code, out, _) = sipc(&["test", "tests/data/sipc_test/broken.route"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has errors"), "{out}");
    assert!(out.contains("broken.route:4:5"), "{out}");
    assert!(out.contains("did you mean `record_route`?"), "{out}");
}

#[test]
fn missing_paths_and_configs_without_tests_exit_2() {
    let (code, _, err) = sipc(&["test", "tests/data/sipc_test/nothing-here.route"]);
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = sipc(&["test", "tests/data/sipc_test/untested.route"]);
    assert_eq!(code, 2);
    assert!(err.contains("has no tests: write them in"), "{err}");
    assert!(err.contains("untested.test.toml"), "{err}");
}

#[test]
fn coverage_names_the_lines_no_test_ran() {
    let (code, out, _) = sipc(&["test", "--coverage", "tests/data/sipc_test/failing.route"]);
    assert_eq!(code, 1, "{out}");
    // Lines 8-11 and 13-14 hold statements; every one ran in some test.
    assert!(
        out.contains(
            "coverage of tests/data/sipc_test/failing.route: 6/6 statement lines (100%)\n"
        ),
        "{out}"
    );
    let (code, out, _) = sipc(&["test", "--coverage", "examples/bench/stateless.route"]);
    assert_eq!(code, 0, "{out}");
    // The route's own 483 (lines 24-25) never runs: the core refuses
    // Max-Forwards 0 before routing; no test sends an insane request (29).
    assert!(out.contains("statement lines (62%); not run: 24-25, 29\n"), "{out}");
    let (_, json, _) =
        sipc(&["test", "--coverage", "--format", "json", "examples/bench/stateless.route"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let lines = &doc["files"][0]["coverage"]["examples/bench/stateless.route"];
    assert_eq!((lines["23"].as_bool(), lines["24"].as_bool()), (Some(true), Some(false)));
}

#[test]
fn trace_shows_what_the_routes_of_a_failing_test_did() {
    let (code, out, _) = sipc(&["test", "--trace", "tests/data/sipc_test/failing.route"]);
    assert_eq!(code, 1, "{out}");
    for line in [
        "failing.route:9  if $rU == \"busy\" {      [$rU = \"carol\"; -> false]",
        "failing.route:13  $du = \"sip:127.0.0.1:5080\";      [<- \"sip:127.0.0.1:5080\"]",
        "failing.route:14  relay();      [-> true]",
        "sent INVITE sip:carol@127.0.0.1 to udp:127.0.0.1:5080",
        "sent 500 Server Internal Error to udp:192.0.2.10:5060",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    // A passing test shows no trace.
    assert!(!out.contains("passes\n        trace:"), "{out}");
}

#[test]
fn routes_read_the_trunk_they_chose() {
    let (code, out, _) = sipc(&["test", "tests/data/sipc_test/trunks.route"]);
    assert_eq!(code, 0, "{out}");
}
