//! Warnings: unused declarations, `$var` reads with no write for the
//! message, and request routes that can end without deciding the request's
//! fate.
//!
//! All three work on the lowered IR plus the facts the route walk recorded,
//! so they see resolved routes and slots instead of names. The flow analysis
//! for W0507 summarises each sub-route once ("never returns", "always
//! handles the request", "may not") and uses the summary at its call sites.

use std::collections::{HashMap, HashSet};

use super::builtins::{self, Effect};
use super::callgraph::Reach;
use super::check::Checker;
use super::ir::{self, ExprKind as K, RouteId, Stmt};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::RouteKind;

pub fn run(c: &Checker<'_>, routes: &[ir::Route], reach: &Reach, diags: &mut Vec<Diagnostic>) {
    unused(c, routes, diags);
    read_before_write(c, routes, reach, diags);
    final_action(c, routes, diags);
    failure_routes(c, routes, diags);
}

/// Rules of failure routes: `drop` there (or in a route it calls) cannot
/// suppress the reply; a relay to a next destination without arming a
/// failure route again ends serial failover after one retry.
fn failure_routes(c: &Checker<'_>, routes: &[ir::Route], diags: &mut Vec<Diagnostic>) {
    let n = routes.len();
    let edges = call_edges(c, n);
    let mut reported: HashSet<(u32, u32)> = HashSet::new();
    for (fi, f) in routes.iter().enumerate().filter(|(_, r)| r.kind == RouteKind::Failure) {
        let seen = reachable(&edges, &[fi]);
        for r in (0..n).filter(|&r| seen[r]) {
            let mut last = routes[r].span;
            ir::visit_stmts(&routes[r].body, &mut |st| match st {
                Stmt::Mark(span) => last = *span,
                Stmt::Drop if reported.insert((last.file.0, last.start)) => {
                    let via = if r == fi {
                        String::new()
                    } else {
                        format!(" (route `{}` runs in failure_route `{}`)", routes[r].name, f.name)
                    };
                    diags.push(
                        Diagnostic::new(
                            Code::DropInFailureRoute,
                            format!("`drop` cannot suppress the reply of a failure route{via}"),
                        )
                        .at(last, "the best reply still goes upstream after this")
                        .with_help(
                            "to answer with something else, call `reply(CODE, \"REASON\");`; to send the best reply as it is, end the route (or `exit;`)",
                        ),
                    );
                }
                _ => {}
            });
        }
        let mut walk = Failover { diags: Vec::new(), spans: HashSet::new() };
        walk.block(&f.body, &mut (false, false));
        diags.extend(walk.diags);
    }
}

/// Follows a failure route: has it armed a failure route again (`.0`),
/// has it moved to a next destination (`.1`)?
struct Failover {
    diags: Vec<Diagnostic>,
    spans: HashSet<(u32, u32)>,
}

impl Failover {
    fn block(&mut self, body: &[Stmt], st: &mut (bool, bool)) {
        for s in body {
            match s {
                Stmt::Expr(e) | Stmt::Assign { value: e, .. } | Stmt::Return(Some(e)) => {
                    self.expr(e, st)
                }
                Stmt::If { cond, then_body, else_body } => {
                    self.expr(cond, st);
                    let (mut a, mut b) = (*st, *st);
                    self.block(then_body, &mut a);
                    self.block(else_body, &mut b);
                    *st = (a.0 && b.0, a.1 || b.1);
                }
                Stmt::Switch { scrutinee, cases, default } => {
                    self.expr(scrutinee, st);
                    let mut out = *st;
                    for body in cases.iter().map(|(_, b)| b).chain(default.iter()) {
                        let mut x = *st;
                        self.block(body, &mut x);
                        out = (out.0 && x.0, out.1 || x.1);
                    }
                    *st = out;
                }
                Stmt::While { cond, body } => {
                    self.expr(cond, st);
                    let mut x = *st;
                    self.block(body, &mut x);
                    st.1 |= x.1;
                }
                _ => {}
            }
        }
    }

