//! Checking trunks, trunk groups and routing tables.
//!
//! Their declarations are a name plus a list of words (`weight 50`,
//! `strategy hash(callid)`, `=> group cn strip 2`), so options are read here
//! rather than in the grammar: one place knows every option, and a typo is
//! one precise diagnostic (E0215) instead of a syntax error. Rows from a CSV
//! file go through the same row checks and are reported with the CSV file
//! and line. Tables are compiled here, once, into their lookup structure
//! ([`crate::routing::index`]); the checker needs that structure anyway to
//! find duplicate and shadowed keys, and a million-row table is then built
//! once per reload.

use std::collections::HashMap;

use super::check::Checker;
use super::ir::{self, DestRef};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, ExprKind, Item, ItemKind, TrunkDecl};
use crate::syntax::span::{FileId, Span};

fn bad(c: &mut Checker<'_>, span: Span, msg: impl Into<String>, help: &str) {
    let mut d = Diagnostic::new(Code::BadDeclaration, msg).at(span, "here");
    if !help.is_empty() {
        d = d.with_help(help.to_string());
    }
    c.error(d);
}

/// A cursor over declaration words.
struct Words<'w> {
    w: &'w [ast::Expr],
    i: usize,
}

impl<'w> Words<'w> {
    fn next(&mut self) -> Option<&'w ast::Expr> {
        let e = self.w.get(self.i)?;
        self.i += 1;
        Some(e)
    }

    fn peek(&self) -> Option<&'w ast::Expr> {
        self.w.get(self.i)
    }

    fn peek_name(&self) -> Option<&'w str> {
        match &self.peek()?.kind {
            ExprKind::Name(n) => Some(&n.name),
            _ => None,
        }
    }
}

/// The value after option `opt`, as an int.
fn int_after(c: &mut Checker<'_>, w: &mut Words<'_>, opt: &ast::Expr, name: &str) -> Option<i64> {
    match w.next().map(|e| (&e.kind, e.span)) {
        Some((ExprKind::Int(i), _)) => Some(*i),
        Some((_, span)) => {
            bad(c, span, format!("`{name}` takes an integer"), "");
            None
        }
        None => {
            bad(c, opt.span, format!("`{name}` needs an integer after it"), "");
            None
        }
    }
}

fn str_after(
    c: &mut Checker<'_>,
    w: &mut Words<'_>,
    opt: &ast::Expr,
    name: &str,
) -> Option<String> {
    match w.next().map(|e| (&e.kind, e.span)) {
        Some((ExprKind::Str(s), _)) => Some(s.value.clone()),
        Some((_, span)) => {
            bad(c, span, format!("`{name}` takes a string"), "");
            None
        }
        None => {
            bad(c, opt.span, format!("`{name}` needs a string after it"), "");
            None
        }
    }
}

fn name_after<'w>(
    c: &mut Checker<'_>,
    w: &mut Words<'w>,
    opt: &ast::Expr,
    name: &str,
) -> Option<&'w ast::Ident> {
    match w.next().map(|e| (&e.kind, e.span)) {
        Some((ExprKind::Name(n), _)) => Some(n),
        Some((_, span)) => {
            bad(c, span, format!("`{name}` takes a name"), "");
            None
        }
        None => {
            bad(c, opt.span, format!("`{name}` needs a name after it"), "");
            None
        }
    }
}

/// `attr NAME "value"`.
fn attr(c: &mut Checker<'_>, w: &mut Words<'_>, opt: &ast::Expr) -> Option<(String, String)> {
    let key = match w.next().map(|e| &e.kind) {
        Some(ExprKind::Name(n)) => n.name.clone(),
        Some(ExprKind::Str(s)) => s.value.clone(),
        _ => {
            bad(c, opt.span, "`attr` needs a name and a string: `attr region \"eu\"`", "");
            return None;
        }
    };
    let value = str_after(c, w, opt, "attr")?;
    Some((key, value))
}

