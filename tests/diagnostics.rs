//! Structural tests: the important diagnostics have the right code and
//! point at the right text. (Rendering is covered by tests/ui.)

use sipc::diag::{Code, Severity};
use sipc::sema::{self, Options};

/// Checks `src` and returns (code, text under the primary span) pairs.
fn check(src: &str) -> Vec<(Code, String)> {
    check_with(src, Options::default())
}

fn check_with(src: &str, opts: Options) -> Vec<(Code, String)> {
    let out = sema::check_source("test.route", src, &opts);
    out.diagnostics
        .iter()
        .map(|d| {
            let text = d.span().map(|s| out.sources.snippet(s).to_string()).unwrap_or_default();
            (d.code, text)
        })
        .collect()
}

fn has(diags: &[(Code, String)], code: Code, text: &str) -> bool {
    diags.iter().any(|(c, t)| *c == code && t == text)
}

#[test]
fn clean_config_has_no_diagnostics() {
    let d = check(
        "request_route { if !maxfwd_ok(10) { reply(483, \"Too Many Hops\"); exit; } relay(); exit; }",
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn undefined_route_names_the_call() {
    let d = check("request_route { route(RELAYY); exit; } route RELAY { relay(); exit; }");
    assert!(has(&d, Code::UnknownRoute, "RELAYY"), "{d:?}");
}

#[test]
fn misspelled_builtin_suggests_right_spelling() {
    let out = sema::check_source(
        "t.route",
        "request_route {\n    record_rout();\n    relay();\n    exit;\n}\n",
        &Options::default(),
    );
    let d = &out.diagnostics[0];
    assert_eq!(d.code, Code::UnknownFunction);
    assert_eq!(d.severity, Severity::Error);
    let span = d.span().expect("has a span");
    assert_eq!(out.sources.get(span.file).line_col(span.start), (2, 5));
    assert!(d.help.as_deref().unwrap_or("").contains("record_route"));
}

#[test]
fn bad_regex_points_inside_the_string() {
    let d = check("request_route { if $ua =~ \"ab(cd\" { exit; } exit; }");
    assert!(has(&d, Code::InvalidRegex, "("), "{d:?}");
}

#[test]
fn bad_regex_after_escape_points_at_the_right_character() {
    // The `\\+` escape is two source bytes for one pattern byte... and `\.` is kept.
    let d = check("request_route { if $rU =~ \"^\\\\+\\.x{2,a}\" { exit; } exit; }");
    assert!(d.iter().any(|(c, t)| *c == Code::InvalidRegex && t.starts_with('a')), "{d:?}");
}

#[test]
fn reply_code_must_be_an_int_in_range() {
    let d = check("request_route { reply(\"404\", \"x\"); reply(99, \"x\"); exit; }");
    assert!(has(&d, Code::TypeMismatch, "\"404\""), "{d:?}");
    assert!(has(&d, Code::OutOfRange, "99"), "{d:?}");
}

#[test]
fn wrong_argument_count_spans_the_call() {
    let d = check("request_route { reply(404); exit; }");
    assert!(has(&d, Code::WrongArgCount, "reply(404)"), "{d:?}");
}

#[test]
fn reply_reachable_from_reply_route_through_subroute() {
    let src = "request_route { exit; } reply_route { route(A); } route A { route(B); } route B { reply(500, \"x\"); }";
    let out = sema::check_source("t.route", src, &Options::default());
    let d =
        out.diagnostics.iter().find(|d| d.code == Code::NotAllowedInRoute).expect("E0401 reported");
    assert_eq!(out.sources.snippet(d.span().unwrap()), "reply(500, \"x\")");
    let chain: Vec<&str> = d.secondary.iter().map(|l| out.sources.snippet(l.span)).collect();
    assert_eq!(chain, vec!["route(B)", "route(A)"]);
}

#[test]
fn recursion_is_an_error() {
    let d = check("request_route { route(A); exit; } route A { route(B); } route B { route(A); }");
    assert!(d.iter().any(|(c, _)| *c == Code::Recursion), "{d:?}");
}

#[test]
fn return_zero_is_rejected() {
    let d = check("request_route { route(A); exit; } route A { return 0; }");
    assert!(has(&d, Code::ReturnZero, "0"), "{d:?}");
}

#[test]
fn missing_semicolon_reports_once() {
    let d = check("request_route {\n  $du = \"sip:x\"\n  relay();\n  exit;\n}\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, Code::SyntaxError);
}

#[test]
fn every_syntax_error_is_reported() {
    let d = check("request_route {\n $a = ;\n log(info \"x\");\n if {\n }\n exit;\n}\n");
    let n = d.iter().filter(|(c, _)| *c == Code::SyntaxError).count();
    assert_eq!(n, 3, "{d:?}");
}

#[test]
fn truncated_config_reports_end_of_file() {
    let out = sema::check_source(
        "t.route",
        "request_route {\n  if is_method(\"INVITE\") {\n    relay();\n",
        &Options::default(),
    );
    let d = out.diagnostics.iter().find(|d| d.code == Code::UnexpectedEof).expect("E0102");
    let span = d.span().unwrap();
    assert_eq!(out.sources.get(span.file).line_col(span.start).0, 3);
}

#[test]
fn var_written_in_request_is_empty_in_failure_route() {
    let d = check(
        "request_route { $var(x) = \"a\"; on_failure(F); relay(); exit; } failure_route F { log(info, \"$var(x)\"); }",
    );
    assert!(has(&d, Code::VarAcrossMessages, "$var(x)"), "{d:?}");
}

#[test]
fn avp_survives_into_failure_route() {
    let d = check(
        "request_route { $avp(x) = \"a\"; on_failure(F); relay(); exit; } failure_route F { log(info, \"$avp(x)\"); }",
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn read_only_variable() {
    let d = check("request_route { $fu = \"x\"; exit; }");
    assert!(has(&d, Code::ReadOnly, "$fu"), "{d:?}");
}

#[test]
fn unreachable_after_exit() {
    let d = check("request_route { exit; relay(); }");
    assert!(has(&d, Code::Unreachable, "relay();"), "{d:?}");
}

#[test]
fn request_route_without_final_action() {
    let d = check("request_route { if is_method(\"INVITE\") { relay(); exit; } }");
    // The span is the last statement of a path that falls through (its
    // label, in the UI tests, names the requests that take it).
    assert!(has(&d, Code::NoFinalAction, "if is_method(\"INVITE\") { relay(); exit; }"), "{d:?}");
}

#[test]
fn feature_switches_select_code() {
    let src = "define WITH_X = false; request_route { ifdef WITH_X { nope(); } exit; }";
    assert!(check(src).is_empty());
    let opts = Options { defines: vec![("WITH_X".into(), None)], ..Options::default() };
    let d = check_with(src, opts);
    assert!(has(&d, Code::UnknownFunction, "nope"), "{d:?}");
    let all = Options { all_features: true, ..Options::default() };
    let d = check_with(src, all);
    assert!(has(&d, Code::UnknownFunction, "nope"), "{d:?}");
}

#[test]
fn define_overrides_constant() {
    let src = "const CODE = 404; request_route { reply(CODE, \"x\"); exit; }";
    let opts = Options { defines: vec![("CODE".into(), Some("999".into()))], ..Options::default() };
    let d = check_with(src, opts);
    assert!(has(&d, Code::OutOfRange, "CODE"), "{d:?}");
}

#[test]
fn checked_program_is_resolved() {
    let out = sema::check_source(
        "t.route",
        "request_route { $var(n) = 1; route(A); exit; } route A { if $var(n) == 1 { relay(); } }",
        &Options::default(),
    );
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let p = &out.program;
    assert_eq!(p.routes.len(), 2);
    assert_eq!(p.request_route, Some(0));
    assert_eq!(p.msg_vars.len(), 1);
    assert_eq!(p.msg_vars[0].ty, sipc::sema::builtins::Ty::Int);
    // Each statement is preceded by its mark (its span, for traces).
    let body: Vec<_> =
        p.routes[0].body.iter().filter(|s| !matches!(s, sipc::sema::ir::Stmt::Mark(_))).collect();
    assert_eq!(body.len(), 3, "{body:?}");
    let sipc::sema::ir::Stmt::Expr(call) = body[1] else { panic!("expected a call statement") };
    assert!(matches!(call.kind, sipc::sema::ir::ExprKind::CallRoute(1)));
}
