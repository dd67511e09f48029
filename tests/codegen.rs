//! The code generator construct by construct: each program runs through the
//! JIT and the reference evaluator on the same requests, and both must
//! produce the same decision, the same `$du`/Record-Route choice and the
//! same serialized message.

use std::net::SocketAddr;

use bytes::Bytes;
use sipc::codegen::{Evaluator, Program, compile};
use sipc::proxy::{Decision, RequestContext, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{EditedMessage, Message};

fn checked(src: &str) -> sipc::sema::ir::CheckedProgram {
    let out = sema::check_source("test.route", src, &Options::default());
    assert_eq!(out.errors(), 0, "{}", sipc::cli::check::render_plain(&out));
    out.program
}

fn request(method: &str, ruri: &str, extra: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 {method}\r\n\
         User-Agent: test-ua/1.0\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn ctx(text: &str) -> RequestContext {
    let msg = Message::parse(Bytes::from(text.to_owned())).expect("test message parses");
    RequestContext::new(
        EditedMessage::new(msg),
        "192.0.2.1:5060".parse::<SocketAddr>().unwrap(),
        Transport::Udp,
    )
}

#[derive(Debug, PartialEq)]
struct Outcome {
    decision: Decision,
    destination: Option<String>,
    record_route: bool,
    wire: String,
}

fn outcome(d: Decision, c: RequestContext) -> Outcome {
    Outcome {
        decision: d,
        destination: c.destination,
        record_route: c.record_route,
        wire: String::from_utf8_lossy(&c.msg.serialize()).into_owned(),
    }
}

/// Runs `src` on `msg` through both engines, asserts they agree, returns the outcome.
fn run(src: &str, msg: &str) -> Outcome {
    let prog = checked(src);
    let jit = compile(&prog).expect("compiles");
    let eval = Evaluator::new(&prog).unwrap();
    both(&jit, &eval, msg)
}

fn both(jit: &Program, eval: &Evaluator, msg: &str) -> Outcome {
    let mut a = ctx(msg);
    let da = jit.run(&mut a);
    let mut b = ctx(msg);
    let db = eval.run(&mut b);
    let (a, b) = (outcome(da, a), outcome(db, b));
    assert_eq!(a, b, "JIT and evaluator disagree");
    a
}

fn invite() -> String {
    request("INVITE", "sip:bob@example.com", "")
}

fn reply_of(o: &Outcome) -> Option<(u16, &str)> {
    match &o.decision {
        Decision::Reply { code, reason } => Some((*code, &**reason)),
        _ => None,
    }
}

#[test]
fn reply_forward_drop_exit() {
    let o = run("request_route { reply(404, \"Nope\"); exit; }", &invite());
    assert_eq!(reply_of(&o), Some((404, "Nope")));
    let o = run("request_route { forward(); exit; }", &invite());
    assert_eq!(o.decision, Decision::Forward);
    let o = run("request_route { forward(); drop; }", &invite());
    assert_eq!(o.decision, Decision::Drop);
    let o = run("request_route { exit; }", &invite());
    assert_eq!(o.decision, Decision::Drop);
    let o = run("request_route { relay(\"sip:10.0.0.1:5070\"); }", &invite());
    assert_eq!(o.decision, Decision::Relay);
    assert_eq!(o.destination.as_deref(), Some("sip:10.0.0.1:5070"));
}

#[test]
fn if_else_and_methods() {
    let src = r#"request_route {
        if is_method("INVITE|SUBSCRIBE") { record_route(); reply(200, "inv"); }
        else if is_method("OPTIONS") { reply(200, "opt"); }
        else { reply(405, "other"); }
    }"#;
    let o = run(src, &invite());
    assert_eq!(reply_of(&o), Some((200, "inv")));
    assert!(o.record_route);
    let o = run(src, &request("OPTIONS", "sip:x@example.com", ""));
    assert_eq!(reply_of(&o), Some((200, "opt")));
    let o = run(src, &request("BYE", "sip:x@example.com", ""));
    assert_eq!(reply_of(&o), Some((405, "other")));
}

#[test]
fn short_circuit_does_not_evaluate_rhs() {
    // The rhs would reply; && and || must not run it.
    let src = r#"
        route SIDE { reply(500, "side effect"); return true; }
        request_route {
            if false && route(SIDE) { exit; }
            if true || route(SIDE) { reply(200, "ok"); }
        }"#;
    let o = run(src, &invite());
    assert_eq!(reply_of(&o), Some((200, "ok")));
}

#[test]
fn int_arithmetic_wraps_and_division_by_zero_is_zero() {
    let src = r#"request_route {
        let big = 9223372036854775807;
        let z = 0;
        let m1 = -1;
        $var(x) = big + 1;
        if $var(x) < 0 && 7 / z == 0 && 7 % z == 0 && (-9223372036854775807 - 1) / m1 < 0
            && 7 % m1 == 0 && 17 / 5 == 3 && 17 % 5 == 2 && -17 / 5 == -3 && 3 * 4 - 2 == 10 {
            reply(200, "wrapped");
        } else {
            reply(500, "bad");
        }
    }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "wrapped")));
}