/// Declares every trunk, group and routing table; records their names for
/// `select(NAME)` and friends in `c.dests`.
pub fn declare<'a>(
    c: &mut Checker<'a>,
    items: &[&'a Item],
    csv: &HashMap<Span, Result<FileId, String>>,
    program: &mut ir::CheckedProgram,
) {
    let mut routing = ir::Routing::default();
    // Trunks first (top-level and defined inside groups), then groups, so
    // rows and members may name either in any order.
    let mut trunk_decls: Vec<&TrunkDecl> = Vec::new();
    for item in items {
        match &item.kind {
            ItemKind::Trunk(t) => trunk_decls.push(t),
            ItemKind::TrunkGroup { members, .. } => {
                trunk_decls.extend(members.iter().filter(|m| !m.words.is_empty()))
            }
            _ => {}
        }
    }
    for t in trunk_decls {
        if let Some(trunk) = trunk(c, t) {
            let idx = routing.trunks.len() as u32;
            if name_taken(c, &t.name) {
                continue;
            }
            c.dests.insert(t.name.name.clone(), (DestRef::Trunk(idx), t.name.span, false));
            routing.trunks.push(trunk);
        }
    }
    for item in items {
        if let ItemKind::TrunkGroup { name, words, members } = &item.kind
            && let Some(g) = group(c, name, words, members, item.span)
            && !name_taken(c, name)
        {
            let idx = routing.groups.len() as u32;
            c.dests.insert(name.name.clone(), (DestRef::Group(idx), name.span, false));
            routing.groups.push(g);
        }
    }
    for item in items {
        if let ItemKind::RouteTable { name, head, rows } = &item.kind
            && let Some(t) = table(c, name, head, rows, csv)
            && !name_taken(c, name)
        {
            let idx = routing.tables.len() as u32;
            c.dests.insert(name.name.clone(), (DestRef::Table(idx), name.span, false));
            routing.tables.push(t);
        }
    }
    program.routing = routing;
}

fn name_taken(c: &mut Checker<'_>, name: &ast::Ident) -> bool {
    let prev =
        c.dests.get(&name.name).map(|d| d.1).or_else(|| c.tables.get(&name.name).map(|t| t.span));
    if let Some(prev) = prev {
        c.error(
            Diagnostic::new(Code::DuplicateDefinition, format!("`{}` is defined twice", name.name))
                .at(name.span, "defined again here")
                .with_label(prev, "first defined here")
                .with_help("tables, trunk groups and trunks share one namespace"),
        );
        return true;
    }
    false
}

fn trunk(c: &mut Checker<'_>, t: &TrunkDecl) -> Option<ir::Trunk> {
    let mut w = Words { w: &t.words, i: 0 };
    let uri = match w.next().map(|e| (&e.kind, e.span)) {
        Some((ExprKind::Str(s), span)) => {
            if !s.value.starts_with("sip:") && !s.value.starts_with("sips:") {
                bad(
                    c,
                    span,
                    "a trunk's address is a SIP URI",
                    "write it like \"sip:10.0.0.1:5060\"",
                );
            }
            s.value.clone()
        }
        _ => {
            bad(
                c,
                t.name.span,
                format!("trunk `{}` needs its address", t.name.name),
                "write `trunk NAME \"sip:host:port\" …;`",
            );
            return None;
        }
    };
    let mut out = ir::Trunk {
        name: t.name.name.clone(),
        uri,
        weight: 1,
        priority: 0,
        max_calls: 0,
        from: Vec::new(),
        attrs: Vec::new(),
    };
    while let Some(opt) = w.next() {
        let ExprKind::Name(n) = &opt.kind else {
            bad(c, opt.span, "expected a trunk option", TRUNK_HELP);
            continue;
        };
        match n.name.as_str() {
            "weight" => {
                if let Some(v) = int_after(c, &mut w, opt, "weight") {
                    out.weight = u32::try_from(v).unwrap_or(0);
                }
            }
            "priority" => out.priority = int_after(c, &mut w, opt, "priority").unwrap_or(0),
            "max_calls" => {
                out.max_calls = int_after(c, &mut w, opt, "max_calls")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0)
            }
            "transport" => {
                if let Some(tp) = name_after(c, &mut w, opt, "transport") {
                    if !["udp", "tcp", "tls", "ws", "wss"].contains(&tp.name.as_str()) {
                        bad(
                            c,
                            tp.span,
                            format!("unknown transport `{}`", tp.name),
                            "use udp, tcp, tls, ws or wss",
                        );
                    } else if tp.name != "udp" {
                        out.uri = format!("{};transport={}", out.uri, tp.name);
                    }
                }
            }
            "from" => match w.next().map(|e| (&e.kind, e.span)) {
                Some((ExprKind::Addr(a), span)) => match parse_net(a) {
                    Some(net) => out.from.push(net),
                    None => bad(c, span, "expected an address or network", "like 10.0.0.0/24"),
                },
                _ => bad(
                    c,
                    opt.span,
                    "`from` needs an address or network after it",
                    "like `from 10.0.0.0/24`",
                ),
            },
            "attr" => out.attrs.extend(attr(c, &mut w, opt)),
            other => bad(c, opt.span, format!("unknown trunk option `{other}`"), TRUNK_HELP),
        }
    }
    Some(out)
}

