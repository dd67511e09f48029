//! The reference evaluator: a tree-walking interpreter of the checked
//! program over the same runtime functions (bodies from
//! [`crate::runtime::abi::RUNTIME`], called through the same panic guard).
//! Tests run the JIT and this evaluator side by side and require identical
//! decisions and edits; the benchmark compares their speed.

use std::collections::HashMap;

use crate::proxy::{Decision, LocalIdentity, RequestContext, Router};
use crate::runtime::abi::{self, guarded};
use crate::runtime::builtins::Impl;
use crate::runtime::{
    ABSENT, RESULT_DROP, RESULT_EXIT, RESULT_FALSE, RESULT_TRUE, RouteCtx, Shared,
};
use crate::sema::builtins::{FUNCTIONS, PSEUDO_VARS, Ty};
use crate::sema::ir::{
    CaseTest, CheckedProgram, Expr, ExprKind, InterpPart, Place, Stmt, Value, visit_exprs,
    visit_stmts,
};
use crate::syntax::ast::{BinOp, UnOp};

use super::{CompileError, expr_ty};

enum Flow {
    Next,
    Break,
    /// An encoded route result (see [`super`]).
    Ret(i64),
}

fn body(symbol: &str) -> Result<Impl, CompileError> {
    abi::lookup(symbol)
        .map(|e| e.body)
        .ok_or_else(|| CompileError(format!("no runtime function `{symbol}`")))
}

/// Runtime bodies resolved once, by catalog index.
#[derive(Debug)]
struct Bodies {
    funcs: Vec<Impl>,
    pv_get: Vec<Impl>,
    pv_set: Vec<Option<Impl>>,
    str_eq: Impl,
    concat: Impl,
    int_to_str: Impl,
    bool_to_str: Impl,
    regex_match: Impl,
    enter: Impl,
    leave: Impl,
    loop_limit: Impl,
    var_get: Impl,
    var_set: Impl,
    avp_get: Impl,
    avp_set: Impl,
    capture: Impl,
}

/// The interpreter; see the module docs.
#[derive(Debug)]
pub struct Evaluator {
    prog: CheckedProgram,
    shared: Shared,
    strings: HashMap<String, i64>,
    rt: Bodies,
}

impl Evaluator {
    pub fn new(prog: &CheckedProgram) -> Result<Evaluator, CompileError> {
        let prog = &super::resolve_var_types(prog);
        let shared = Shared::new(prog).map_err(CompileError)?;
        let mut funcs = Vec::new();
        for f in FUNCTIONS {
            funcs.push(body(f.symbol)?);
        }
        let mut pv_get = Vec::new();
        let mut pv_set = Vec::new();
        for p in PSEUDO_VARS {
            pv_get.push(body(p.symbol)?);
            pv_set.push(if p.write.is_empty() {
                None
            } else {
                Some(body(&abi::setter_symbol(p.symbol))?)
            });
        }
        let rt = Bodies {
            funcs,
            pv_get,
            pv_set,
            str_eq: body("sipc_rt_str_eq")?,
            concat: body("sipc_rt_concat")?,
            int_to_str: body("sipc_rt_int_to_str")?,
            bool_to_str: body("sipc_rt_bool_to_str")?,
            regex_match: body("sipc_rt_regex_match")?,
            enter: body("sipc_rt_enter")?,
            leave: body("sipc_rt_leave")?,
            loop_limit: body("sipc_rt_loop_limit")?,
            var_get: body("sipc_rt_pv_var")?,
            var_set: body("sipc_rt_pv_var_set")?,
            avp_get: body("sipc_rt_pv_avp")?,
            avp_set: body("sipc_rt_pv_avp_set")?,
            capture: body("sipc_rt_pv_match")?,
        };
        Ok(Evaluator { prog: prog.clone(), shared, strings: HashMap::new(), rt }.interned())
    }