#[test]
fn strings_compare_concat_and_interpolate() {
    let src = r#"request_route {
        let u = $rU;
        if u == "bob" && u != "Bob" && "a" + "b" == "ab" {
            reply(200, "user $rU from $fU on $rp via $hdr(User-Agent)");
        } else {
            reply(500, "bad");
        }
    }"#;
    let o = run(src, &invite());
    assert_eq!(reply_of(&o), Some((200, "user bob from alice on 5060 via test-ua/1.0")));
}

#[test]
fn regex_matches_and_captures() {
    let src = r#"request_route {
        if $rU =~ "^(\+|00)([0-9]+)$" {
            reply(200, "num $match(2)");
        } else if $ua =~ "scanner" {
            drop;
        } else {
            reply(404, "no");
        }
    }"#;
    let o = run(src, &request("INVITE", "sip:0049301234@example.com", ""));
    assert_eq!(reply_of(&o), Some((200, "num 49301234")));
    let o = run(src, &invite());
    assert_eq!(reply_of(&o), Some((404, "no")));
    let scan =
        request("OPTIONS", "sip:x@example.com", "").replace("test-ua/1.0", "friendly-scanner");
    assert_eq!(run(src, &scan).decision, Decision::Drop);
}

#[test]
fn switch_on_strings_ints_and_regexes() {
    let src = r#"request_route {
        switch $rm {
            case "INVITE":
                switch $rp {
                    case 5060: reply(200, "invite 5060");
                    default: reply(200, "invite other");
                }
            case =~ "^(OPT|REG)":
                reply(200, "opt or reg");
                break;
            default:
                reply(405, "nope");
        }
    }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "invite 5060")));
    let o = run(src, &request("REGISTER", "sip:example.com", ""));
    assert_eq!(reply_of(&o), Some((200, "opt or reg")));
    let o = run(src, &request("BYE", "sip:x@example.com", ""));
    assert_eq!(reply_of(&o), Some((405, "nope")));
}

#[test]
fn while_loops_break_and_are_bounded() {
    let src = r#"
        settings { max_while_loops = 50; }
        request_route {
            let i = 0;
            while i < 10 { i = i + 1; if i == 7 { break; } }
            let j = 0;
            while true { j = j + 1; }
            reply(200, to_str(i) + " " + to_str(j));
        }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "7 50")));
}

#[test]
fn route_calls_return_values_and_exit_propagation() {
    let src = r#"
        route YES { return true; }
        route NO { return false; }
        route NUM { return -5; }
        route PLAIN { log(info, "plain"); }
        route STOP { reply(403, "stopped"); exit; }
        request_route {
            if !route(YES) { reply(500, "yes"); exit; }
            if route(NO) { reply(500, "no"); exit; }
            if route(NUM) { reply(500, "num"); exit; }
            if !route(PLAIN) { reply(500, "plain"); exit; }
            route(STOP);
            reply(500, "after stop");
        }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((403, "stopped")));
    let drop = r#"
        route D { drop; }
        request_route { forward(); route(D); reply(500, "not reached"); }"#;
    assert_eq!(run(drop, &invite()).decision, Decision::Drop);
}

#[test]
fn vars_avps_and_flags() {
    let src = r#"
        flag F1;
        flag F2;
        route SET { $var(n) = $var(n) + 1; $avp(who) = $fU; setflag(F2); }
        request_route {
            route(SET);
            route(SET);
            if isflagset(F2) && !isflagset(F1) && $var(n) == 2 {
                resetflag(F2);
                if !isflagset(F2) { reply(200, "$avp(who) $var(n)"); exit; }
            }
            reply(500, "bad");
        }"#;
    let prog = checked(src);
    let jit = compile(&prog).unwrap();
    let eval = Evaluator::new(&prog).unwrap();
    // $var is reset for every message: the same program gives the same answer twice.
    for _ in 0..2 {
        assert_eq!(reply_of(&both(&jit, &eval, &invite())), Some((200, "alice 2")));
    }
}

