//! `sipc check` end to end: exit codes and output formats.

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
fn examples_pass_with_deny_warnings() {
    for flags in [&[][..], &["-D", "WITH_AUTH", "-D", "WITH_PSTN"][..], &["--all-features"][..]] {
        let mut args = vec!["check", "--deny-warnings"];
        args.extend_from_slice(flags);
        args.extend([
            "examples/default.route",
            "examples/bench/stateless.route",
            "examples/bench/stateful.route",
        ]);
        let (code, _, err) = sipc(&args);
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn misspelled_builtin_exits_1_with_line_and_spelling() {
    let (code, _, err) = sipc(&["check", "tests/ui/names/e0205_misspelled_builtin.route"]);
    assert_eq!(code, 1);
    assert!(err.contains("e0205_misspelled_builtin.route:3:9"), "{err}");
    assert!(err.contains("did you mean `record_route`?"), "{err}");
}

#[test]
fn truncated_config_exits_1_with_line() {
    let (code, _, err) = sipc(&["check", "tests/ui/syntax/e0102_truncated.route"]);
    assert_eq!(code, 1);
    assert!(err.contains("unexpected end of file"), "{err}");
    assert!(err.contains("e0102_truncated.route:4:"), "{err}");
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let file = "tests/ui/lints/w0503_unused_const.route";
    assert_eq!(sipc(&["check", file]).0, 0);
    assert_eq!(sipc(&["check", "--deny-warnings", file]).0, 1);
}

#[test]
fn json_format() {
    let (code, out, _) =
        sipc(&["check", "--format", "json", "tests/ui/names/e0203_undefined_route.route"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["errors"], 1);
    let first = &v["diagnostics"][0];
    assert_eq!(first["code"], "sipc::E0203");
    assert_eq!(first["primary"]["line"], 2);
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(sipc(&["check", "no/such/file.route"]).0, 2);
    assert_eq!(sipc(&["check", "-D", "1BAD", "examples/default.route"]).0, 2);
    assert_eq!(sipc(&["check"]).0, 2);
}

#[test]
fn unmatched_define_is_an_error() {
    let (code, _, err) = sipc(&["check", "-D", "WITH_AUTHH", "examples/default.route"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `WITH_AUTH`?"), "{err}");
}

#[test]
fn dump_ast() {
    let (code, out, _) = sipc(&["dump", "ast", "examples/bench/stateless.route"]);
    assert_eq!(code, 0);
    assert!(out.contains("Request"), "{out}");
}

#[test]
fn dump_clif_prints_the_ir_of_each_route() {
    let (code, out, err) = sipc(&["dump", "clif", "examples/bench/stateless.route"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("; request_route \nfunction u0:0(i64) -> i64"), "{out}");
    assert!(out.contains("iconst.i64 483"), "the 483 reply is in the IR");
    let (code, out, _) =
        sipc(&["dump", "clif", "--route", "request_route", "examples/default.route"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\nfunction ").count() + usize::from(out.starts_with("function")), 1);
    let (code, _, err) = sipc(&["dump", "clif", "--route", "NOPE", "examples/default.route"]);
    assert_eq!(code, 1);
    assert!(err.contains("no route named `NOPE`"));
}
