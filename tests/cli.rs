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
    for flags in [
        &[][..],
        &["-D", "WITH_AUTH", "-D", "WITH_PSTN", "-D", "WITH_NAT"][..],
        &["--all-features"][..],
    ] {
        let mut args = vec!["check", "--deny-warnings"];
        args.extend_from_slice(flags);
        // Every example, through the directory.
        args.push("examples");
        let (code, _, err) = sipc(&args);
        assert_eq!(code, 0, "{err}");
        let count = walk_routes(std::path::Path::new("examples"));
        assert!(count >= 5, "{count} examples");
        assert!(err.contains(&format!("checked {count} files: 0 errors, 0 warnings")), "{err}");
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sipc-check-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How many `.route` files are under `dir`.
fn walk_routes(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("dir entry").path())
        .map(|p| match p.is_dir() {
            true => walk_routes(&p),
            false => usize::from(p.extension().is_some_and(|x| x == "route")),
        })
        .sum()
}

#[test]
fn a_directory_checks_every_route_file_under_it() {
    let dir = TempDir::new("tree");
    let good = "listen udp 127.0.0.1:5060;\nrequest_route {\n    relay();\n}\n";
    std::fs::create_dir_all(dir.path().join("sub/deeper")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join(".hidden")).expect("mkdir");
    std::fs::write(dir.path().join("a.route"), good).expect("write");
    std::fs::write(dir.path().join("sub/deeper/b.route"), "request_route {\n    rely();\n}\n")
        .expect("write");
    std::fs::write(dir.path().join("sub/notes.txt"), "not a route file").expect("write");
    std::fs::write(dir.path().join(".hidden/c.route"), "broken").expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let (code, _, err) = sipc(&["check", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checked 2 files: 1 error, 0 warnings"), "{err}");
    assert!(err.contains("b.route:2:5"), "{err}");
    assert!(!err.contains("c.route"), "hidden directories are skipped: {err}");

    let (code, out, _) = sipc(&["check", "--format", "json", &path]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["errors"], 1);

    let empty = TempDir::new("empty");
    let (code, _, err) = sipc(&["check", &empty.path().to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no `.route` file"), "{err}");
    assert!(err.contains("1 error"), "{err}");
}

#[test]
fn an_unreadable_file_is_counted_and_exits_2() {
    let (code, _, err) = sipc(&["check", "no/such/file.route"]);
    assert_eq!(code, 2);
    assert!(err.contains("sipc::E0201"), "{err}");
    assert!(err.contains("cannot read `no/such/file.route`"), "{err}");
    assert!(err.contains("checked 1 file: 1 error, 0 warnings"), "{err}");

    // The readable files are still checked; I/O trouble decides the exit code.
    let (code, _, err) =
        sipc(&["check", "tests/ui/names/e0203_undefined_route.route", "no/such/file.route"]);
    assert_eq!(code, 2);
    assert!(err.contains("sipc::E0203"), "{err}");
    assert!(err.contains("checked 2 files: 2 errors, 0 warnings"), "{err}");

    let (code, out, _) = sipc(&["check", "--format", "json", "no/such/file.route"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["errors"], 1);
    assert_eq!(v["diagnostics"][0]["code"], "sipc::E0201");
    assert_eq!(v["diagnostics"][0]["primary"], serde_json::Value::Null);
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