#[test]
fn pseudo_variable_writes_edit_the_message() {
    let src = r#"request_route {
        $rU = "carol";
        $rd = "10.0.0.9";
        $rp = 5070;
        $du = "sip:127.0.0.1:5080";
        append_hf("X-Hint: outbound\r\n");
        replace_hf("User-Agent", "sipc");
        remove_hf("Max-Forwards");
        forward();
    }"#;
    let o = run(src, &invite());
    assert_eq!(o.decision, Decision::Forward);
    assert_eq!(o.destination.as_deref(), Some("sip:127.0.0.1:5080"));
    assert!(o.wire.starts_with("INVITE sip:carol@10.0.0.9:5070 SIP/2.0\r\n"), "{}", o.wire);
    assert!(o.wire.contains("X-Hint: outbound\r\n"));
    assert!(o.wire.contains("User-Agent: sipc\r\n"));
    assert!(!o.wire.contains("Max-Forwards"));
    let src = r#"request_route { $ru = "sip:dave@192.0.2.7"; $rU = ""; forward(); }"#;
    assert!(run(src, &invite()).wire.starts_with("INVITE sip:192.0.2.7 SIP/2.0\r\n"));
}

#[test]
fn string_builtins_and_tables() {
    let src = r#"
        table GW { "de" => "sip:10.0.0.1"; "fr" => "sip:10.0.0.2"; }
        request_route {
            let s = "Hello";
            if str_len(s) == 5 && str_lower(s) == "hello" && str_upper(s) == "HELLO"
                && str_substr(s, 1, 3) == "ell" && str_substr(s, 3, 100) == "lo"
                && str_contains(s, "ll") && str_starts_with(s, "He") && to_int("42") == 42
                && to_int("x") == 0 && table_get(GW, "fr") == "sip:10.0.0.2"
                && table_has(GW, "de") && !table_has(GW, "it") && table_get(GW, "it") == "" {
                reply(200, "ok");
            } else {
                reply(500, "bad");
            }
        }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "ok")));
}

#[test]
fn in_dialog_helpers() {
    let src = r#"request_route {
        if has_to_tag() {
            if loose_route() { forward(); exit; }
            reply(404, "Not here");
            exit;
        }
        reply(200, "initial");
    }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "initial")));
    let bye = request("BYE", "sip:bob@192.0.2.4", "Route: <sip:10.9.9.9;lr>\r\n")
        .replace("To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com>;tag=abc");
    assert_eq!(run(src, &bye).decision, Decision::Forward);
    let bye = request("BYE", "sip:bob@192.0.2.4", "")
        .replace("To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com>;tag=abc");
    assert_eq!(reply_of(&run(src, &bye)), Some((404, "Not here")));
}

#[test]
fn registrar_builtins_without_services_return_false() {
    let src = r#"request_route {
        if t_check_trans() || lookup("location") || save("location") { reply(500, "faked"); exit; }
        if !save("location") { reply_error(); }
    }"#;
    assert_eq!(
        reply_of(&run(src, &request("REGISTER", "sip:example.com", ""))),
        Some((500, "Server Internal Error"))
    );
}

#[test]
fn is_myself_uses_listen_and_domains() {
    let src = r#"
        listen udp 127.0.0.1:5060;
        domain "sip.example.com";
        request_route {
            if is_myself("sip:127.0.0.1:5060") && is_myself("sip:bob@sip.example.com")
                && !is_myself("sip:bob@example.org") && !is_myself("sip:127.0.0.1:5070") {
                reply(200, "me");
            }
        }"#;
    assert_eq!(reply_of(&run(src, &invite())), Some((200, "me")));
}

type Defines<'a> = Vec<(&'a str, Option<&'a str>)>;

fn example(name: &str, defines: &[(&str, Option<&str>)]) -> sipc::sema::ir::CheckedProgram {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let opts = Options {
        defines: defines.iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect(),
        all_features: false,
    };
    let out = sema::check_path(&path, name, &opts).unwrap();
    assert_eq!(out.errors(), 0, "{}", sipc::cli::check::render_plain(&out));
    out.program
}