    fn expr(&mut self, e: &ir::Expr, st: &mut (bool, bool)) {
        match &e.kind {
            K::Call { func, args } => {
                args.iter().for_each(|a| self.expr(a, st));
                match builtins::FUNCTIONS[*func].name {
                    "on_failure" => st.0 = true,
                    "next_destination" => st.1 = true,
                    "relay" | "forward"
                        if st.1 && !st.0 && self.spans.insert((e.span.file.0, e.span.start)) =>
                    {
                        self.diags.push(
                            Diagnostic::new(
                                Code::FailoverStops,
                                "this relay to the next destination arms no failure route",
                            )
                            .at(e.span, "if this destination fails too, the caller gets its reply: no further destination is tried")
                            .with_help("call `on_failure(NAME);` before `relay();` (the failure route armed for a branch is used once)"),
                        );
                    }
                    _ => {}
                }
            }
            K::Unary { expr, .. } | K::Matches { lhs: expr, .. } => self.expr(expr, st),
            K::Binary { lhs, rhs, .. } => {
                self.expr(lhs, st);
                self.expr(rhs, st);
            }
            _ => {}
        }
    }
}

fn unused(c: &Checker<'_>, routes: &[ir::Route], diags: &mut Vec<Diagnostic>) {
    let mut used = vec![false; routes.len()];
    for &(from, to, _) in c.facts.calls.iter().chain(&c.facts.arms) {
        if from != to {
            used[to as usize] = true;
        }
    }
    // A misspelt `route(NAME)` was reported already; the route it meant
    // would show up as unused here.
    let unresolved =
        c.diags.iter().any(|d| matches!(d.code, Code::UnknownRoute | Code::WrongRouteKind));
    for (i, r) in routes.iter().enumerate() {
        if used[i] || unresolved {
            continue;
        }
        let how = match r.kind {
            RouteKind::Sub => "never called: no `route(NAME)` runs it",
            RouteKind::Failure => "never armed: no `on_failure(NAME)` names it",
            RouteKind::OnReply => "never armed: no `on_reply(NAME)` names it",
            RouteKind::Branch => "never armed: no `on_branch(NAME)` names it",
            _ => continue,
        };
        diags.push(
            Diagnostic::new(Code::UnusedRoute, format!("unused {} `{}`", r.kind.keyword(), r.name))
                .at(r.span, how),
        );
    }
    let mut consts: Vec<_> = c.consts.iter().filter(|(_, v)| !v.used).collect();
    consts.sort_by_key(|(_, v)| (v.span.file, v.span.start));
    for (name, v) in consts {
        diags.push(
            Diagnostic::new(Code::UnusedConst, format!("unused constant `{name}`"))
                .at(v.span, "never used"),
        );
    }
    for (code, what, map) in
        [(Code::UnusedFlag, "flag", &c.flags), (Code::UnusedTable, "table", &c.tables)]
    {
        let mut list: Vec<_> = map.iter().filter(|(_, v)| !v.used).collect();
        list.sort_by_key(|(_, v)| (v.span.file, v.span.start));
        for (name, v) in list {
            diags.push(
                Diagnostic::new(code, format!("unused {what} `{name}`")).at(v.span, "never used"),
            );
        }
    }
}

