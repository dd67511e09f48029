//! Parser tests: one or more per construct of docs/language.md.

use sipc::syntax::ast::*;
use sipc::syntax::parser::parse;
use sipc::syntax::span::{FileId, SourceMap};

fn parse_ok(src: &str) -> File {
    let mut map = SourceMap::new();
    let id = map.add("t.route", src);
    let (file, diags) = parse(id, src);
    assert!(diags.is_empty(), "unexpected diagnostics for {src:?}: {diags:#?}");
    file
}

fn item(src: &str) -> ItemKind {
    parse_ok(src).items.remove(0).kind
}

/// The statements of `request_route { <body> }`.
fn stmts(body: &str) -> Vec<Stmt> {
    match item(&format!("request_route {{ {body} }}")) {
        ItemKind::Route(r) => r.body.stmts,
        other => panic!("not a route: {other:?}"),
    }
}

fn expr(e: &str) -> Expr {
    match stmts(&format!("$var(x) = {e};")).remove(0).kind {
        StmtKind::Assign { value, .. } => value,
        other => panic!("not an assignment: {other:?}"),
    }
}

fn binop(e: &Expr) -> BinOp {
    match &e.kind {
        ExprKind::Binary { op, .. } => *op,
        other => panic!("not binary: {other:?}"),
    }
}

#[test]
fn comments_of_three_kinds() {
    let f = parse_ok("# hash\n// slashes\n/* block\n over lines */ request_route { exit; }");
    assert_eq!(f.items.len(), 1);
}