/// A small corpus of requests: initial and in-dialog, local and foreign,
/// scanners, PSTN numbers, registrations.
fn corpus() -> Vec<String> {
    let in_dialog = |m: &str, route: &str| {
        request(m, "sip:bob@192.0.2.4:5060", route).replace(
            "To: Bob <sip:bob@example.com>",
            "To: Bob <sip:bob@example.com>;tag=9fxced76sl",
        )
    };
    vec![
        invite(),
        request("INVITE", "sip:bob@sip.example.com", ""),
        request("INVITE", "sip:sip.example.com", ""),
        request("INVITE", "sip:+4930123456@sip.example.com", ""),
        request("INVITE", "sip:004930123456@sip.example.com", ""),
        request("OPTIONS", "sip:127.0.0.1:5060", ""),
        request("OPTIONS", "sip:bob@example.com", "").replace("test-ua/1.0", "sipvicious"),
        request("REGISTER", "sip:sip.example.com", "Contact: <sip:alice@192.0.2.1>\r\n"),
        request("CANCEL", "sip:bob@sip.example.com", ""),
        request("SUBSCRIBE", "sip:bob@example.org", "Route: <sip:10.1.1.1;lr>\r\n"),
        request("MESSAGE", "sip:bob@sip.example.com", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 1"),
        in_dialog("BYE", "Route: <sip:10.0.0.5;lr>\r\n"),
        in_dialog("ACK", ""),
        in_dialog("NOTIFY", "Route: <sip:10.0.0.5;lr>\r\n"),
        in_dialog("INFO", ""),
    ]
}

#[test]
fn examples_agree_between_jit_and_evaluator() {
    let variants: Vec<(&str, Defines<'_>)> = vec![
        ("default.route", vec![]),
        ("default.route", vec![("WITH_AUTH", None)]),
        ("default.route", vec![("WITH_PSTN", None)]),
        ("bench/stateless.route", vec![]),
        ("bench/stateful.route", vec![]),
    ];
    let mut decisions = Vec::new();
    for (name, defs) in variants {
        let prog = example(name, &defs);
        let jit = compile(&prog).unwrap();
        let eval = Evaluator::new(&prog).unwrap();
        for msg in corpus() {
            decisions.push(both(&jit, &eval, &msg).decision);
        }
    }
    // Sanity: the corpus exercises forwarding, replies and drops.
    assert!(decisions.contains(&Decision::Forward));
    assert!(decisions.contains(&Decision::Drop));
    assert!(decisions.iter().any(|d| matches!(d, Decision::Reply { code: 404, .. })));
    assert!(decisions.iter().any(|d| matches!(d, Decision::Reply { code: 403, .. })));
}

#[test]
fn default_route_decisions() {
    let prog = example("default.route", &[]);
    let jit = compile(&prog).unwrap();
    let eval = Evaluator::new(&prog).unwrap();
    let c = corpus();
    // foreign domain: not relaying
    assert_eq!(reply_of(&both(&jit, &eval, &c[0])), Some((403, "Not relaying")));
    // local user, no registrar yet: 404 Not Found
    assert_eq!(reply_of(&both(&jit, &eval, &c[1])), Some((404, "Not Found")));
    // no user part
    assert_eq!(reply_of(&both(&jit, &eval, &c[2])), Some((484, "Address Incomplete")));
    // keepalive
    assert_eq!(reply_of(&both(&jit, &eval, &c[5])), Some((200, "Keepalive")));
    // scanner: silently dropped
    assert_eq!(both(&jit, &eval, &c[6]).decision, Decision::Drop);
    // in-dialog BYE with a route set: relayed
    assert_eq!(both(&jit, &eval, &c[11]).decision, Decision::Relay);
    // in-dialog INFO without route: 404
    assert_eq!(reply_of(&both(&jit, &eval, &c[14])), Some((404, "Not here")));
}

/// Every request of the SIP test corpora the core would route (it parses
/// and validates), with CRLF line ends as on the wire.
fn wire_corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for dir in ["sip", "rfc4475"] {
        let mut paths: Vec<_> =
            std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            if !matches!(p.extension().and_then(|e| e.to_str()), Some("sip" | "dat")) {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let Ok(msg) = Message::parse(Bytes::from(bytes.clone())) else { continue };
            if !msg.is_request() || msg.check().is_err() {
                continue;
            }
            let Ok(text) = String::from_utf8(bytes) else { continue };
            out.push(text);
        }
    }
    out
}

