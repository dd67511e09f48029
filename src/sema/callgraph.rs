//! Route kinds through the call graph, and recursion.
//!
//! A plain `route NAME` has no kind of its own: it runs as whatever entry
//! routes reach it. This pass propagates entry kinds (request, reply,
//! onreply, failure, branch, event) along `route(X)` calls, remembering for
//! each route and kind the call that first brought the kind in, so a
//! violation can be explained as a chain ("reply_route calls route(A) here,
//! which calls route(B) here, which calls `reply()`"). Calls form a graph
//! that must be acyclic: routes are compiled to native functions sharing
//! one context, and recursion has no base case in this language.

use std::collections::{HashSet, VecDeque};

use super::builtins::Kinds;
use super::check::Facts;
use super::ir::{self, RouteId};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::RouteKind;
use crate::syntax::span::Span;

const KIND_BITS: [Kinds; 6] =
    [Kinds::REQUEST, Kinds::REPLY, Kinds::ONREPLY, Kinds::FAILURE, Kinds::BRANCH, Kinds::EVENT];

/// Which entry kinds reach each route, and how.
#[derive(Debug)]
pub struct Reach {
    pub kinds: Vec<Kinds>,
    /// For route `r` and kind bit `k`: the caller and call span that first
    /// brought kind `k` to `r` (`None` for entry routes themselves).
    parent: Vec<[Option<(RouteId, Span)>; 6]>,
}

fn callees(facts: &Facts, n: usize) -> Vec<Vec<(RouteId, Span)>> {
    let mut out = vec![Vec::new(); n];
    for &(from, to, span) in &facts.calls {
        if (from as usize) < n {
            out[from as usize].push((to, span));
        }
    }
    out
}

pub fn analyse(routes: &[ir::Route], facts: &Facts, diags: &mut Vec<Diagnostic>) -> Reach {
    let n = routes.len();
    let edges = callees(facts, n);
    recursion(routes, &edges, diags);

    let mut reach = Reach { kinds: vec![Kinds::NONE; n], parent: vec![[None; 6]; n] };
    for (bit, kind) in KIND_BITS.iter().enumerate() {
        let mut queue = VecDeque::new();
        for (i, r) in routes.iter().enumerate() {
            if Kinds::of(r.kind) == *kind {
                reach.kinds[i] = reach.kinds[i].or(*kind);
                queue.push_back(i);
            }
        }
        while let Some(r) = queue.pop_front() {
            for &(to, span) in &edges[r] {
                let t = to as usize;
                if !reach.kinds[t].contains(*kind) {
                    reach.kinds[t] = reach.kinds[t].or(*kind);
                    reach.parent[t][bit] = Some((r as RouteId, span));
                    queue.push_back(t);
                }
            }
        }
    }

    for u in &facts.uses {
        let r = u.route as usize;
        if r >= n {
            continue;
        }
        let bad = reach.kinds[r].minus(u.allowed);
        if bad.is_empty() {
            continue;
        }
        let bit = KIND_BITS.iter().position(|k| bad.contains(*k)).unwrap_or(0);
        let kind_name = KIND_BITS[bit].names().join("");
        let mut d = Diagnostic::new(
            Code::NotAllowedInRoute,
            format!("{} is not allowed in {kind_name}", u.what),
        );
        let allowed =
            if u.allowed.is_empty() { "nowhere".to_string() } else { u.allowed.names().join(", ") };
        if routes[r].kind == RouteKind::Sub {
            d = d.at(
                u.span,
                format!("used in route `{}`, which {kind_name} reaches", routes[r].name),
            );
            let mut cur = r;
            let mut guard = 0;
            while let Some((caller, span)) = reach.parent[cur][bit] {
                let who = if routes[caller as usize].kind == RouteKind::Sub {
                    format!("route `{}`", routes[caller as usize].name)
                } else {
                    kind_name.clone()
                };
                d = d.with_label(span, format!("{who} calls route `{}` here", routes[cur].name));
                cur = caller as usize;
                guard += 1;
                if guard > n {
                    break;
                }
            }
        } else {
            d = d.at(u.span, format!("not allowed in {kind_name}"));
        }
        d = d.with_help(format!("{} is allowed in: {allowed}", u.what));
        diags.push(d);
    }
    reach
}

/// Reports each cycle of `route(X)` calls once.
fn recursion(routes: &[ir::Route], edges: &[Vec<(RouteId, Span)>], diags: &mut Vec<Diagnostic>) {
    let n = routes.len();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; n];
    let mut reported: HashSet<Vec<usize>> = HashSet::new();
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next edge index), plus the call span into it.
        let mut stack: Vec<(usize, usize, Option<Span>)> = vec![(start, 0, None)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next, _)) = stack.last_mut() {
            if *next < edges[node].len() {
                let (to, span) = edges[node][*next];
                *next += 1;
                let t = to as usize;
                match state[t] {
                    0 => {
                        state[t] = 1;
                        stack.push((t, 0, Some(span)));
                    }
                    1 => {
                        let pos = stack.iter().position(|e| e.0 == t).unwrap_or(0);
                        let mut members: Vec<usize> = stack[pos..].iter().map(|e| e.0).collect();
                        let names: Vec<String> = members
                            .iter()
                            .chain(std::iter::once(&t))
                            .map(|&m| routes[m].name.clone())
                            .collect();
                        members.sort_unstable();
                        if reported.insert(members) {
                            let mut d = Diagnostic::new(
                                Code::Recursion,
                                format!("recursive route calls: {}", names.join(" → ")),
                            )
                            .at(span, "this call closes the cycle");
                            for e in &stack[pos + 1..] {
                                if let Some(s) = e.2 {
                                    d = d.with_label(s, "part of the cycle");
                                }
                            }
                            d = d.with_help(
                                "routes cannot recurse; use a bounded `while` loop instead",
                            );
                            diags.push(d);
                        }
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
}