/// Each group of entry routes handles one message; `$var` values do not
/// cross groups.
fn read_before_write(
    c: &Checker<'_>,
    routes: &[ir::Route],
    reach: &Reach,
    diags: &mut Vec<Diagnostic>,
) {
    let n = routes.len();
    let edges = call_edges(c, n);
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut request = Vec::new();
    let mut reply = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        match r.kind {
            RouteKind::Request | RouteKind::Branch => request.push(i),
            RouteKind::Reply | RouteKind::OnReply => reply.push(i),
            RouteKind::Failure | RouteKind::Event => {
                groups.push((format!("{} `{}`", r.kind.keyword(), r.name), vec![i]))
            }
            RouteKind::Sub => {}
        }
    }
    // The routes run while routing a request (`request_route`, branch
    // routes and what they call).
    let for_request = reachable(&edges, &request);
    groups.push(("the request routes".into(), request));
    groups.push(("the reply routes".into(), reply));
    let _ = reach;
    let mut warned: HashSet<(u32, u32)> = HashSet::new();
    for (label, entries) in &groups {
        let seen = reachable(&edges, entries);
        let written: HashSet<u32> = c
            .facts
            .var_writes
            .iter()
            .filter(|(r, _, _)| seen.get(*r as usize).copied().unwrap_or(false))
            .map(|(_, s, _)| *s)
            .collect();
        for &(r, slot, span) in &c.facts.var_reads {
            if !seen.get(r as usize).copied().unwrap_or(false) || written.contains(&slot) {
                continue;
            }
            if !warned.insert((span.file.0, span.start)) {
                continue;
            }
            let name = &c.msg_vars[slot as usize].name;
            let write = c.facts.var_writes.iter().find(|w| w.1 == slot);
            let d = match write {
                // No route writes it at all: a misspelt name.
                None => {
                    let written = c
                        .facts
                        .var_writes
                        .iter()
                        .map(|w| c.msg_vars[w.1 as usize].name.as_str());
                    let d = Diagnostic::new(
                        Code::VarNeverWritten,
                        format!("`$var({name})` is read but no route ever writes it"),
                    )
                    .at(span, "always empty");
                    match super::resolve::suggest(name, written) {
                        Some(s) => d.with_help(format!("did you mean `$var({s})`?")),
                        None => d.with_help("assign it before reading it: `$var(NAME) = …;`"),
                    }
                }
                // Written while routing the request, read in a route that
                // runs for a later message (a reply, the failure): empty.
                Some(&(wr, _, wspan))
                    if label != "the request routes"
                        && for_request.get(wr as usize).copied().unwrap_or(false) =>
                {
                    Diagnostic::new(
                        Code::VarAcrossMessages,
                        format!("`$var({name})` is written for the request and read in {label}, where it is empty"),
                    )
                    .at(span, "always empty here: this route runs for another message")
                    .with_label(wspan, "written here, while routing the request")
                    .with_help(format!(
                        "`$var` values are reset for every message; use `$avp({name})` to keep a value for the whole transaction"
                    ))
                }
                Some(&(_, _, wspan)) => Diagnostic::new(
                    Code::ReadBeforeWrite,
                    format!("`$var({name})` is read but never written while handling this message"),
                )
                .at(span, format!("always empty here, in {label}"))
                .with_label(wspan, "written here, while handling a different message")
                .with_help(format!(
                    "`$var` values are reset for every message; use `$avp({name})` to keep a value for the whole transaction"
                )),
            };
            diags.push(d);
        }
    }
    // Reads flagged above get the more specific message; these are the rest.
    ordered_reads(c, routes, &edges, &mut warned, diags);
}

/// The `route(…)` calls of each route: callee indices by caller.
fn call_edges(c: &Checker<'_>, n: usize) -> Vec<Vec<usize>> {
    let mut edges = vec![Vec::new(); n];
    for &(from, to, _) in &c.facts.calls {
        if (from as usize) < n {
            edges[from as usize].push(to as usize);
        }
    }
    edges
}

/// Which routes run when the routes `starts` run (they and every route
/// they call, directly or not).
fn reachable(edges: &[Vec<usize>], starts: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut todo = starts.to_vec();
    while let Some(r) = todo.pop() {
        if !std::mem::replace(&mut seen[r], true) {
            todo.extend(edges[r].iter().copied());
        }
    }
    seen
}