#[test]
fn string_escapes_and_interpolation() {
    let e = expr(r#""a\n\t\"q\" \$x $ru and $hdr(X-Foo)""#);
    let ExprKind::Str(s) = e.kind else { panic!() };
    assert_eq!(s.value, "a\n\t\"q\" $x $ru and $hdr(X-Foo)");
    let pvs: Vec<&str> = s
        .parts
        .iter()
        .filter_map(|p| match p {
            StrPart::Pv(pv) => Some(pv.name.as_str()),
            StrPart::Lit(_) => None,
        })
        .collect();
    assert_eq!(pvs, vec!["ru", "hdr"]);
}

#[test]
fn unknown_escapes_are_kept_for_regexes() {
    let ExprKind::Str(s) = expr(r#""^\+\d+$""#).kind else { panic!() };
    assert_eq!(s.value, r"^\+\d+$");
    assert!(s.is_plain());
}

#[test]
fn integers_durations_addresses() {
    assert_eq!(expr("42").kind, ExprKind::Int(42));
    assert_eq!(expr("500ms").kind, ExprKind::Duration(500));
    assert_eq!(expr("30s").kind, ExprKind::Duration(30_000));
    assert_eq!(expr("2m").kind, ExprKind::Duration(120_000));
    assert_eq!(expr("1h").kind, ExprKind::Duration(3_600_000));
    assert_eq!(expr("10.0.0.1").kind, ExprKind::Addr("10.0.0.1".into()));
    assert_eq!(expr("10.0.0.1:5060").kind, ExprKind::Addr("10.0.0.1:5060".into()));
    assert_eq!(expr("10.0.0.0/8").kind, ExprKind::Addr("10.0.0.0/8".into()));
    assert_eq!(expr("true").kind, ExprKind::Bool(true));
}

#[test]
fn listen_with_advertise() {
    let ItemKind::Listen { proto, addr, advertise } =
        item("listen udp 127.0.0.1:5060 advertise 203.0.113.5:5060;")
    else {
        panic!()
    };
    assert_eq!(proto.name, "udp");
    assert_eq!(addr.kind, ExprKind::Addr("127.0.0.1:5060".into()));
    assert!(advertise.is_some());
}

#[test]
fn domain_and_alias() {
    let ItemKind::Domain(d) = item("domain \"a.example\", \"b.example\";") else { panic!() };
    assert_eq!(d.len(), 2);
    assert!(matches!(item("alias \"c.example\";"), ItemKind::Domain(_)));
}

#[test]
fn settings_and_module_blocks() {
    let ItemKind::Settings(s) = item("settings { children = 4; debug = -1; }") else { panic!() };
    assert_eq!(s.len(), 2);
    let ItemKind::Module { name, params } = item("module tm { fr_timer = 5s; }") else { panic!() };
    assert_eq!(name.name, "tm");
    assert_eq!(params[0].name.name, "fr_timer");
}

#[test]
fn include_const_define_flag_table() {
    let ItemKind::Include(s) = item("include \"common.route\";") else { panic!() };
    assert_eq!(s.value, "common.route");
    assert!(matches!(item("const MAX = 10;"), ItemKind::Const { .. }));
    assert!(matches!(item("define WITH_AUTH;"), ItemKind::Define { value: None, .. }));
    assert!(matches!(item("define WITH_AUTH = false;"), ItemKind::Define { value: Some(_), .. }));
    assert!(matches!(item("flag FLT_ACC;"), ItemKind::Flag { value: None, .. }));
    assert!(matches!(item("flag FLT_ACC = 1;"), ItemKind::Flag { value: Some(_), .. }));
    let ItemKind::Table { entries, .. } = item("table T { \"a\" => 1; \"b\" => 2; }") else {
        panic!()
    };
    assert_eq!(entries.len(), 2);
}

#[test]
fn ifdef_and_ifndef_items() {
    let ItemKind::Ifdef { negate, then_items, else_items, .. } =
        item("ifdef WITH_X { const A = 1; } else { const B = 2; const C = 3; }")
    else {
        panic!()
    };
    assert!(!negate);
    assert_eq!((then_items.len(), else_items.len()), (1, 2));
    assert!(matches!(item("ifndef WITH_X { }"), ItemKind::Ifdef { negate: true, .. }));
}

#[test]
fn every_route_kind() {
    let f = parse_ok(
        "request_route {} reply_route {} onreply_route R {} failure_route F {} \
         branch_route B {} route S {} event_route timer_tick {} event_route \"tm:local-request\" {}",
    );
    let kinds: Vec<(RouteKind, Option<String>)> = f
        .items
        .iter()
        .map(|i| match &i.kind {
            ItemKind::Route(r) => (r.kind, r.name.as_ref().map(|n| n.name.clone())),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (RouteKind::Request, None),
            (RouteKind::Reply, None),
            (RouteKind::OnReply, Some("R".into())),
            (RouteKind::Failure, Some("F".into())),
            (RouteKind::Branch, Some("B".into())),
            (RouteKind::Sub, Some("S".into())),
            (RouteKind::Event, Some("timer_tick".into())),
            (RouteKind::Event, Some("tm:local-request".into())),
        ]
    );
}

#[test]
fn if_else_if_else() {
    let s = stmts("if a { exit; } else if (b) { drop; } else { return; }");
    let StmtKind::If { else_block: Some(else_block), .. } = &s[0].kind else { panic!() };
    let StmtKind::If { else_block: Some(inner), .. } = &else_block.stmts[0].kind else { panic!() };
    assert!(matches!(inner.stmts[0].kind, StmtKind::Return(None)));
}

#[test]
fn switch_on_strings_ints_and_regexes() {
    let s = stmts(
        "switch $rm { case \"INVITE\": relay(); case 5: exit; case -1: exit; \
         case =~ \"^SUB\": break; default: drop; }",
    );
    let StmtKind::Switch { cases, .. } = &s[0].kind else { panic!() };
    assert!(matches!(cases[0].label, CaseLabel::Str(_)));
    assert!(matches!(cases[1].label, CaseLabel::Int(5, _)));
    assert!(matches!(cases[2].label, CaseLabel::Int(-1, _)));
    assert!(matches!(cases[3].label, CaseLabel::Regex(_)));
    assert!(matches!(cases[4].label, CaseLabel::Default(_)));
}

#[test]
fn while_return_exit_drop_break() {
    let s = stmts("while n < 3 { n = n + 1; break; } return true; return 1; exit; drop;");
    assert!(matches!(s[0].kind, StmtKind::While { .. }));
    assert!(matches!(s[1].kind, StmtKind::Return(Some(_))));
    assert!(matches!(s[3].kind, StmtKind::Exit));
    assert!(matches!(s[4].kind, StmtKind::Drop));
}

#[test]
fn assignment_let_and_calls() {
    let s = stmts(
        "let n = 1; n = 2; $du = \"sip:x\"; $var(a) = 1; $avp(b) = \"x\"; relay(); route(X);",
    );
    assert!(matches!(s[0].kind, StmtKind::Let { .. }));
    assert!(matches!(s[1].kind, StmtKind::Assign { target: Place::Local(_), .. }));
    let StmtKind::Assign { target: Place::Pv(pv), .. } = &s[3].kind else { panic!() };
    assert_eq!((pv.name.as_str(), pv.arg.as_deref()), ("var", Some("a")));
    assert!(matches!(&s[5].kind, StmtKind::Expr(Expr { kind: ExprKind::Call { .. }, .. })));
    assert!(matches!(&s[6].kind, StmtKind::Expr(Expr { kind: ExprKind::RouteCall(_), .. })));
}

#[test]
fn statement_level_ifdef_and_blocks() {
    let s = stmts("ifdef WITH_X { relay(); } else { drop; } ifndef WITH_Y { exit; } { exit; }");
    assert!(matches!(s[0].kind, StmtKind::Ifdef { negate: false, else_block: Some(_), .. }));
    assert!(matches!(s[1].kind, StmtKind::Ifdef { negate: true, .. }));
    assert!(matches!(s[2].kind, StmtKind::Block(_)));
}

#[test]
fn operator_precedence() {
    // || binds loosest, then &&, then comparisons, then + -, then * / %.
    assert_eq!(binop(&expr("a || b && c")), BinOp::Or);
    assert_eq!(binop(&expr("a && b == c")), BinOp::And);
    assert_eq!(binop(&expr("a == b + c")), BinOp::Eq);
    assert_eq!(binop(&expr("a < b * c")), BinOp::Lt);
    assert_eq!(binop(&expr("a + b * c")), BinOp::Add);
    assert_eq!(binop(&expr("a * b % c")), BinOp::Rem);
    assert_eq!(binop(&expr("$ua =~ \"x\"")), BinOp::Match);
    assert_eq!(binop(&expr("(a || b) && c")), BinOp::And);
    assert!(matches!(expr("!a").kind, ExprKind::Unary { op: UnOp::Not, .. }));
    assert!(matches!(expr("-a").kind, ExprKind::Unary { op: UnOp::Neg, .. }));
    for op in ["!=", "<=", ">=", ">", "-", "/"] {
        let _ = expr(&format!("a {op} b"));
    }
}

#[test]
fn spans_cover_their_nodes() {
    let src = "request_route { relay(); }";
    let f = parse_ok(src);
    let ItemKind::Route(r) = &f.items[0].kind else { panic!() };
    let call = &r.body.stmts[0];
    assert_eq!(&src[call.span.range()], "relay();");
    assert_eq!(&src[r.head.range()], "request_route");
    assert_eq!(f.items[0].span.file, FileId(0));
}

#[test]
fn syntax_errors_recover_per_statement() {
    let src = "request_route {\n $a = ;\n relay()\n exit;\n}\nroute X { exit; }";
    let (file, diags) = parse(FileId(0), src);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    // Both routes are still there, and the statement after the errors too.
    assert_eq!(file.items.len(), 2);
    let ItemKind::Route(r) = &file.items[0].kind else { panic!() };
    assert!(r.body.stmts.iter().any(|s| matches!(s.kind, StmtKind::Exit)));
}

#[test]
fn lexer_never_fails() {
    for src in
        ["\u{0}\u{7f}§", "\"", "/*", "$", "@@@ request_route", "1.2.3", "999999999999999999999"]
    {
        let _ = parse(FileId(0), src);
    }
}
