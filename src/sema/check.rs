//! Route bodies: statements, scopes, assignments, and the checker's state.
//!
//! [`Checker`] walks one route at a time and lowers it to the typed IR in
//! [`super::ir`]. Expressions and builtin calls are handled in
//! [`super::types`]; this file owns the statement walk, `let` scopes,
//! `$var` slots and the facts (calls, armed routes, builtin uses, variable
//! reads and writes) that [`super::callgraph`] and [`super::lints`] analyse
//! once every route is lowered.

use std::collections::HashMap;

use super::builtins::{self, Kinds, Scope, Ty};
use super::ir::{self, CaseTest, Place, RouteId, Stmt, Value};
use super::resolve::{self, Feature};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, CaseLabel, RouteKind, StmtKind};
use crate::syntax::span::{SourceMap, Span};

/// A use of something restricted to some route kinds, checked through the call graph.
#[derive(Debug, Clone)]
pub struct Use {
    pub route: RouteId,
    pub allowed: Kinds,
    pub what: String,
    pub span: Span,
}

/// What the route walk learned, for the whole-program passes.
#[derive(Debug, Default)]
pub struct Facts {
    /// `route(X)` calls: caller, callee, call span.
    pub calls: Vec<(RouteId, RouteId, Span)>,
    /// `on_failure(X)` and friends: arming route, armed route, span.
    pub arms: Vec<(RouteId, RouteId, Span)>,
    pub uses: Vec<Use>,
    pub var_reads: Vec<(RouteId, u32, Span)>,
    pub var_writes: Vec<(RouteId, u32, Span)>,
}

#[derive(Debug)]
pub struct Named {
    pub index: u32,
    pub span: Span,
    pub used: bool,
}

#[derive(Debug)]
pub struct ConstInfo {
    pub value: Option<Value>,
    pub span: Span,
    pub used: bool,
}

pub struct Checker<'a> {
    pub map: &'a SourceMap,
    pub diags: Vec<Diagnostic>,
    pub features: &'a HashMap<String, Feature>,
    pub route_defs: Vec<&'a ast::RouteDef>,
    pub route_names: HashMap<(RouteKind, String), RouteId>,
    pub consts: HashMap<String, ConstInfo>,
    pub flags: HashMap<String, Named>,
    pub tables: HashMap<String, Named>,
    /// Routing tables, trunk groups and trunks: what `select(NAME)` names
    /// (the flag says whether something used it).
    pub dests: HashMap<String, (ir::DestRef, Span, bool)>,
    /// `limit` declarations: what `within_limit(NAME)` names.
    pub limits: HashMap<String, super::security::LimitInfo<'a>>,
    /// `acl` declarations: what `in_acl(NAME)` names.
    pub acls: HashMap<String, Named>,
    pub msg_vars: Vec<ir::Var>,
    pub msg_var_slots: HashMap<String, u32>,
    /// Where each `$var` slot got its type.
    pub msg_var_typed_at: Vec<Option<Span>>,
    pub avps: Vec<String>,
    pub regexes: Vec<String>,
    /// Each distinct pattern is validated once.
    pub regex_ids: HashMap<String, u32>,
    pub facts: Facts,
    /// Per-route state.
    pub route: RouteId,
    pub locals: Vec<ir::Var>,
    pub scopes: Vec<Vec<(String, u32)>>,
    pub breakable: u32,
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("route", &self.route).finish()
    }
}