/// Within each entry route, in source order: a `$var` read before any
/// statement (or sub-route called so far) could have written it.
fn ordered_reads(
    c: &Checker<'_>,
    routes: &[ir::Route],
    edges: &[Vec<usize>],
    warned: &mut HashSet<(u32, u32)>,
    diags: &mut Vec<Diagnostic>,
) {
    let n = routes.len();
    let mut direct: Vec<HashSet<u32>> = vec![HashSet::new(); n];
    for &(r, slot, _) in &c.facts.var_writes {
        if let Some(set) = direct.get_mut(r as usize) {
            set.insert(slot);
        }
    }
    // Everything a route writes, itself or through the routes it calls.
    let writes: Vec<HashSet<u32>> = (0..n)
        .map(|r| {
            let mut seen = vec![false; n];
            let mut todo = vec![r];
            let mut out = HashSet::new();
            while let Some(x) = todo.pop() {
                if !std::mem::replace(&mut seen[x], true) {
                    out.extend(direct[x].iter().copied());
                    todo.extend(edges[x].iter().copied());
                }
            }
            out
        })
        .collect();
    let mut w = OrderWalk { c, writes: &writes, warned, diags };
    for r in routes.iter().filter(|r| r.kind != RouteKind::Sub) {
        let mut set = HashSet::new();
        w.block(&r.body, &mut set);
    }
}

struct OrderWalk<'w, 'c> {
    c: &'w Checker<'c>,
    writes: &'w [HashSet<u32>],
    warned: &'w mut HashSet<(u32, u32)>,
    diags: &'w mut Vec<Diagnostic>,
}

impl OrderWalk<'_, '_> {
    fn block(&mut self, stmts: &[Stmt], set: &mut HashSet<u32>) {
        for s in stmts {
            self.stmt(s, set);
        }
    }

    /// Runs `stmts` on a copy of `set` and merges what may have been written.
    fn branch(&mut self, stmts: &[Stmt], set: &mut HashSet<u32>) {
        let mut inner = set.clone();
        self.block(stmts, &mut inner);
        set.extend(inner);
    }

    fn stmt(&mut self, s: &Stmt, set: &mut HashSet<u32>) {
        match s {
            Stmt::Expr(e) => self.expr(e, set),
            Stmt::Assign { target, value } => {
                self.expr(value, set);
                if let ir::Place::MsgVar(slot) = target {
                    set.insert(*slot);
                }
            }
            Stmt::If { cond, then_body, else_body } => {
                self.expr(cond, set);
                self.branch(then_body, set);
                self.branch(else_body, set);
            }
            Stmt::Switch { scrutinee, cases, default } => {
                self.expr(scrutinee, set);
                for body in cases.iter().map(|(_, b)| b).chain(default.iter()) {
                    self.branch(body, set);
                }
            }
            Stmt::While { cond, body } => {
                // Twice, so values carried from one iteration to the next count.
                for _ in 0..2 {
                    self.expr(cond, set);
                    self.branch(body, set);
                }
            }
            Stmt::Return(Some(e)) => self.expr(e, set),
            Stmt::Return(None) | Stmt::Exit | Stmt::Drop | Stmt::Break | Stmt::Mark(_) => {}
        }
    }