const TRUNK_HELP: &str = "trunk options: weight N, priority N, max_calls N, transport udp|tcp|tls, from ADDR[/BITS], attr NAME \"value\"";

/// `10.0.0.0/24` or `10.0.0.1` (as /32).
pub fn parse_net(a: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, bits) = match a.split_once('/') {
        Some((ip, b)) => (ip, b.parse().ok()?),
        None => (a, 32),
    };
    let ip: std::net::IpAddr = ip.split(':').next()?.parse().ok()?;
    Some((ip, bits))
}

fn group(
    c: &mut Checker<'_>,
    name: &ast::Ident,
    words: &[ast::Expr],
    members: &[TrunkDecl],
    span: Span,
) -> Option<ir::Group> {
    let mut g = ir::Group {
        name: name.name.clone(),
        strategy: ir::Strategy::RoundRobin,
        members: Vec::new(),
        probe: None,
        all_down: ir::AllDown::Fail,
    };
    let mut w = Words { w: words, i: 0 };
    while let Some(opt) = w.next() {
        let ExprKind::Name(n) = &opt.kind else {
            bad(c, opt.span, "expected a trunk group option", GROUP_HELP);
            continue;
        };
        match n.name.as_str() {
            "strategy" => match w.next() {
                Some(e) => match strategy(e) {
                    Some(s) => g.strategy = s,
                    None => bad(c, e.span, "unknown strategy", STRATEGY_HELP),
                },
                None => bad(c, opt.span, "`strategy` needs a strategy after it", STRATEGY_HELP),
            },
            "probe" => g.probe = Some(probe(c, &mut w)),
            "all_down" => match name_after(c, &mut w, opt, "all_down").map(|n| n.name.as_str()) {
                Some("fail") => g.all_down = ir::AllDown::Fail,
                Some("try_all") => g.all_down = ir::AllDown::TryAll,
                Some(_) => bad(c, opt.span, "`all_down` is `fail` or `try_all`", ""),
                None => {}
            },
            other => bad(c, opt.span, format!("unknown trunk group option `{other}`"), GROUP_HELP),
        }
    }
    if members.is_empty() {
        c.error(
            Diagnostic::new(Code::EmptyGroup, format!("trunk group `{}` has no members", name.name))
                .at(span, "no `trunk` inside")
                .with_help("add members: `trunk fs1 \"sip:10.0.0.11:5060\";` or `trunk NAME;` for a declared trunk"),
        );
    }
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for m in members {
        if let Some(prev) = seen.get(m.name.name.as_str()) {
            c.error(
                Diagnostic::new(
                    Code::UnreachableFailover,
                    format!("trunk `{}` is listed twice in group `{}`", m.name.name, name.name),
                )
                .at(m.name.span, "listed again here")
                .with_label(*prev, "first listed here")
                .with_help("a trunk is tried once per call; remove the second entry"),
            );
            continue;
        }
        seen.insert(&m.name.name, m.name.span);
        match c.dests.get(&m.name.name) {
            Some((DestRef::Trunk(i), _, _)) => g.members.push(*i),
            Some(_) => bad(c, m.name.span, format!("`{}` is not a trunk", m.name.name), ""),
            None if m.words.is_empty() => unknown(c, &m.name, "trunk"),
            None => {} // its definition was reported
        }
    }
    Some(g)
}

