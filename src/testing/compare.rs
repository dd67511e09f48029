//! Expectations against what a step did: what the proxy sent and what its
//! routes decided.

use super::run::{Mismatch, RouteRun, Sent, describe};
use super::spec::{Expect, parse_endpoint, show_endpoint};
use crate::proxy::Decision;
use crate::proxy::router::RouteId;
use crate::sema::ir::CheckedProgram;
use crate::syntax::ast::RouteKind;

/// The name a route is known by in expectations.
fn route_name(prog: &CheckedProgram, id: Option<RouteId>) -> String {
    match id.and_then(|i| prog.routes.get(i as usize)) {
        Some(r) if r.name.is_empty() => r.kind.keyword().to_owned(),
        Some(r) => format!("{} {}", r.kind.keyword(), r.name),
        None => "?".into(),
    }
}

fn armed(prog: &CheckedProgram, id: Option<RouteId>) -> String {
    match id.and_then(|i| prog.routes.get(i as usize)) {
        Some(r) => r.name.clone(),
        None => String::new(),
    }
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The expectations of one step against what happened.
pub(super) fn compare(
    prog: &CheckedProgram,
    step: usize,
    event: &str,
    expect: &Expect,
    sent: &[Sent],
    runs: &[RouteRun],
    generated_acks: bool,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut check = |key: &str, expected: String, actual: String| {
        if expected != actual {
            out.push(Mismatch {
                step,
                event: event.to_owned(),
                key: key.to_owned(),
                expected,
                actual,
            });
        }
    };
    // ACKs the proxy makes for a non-2xx final are not routing decisions.
    let shown: Vec<&Sent> =
        sent.iter().filter(|s| !(generated_acks && s.msg.method_str() == Some("ACK"))).collect();
    // The proxy's own 100 Trying is not the answer a test is about.
    let trying = expect.reply == Some(100);
    let reply =
        shown.iter().find(|s| !s.msg.is_request() && (trying || s.msg.status() != Some(100)));
    let requests: Vec<&&Sent> = shown.iter().filter(|s| s.msg.is_request()).collect();
    let nothing = || "nothing sent".to_owned();
    if let Some(d) = expect.drop {
        check("drop", d.to_string(), shown.is_empty().to_string());
    }
    if let Some(code) = expect.reply {
        let actual = match reply {
            Some(r) => r.msg.status().unwrap_or(0).to_string(),
            None if shown.is_empty() => nothing(),
            None => format!("no reply ({})", describe(shown[0])),
        };
        check("reply", code.to_string(), actual);
    }
    if let Some(reason) = &expect.reason {
        let actual = reply.map_or_else(nothing, |r| r.msg.reason().unwrap_or_default().to_owned());
        check("reason", reason.clone(), actual);
    }
    if let Some(relay) = &expect.relay {
        let expected: Vec<String> = relay
            .to_vec()
            .iter()
            .map(|r| parse_endpoint(r).map_or_else(|e| e, |(t, a)| show_endpoint(t, a)))
            .collect();
        let actual: Vec<String> =
            requests.iter().map(|s| show_endpoint(s.transport, s.peer)).collect();
        check("relay", quote_list(&expected), quote_list(&actual));
    }
    if let Some(ruri) = &expect.ruri {
        let actual = requests.first().map_or_else(
            || "no request sent".into(),
            |s| s.msg.request_uri_str().unwrap_or_default().to_owned(),
        );
        check("ruri", ruri.clone(), actual);
    }
    // Headers are those of the reply when one is expected, else of the
    // first request sent, else of whatever was sent first.
    let first = match (expect.reply, reply, requests.first()) {
        (Some(_), Some(r), _) => Some(r),
        (_, _, Some(r)) => Some(*r),
        _ => reply.or(shown.first()),
    };
    for (name, value) in &expect.headers {
        let actual = match first {
            None => nothing(),
            Some(s) => s
                .msg
                .headers_named(name)
                .next()
                .map_or_else(|| "(absent)".to_owned(), |h| s.msg.value_of(h).to_owned()),
        };
        check(&format!("headers.{name}"), value.clone(), actual);
    }
    for (name, pattern) in &expect.matches {
        let re = match regex::Regex::new(pattern) {
            Ok(re) => re,
            Err(e) => {
                check(&format!("matches.{name}"), pattern.clone(), format!("a bad regex: {e}"));
                continue;
            }
        };
        let actual =
            first.and_then(|s| s.msg.headers_named(name).next().map(|h| s.msg.value_of(h)));
        match actual {
            Some(v) if re.is_match(v) => {}
            Some(v) => check(&format!("matches.{name}"), format!("/{pattern}/"), v.to_owned()),
            None => check(&format!("matches.{name}"), format!("/{pattern}/"), "(absent)".into()),
        }
    }
    for name in &expect.absent {
        if let Some(s) = first
            && let Some(h) = s.msg.headers_named(name).next()
        {
            check(&format!("absent.{name}"), "(absent)".into(), s.msg.value_of(h).to_owned());
        }
    }
    if let Some(st) = expect.stateful {
        // `relay()`, or a final reply after `t_newtran()`: both make a
        // transaction.
        let actual = runs.iter().any(|r| match &r.decision {
            Decision::Relay => true,
            Decision::Reply { code, .. } => r.scope.newtran && *code >= 200,
            _ => false,
        });
        check("stateful", st.to_string(), actual.to_string());
    }
    if let Some(routes) = &expect.routes {
        let actual: Vec<String> = runs.iter().map(|r| route_name(prog, r.route)).collect();
        check("routes", quote_list(routes), quote_list(&actual));
    }
    // The scope a request or failure route left (branch and reply routes
    // run later and see it, but do not decide it).
    let decisive = runs
        .iter()
        .rev()
        .find(|r| {
            r.route
                .and_then(|i| prog.routes.get(i as usize))
                .is_some_and(|x| matches!(x.kind, RouteKind::Request | RouteKind::Failure))
        })
        .or(runs.last());
    let scope = decisive.map(|r| &r.scope);
    let no_route = || "no route ran".to_owned();
    let hooks = [
        ("failure_route", &expect.failure_route, scope.map(|s| s.on_failure)),
        ("onreply_route", &expect.onreply_route, scope.map(|s| s.on_reply)),
        ("branch_route", &expect.branch_route, scope.map(|s| s.on_branch)),
    ];
    for (key, want, got) in hooks {
        if let Some(want) = want {
            check(key, want.clone(), got.map_or_else(no_route, |id| armed(prog, id)));
        }
    }
    if let Some(flags) = &expect.flags {
        let actual = scope.map_or_else(no_route, |s| {
            let names: Vec<String> = prog
                .flags
                .iter()
                .filter(|f| s.flags & (1u64 << f.bit) != 0)
                .map(|f| f.name.clone())
                .collect();
            quote_list(&names)
        });
        let mut want = flags.clone();
        want.sort_by_key(|n| prog.flags.iter().position(|f| &f.name == n).unwrap_or(usize::MAX));
        check("flags", quote_list(&want), actual);
    }
    for (name, value) in &expect.avps {
        let actual = match (scope, prog.avps.iter().position(|a| a == name)) {
            (None, _) => no_route(),
            (_, None) => format!("(no `$avp({name})` in the config)"),
            (Some(s), Some(slot)) => s.avps.get(slot).cloned().unwrap_or_default(),
        };
        check(&format!("avps.{name}"), value.clone(), actual);
    }
    out
}