#[test]
fn corpus_requests_agree_between_jit_and_evaluator() {
    let corpus = wire_corpus();
    assert!(corpus.len() >= 10, "only {} corpus requests", corpus.len());
    let hand_written = [
        r#"request_route {
            $var(n) = 0;
            while $var(n) < 5 && str_len($hdr(Via)) > $var(n) { $var(n) = $var(n) + 1; }
            switch $rm {
                case "INVITE": $ru = "sip:" + $rU + "@10.0.0.1"; record_route();
                case =~ "^(REGISTER|OPTIONS)$": reply(200, "ok $rm $var(n) $ci"); exit;
                default: append_hf("X-Method: $rm\r\n");
            }
            if $fU == $tU || $rp == 5061 || $cs > 1000 { remove_hf("Contact"); }
            $du = "sip:127.0.0.1:" + to_str($sp);
            forward();
        }"#,
        r#"route CHECK { if $ua =~ "(?i)torture" { return false; } return str_len($ci) % 2 + 1; }
        request_route {
            if !route(CHECK) { drop; }
            if has_to_tag() && loose_route() { relay(); exit; }
            reply(400 + str_len($rU) % 100, "len $rU $fd $td $ml $proto $si");
        }"#,
    ];
    let mut programs: Vec<sipc::sema::ir::CheckedProgram> =
        hand_written.iter().map(|s| checked(s)).collect();
    for (name, defs) in [
        ("default.route", vec![]),
        ("default.route", vec![("WITH_AUTH", None), ("WITH_PSTN", None)]),
        ("bench/stateless.route", vec![]),
        ("bench/stateful.route", vec![]),
    ] {
        programs.push(example(name, &defs));
    }
    let mut runs = 0;
    for prog in &programs {
        let jit = compile(prog).unwrap();
        let eval = Evaluator::new(prog).unwrap();
        for msg in &corpus {
            both(&jit, &eval, msg);
            runs += 1;
        }
    }
    assert!(runs >= 60);
}

/// A large program: `routes` sub-routes using every kind of statement,
/// all called from `request_route`.
fn generated(routes: usize) -> String {
    use std::fmt::Write;
    let mut s = String::from("listen udp 127.0.0.1:5060;\nflag F;\nrequest_route {\n");
    for i in 0..routes {
        let _ = writeln!(s, "    if !route(R{i}) {{ $var(miss) = $var(miss) + 1; }}");
    }
    s.push_str("    reply(200, \"misses $var(miss)\");\n}\n");
    for i in 0..routes {
        let _ = write!(
            s,
            r#"route R{i} {{
    let n = {i};
    let t = "r{i}-" + $rU;
    while n > 3 {{ n = n / 2; }}
    switch $rm {{
        case "INVITE": setflag(F);
        case =~ "^(BYE|CANCEL)$": n = n + 1;
        default: t = t + "x";
    }}
    if str_len(t) % 2 == 0 && $fU != "r{i}" {{ return true; }}
    return n >= {m};
}}
"#,
            m = i % 5
        );
    }
    s
}

#[test]
fn a_generated_large_program_compiles_and_agrees() {
    let src = generated(300);
    assert!(src.lines().count() > 3000);
    let prog = checked(&src);
    let t = std::time::Instant::now();
    let jit = compile(&prog).unwrap();
    eprintln!("compiled {} routes in {:?}", prog.routes.len(), t.elapsed());
    let eval = Evaluator::new(&prog).unwrap();
    let mut replies = 0;
    for msg in corpus() {
        replies += usize::from(reply_of(&both(&jit, &eval, &msg)).is_some());
    }
    assert_eq!(replies, corpus().len());
}