    fn expr(&mut self, e: &ir::Expr, set: &mut HashSet<u32>) {
        match &e.kind {
            K::MsgVar(slot)
                if !set.contains(slot) && self.warned.insert((e.span.file.0, e.span.start)) =>
            {
                let name = &self.c.msg_vars[*slot as usize].name;
                self.diags.push(
                    Diagnostic::new(
                        Code::ReadBeforeWrite,
                        format!("`$var({name})` is read before it is written"),
                    )
                    .at(e.span, "nothing has set it yet for this message")
                    .with_help("`$var` values start empty for every message; assign it first"),
                );
            }
            K::CallRoute(r) => {
                if let Some(w) = self.writes.get(*r as usize) {
                    set.extend(w.iter().copied());
                }
            }
            K::Call { args, .. } => args.iter().for_each(|a| self.expr(a, set)),
            K::Interp(parts) => {
                for p in parts {
                    if let ir::InterpPart::Expr(x) = p {
                        self.expr(x, set);
                    }
                }
            }
            K::Unary { expr, .. } => self.expr(expr, set),
            K::Binary { lhs, rhs, .. } => {
                self.expr(lhs, set);
                self.expr(rhs, set);
            }
            K::Matches { lhs, .. } => self.expr(lhs, set),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// Control falls off the end; `Some(h)`: `h` is whether every such path
    /// handled the request.
    fall: Option<bool>,
    ret: Option<bool>,
    brk: Option<bool>,
}

fn merge(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x && y),
        (x, None) => x,
        (None, y) => y,
    }
}

struct Summaries<'r> {
    routes: &'r [ir::Route],
    /// `None` inside: never returns; `Some(h)`: returns, having handled iff `h`.
    done: HashMap<RouteId, Option<bool>>,
    active: HashSet<RouteId>,
}

impl Summaries<'_> {
    fn route(&mut self, r: RouteId) -> Option<bool> {
        if let Some(s) = self.done.get(&r) {
            return *s;
        }
        if !self.active.insert(r) {
            return Some(false);
        }
        let f = self.block(&self.routes[r as usize].body, false);
        let s = merge(f.fall, f.ret);
        self.active.remove(&r);
        self.done.insert(r, s);
        s
    }

    /// (handles, diverges) of evaluating an expression.
    fn expr(&mut self, e: &ir::Expr) -> (bool, bool) {
        match &e.kind {
            K::Call { func, args } => {
                let mut h = builtins::FUNCTIONS[*func].effect == Effect::Handles;
                let mut d = false;
                for a in args {
                    let (ah, ad) = self.expr(a);
                    h |= ah;
                    d |= ad;
                }
                (h, d)
            }
            K::CallRoute(r) => match self.route(*r) {
                None => (false, true),
                Some(h) => (h, false),
            },
            K::Unary { expr, .. } => self.expr(expr),
            K::Binary { lhs, rhs, .. } => {
                let (a, b) = (self.expr(lhs), self.expr(rhs));
                (a.0 || b.0, a.1 || b.1)
            }
            K::Matches { lhs, .. } => self.expr(lhs),
            // Something unresolved (already an error): assume it handles the
            // request rather than warn about a guess.
            K::Error => (true, false),
            _ => (false, false),
        }
    }

    fn block(&mut self, stmts: &[Stmt], h: bool) -> Flow {
        let mut out = Flow { fall: Some(h), ..Flow::default() };
        for s in stmts {
            let Some(h) = out.fall else { break };
            let f = self.stmt(s, h);
            out.fall = f.fall;
            out.ret = merge(out.ret, f.ret);
            out.brk = merge(out.brk, f.brk);
        }
        out
    }

    fn stmt(&mut self, s: &Stmt, h: bool) -> Flow {
        let simple = |(eh, ed): (bool, bool)| Flow {
            fall: if ed { None } else { Some(h || eh) },
            ..Flow::default()
        };
        match s {
            Stmt::Expr(e) => simple(self.expr(e)),
            Stmt::Mark(_) => simple((false, false)),
            Stmt::Assign { value, .. } => simple(self.expr(value)),
            Stmt::If { cond, then_body, else_body } => {
                let hc = h || self.expr(cond).0;
                let t = self.block(then_body, hc);
                let e = self.block(else_body, hc);
                Flow {
                    fall: merge(t.fall, e.fall),
                    ret: merge(t.ret, e.ret),
                    brk: merge(t.brk, e.brk),
                }
            }
            Stmt::Switch { scrutinee, cases, default } => {
                let hc = h || self.expr(scrutinee).0;
                let mut out = Flow {
                    fall: if default.is_some() { None } else { Some(hc) },
                    ..Flow::default()
                };
                for body in cases.iter().map(|(_, b)| b).chain(default.iter()) {
                    let f = self.block(body, hc);
                    out.fall = merge(out.fall, merge(f.fall, f.brk));
                    out.ret = merge(out.ret, f.ret);
                }
                out
            }
            Stmt::While { cond, body } => {
                let hc = h || self.expr(cond).0;
                let f = self.block(body, hc);
                Flow { fall: merge(Some(hc), merge(f.fall, f.brk)), ret: f.ret, brk: None }
            }
            Stmt::Return(v) => {
                let eh = v.as_ref().is_some_and(|v| self.expr(v).0);
                Flow { ret: Some(h || eh), ..Flow::default() }
            }
            Stmt::Exit | Stmt::Drop => Flow::default(),
            Stmt::Break => Flow { brk: Some(h), ..Flow::default() },
        }
    }
}

