//! The routing builtins: `select`, `next_destination`, `fork`,
//! `route_attr`, the trunk counters and `$in_trunk`/`$out_trunk`.
//!
//! [`RoutingRt`] is the per-Program part (the checked declarations with
//! their compiled indexes, replace regexes, round-robin turns, incoming
//! networks); trunk health lives in [`crate::routing::health::Trunks`] in
//! the server's `Services`, found once per Program ([`RoutingRt::states`])
//! and then read by index. The failover sequence a `select` computed is
//! transaction state ([`crate::proxy::router::RoutingScope`]), so
//! `next_destination()` in a failure route continues where the request
//! route left off, with the program the transaction started with.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::proxy::router::BranchTarget;
use crate::routing::health::{ProbeConfig, TrunkState, Trunks};
use crate::routing::select::{self, Member};
use crate::sema::builtins::PSEUDO_VARS;
use crate::sema::ir::{self, DestRef, HashKey, Routing, Strategy, TableIndex, Target};

use super::RouteCtx;

/// The routing part of a compiled program.
#[derive(Debug, Default)]
pub struct RoutingRt {
    pub decl: Routing,
    /// Per table, per action: the compiled `replace` regex.
    replace: Vec<Vec<Option<regex::Regex>>>,
    turns: Vec<AtomicU64>,
    name_hash: Vec<u64>,
    /// `from` networks: (network, bits, trunk), longest first.
    nets: Vec<(IpAddr, u8, u32)>,
    states: OnceLock<Vec<Arc<TrunkState>>>,
    /// Used when the proxy gave the routes no `Services` (unit tests).
    fallback: Trunks,
}