#[test]
fn one_program_routes_on_many_threads_at_once() {
    let prog = example("default.route", &[]);
    let jit = std::sync::Arc::new(compile(&prog).unwrap());
    let eval = Evaluator::new(&prog).unwrap();
    let c = corpus();
    let want: Vec<Outcome> = c.iter().map(|m| both(&jit, &eval, m)).collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (jit, c) = (std::sync::Arc::clone(&jit), c.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..200 {
                    got = c
                        .iter()
                        .map(|m| {
                            let mut x = ctx(m);
                            let d = jit.run(&mut x);
                            outcome(d, x)
                        })
                        .collect::<Vec<_>>();
                }
                got
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

/// The code generator compiles some builtins with constant arguments to
/// cheaper code (method masks, flags changed in place, constant answers);
/// the evaluator always calls the general runtime function. Both must agree
/// for every method, standard or not.
#[test]
fn specialized_builtins_agree_with_the_general_ones() {
    let src = r#"
        flag A;
        flag B;
        flag C;
        request_route {
            let s = "";
            if is_method("INVITE|BYE") { s = s + "1"; } else { s = s + "0"; }
            if is_method(" ACK | CANCEL ") { s = s + "1"; } else { s = s + "0"; }
            if is_method("FOO|INVITE") { s = s + "1"; } else { s = s + "0"; }
            if is_method("invite") { s = s + "1"; } else { s = s + "0"; }
            if is_method("INVITE|") { s = s + "1"; } else { s = s + "0"; }
            if is_method("PUBLISH|MESSAGE|REFER|NOTIFY|SUBSCRIBE|PRACK|UPDATE|INFO|OPTIONS|REGISTER") {
                s = s + "1";
            } else { s = s + "0"; }
            setflag(A); setflag(C); resetflag(A); setflag(B); resetflag(B); setflag(B);
            if isflagset(A) { s = s + "a"; }
            if isflagset(B) { s = s + "b"; }
            if isflagset(C) { s = s + "c"; }
            if sanity_check() && !t_precheck_trans() { s = s + "!"; }
            reply(200, s);
        }"#;
    let prog = checked(src);
    let jit = compile(&prog).unwrap();
    let eval = Evaluator::new(&prog).unwrap();
    let want = [
        ("INVITE", "101010bc!"),
        ("BYE", "100000bc!"),
        ("ACK", "010000bc!"),
        ("CANCEL", "010000bc!"),
        ("FOO", "001000bc!"),
        ("invite", "000100bc!"),
        ("NOTIFY", "000001bc!"),
        ("REGISTER", "000001bc!"),
    ];
    for (method, expected) in want {
        let o = both(&jit, &eval, &request(method, "sip:bob@example.com", ""));
        assert_eq!(reply_of(&o), Some((200, expected)), "{method}");
    }
}

/// A chain of calls deeper than the depth guard allows keeps the guard in
/// compiled code (shallower programs leave it out): both engines fail the
/// message with 500.
#[test]
fn call_chains_deeper_than_the_guard_fail_the_message() {
    let mut src = String::from("request_route { route(R0); reply(200, \"deep\"); }\n");
    for i in 0..110 {
        src.push_str(&format!("route R{i} {{ route(R{}); }}\n", i + 1));
    }
    src.push_str("route R110 { return; }\n");
    let o = run(&src, &invite());
    assert_eq!(reply_of(&o), Some((500, "Server Internal Error")));
    // Within the limit the same shape runs normally.
    let mut src = String::from("request_route { route(R0); reply(200, \"deep\"); }\n");
    for i in 0..50 {
        src.push_str(&format!("route R{i} {{ route(R{}); }}\n", i + 1));
    }
    src.push_str("route R50 { return; }\n");
    assert_eq!(reply_of(&run(&src, &invite())), Some((200, "deep")));
}

#[test]
fn kamailio_default_cfg_builtins() {
    let src = r#"
        request_route {
            force_rport();
            set_reply_no_connect();
            on_failure(F);
            if !is_request() || is_reply() || t_is_branch_route() {
                reply(500, "kind");
                exit;
            }
            if !t_is_set("failure_route") || t_is_set("branch_route") || t_is_set("onreply_route") {
                reply(500, "hooks");
                exit;
            }
            if $T_branch_idx != 0 {
                reply(500, "branch index");
                exit;
            }
            if is_first_hop() {
                t_newtran();
                reply(404, "first hop");
            } else {
                reply(404, "later hop");
            }
            log(L_ALERT, "alerts log as errors");
        }
        failure_route F { }
    "#;
    let o = run(src, &invite());
    assert_eq!(reply_of(&o), Some((404, "first hop")));
    assert!(
        o.wire.contains(
            "\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5060\r\n"
        ),
        "{}",
        o.wire
    );
    let two_vias = request(
        "INVITE",
        "sip:bob@example.com",
        "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKup\r\n",
    );
    let o = run(src, &two_vias);
    assert_eq!(reply_of(&o), Some((404, "later hop")));
}