impl<'a> Checker<'a> {
    pub fn new(map: &'a SourceMap, features: &'a HashMap<String, Feature>) -> Checker<'a> {
        Checker {
            map,
            diags: Vec::new(),
            features,
            route_defs: Vec::new(),
            route_names: HashMap::new(),
            consts: HashMap::new(),
            flags: HashMap::new(),
            tables: HashMap::new(),
            dests: HashMap::new(),
            limits: HashMap::new(),
            acls: HashMap::new(),
            msg_vars: Vec::new(),
            msg_var_slots: HashMap::new(),
            msg_var_typed_at: Vec::new(),
            avps: Vec::new(),
            regexes: Vec::new(),
            regex_ids: HashMap::new(),
            facts: Facts::default(),
            route: 0,
            locals: Vec::new(),
            scopes: Vec::new(),
            breakable: 0,
        }
    }

    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Lowers one route's body.
    pub fn route_body(&mut self, id: RouteId, def: &ast::RouteDef) -> ir::Route {
        self.route = id;
        self.locals.clear();
        self.scopes.clear();
        self.breakable = 0;
        let body = self.block(&def.body.stmts);
        ir::Route {
            kind: def.kind,
            name: def.name.as_ref().map(|n| n.name.clone()).unwrap_or_default(),
            span: def.head,
            locals: std::mem::take(&mut self.locals),
            body,
        }
    }

    fn block(&mut self, stmts: &[ast::Stmt]) -> Vec<Stmt> {
        self.scopes.push(Vec::new());
        let mut out = Vec::with_capacity(stmts.len());
        let mut dead: Option<Span> = None;
        let mut warned = false;
        for s in stmts {
            if let (Some(cause), false) = (dead, warned) {
                if !matches!(s.kind, StmtKind::Error) {
                    self.error(
                        Diagnostic::new(Code::Unreachable, "unreachable statement")
                            .at(s.span, "this never runs")
                            .with_label(cause, "because control never gets past this"),
                    );
                    warned = true;
                }
            }
            let before = out.len();
            // Each statement is marked with its span (coverage and traces
            // name statements by it); blocks and `ifdef` mark their own.
            let marked = !matches!(s.kind, StmtKind::Block(_) | StmtKind::Ifdef { .. });
            if marked {
                out.push(Stmt::Mark(s.span));
            }
            self.stmt(s, &mut out);
            if marked && out.len() == before + 1 {
                out.pop(); // the statement lowered to nothing
            }
            if dead.is_none() && out[before..].iter().any(diverges) {
                dead = Some(s.span);
            }
        }
        self.scopes.pop();
        out
    }

    fn stmt(&mut self, s: &ast::Stmt, out: &mut Vec<Stmt>) {
        match &s.kind {
            StmtKind::Expr(e) => {
                let e = self.expr(e);
                out.push(Stmt::Expr(e));
            }
            StmtKind::Assign { target, value } => {
                if let Some(st) = self.assign(target, value) {
                    out.push(st);
                }
            }
            StmtKind::Let { name, value } => {
                let v = self.expr(value);
                let ty = if v.ty == Ty::Void {
                    self.error(
                        Diagnostic::new(Code::TypeMismatch, "this call returns nothing")
                            .at(value.span, "has no value to store"),
                    );
                    Ty::Unknown
                } else {
                    v.ty
                };
                let slot = self.locals.len() as u32;
                self.locals.push(ir::Var { name: name.name.clone(), ty });
                if let Some(scope) = self.scopes.last_mut() {
                    scope.push((name.name.clone(), slot));
                }
                out.push(Stmt::Assign { target: Place::Local(slot), value: v });
            }
            StmtKind::If { cond, then_block, else_block } => {
                let cond = self.condition(cond);
                let then_body = self.block(&then_block.stmts);
                let else_body =
                    else_block.as_ref().map(|b| self.block(&b.stmts)).unwrap_or_default();
                out.push(Stmt::If { cond, then_body, else_body });
            }
            StmtKind::Switch { scrutinee, cases } => out.push(self.switch(scrutinee, cases)),
            StmtKind::While { cond, body } => {
                let cond = self.condition(cond);
                self.breakable += 1;
                let body = self.block(&body.stmts);
                self.breakable -= 1;
                out.push(Stmt::While { cond, body });
            }
            StmtKind::Return(value) => {
                let v = value.as_ref().map(|e| self.expr(e));
                if let Some(v) = &v {
                    match (&v.kind, v.ty) {
                        (ir::ExprKind::Lit(Value::Int(0)), _) => self.error(
                            Diagnostic::new(
                                Code::ReturnZero,
                                "`return 0` would stop the whole script in Kamailio",
                            )
                            .at(v.span, "zero is not a valid return value")
                            .with_help(
                                "write `exit;` to stop processing, or `return false;` to return to the caller with a false result",
                            ),
                        ),
                        (_, Ty::Bool | Ty::Int | Ty::Unknown) => {}
                        (_, other) => self.error(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("a route returns `true`, `false` or an int, not {}", other.name()),
                            )
                            .at(v.span, format!("this is {}", other.name())),
                        ),
                    }
                }
                out.push(Stmt::Return(v));
            }
            StmtKind::Exit => out.push(Stmt::Exit),
            StmtKind::Drop => out.push(Stmt::Drop),
            StmtKind::Break => {
                if self.breakable == 0 {
                    self.error(
                        Diagnostic::new(
                            Code::BreakOutsideLoop,
                            "`break` outside `while` or `switch`",
                        )
                        .at(s.span, "nothing to break out of")
                        .with_help("use `return` to leave a route, or `exit` to stop processing"),
                    );
                }
                out.push(Stmt::Break);
            }
            StmtKind::Block(b) => {
                let body = self.block(&b.stmts);
                out.extend(body);
            }
            StmtKind::Ifdef { negate, name, then_block, else_block } => {
                let on = resolve::feature_on(self.features, name, &mut self.diags) != *negate;
                let chosen = if on { Some(then_block) } else { else_block.as_ref() };
                if let Some(b) = chosen {
                    let body = self.block(&b.stmts);
                    out.extend(body);
                }
            }
            StmtKind::Error => {}
        }
    }

    fn condition(&mut self, cond: &ast::Expr) -> ir::Expr {
        let c = self.expr(cond);
        if !c.ty.fits(Ty::Bool) {
            let mut d = Diagnostic::new(
                Code::TypeMismatch,
                format!("a condition must be bool, found {}", c.ty.name()),
            )
            .at(c.span, format!("this is {}", c.ty.name()));
            d = match c.ty {
                Ty::Int => d.with_help("compare explicitly, e.g. `x != 0`"),
                Ty::Str => d.with_help("compare explicitly, e.g. `x != \"\"`"),
                _ => d,
            };
            self.error(d);
        }
        c
    }

    fn switch(&mut self, scrutinee: &ast::Expr, cases: &[ast::Case]) -> Stmt {
        let scrut = self.expr(scrutinee);
        if !matches!(scrut.ty, Ty::Str | Ty::Int | Ty::Unknown) {
            self.error(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!("`switch` works on str or int, found {}", scrut.ty.name()),
                )
                .at(scrut.span, format!("this is {}", scrut.ty.name())),
            );
        }
        let mut seen: Vec<(String, Span)> = Vec::new();
        let mut out_cases = Vec::new();
        let mut default = None;
        self.breakable += 1;
        for case in cases {
            let (key, span, test) = match &case.label {
                CaseLabel::Str(l) => {
                    self.case_type(Ty::Str, scrut.ty, l.span);
                    (format!("s:{}", l.value), l.span, Some(CaseTest::Str(l.value.clone())))
                }
                CaseLabel::Int(v, sp) => {
                    self.case_type(Ty::Int, scrut.ty, *sp);
                    (format!("i:{v}"), *sp, Some(CaseTest::Int(*v)))
                }
                CaseLabel::Regex(l) => {
                    self.case_type(Ty::Str, scrut.ty, l.span);
                    let r = self.regex_literal(l);
                    (format!("r:{}", l.value), l.span, r.map(CaseTest::Regex))
                }
                CaseLabel::Default(sp) => ("default".to_string(), *sp, None),
            };
            if let Some((_, prev)) = seen.iter().find(|(k, _)| *k == key) {
                let prev = *prev;
                self.error(
                    Diagnostic::new(Code::DuplicateCase, "duplicate `case` label")
                        .at(span, "this label was already used")
                        .with_label(prev, "first used here")
                        .with_help("the second case can never run"),
                );
            } else {
                seen.push((key, span));
            }
            let body = self.block(&case.body);
            match (&case.label, test) {
                (CaseLabel::Default(_), _) => default = Some(body),
                (_, Some(t)) => out_cases.push((t, body)),
                _ => {}
            }
        }
        self.breakable -= 1;
        Stmt::Switch { scrutinee: scrut, cases: out_cases, default }
    }

    fn case_type(&mut self, label: Ty, scrut: Ty, span: Span) {
        if !label.fits(scrut) {
            self.error(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!(
                        "`case` label is {} but the switch value is {}",
                        label.name(),
                        scrut.name()
                    ),
                )
                .at(span, format!("expected {}", scrut.name())),
            );
        }
    }

    fn assign(&mut self, target: &ast::Place, value: &ast::Expr) -> Option<Stmt> {
        let v = self.expr(value);
        match target {
            ast::Place::Local(id) => {
                if let Some(slot) = self.lookup_local(&id.name) {
                    let want = self.locals[slot as usize].ty;
                    self.expect_ty(&v, want, None);
                    return Some(Stmt::Assign { target: Place::Local(slot), value: v });
                }
                if let Some(c) = self.consts.get_mut(&id.name) {
                    c.used = true;
                    self.error(
                        Diagnostic::new(
                            Code::ReadOnly,
                            format!("cannot assign to constant `{}`", id.name),
                        )
                        .at(id.span, "constants cannot change")
                        .with_help("declare a local with `let` instead"),
                    );
                } else {
                    self.error(
                        Diagnostic::new(
                            Code::UnknownName,
                            format!("cannot find local `{}`", id.name),
                        )
                        .at(id.span, "not declared")
                        .with_help(format!("declare it first: `let {} = …;`", id.name)),
                    );
                }
                None
            }
            ast::Place::Pv(pv) => {
                let Some((idx, def)) = builtins::pseudo_var(&pv.name) else {
                    self.unknown_pv(pv);
                    return None;
                };
                if !self.pv_arg_ok(pv, def) {
                    return None;
                }
                match def.scope {
                    Scope::MessageLocal if def.name == "var" => {
                        let slot = self.msg_var_slot(pv.arg.as_deref().unwrap_or(""));
                        let ty = self.msg_vars[slot as usize].ty;
                        if ty == Ty::Unknown && v.ty != Ty::Unknown && v.ty != Ty::Void {
                            self.msg_vars[slot as usize].ty = v.ty;
                            self.msg_var_typed_at[slot as usize] = Some(pv.span);
                        } else {
                            let at = self.msg_var_typed_at[slot as usize];
                            self.expect_ty(&v, ty, at);
                        }
                        self.facts.var_writes.push((self.route, slot, pv.span));
                        Some(Stmt::Assign { target: Place::MsgVar(slot), value: v })
                    }
                    Scope::Transaction if def.name == "avp" => {
                        self.expect_ty(&v, Ty::Str, None);
                        let slot = self.avp_slot(pv.arg.as_deref().unwrap_or(""));
                        Some(Stmt::Assign { target: Place::Avp(slot), value: v })
                    }
                    _ if def.write.is_empty() => {
                        self.error(
                            Diagnostic::new(
                                Code::ReadOnly,
                                format!("`${}` is read-only", def.name),
                            )
                            .at(pv.span, "cannot be assigned")
                            .with_help(format!("`${}`: {}", def.name, def.doc)),
                        );
                        None
                    }
                    _ => {
                        if self.expect_ty(&v, def.ty, None)
                            && let Some(usage) = def.uri
                        {
                            self.uri_value(value, &v, usage);
                        }
                        self.facts.uses.push(super::check::Use {
                            route: self.route,
                            allowed: def.write,
                            what: format!("assigning `${}`", def.name),
                            span: pv.span,
                        });
                        Some(Stmt::Assign { target: Place::Pv(idx, pv.arg.clone()), value: v })
                    }
                }
            }
        }
    }

    pub fn lookup_local(&self, name: &str) -> Option<u32> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, i)| *i)
    }

    pub fn msg_var_slot(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.msg_var_slots.get(name) {
            return s;
        }
        let s = self.msg_vars.len() as u32;
        self.msg_vars.push(ir::Var { name: name.to_string(), ty: Ty::Unknown });
        self.msg_var_typed_at.push(None);
        self.msg_var_slots.insert(name.to_string(), s);
        s
    }

    pub fn avp_slot(&mut self, name: &str) -> u32 {
        match self.avps.iter().position(|a| a == name) {
            Some(i) => i as u32,
            None => {
                self.avps.push(name.to_string());
                self.avps.len() as u32 - 1
            }
        }
    }

    /// Reports a type mismatch unless `e` fits `want`; `origin` labels where
    /// the expected type came from.
    pub fn expect_ty(&mut self, e: &ir::Expr, want: Ty, origin: Option<Span>) -> bool {
        if e.ty.fits(want) {
            return true;
        }
        let mut d = Diagnostic::new(
            Code::TypeMismatch,
            format!("expected {}, found {}", want.name(), e.ty.name()),
        )
        .at(e.span, format!("this is {}", e.ty.name()));
        if let Some(o) = origin {
            d = d.with_label(o, format!("the type {} was fixed here", want.name()));
        }
        d = match (want, e.ty) {
            (Ty::Str, Ty::Int) => d.with_help("convert with `to_str(…)`"),
            (Ty::Int, Ty::Str) => d.with_help("convert with `to_int(…)`"),
            (Ty::Duration, Ty::Int) => {
                d.with_help("write a duration with its unit, e.g. `5s` or `500ms`")
            }
            _ => d,
        };
        self.error(d);
        false
    }
}

/// Whether control never continues after this statement.
pub fn diverges(s: &Stmt) -> bool {
    match s {
        Stmt::Exit | Stmt::Drop | Stmt::Return(_) | Stmt::Break => true,
        Stmt::If { then_body, else_body, .. } => {
            then_body.iter().any(diverges) && else_body.iter().any(diverges)
        }
        _ => false,
    }
}