const GROUP_HELP: &str = "trunk group options: strategy S, probe [every 2s] [down N] [up N] [alive \"REGEX\"], all_down fail|try_all";
const STRATEGY_HELP: &str =
    "strategies: round_robin, weighted, priority, least_calls, hash(callid|from_user|ruri_user)";

fn strategy(e: &ast::Expr) -> Option<ir::Strategy> {
    use ir::Strategy as S;
    match &e.kind {
        ExprKind::Name(n) => match n.name.as_str() {
            "round_robin" => Some(S::RoundRobin),
            "weighted" => Some(S::Weighted),
            "priority" => Some(S::Priority),
            "least_calls" => Some(S::LeastCalls),
            _ => None,
        },
        ExprKind::Call { name, args } if name.name == "hash" && args.len() == 1 => {
            let ExprKind::Name(k) = &args[0].kind else { return None };
            Some(S::Hash(match k.name.as_str() {
                "callid" => ir::HashKey::CallId,
                "from_user" => ir::HashKey::FromUser,
                "ruri_user" => ir::HashKey::RuriUser,
                _ => return None,
            }))
        }
        _ => None,
    }
}

/// `probe [every D] [down N] [up N] [alive "REGEX"]`.
fn probe(c: &mut Checker<'_>, w: &mut Words<'_>) -> ir::Probe {
    let mut p =
        ir::Probe { interval_ms: 10_000, down: 2, up: 1, alive: "^[1-5][0-9][0-9]$".into() };
    while let Some(word) = w.peek_name() {
        let Some(opt) = w.next() else { break };
        match word {
            "every" => match w.next().map(|e| (&e.kind, e.span)) {
                Some((ExprKind::Duration(ms), _)) if *ms >= 100 => p.interval_ms = *ms,
                Some((_, span)) => {
                    bad(c, span, "`every` takes a duration of at least 100ms", "like `every 2s`")
                }
                None => bad(c, opt.span, "`every` needs a duration", "like `every 2s`"),
            },
            "down" => p.down = int_after(c, w, opt, "down").map_or(1, |v| v.clamp(1, 100) as u32),
            "up" => p.up = int_after(c, w, opt, "up").map_or(1, |v| v.clamp(1, 100) as u32),
            "alive" => {
                if let Some(re) = str_after(c, w, opt, "alive") {
                    match regex::Regex::new(&re) {
                        Ok(_) => p.alive = re,
                        Err(e) => c.error(
                            Diagnostic::new(Code::InvalidRegex, format!("invalid regex: {e}"))
                                .at(opt.span, "in this `alive` pattern"),
                        ),
                    }
                }
            }
            _ => {
                w.i -= 1;
                break;
            }
        }
    }
    p
}

fn unknown(c: &mut Checker<'_>, name: &ast::Ident, what: &str) {
    let names: Vec<&str> = c.dests.keys().map(String::as_str).collect();
    let mut d = Diagnostic::new(Code::UnknownTrunk, format!("cannot find {what} `{}`", name.name))
        .at(name.span, format!("no {what} is declared with this name"));
    if let Some(s) = super::resolve::suggest(&name.name, names.into_iter()) {
        d = d.with_help(format!("a destination with a similar name exists: `{s}`"));
    }
    c.error(d);
}

use super::routing_table::table;
