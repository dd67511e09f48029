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
    final_action(routes, diags);
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
    let mut edges = vec![Vec::new(); n];
    for &(from, to, _) in &c.facts.calls {
        if (from as usize) < n {
            edges[from as usize].push(to as usize);
        }
    }
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
    groups.push(("the request routes".into(), request));
    groups.push(("the reply routes".into(), reply));
    let _ = reach;
    let mut warned: HashSet<(u32, u32)> = HashSet::new();
    for (label, entries) in &groups {
        let mut seen = vec![false; n];
        let mut todo = entries.clone();
        while let Some(r) = todo.pop() {
            if !std::mem::replace(&mut seen[r], true) {
                todo.extend(edges[r].iter().copied());
            }
        }
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
            let mut d = Diagnostic::new(
                Code::ReadBeforeWrite,
                format!("`$var({name})` is read but never written while handling this message"),
            )
            .at(span, format!("always empty here, in {label}"));
            if let Some(&(_, _, wspan)) = c.facts.var_writes.iter().find(|w| w.1 == slot) {
                d = d
                    .with_label(wspan, "written here, while handling a different message")
                    .with_help(format!(
                        "`$var` values are reset for every message; use `$avp({name})` to keep a value for the whole transaction"
                    ));
            } else {
                d = d.with_help("`$var` values start empty for every message; assign it first");
            }
            diags.push(d);
        }
    }
    // Reads flagged above get the more specific message; these are the rest.
    ordered_reads(c, routes, &edges, &mut warned, diags);
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

fn final_action(routes: &[ir::Route], diags: &mut Vec<Diagnostic>) {
    let mut s = Summaries { routes, done: HashMap::new(), active: HashSet::new() };
    for r in routes.iter().filter(|r| r.kind == RouteKind::Request) {
        let f = s.block(&r.body, false);
        if f.fall == Some(false) {
            diags.push(
                Diagnostic::new(
                    Code::NoFinalAction,
                    "`request_route` can reach its end without relaying, replying or dropping",
                )
                .at(r.span, "some path through this route falls off its end")
                .with_help(
                    "end every path with `relay();`, `forward();`, `reply(…);`, `drop;` or `exit;` — a request nobody handles is silently discarded",
                ),
            );
        }
    }
}