    /// Interns every string the program mentions, like the code generator.
    fn interned(mut self) -> Self {
        let mut all = Vec::new();
        for r in &self.prog.routes {
            visit_stmts(&r.body, &mut |s| {
                if let Stmt::Assign { target: Place::Pv(_, Some(arg)), .. } = s {
                    all.push(arg.clone());
                }
                if let Stmt::Switch { cases, .. } = s {
                    all.extend(cases.iter().filter_map(|(t, _)| match t {
                        CaseTest::Str(s) => Some(s.clone()),
                        _ => None,
                    }));
                }
            });
            visit_exprs(&r.body, &mut |e| match &e.kind {
                ExprKind::Lit(Value::Str(s) | Value::Addr(s))
                | ExprKind::Pv { arg: Some(s), .. } => all.push(s.clone()),
                ExprKind::Interp(parts) => all.extend(parts.iter().filter_map(|p| match p {
                    InterpPart::Lit(s) => Some(s.clone()),
                    InterpPart::Expr(_) => None,
                })),
                _ => {}
            });
        }
        for s in all {
            let h = self.shared.intern(&s);
            self.strings.insert(s, h);
        }
        self
    }

    pub fn set_local(&self, local: LocalIdentity) {
        self.shared.set_local(local);
    }

    /// Runs `request_route` on one request with a fresh context.
    pub fn run(&self, req: &mut RequestContext) -> Decision {
        let Some(route) = self.prog.request_route else { return Decision::Drop };
        let mut ctx = RouteCtx::new(req, &self.shared);
        let r = self.route(&mut ctx, route as usize);
        ctx.finish(r)
    }

    fn route(&self, ctx: &mut RouteCtx<'_>, id: usize) -> i64 {
        let r = &self.prog.routes[id];
        let mut locals: Vec<i64> = r
            .locals
            .iter()
            .map(|l| if matches!(l.ty, Ty::Str | Ty::Addr) { self.shared.empty } else { 0 })
            .collect();
        match self.stmts(ctx, &mut locals, &r.body) {
            Flow::Ret(v) => v,
            Flow::Next | Flow::Break => RESULT_TRUE,
        }
    }

    fn call(&self, ctx: &mut RouteCtx<'_>, f: Impl, args: &[i64]) -> i64 {
        guarded(ctx, f, args)
    }

    fn stmts(&self, ctx: &mut RouteCtx<'_>, locals: &mut [i64], body: &[Stmt]) -> Flow {
        for s in body {
            match self.stmt(ctx, locals, s) {
                Flow::Next => {}
                other => return other,
            }
        }
        Flow::Next
    }