fn final_action(c: &Checker<'_>, routes: &[ir::Route], diags: &mut Vec<Diagnostic>) {
    let mut s = Summaries { routes, done: HashMap::new(), active: HashSet::new() };
    for r in routes.iter().filter(|r| r.kind == RouteKind::Request) {
        let f = s.block(&r.body, false);
        if f.fall != Some(false) && f.ret != Some(false) {
            continue;
        }
        // Name one such path: the conditions that lead to it and where it ends.
        let mut walk = PathWalk { s: &mut s, map: c.map };
        let exits = walk.block(&r.body, Some(Path::default()));
        let path = exits.fall.or(exits.ret).or(exits.brk);
        let mut d = Diagnostic::new(
            Code::NoFinalAction,
            "`request_route` can reach its end without relaying, replying or dropping",
        )
        .with_help(
            "end every path with `relay();`, `forward();`, `reply(…);`, `drop;` or `exit;` — a request nobody handles is silently discarded",
        );
        match path {
            Some(p) => {
                let who = if p.conds.is_empty() {
                    "every request".to_owned()
                } else {
                    format!("a request for which {}", p.conds.join(" and "))
                };
                let how = if p.returned {
                    "returns here, unhandled"
                } else {
                    "is still unhandled after this statement"
                };
                d = match p.end {
                    Some(end) => d
                        .at(first_line(c.map, end), format!("{who} {how}"))
                        .with_label(r.span, "and leaves this route without a decision"),
                    None => d.at(r.span, format!("{who} falls off the end of this route")),
                };
            }
            None => d = d.at(r.span, "some path through this route falls off its end"),
        }
        diags.push(d);
    }
}

/// `span` cut to its first line (a statement's head, not its whole body).
fn first_line(
    map: &crate::syntax::span::SourceMap,
    span: crate::syntax::span::Span,
) -> crate::syntax::span::Span {
    let text = map.snippet(span);
    match text.find('\n') {
        Some(i) => crate::syntax::span::Span {
            end: span.start + text[..i].trim_end().len() as u32,
            ..span
        },
        None => span,
    }
}

/// One path through a route that has not handled the request so far: the
/// conditions it took (as source text) and its last statement.
#[derive(Debug, Clone, Default)]
struct Path {
    conds: Vec<String>,
    end: Option<crate::syntax::span::Span>,
    returned: bool,
}

/// Where unhandled paths leave a block: off its end, by `return`, by `break`.
#[derive(Debug, Default)]
struct Exits {
    fall: Option<Path>,
    ret: Option<Path>,
    brk: Option<Path>,
}

fn first(a: Option<Path>, b: Option<Path>) -> Option<Path> {
    a.or(b)
}

/// Follows one unhandled path at a time through a route body (the first
/// found in source order), using the route summaries for calls.
struct PathWalk<'s, 'r> {
    s: &'s mut Summaries<'r>,
    map: &'s crate::syntax::span::SourceMap,
}