impl RoutingRt {
    pub fn new(decl: &Routing) -> Result<RoutingRt, String> {
        let mut replace = Vec::new();
        for t in &decl.tables {
            let mut v = Vec::new();
            for a in &t.actions {
                v.push(match &a.replace {
                    Some((re, _)) => {
                        Some(regex::Regex::new(re).map_err(|e| format!("regex `{re}`: {e}"))?)
                    }
                    None => None,
                });
            }
            replace.push(v);
        }
        let mut nets: Vec<(IpAddr, u8, u32)> = Vec::new();
        for (i, t) in decl.trunks.iter().enumerate() {
            nets.extend(t.from.iter().map(|(ip, bits)| (*ip, *bits, i as u32)));
        }
        nets.sort_by_key(|n| std::cmp::Reverse(n.1));
        Ok(RoutingRt {
            decl: decl.clone(),
            replace,
            turns: decl.groups.iter().map(|_| AtomicU64::new(0)).collect(),
            name_hash: decl.trunks.iter().map(|t| select::fnv(t.name.as_bytes())).collect(),
            nets,
            states: OnceLock::new(),
            fallback: Trunks::default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.decl.trunks.is_empty()
    }

    /// The health state of every trunk, registered with `trunks` (the
    /// server's) on first use; installing them starts their probing.
    pub fn states(&self, trunks: Option<&Trunks>) -> &[Arc<TrunkState>] {
        self.states.get_or_init(|| {
            let trunks = trunks.unwrap_or(&self.fallback);
            let states: Vec<Arc<TrunkState>> =
                self.decl.trunks.iter().map(|t| trunks.register(&t.name, &t.uri)).collect();
            let mut probes: Vec<Option<ProbeConfig>> = vec![None; states.len()];
            for g in &self.decl.groups {
                let Some(p) = &g.probe else { continue };
                let Ok(alive) = regex::Regex::new(&p.alive) else { continue };
                let cfg = ProbeConfig { interval_ms: p.interval_ms, down: p.down, up: p.up, alive };
                for &m in &g.members {
                    probes[m as usize].get_or_insert_with(|| cfg.clone());
                }
            }
            let install: Vec<_> = states.iter().cloned().zip(probes).collect();
            trunks.install(&install);
            crate::routing::probe::ensure_started(trunks);
            states
        })
    }

    /// The trunk whose `from` networks contain `ip` (most specific first).
    pub fn incoming(&self, ip: IpAddr) -> Option<u32> {
        self.nets.iter().find(|(net, bits, _)| in_net(ip, *net, *bits)).map(|n| n.2)
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn states<'c>(ctx: &'c RouteCtx<'_>) -> &'c [Arc<TrunkState>] {
    let services = ctx.req.services.as_deref().map(|s| &s.trunks);
    ctx.shared.routing.states(services)
}

/// A message pseudo-variable's current text, through its runtime getter.
pub(super) fn pv_text(ctx: &mut RouteCtx<'_>, pv: usize, arg: Option<&str>) -> String {
    let Some(entry) = PSEUDO_VARS.get(pv).and_then(|p| super::abi::lookup(p.symbol)) else {
        return String::new();
    };
    let arg = arg.map_or(super::ABSENT, |a| ctx.alloc(a.to_owned()));
    let h = (entry.body)(ctx, &[arg]);
    ctx.str(h).to_owned()
}

fn pv_named(ctx: &mut RouteCtx<'_>, name: &str) -> String {
    crate::sema::builtins::pseudo_var(name).map_or(String::new(), |(i, _)| pv_text(ctx, i, None))
}

fn set_pv(ctx: &mut RouteCtx<'_>, pv: usize, arg: Option<&str>, value: String) {
    let Some(p) = PSEUDO_VARS.get(pv) else { return };
    let Some(entry) = super::abi::lookup(&super::abi::setter_symbol(p.symbol)) else { return };
    let arg = arg.map_or(super::ABSENT, |a| ctx.alloc(a.to_owned()));
    let v = ctx.alloc(value);
    (entry.body)(ctx, &[arg, v]);
}

/// `strip N`, `prefix "S"`, `replace "RE" "S"` applied to `value`.
pub fn translate(a: &ir::RowAction, re: Option<&regex::Regex>, value: &str) -> String {
    let cut = value.char_indices().nth(a.strip as usize).map_or(value.len(), |(i, _)| i);
    let mut out = format!("{}{}", a.prefix, &value[cut..]);
    if let (Some(re), Some((_, with))) = (re, &a.replace) {
        out = re.replace(&out, with.as_str()).into_owned();
    }
    out
}

/// The members of `target` to try, in order.
fn candidates(ctx: &mut RouteCtx<'_>, target: Target) -> Vec<u32> {
    let shared = ctx.shared;
    let rt = &shared.routing;
    let usable = |s: &TrunkState, t: &ir::Trunk| {
        (s.is_up(), t.max_calls > 0 && s.active.load(Ordering::Relaxed) >= u64::from(t.max_calls))
    };
    match target {
        Target::Trunk(t) => {
            let st = states(ctx);
            let (Some(s), Some(decl)) = (st.get(t as usize), rt.decl.trunks.get(t as usize)) else {
                return Vec::new();
            };
            match usable(s, decl) {
                (true, false) => vec![t],
                _ => Vec::new(),
            }
        }
        Target::Group(g) => {
            let Some(group) = rt.decl.groups.get(g as usize) else { return Vec::new() };
            let key = match group.strategy {
                Strategy::Hash(HashKey::CallId) => select::fnv(pv_named(ctx, "ci").as_bytes()),
                Strategy::Hash(HashKey::FromUser) => select::fnv(pv_named(ctx, "fU").as_bytes()),
                Strategy::Hash(HashKey::RuriUser) => select::fnv(pv_named(ctx, "rU").as_bytes()),
                _ => 0,
            };
            let st = states(ctx);
            let members: Vec<Member> = group
                .members
                .iter()
                .filter_map(|&m| {
                    let (s, decl) = (st.get(m as usize)?, rt.decl.trunks.get(m as usize)?);
                    let (up, full) = usable(s, decl);
                    Some(Member {
                        trunk: m,
                        name_hash: rt.name_hash[m as usize],
                        weight: decl.weight,
                        priority: decl.priority,
                        up,
                        full,
                        active: s.active.load(Ordering::Relaxed),
                    })
                })
                .collect();
            let turn = rt.turns[g as usize].fetch_add(1, Ordering::Relaxed);
            select::order(group.strategy, group.all_down, &members, turn, key)
        }
    }
}

/// Points the request at trunk `t`.
fn go_to(ctx: &mut RouteCtx<'_>, t: u32) {
    let uri = ctx.shared.routing.decl.trunks[t as usize].uri.clone();
    ctx.req.destination = Some(uri);
    ctx.req.txn.routing.out_trunk = Some(t);
}

/// Looks the destination up; translates the key for tables.
fn resolve(ctx: &mut RouteCtx<'_>, dest: i64) -> Option<(Target, Vec<(String, String)>)> {
    let shared = ctx.shared;
    match DestRef::decode(dest)? {
        DestRef::Group(g) => Some((Target::Group(g), Vec::new())),
        DestRef::Trunk(t) => Some((Target::Trunk(t), Vec::new())),
        DestRef::Table(t) => {
            let table = shared.routing.decl.tables.get(t as usize)?;
            let key = pv_text(ctx, table.key_pv, table.key_arg.as_deref());
            let action = match &table.index {
                TableIndex::Prefix(i) => i.longest_prefix(&key),
                TableIndex::Exact(i) => i.get(&key),
                TableIndex::Range(i) => i.get(&key),
            }?;
            let a = table.actions.get(action as usize)?;
            let re = shared.routing.replace[t as usize][action as usize].as_ref();
            let new = translate(a, re, &key);
            if new != key {
                set_pv(ctx, table.key_pv, table.key_arg.as_deref(), new);
            }
            Some((a.target, a.attrs.clone()))
        }
    }
}

pub fn select(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some((target, attrs)) = resolve(ctx, a[0]) else { return 0 };
    let order = candidates(ctx, target);
    let Some((&first, rest)) = order.split_first() else { return 0 };
    go_to(ctx, first);
    ctx.req.txn.routing.failover = rest.to_vec();
    ctx.req.txn.routing.attrs = attrs;
    1
}

pub fn next_destination(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    while !ctx.req.txn.routing.failover.is_empty() {
        let t = ctx.req.txn.routing.failover.remove(0);
        if candidates(ctx, Target::Trunk(t)).is_empty() {
            continue;
        }
        go_to(ctx, t);
        return 1;
    }
    0
}

pub fn fork(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some((target, attrs)) = resolve(ctx, a[0]) else { return 0 };
    let order = candidates(ctx, target);
    let Some((&first, rest)) = order.split_first() else { return 0 };
    go_to(ctx, first);
    let ruri = ctx.req.msg.request_uri().unwrap_or("").to_owned();
    for &t in rest {
        let uri = ctx.shared.routing.decl.trunks[t as usize].uri.clone();
        ctx.req.txn.branches.push(BranchTarget {
            uri: ruri.clone(),
            destination: Some(uri),
            route: Vec::new(),
        });
    }
    ctx.req.txn.routing.failover.clear();
    ctx.req.txn.routing.attrs = attrs;
    1
}

pub fn route_attr(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = ctx.str(a[0]).to_owned();
    let rt = &ctx.shared.routing;
    let trunk_attr = |t: Option<u32>| {
        let t = rt.decl.trunks.get(t? as usize)?;
        t.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    };
    let v = ctx
        .req
        .txn
        .routing
        .attrs
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| trunk_attr(ctx.req.txn.routing.out_trunk))
        .or_else(|| trunk_attr(rt.incoming(ctx.req.source.ip())))
        .unwrap_or_default();
    ctx.alloc(v)
}

fn trunk_state(ctx: &RouteCtx<'_>, name: &str) -> Option<Arc<TrunkState>> {
    let rt = &ctx.shared.routing;
    if let Some(i) = rt.decl.trunks.iter().position(|t| t.name == name) {
        return states(ctx).get(i).cloned();
    }
    ctx.req.services.as_deref().and_then(|s| s.trunks.by_name(name))
}

pub fn trunk_stat(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let (name, counter) = (ctx.str(a[0]).to_owned(), ctx.str(a[1]).to_owned());
    trunk_state(ctx, &name).and_then(|s| s.counter(&counter)).unwrap_or(-1)
}

pub fn trunk_is_up(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = ctx.str(a[0]).to_owned();
    i64::from(trunk_state(ctx, &name).is_some_and(|s| s.is_up()))
}

pub fn trunk_set_up(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = ctx.str(a[0]).to_owned();
    match trunk_state(ctx, &name) {
        Some(s) => {
            s.set_up(a[1] != 0);
            1
        }
        None => 0,
    }
}

pub fn pv_in_trunk(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let rt = &ctx.shared.routing;
    let name = rt.incoming(ctx.req.source.ip()).map(|t| rt.decl.trunks[t as usize].name.clone());
    ctx.alloc(name.unwrap_or_default())
}

pub fn pv_out_trunk(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let rt = &ctx.shared.routing;
    let name = ctx
        .req
        .txn
        .routing
        .out_trunk
        .and_then(|t| rt.decl.trunks.get(t as usize))
        .map(|t| t.name.clone());
    ctx.alloc(name.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation() {
        let a = ir::RowAction {
            target: Target::Trunk(0),
            strip: 2,
            prefix: "+".into(),
            replace: None,
            attrs: Vec::new(),
        };
        assert_eq!(translate(&a, None, "0086123"), "+86123");
        let re = regex::Regex::new("^\\+86").unwrap();
        let b = ir::RowAction { replace: Some(("^\\+86".into(), "0086".into())), ..a.clone() };
        assert_eq!(translate(&b, Some(&re), "0086123"), "0086123");
        assert_eq!(translate(&a, None, "0"), "+");
    }

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(ip("10.0.0.7"), ip("10.0.0.0"), 24));
        assert!(!in_net(ip("10.0.1.7"), ip("10.0.0.0"), 24));
        assert!(in_net(ip("127.0.0.1"), ip("127.0.0.1"), 32));
        assert!(in_net(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }
}