    fn stmt(&self, ctx: &mut RouteCtx<'_>, locals: &mut [i64], s: &Stmt) -> Flow {
        match s {
            Stmt::Expr(e) => {
                if let Err(r) = self.expr(ctx, locals, e) {
                    return Flow::Ret(r);
                }
            }
            Stmt::Assign { target, value } => {
                let v = match self.expr(ctx, locals, value) {
                    Ok(v) => v,
                    Err(r) => return Flow::Ret(r),
                };
                match target {
                    Place::Local(i) => locals[*i as usize] = v,
                    Place::MsgVar(i) => {
                        self.call(ctx, self.rt.var_set, &[i64::from(*i), v]);
                    }
                    Place::Avp(i) => {
                        self.call(ctx, self.rt.avp_set, &[i64::from(*i), v]);
                    }
                    Place::Pv(pv, arg) => {
                        if let Some(f) = self.rt.pv_set[*pv] {
                            let a = match arg {
                                Some(s) => {
                                    self.strings.get(s).copied().unwrap_or(self.shared.empty)
                                }
                                None => ABSENT,
                            };
                            self.call(ctx, f, &[a, v]);
                        }
                    }
                }
            }
            Stmt::If { cond, then_body, else_body } => {
                let c = match self.expr(ctx, locals, cond) {
                    Ok(v) => v,
                    Err(r) => return Flow::Ret(r),
                };
                return self.stmts(ctx, locals, if c != 0 { then_body } else { else_body });
            }
            Stmt::Switch { scrutinee, cases, default } => {
                let v = match self.expr(ctx, locals, scrutinee) {
                    Ok(v) => v,
                    Err(r) => return Flow::Ret(r),
                };
                let is_str = matches!(expr_ty(&self.prog, scrutinee), Ty::Str | Ty::Addr);
                let mut chosen = default.as_deref();
                for (test, body) in cases {
                    let hit = match test {
                        CaseTest::Int(i) => v == *i,
                        CaseTest::Str(s) if is_str => {
                            let k = self.strings.get(s).copied().unwrap_or(self.shared.empty);
                            self.call(ctx, self.rt.str_eq, &[v, k]) != 0
                        }
                        CaseTest::Str(_) => false,
                        CaseTest::Regex(r) => {
                            self.call(ctx, self.rt.regex_match, &[v, i64::from(*r)]) != 0
                        }
                    };
                    if hit {
                        chosen = Some(body);
                        break;
                    }
                }
                if let Some(body) = chosen {
                    return match self.stmts(ctx, locals, body) {
                        Flow::Break => Flow::Next,
                        other => other,
                    };
                }
            }
            Stmt::While { cond, body } => {
                let mut n = 0;
                loop {
                    if n >= self.shared.max_while {
                        self.call(ctx, self.rt.loop_limit, &[]);
                        break;
                    }
                    match self.expr(ctx, locals, cond) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(r) => return Flow::Ret(r),
                    }
                    n += 1;
                    match self.stmts(ctx, locals, body) {
                        Flow::Next => {}
                        Flow::Break => break,
                        ret => return ret,
                    }
                }
            }
            Stmt::Return(None) => return Flow::Ret(RESULT_TRUE),
            Stmt::Return(Some(e)) => {
                return match self.expr(ctx, locals, e) {
                    Ok(v) if expr_ty(&self.prog, e) == Ty::Bool => {
                        Flow::Ret(if v != 0 { RESULT_TRUE } else { RESULT_FALSE })
                    }
                    Ok(v) => Flow::Ret(v.max(RESULT_DROP + 1)),
                    Err(r) => Flow::Ret(r),
                };
            }
            Stmt::Exit => return Flow::Ret(RESULT_EXIT),
            Stmt::Drop => return Flow::Ret(RESULT_DROP),
            Stmt::Break => return Flow::Break,
            Stmt::Mark(_) => {}
        }
        Flow::Next
    }

    fn lit(&self, v: &Value) -> i64 {
        match v {
            Value::Str(s) | Value::Addr(s) => {
                self.strings.get(s).copied().unwrap_or(self.shared.empty)
            }
            Value::Int(i) => *i,
            Value::Bool(b) => i64::from(*b),
            Value::Duration(d) => *d as i64,
        }
    }

    /// `Err(result)`: a called route ended with exit or drop.
    fn expr(&self, ctx: &mut RouteCtx<'_>, locals: &mut [i64], e: &Expr) -> Result<i64, i64> {
        Ok(match &e.kind {
            ExprKind::Lit(v) => self.lit(v),
            ExprKind::Interp(parts) => {
                let mut acc: Option<i64> = None;
                for p in parts {
                    let h = match p {
                        InterpPart::Lit(s) => {
                            self.strings.get(s).copied().unwrap_or(self.shared.empty)
                        }
                        InterpPart::Expr(x) => {
                            let v = self.expr(ctx, locals, x)?;
                            match expr_ty(&self.prog, x) {
                                Ty::Int | Ty::Duration => self.call(ctx, self.rt.int_to_str, &[v]),
                                Ty::Bool => self.call(ctx, self.rt.bool_to_str, &[v]),
                                _ => v,
                            }
                        }
                    };
                    acc = Some(match acc {
                        None => h,
                        Some(a) => self.call(ctx, self.rt.concat, &[a, h]),
                    });
                }
                acc.unwrap_or(self.shared.empty)
            }
            ExprKind::Pv { pv, arg } => {
                let a = match arg {
                    Some(s) => self.strings.get(s).copied().unwrap_or(self.shared.empty),
                    None => ABSENT,
                };
                self.call(ctx, self.rt.pv_get[*pv], &[a])
            }
            ExprKind::MsgVar(i) => self.call(ctx, self.rt.var_get, &[i64::from(*i)]),
            ExprKind::Avp(i) => self.call(ctx, self.rt.avp_get, &[i64::from(*i)]),
            ExprKind::Capture(n) => self.call(ctx, self.rt.capture, &[i64::from(*n)]),
            ExprKind::Local(i) => locals[*i as usize],
            ExprKind::Call { func, args } => {
                let mut vals = [ABSENT; 3];
                for (slot, a) in vals.iter_mut().zip(args) {
                    *slot = self.expr(ctx, locals, a)?;
                }
                let n = FUNCTIONS[*func].params.len();
                self.call(ctx, self.rt.funcs[*func], &vals[..n])
            }
            ExprKind::CallRoute(id) => {
                if self.call(ctx, self.rt.enter, &[]) == 0 {
                    return Err(RESULT_EXIT);
                }
                let r = self.route(ctx, *id as usize);
                self.call(ctx, self.rt.leave, &[]);
                if r <= RESULT_DROP {
                    return Err(r);
                }
                i64::from(r > 0)
            }
            ExprKind::RouteRef(id) => i64::from(*id),
            ExprKind::FlagRef(i) => {
                i64::from(self.prog.flags.get(*i as usize).map_or(0, |f| f.bit))
            }
            ExprKind::TableRef(i) | ExprKind::LimitRef(i) | ExprKind::AclRef(i) => i64::from(*i),
            ExprKind::DestRef(d) => d.encode(),
            ExprKind::Level(l) => i64::from(*l),
            ExprKind::Regex(r) => i64::from(*r),
            ExprKind::Unary { op: UnOp::Not, expr } => {
                i64::from(self.expr(ctx, locals, expr)? == 0)
            }
            ExprKind::Unary { op: UnOp::Neg, expr } => self.expr(ctx, locals, expr)?.wrapping_neg(),
            ExprKind::Binary { op, lhs, rhs } => self.binary(ctx, locals, *op, lhs, rhs)?,
            ExprKind::Matches { lhs, regex } => {
                let v = self.expr(ctx, locals, lhs)?;
                self.call(ctx, self.rt.regex_match, &[v, i64::from(*regex)])
            }
            ExprKind::Error => 0,
        })
    }

    fn binary(
        &self,
        ctx: &mut RouteCtx<'_>,
        locals: &mut [i64],
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
    ) -> Result<i64, i64> {
        let l = self.expr(ctx, locals, lhs)?;
        match op {
            BinOp::And if l == 0 => return Ok(0),
            BinOp::Or if l != 0 => return Ok(l),
            BinOp::And | BinOp::Or => return self.expr(ctx, locals, rhs),
            _ => {}
        }
        let strings = matches!(expr_ty(&self.prog, lhs), Ty::Str | Ty::Addr);
        let r = self.expr(ctx, locals, rhs)?;
        Ok(match op {
            BinOp::Eq if strings => self.call(ctx, self.rt.str_eq, &[l, r]),
            BinOp::Ne if strings => self.call(ctx, self.rt.str_eq, &[l, r]) ^ 1,
            BinOp::Eq => i64::from(l == r),
            BinOp::Ne => i64::from(l != r),
            BinOp::Lt => i64::from(l < r),
            BinOp::Gt => i64::from(l > r),
            BinOp::Le => i64::from(l <= r),
            BinOp::Ge => i64::from(l >= r),
            BinOp::Add if strings => self.call(ctx, self.rt.concat, &[l, r]),
            BinOp::Add => l.wrapping_add(r),
            BinOp::Sub => l.wrapping_sub(r),
            BinOp::Mul => l.wrapping_mul(r),
            BinOp::Div if r == 0 => 0,
            BinOp::Div => l.wrapping_div(r),
            BinOp::Rem if r == 0 || r == -1 => 0,
            BinOp::Rem => l % r,
            BinOp::Match | BinOp::And | BinOp::Or => 0,
        })
    }
}

impl Router for Evaluator {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        self.run(ctx)
    }

    /// As [`crate::codegen::Program::run_route`].
    fn run_hook(&self, route: crate::proxy::router::RouteId, req: &mut RequestContext) -> Decision {
        use crate::syntax::ast::RouteKind;
        let kind = self.prog.routes.get(route as usize).map(|r| r.kind);
        match kind {
            Some(
                RouteKind::Failure
                | RouteKind::OnReply
                | RouteKind::Reply
                | RouteKind::Branch
                | RouteKind::Event,
            ) => {}
            _ => return Decision::Forward,
        }
        let mut ctx = RouteCtx::new(req, &self.shared);
        ctx.kind =
            kind.map_or(crate::sema::builtins::Kinds::NONE, crate::sema::builtins::Kinds::of);
        let result = self.route(&mut ctx, route as usize);
        if result != crate::runtime::RESULT_DROP && ctx.decision.is_none() && !ctx.failed {
            let failure = kind == Some(RouteKind::Failure);
            ctx.decision = Some(if failure { Decision::Drop } else { Decision::Forward });
        }
        ctx.finish(result)
    }

    fn reply_route(&self) -> Option<crate::proxy::router::RouteId> {
        self.prog.reply_route
    }
}