impl PathWalk<'_, '_> {
    /// `p` with "`cond` is true/false" added (a `!x` condition reads as `x`
    /// being the opposite).
    fn took(&self, p: &Path, cond: &ir::Expr, truth: bool) -> Path {
        let (e, truth) = match &cond.kind {
            K::Unary { op: crate::syntax::ast::UnOp::Not, expr } => (&**expr, !truth),
            _ => (cond, truth),
        };
        let mut p = p.clone();
        p.conds.push(format!("`{}` is {truth}", self.map.snippet(e.span).trim()));
        p
    }

    fn block(&mut self, stmts: &[Stmt], mut p: Option<Path>) -> Exits {
        let mut out = Exits::default();
        for st in stmts {
            let Some(cur) = p.take() else { break };
            let e = self.stmt(st, cur);
            p = e.fall;
            out.ret = first(out.ret, e.ret);
            out.brk = first(out.brk, e.brk);
        }
        out.fall = p;
        out
    }

    /// The path after `e` runs: gone when it handles or never returns.
    fn through(&mut self, e: &ir::Expr, p: Path) -> Option<Path> {
        let (h, d) = self.s.expr(e);
        (!h && !d).then_some(p)
    }

    fn stmt(&mut self, st: &Stmt, p: Path) -> Exits {
        let fall = |p: Option<Path>| Exits { fall: p, ..Exits::default() };
        match st {
            Stmt::Mark(span) => fall(Some(Path { end: Some(*span), ..p })),
            Stmt::Expr(e) | Stmt::Assign { value: e, .. } => fall(self.through(e, p)),
            Stmt::If { cond, then_body, else_body } => {
                let Some(p) = self.through(cond, p) else { return Exits::default() };
                let t = self.took(&p, cond, true);
                let f = self.took(&p, cond, false);
                let a = self.block(then_body, Some(t));
                let b = self.block(else_body, Some(f));
                Exits {
                    fall: first(a.fall, b.fall),
                    ret: first(a.ret, b.ret),
                    brk: first(a.brk, b.brk),
                }
            }
            Stmt::Switch { scrutinee, cases, default } => {
                let Some(p) = self.through(scrutinee, p) else { return Exits::default() };
                let on = self.map.snippet(scrutinee.span).trim().to_owned();
                let mut out = Exits::default();
                for (test, body) in cases {
                    let mut q = p.clone();
                    let what = match test {
                        ir::CaseTest::Str(v) => format!("{v:?}"),
                        ir::CaseTest::Int(i) => i.to_string(),
                        ir::CaseTest::Regex(_) => "a case pattern".to_owned(),
                    };
                    q.conds.push(format!("`{on}` is {what}"));
                    let e = self.block(body, Some(q));
                    out.fall = first(out.fall, first(e.fall, e.brk));
                    out.ret = first(out.ret, e.ret);
                }
                let mut q = p;
                q.conds.push(format!("`{on}` matches no case"));
                match default {
                    Some(d) => {
                        let e = self.block(d, Some(q));
                        out.fall = first(out.fall, first(e.fall, e.brk));
                        out.ret = first(out.ret, e.ret);
                    }
                    None => out.fall = first(out.fall, Some(q)),
                }
                out
            }
            Stmt::While { cond, body } => {
                let Some(p) = self.through(cond, p) else { return Exits::default() };
                let done = self.took(&p, cond, false);
                let e = self.block(body, Some(self.took(&p, cond, true)));
                Exits { fall: first(Some(done), first(e.fall, e.brk)), ret: e.ret, brk: None }
            }
            Stmt::Return(v) => {
                let p = match v {
                    Some(v) => self.through(v, p),
                    None => Some(p),
                };
                Exits { ret: p.map(|p| Path { returned: true, ..p }), ..Exits::default() }
            }
            Stmt::Exit | Stmt::Drop => Exits::default(),
            Stmt::Break => Exits { brk: Some(p), ..Exits::default() },
        }
    }
}
