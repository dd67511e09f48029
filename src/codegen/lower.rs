//! Lowering a checked route body to Cranelift IR.
//!
//! Every value is an `i64` (see the encoding in [`crate::runtime`]). Each
//! statement is lowered into the current block; a statement that ends its
//! block (`return`, `exit`, `drop`, `break`) leaves the builder in a fresh
//! block without predecessors, so whatever follows (unreachable code, which
//! the checker warned about) still lowers to valid IR.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, types,
};
use cranelift_codegen::ir::{Block, Value as V};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::{CompileError, expr_ty};
use crate::runtime::{
    ABSENT, RESULT_DROP, RESULT_EXIT, RESULT_FALSE, RESULT_TRUE, RouteCtx, Shared,
};
use crate::runtime::{abi, trace};
use crate::sema::builtins::{FUNCTIONS, PSEUDO_VARS, Ty};
use crate::sema::ir::{
    CaseTest, CheckedProgram, Expr, ExprKind, InterpPart, Place, RouteId, Stmt, Value,
};
use crate::syntax::ast::{BinOp, UnOp};

const I64: types::Type = types::I64;

/// The signature of a route function and of a runtime function of `arity`
/// arguments: `(ctx: ptr, i64 × arity) -> i64`.
pub fn signature(module: &JITModule, arity: usize) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(module.target_config().pointer_type()));
    for _ in 0..arity {
        sig.params.push(AbiParam::new(I64));
    }
    sig.returns.push(AbiParam::new(I64));
    sig
}

/// Imported runtime functions, declared once per module.
#[derive(Debug, Default)]
pub struct Imports {
    ids: HashMap<&'static str, FuncId>,
}

impl Imports {
    fn get(&mut self, module: &mut JITModule, symbol: &str) -> Result<FuncId, CompileError> {
        if let Some(id) = self.ids.get(symbol) {
            return Ok(*id);
        }
        let entry = abi::lookup(symbol)
            .ok_or_else(|| CompileError(format!("no runtime function `{symbol}`")))?;
        let sig = signature(module, entry.native.arity());
        let id = module
            .declare_function(entry.symbol, Linkage::Import, &sig)
            .map_err(|e| CompileError(format!("declaring `{symbol}`: {e}")))?;
        self.ids.insert(entry.symbol, id);
        Ok(id)
    }
}

pub struct FnLower<'a, 'f> {
    pub b: FunctionBuilder<'f>,
    pub module: &'a mut JITModule,
    pub imports: &'a mut Imports,
    pub shared: &'a mut Shared,
    pub prog: &'a CheckedProgram,
    pub routes: &'a [FuncId],
    pub ctx: V,
    pub locals: Vec<Variable>,
    refs: HashMap<String, FuncRef>,
    route_refs: HashMap<RouteId, FuncRef>,
    breaks: Vec<Block>,
    /// Whether call sites need the run-time depth guard ([`super::depth`]).
    guard_calls: bool,
    /// Emit the trace calls of an instrumented program ([`crate::runtime::trace`]).
    instrument: bool,
    /// The route being lowered.
    route_id: RouteId,
}

impl<'a, 'f> FnLower<'a, 'f> {
    /// Lowers a whole route body into `b`, which must be fresh.
    #[allow(clippy::too_many_arguments)]
    pub fn route(
        mut b: FunctionBuilder<'f>,
        module: &'a mut JITModule,
        imports: &'a mut Imports,
        shared: &'a mut Shared,
        prog: &'a CheckedProgram,
        routes: &'a [FuncId],
        route: RouteId,
        guard_calls: bool,
        instrument: bool,
    ) -> Result<(), CompileError> {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctx = b.block_params(entry)[0];
        let r = &prog.routes[route as usize];
        let mut locals = Vec::with_capacity(r.locals.len());
        for l in &r.locals {
            let var = b.declare_var(I64);
            let init = match l.ty {
                Ty::Str | Ty::Addr => shared.empty,
                _ => 0,
            };
            let v = b.ins().iconst(I64, init);
            b.def_var(var, v);
            locals.push(var);
        }
        let mut me = FnLower {
            b,
            module,
            imports,
            shared,
            prog,
            routes,
            ctx,
            locals,
            refs: HashMap::new(),
            route_refs: HashMap::new(),
            breaks: Vec::new(),
            guard_calls,
            instrument,
            route_id: route,
        };
        if instrument {
            let id = me.iconst(i64::from(route));
            me.rt("sipc_rt_trace_enter", &[id])?;
        }
        me.stmts(&r.body)?;
        me.ret_const(RESULT_TRUE);
        me.b.seal_all_blocks();
        let cfg = me.module.target_config();
        me.b.finalize(cfg);
        Ok(())
    }

    fn rt(&mut self, symbol: &str, args: &[V]) -> Result<V, CompileError> {
        let fref = match self.refs.get(symbol) {
            Some(f) => *f,
            None => {
                let id = self.imports.get(self.module, symbol)?;
                let f = self.module.declare_func_in_func(id, self.b.func);
                self.refs.insert(symbol.to_owned(), f);
                f
            }
        };
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.ctx);
        all.extend_from_slice(args);
        let call = self.b.ins().call(fref, &all);
        Ok(self.b.inst_results(call)[0])
    }

    fn iconst(&mut self, v: i64) -> V {
        self.b.ins().iconst(I64, v)
    }

    fn bool_of(&mut self, cc: IntCC, x: V, y: V) -> V {
        let c = self.b.ins().icmp(cc, x, y);
        self.b.ins().uextend(I64, c)
    }

    /// Ends the current block with a return and continues in a dead block.
    fn ret(&mut self, v: V) {
        if self.instrument {
            // The trace call cannot fail: its symbol is in the runtime table.
            let _ = self.rt("sipc_rt_trace_leave", &[v]);
        }
        self.b.ins().return_(&[v]);
        self.dead();
    }

    /// Records a traced value (instrumented programs only).
    fn trace_value(&mut self, kind: i64, ty: Ty, v: V) -> Result<(), CompileError> {
        if self.instrument && !matches!(ty, Ty::Void) {
            let (k, t) = (self.iconst(kind), self.iconst(trace::ty_tag(ty)));
            self.rt("sipc_rt_trace_value", &[k, t, v])?;
        }
        Ok(())
    }

    /// The trace mark of the statement `next` that starts at `span`.
    fn mark(
        &mut self,
        span: crate::syntax::span::Span,
        next: Option<&Stmt>,
    ) -> Result<(), CompileError> {
        let id = self.shared.marks.len() as i64;
        let mark = trace::Mark {
            span,
            reads: next.map(|s| reads(self.prog, s)).unwrap_or_default(),
            writes: match next {
                Some(Stmt::Assign { target, .. }) => {
                    Some(place_name(self.prog, self.route_id, target))
                }
                _ => None,
            },
        };
        self.shared.marks.push(mark);
        let id = self.iconst(id);
        self.rt("sipc_rt_trace_stmt", &[id])?;
        Ok(())
    }

    fn ret_const(&mut self, r: i64) {
        let v = self.iconst(r);
        self.ret(v);
    }

    fn dead(&mut self) {
        let blk = self.b.create_block();
        self.b.switch_to_block(blk);
    }

    fn jump(&mut self, to: Block) {
        self.b.ins().jump(to, &[]);
    }

    fn stmts(&mut self, body: &[Stmt]) -> Result<(), CompileError> {
        for (i, s) in body.iter().enumerate() {
            match s {
                Stmt::Mark(span) if self.instrument => self.mark(*span, body.get(i + 1))?,
                _ => self.stmt(s)?,
            }
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), CompileError> {
        match s {
            Stmt::Mark(_) => {}
            Stmt::Expr(e) => {
                let v = self.expr(e)?;
                let ty = expr_ty(self.prog, e);
                self.trace_value(trace::VALUE_RESULT, ty, v)?;
            }
            Stmt::Assign { target, value } => {
                let v = self.expr(value)?;
                let ty = expr_ty(self.prog, value);
                self.trace_value(trace::VALUE_WROTE, ty, v)?;
                match target {
                    Place::Local(i) => {
                        let var = self.locals[*i as usize];
                        self.b.def_var(var, v);
                    }
                    Place::MsgVar(i) => {
                        let i = self.iconst(i64::from(*i));
                        self.rt("sipc_rt_pv_var_set", &[i, v])?;
                    }
                    Place::Avp(i) => {
                        let i = self.iconst(i64::from(*i));
                        self.rt("sipc_rt_pv_avp_set", &[i, v])?;
                    }
                    Place::Pv(pv, arg) => {
                        let sym = abi::setter_symbol(PSEUDO_VARS[*pv].symbol);
                        let a = match arg {
                            Some(s) => self.shared.intern(s),
                            None => ABSENT,
                        };
                        let a = self.iconst(a);
                        self.rt(&sym, &[a, v])?;
                    }
                }
            }
            Stmt::If { cond, then_body, else_body } => {
                let c = self.expr(cond)?;
                self.trace_value(trace::VALUE_COND, Ty::Bool, c)?;
                let (t, e, join) =
                    (self.b.create_block(), self.b.create_block(), self.b.create_block());
                self.b.ins().brif(c, t, &[], e, &[]);
                self.b.switch_to_block(t);
                self.stmts(then_body)?;
                self.jump(join);
                self.b.switch_to_block(e);
                self.stmts(else_body)?;
                self.jump(join);
                self.b.switch_to_block(join);
            }
            Stmt::Switch { scrutinee, cases, default } => {
                let v = self.expr(scrutinee)?;
                let ty = expr_ty(self.prog, scrutinee);
                self.trace_value(trace::VALUE_MATCHED, ty, v)?;
                let is_str = matches!(ty, Ty::Str | Ty::Addr);
                let end = self.b.create_block();
                self.breaks.push(end);
                for (test, body) in cases {
                    let hit = match test {
                        CaseTest::Int(i) => {
                            let k = self.iconst(*i);
                            self.bool_of(IntCC::Equal, v, k)
                        }
                        CaseTest::Str(s) if is_str => {
                            let h = self.shared.intern(s);
                            let k = self.iconst(h);
                            self.rt("sipc_rt_str_eq", &[v, k])?
                        }
                        CaseTest::Str(_) => self.iconst(0),
                        CaseTest::Regex(r) => {
                            let r = self.iconst(i64::from(*r));
                            self.rt("sipc_rt_regex_match", &[v, r])?
                        }
                    };
                    let (body_blk, next) = (self.b.create_block(), self.b.create_block());
                    self.b.ins().brif(hit, body_blk, &[], next, &[]);
                    self.b.switch_to_block(body_blk);
                    self.stmts(body)?;
                    self.jump(end);
                    self.b.switch_to_block(next);
                }
                if let Some(d) = default {
                    self.stmts(d)?;
                }
                self.jump(end);
                self.breaks.pop();
                self.b.switch_to_block(end);
            }
            Stmt::While { cond, body } => {
                let count = self.b.declare_var(I64);
                let zero = self.iconst(0);
                self.b.def_var(count, zero);
                let (head, check, body_blk, limit, exit) = (
                    self.b.create_block(),
                    self.b.create_block(),
                    self.b.create_block(),
                    self.b.create_block(),
                    self.b.create_block(),
                );
                self.jump(head);
                self.b.switch_to_block(head);
                let n = self.b.use_var(count);
                let max = self.iconst(self.shared.max_while);
                let over = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, n, max);
                self.b.ins().brif(over, limit, &[], check, &[]);
                self.b.switch_to_block(limit);
                self.rt("sipc_rt_loop_limit", &[])?;
                self.jump(exit);
                self.b.switch_to_block(check);
                let c = self.expr(cond)?;
                self.trace_value(trace::VALUE_COND, Ty::Bool, c)?;
                self.b.ins().brif(c, body_blk, &[], exit, &[]);
                self.b.switch_to_block(body_blk);
                let n = self.b.use_var(count);
                let n1 = self.b.ins().iadd_imm_s(n, 1);
                self.b.def_var(count, n1);
                self.breaks.push(exit);
                self.stmts(body)?;
                self.breaks.pop();
                self.jump(head);
                self.b.switch_to_block(exit);
            }
            Stmt::Return(None) => self.ret_const(RESULT_TRUE),
            Stmt::Return(Some(e)) => {
                let v = self.expr(e)?;
                let r = if expr_ty(self.prog, e) == Ty::Bool {
                    let (t, f) = (self.iconst(RESULT_TRUE), self.iconst(RESULT_FALSE));
                    self.b.ins().select(v, t, f)
                } else {
                    let floor = self.iconst(RESULT_DROP + 1);
                    self.b.ins().smax(v, floor)
                };
                self.ret(r);
            }
            Stmt::Exit => self.ret_const(RESULT_EXIT),
            Stmt::Drop => self.ret_const(RESULT_DROP),
            Stmt::Break => {
                let Some(&to) = self.breaks.last() else {
                    return Err(CompileError("`break` outside `while` or `switch`".into()));
                };
                self.jump(to);
                self.dead();
            }
        }
        Ok(())
    }

    fn lit(&mut self, v: &Value) -> V {
        match v {
            Value::Str(s) | Value::Addr(s) => {
                let h = self.shared.intern(s);
                self.iconst(h)
            }
            Value::Int(i) => self.iconst(*i),
            Value::Bool(b) => self.iconst(i64::from(*b)),
            Value::Duration(d) => self.iconst(*d as i64),
        }
    }

    /// A value as a string handle (for interpolation).
    fn text_of(&mut self, e: &Expr) -> Result<V, CompileError> {
        let v = self.expr(e)?;
        Ok(match expr_ty(self.prog, e) {
            Ty::Int | Ty::Duration => self.rt("sipc_rt_int_to_str", &[v])?,
            Ty::Bool => self.rt("sipc_rt_bool_to_str", &[v])?,
            _ => v,
        })
    }

    pub fn expr(&mut self, e: &Expr) -> Result<V, CompileError> {
        Ok(match &e.kind {
            ExprKind::Lit(v) => self.lit(v),
            ExprKind::Interp(parts) => {
                let mut acc: Option<V> = None;
                for p in parts {
                    let h = match p {
                        InterpPart::Lit(s) => {
                            let h = self.shared.intern(s);
                            self.iconst(h)
                        }
                        InterpPart::Expr(x) => self.text_of(x)?,
                    };
                    acc = Some(match acc {
                        None => h,
                        Some(a) => self.rt("sipc_rt_concat", &[a, h])?,
                    });
                }
                match acc {
                    Some(a) => a,
                    None => self.iconst(self.shared.empty),
                }
            }
            ExprKind::Pv { pv, arg } => {
                let a = match arg {
                    Some(s) => self.shared.intern(s),
                    None => ABSENT,
                };
                let a = self.iconst(a);
                self.rt(PSEUDO_VARS[*pv].symbol, &[a])?
            }
            ExprKind::MsgVar(i) => {
                let i = self.iconst(i64::from(*i));
                self.rt("sipc_rt_pv_var", &[i])?
            }
            ExprKind::Avp(i) => {
                let i = self.iconst(i64::from(*i));
                self.rt("sipc_rt_pv_avp", &[i])?
            }
            ExprKind::Capture(n) => {
                let n = self.iconst(i64::from(*n));
                self.rt("sipc_rt_pv_match", &[n])?
            }
            ExprKind::Local(i) => self.b.use_var(self.locals[*i as usize]),
            ExprKind::Call { func, args } => {
                let f = &FUNCTIONS[*func];
                if let Some(v) = self.specialized(f.name, args)? {
                    return Ok(v);
                }
                let mut vals = Vec::with_capacity(f.params.len());
                for a in args {
                    vals.push(self.expr(a)?);
                }
                while vals.len() < f.params.len() {
                    vals.push(self.iconst(ABSENT));
                }
                self.rt(f.symbol, &vals)?
            }
            ExprKind::CallRoute(id) => self.call_route(*id)?,
            ExprKind::RouteRef(id) => self.iconst(i64::from(*id)),
            ExprKind::FlagRef(i) => {
                let bit = self.prog.flags.get(*i as usize).map_or(0, |f| f.bit);
                self.iconst(i64::from(bit))
            }
            ExprKind::TableRef(i) | ExprKind::LimitRef(i) | ExprKind::AclRef(i) => {
                self.iconst(i64::from(*i))
            }
            ExprKind::DestRef(d) => self.iconst(d.encode()),
            ExprKind::Level(l) => self.iconst(i64::from(*l)),
            ExprKind::Regex(r) => self.iconst(i64::from(*r)),
            ExprKind::Unary { op: UnOp::Not, expr } => {
                let v = self.expr(expr)?;
                let c = self.b.ins().icmp_imm_s(IntCC::Equal, v, 0);
                self.b.ins().uextend(I64, c)
            }
            ExprKind::Unary { op: UnOp::Neg, expr } => {
                let v = self.expr(expr)?;
                self.b.ins().ineg(v)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs)?,
            ExprKind::Matches { lhs, regex } => {
                let v = self.expr(lhs)?;
                let r = self.iconst(i64::from(*regex));
                self.rt("sipc_rt_regex_match", &[v, r])?
            }
            ExprKind::Error => {
                return Err(CompileError("the program has errors".into()));
            }
        })
    }

    /// `route(NAME)`: depth guard, direct call, exit/drop propagation; the
    /// value is whether the route returned true (a positive result).
    /// A builtin call whose constant arguments let it be compiled to a
    /// cheaper runtime function with the same answer (the evaluator calls
    /// the general one, and the differential tests compare the two).
    fn specialized(&mut self, name: &str, args: &[Expr]) -> Result<Option<V>, CompileError> {
        let prog = self.prog;
        let flag_bit = |e: &Expr| match e.kind {
            ExprKind::FlagRef(i) => prog.flags.get(i as usize).map(|f| 1u64 << f.bit.clamp(0, 63)),
            _ => None,
        };
        match (name, args) {
            // The method is fixed for the message: compare masks in place.
            ("is_method", [Expr { kind: ExprKind::Lit(Value::Str(list)), .. }]) => {
                let Some(mask) = crate::runtime::builtins::method_mask(list) else {
                    return Ok(None);
                };
                let bits = self.ctx_field(std::mem::offset_of!(RouteCtx<'_>, method_bit));
                let hit = self.b.ins().band_imm_u(bits, i64::from(mask));
                let c = self.b.ins().icmp_imm_u(IntCC::NotEqual, hit, 0);
                Ok(Some(self.b.ins().uextend(I64, c)))
            }
            // Declared flags are bits of `RouteCtx::flags`, changed in place.
            ("setflag" | "resetflag" | "isflagset", [flag]) => {
                let Some(bit) = flag_bit(flag) else { return Ok(None) };
                let offset = std::mem::offset_of!(RouteCtx<'_>, flags);
                let flags = self.ctx_field(offset);
                let out = match name {
                    "setflag" => self.b.ins().bor_imm_u(flags, bit as i64),
                    "resetflag" => self.b.ins().band_imm_u(flags, !bit as i64),
                    _ => {
                        let hit = self.b.ins().band_imm_u(flags, bit as i64);
                        let c = self.b.ins().icmp_imm_u(IntCC::NotEqual, hit, 0);
                        return Ok(Some(self.b.ins().uextend(I64, c)));
                    }
                };
                self.set_ctx_field(offset, out);
                Ok(Some(self.iconst(0)))
            }
            // Constant answers (see their runtime functions): the core has
            // validated the message, and retransmissions never reach a route.
            ("sanity_check", []) => Ok(Some(self.iconst(1))),
            ("t_precheck_trans", []) => Ok(Some(self.iconst(0))),
            _ => Ok(None),
        }
    }

    /// Loads the 64-bit field at `offset` of the route context. Sound
    /// because `ctx` is the pointer `Program::run` made from a live
    /// `&mut RouteCtx` for the duration of the call, `offset` comes from
    /// `offset_of!` on that type and names a `u64` field, and runtime
    /// functions (the only other code touching the context meanwhile) run
    /// strictly between these loads and stores, never concurrently.
    fn ctx_field(&mut self, offset: usize) -> V {
        // Aligned and never trapping: a field of a live context.
        self.b.ins().load(I64, MemFlagsData::trusted(), self.ctx, offset as i32)
    }

    /// Stores a 64-bit field of the route context (see [`Self::ctx_field`]).
    fn set_ctx_field(&mut self, offset: usize, v: V) {
        self.b.ins().store(MemFlagsData::trusted(), v, self.ctx, offset as i32);
    }

    fn call_route(&mut self, id: RouteId) -> Result<V, CompileError> {
        if self.guard_calls {
            let ok = self.rt("sipc_rt_enter", &[])?;
            let (call_blk, fail) = (self.b.create_block(), self.b.create_block());
            self.b.ins().brif(ok, call_blk, &[], fail, &[]);
            self.b.switch_to_block(fail);
            self.ret_const(RESULT_EXIT);
            self.b.switch_to_block(call_blk);
        }
        let fref = match self.route_refs.get(&id) {
            Some(f) => *f,
            None => {
                let f = self.module.declare_func_in_func(self.routes[id as usize], self.b.func);
                self.route_refs.insert(id, f);
                f
            }
        };
        let call = self.b.ins().call(fref, &[self.ctx]);
        let r = self.b.inst_results(call)[0];
        if self.guard_calls {
            self.rt("sipc_rt_leave", &[])?;
        }
        let ends = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, r, RESULT_DROP);
        let (out, cont) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(ends, out, &[], cont, &[]);
        self.b.switch_to_block(out);
        self.b.ins().return_(&[r]);
        self.b.switch_to_block(cont);
        let zero = self.iconst(0);
        Ok(self.bool_of(IntCC::SignedGreaterThan, r, zero))
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr) -> Result<V, CompileError> {
        if matches!(op, BinOp::And | BinOp::Or) {
            let l = self.expr(lhs)?;
            let (rhs_blk, join) = (self.b.create_block(), self.b.create_block());
            self.b.append_block_param(join, I64);
            if op == BinOp::And {
                self.b.ins().brif(l, rhs_blk, &[], join, &[BlockArg::Value(l)]);
            } else {
                self.b.ins().brif(l, join, &[BlockArg::Value(l)], rhs_blk, &[]);
            }
            self.b.switch_to_block(rhs_blk);
            let r = self.expr(rhs)?;
            self.b.ins().jump(join, &[BlockArg::Value(r)]);
            self.b.switch_to_block(join);
            return Ok(self.b.block_params(join)[0]);
        }
        let strings = matches!(expr_ty(self.prog, lhs), Ty::Str | Ty::Addr);
        let l = self.expr(lhs)?;
        let r = self.expr(rhs)?;
        Ok(match op {
            BinOp::Eq | BinOp::Ne if strings => {
                let eq = self.rt("sipc_rt_str_eq", &[l, r])?;
                if op == BinOp::Eq { eq } else { self.b.ins().bxor_imm_s(eq, 1) }
            }
            BinOp::Eq => self.bool_of(IntCC::Equal, l, r),
            BinOp::Ne => self.bool_of(IntCC::NotEqual, l, r),
            BinOp::Lt => self.bool_of(IntCC::SignedLessThan, l, r),
            BinOp::Gt => self.bool_of(IntCC::SignedGreaterThan, l, r),
            BinOp::Le => self.bool_of(IntCC::SignedLessThanOrEqual, l, r),
            BinOp::Ge => self.bool_of(IntCC::SignedGreaterThanOrEqual, l, r),
            BinOp::Add if strings => self.rt("sipc_rt_concat", &[l, r])?,
            BinOp::Add => self.b.ins().iadd(l, r),
            BinOp::Sub => self.b.ins().isub(l, r),
            BinOp::Mul => self.b.ins().imul(l, r),
            BinOp::Div | BinOp::Rem => {
                // x / 0 = 0, x % 0 = 0, MIN / -1 = MIN (wrapping), x % -1 = 0:
                // no trap reaches the machine instruction.
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
                let minus1 = self.b.ins().icmp_imm_s(IntCC::Equal, r, -1);
                let special = self.b.ins().bor(zero, minus1);
                let one = self.iconst(1);
                let safe = self.b.ins().select(special, one, r);
                if op == BinOp::Div {
                    let q = self.b.ins().sdiv(l, safe);
                    let neg = self.b.ins().ineg(l);
                    let z = self.iconst(0);
                    let q = self.b.ins().select(minus1, neg, q);
                    self.b.ins().select(zero, z, q)
                } else {
                    let m = self.b.ins().srem(l, safe);
                    let z = self.iconst(0);
                    self.b.ins().select(special, z, m)
                }
            }
            BinOp::Match | BinOp::And | BinOp::Or => {
                return Err(CompileError(format!("unexpected operator `{}`", op.symbol())));
            }
        })
    }
}

/// What statement `s` reads before it runs its bodies: the pseudo-variables,
/// `$var`s and `$avp`s of its condition, value or call, once each.
fn reads(prog: &CheckedProgram, s: &Stmt) -> Vec<trace::Read> {
    let head: Option<&Expr> = match s {
        Stmt::Expr(e)
        | Stmt::Assign { value: e, .. }
        | Stmt::If { cond: e, .. }
        | Stmt::While { cond: e, .. }
        | Stmt::Switch { scrutinee: e, .. }
        | Stmt::Return(Some(e)) => Some(e),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(e) = head {
        crate::sema::ir::visit_expr(e, &mut |x| {
            let r = match &x.kind {
                ExprKind::Pv { pv, arg } => trace::Read::Pv { pv: *pv, arg: arg.clone() },
                ExprKind::MsgVar(i) => {
                    let v = &prog.msg_vars[*i as usize];
                    trace::Read::MsgVar { slot: *i, name: v.name.clone(), ty: v.ty }
                }
                ExprKind::Avp(i) => {
                    trace::Read::Avp { slot: *i, name: prog.avps[*i as usize].clone() }
                }
                _ => return,
            };
            if !out.contains(&r) {
                out.push(r);
            }
        });
    }
    out
}

/// How an assigned place is written in the language.
fn place_name(prog: &CheckedProgram, route: RouteId, p: &Place) -> String {
    match p {
        Place::Pv(pv, None) => format!("${}", PSEUDO_VARS[*pv].name),
        Place::Pv(pv, Some(arg)) => format!("${}({arg})", PSEUDO_VARS[*pv].name),
        Place::MsgVar(i) => format!("$var({})", prog.msg_vars[*i as usize].name),
        Place::Avp(i) => format!("$avp({})", prog.avps[*i as usize]),
        Place::Local(i) => prog.routes[route as usize].locals[*i as usize].name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use cranelift_jit::{JITBuilder, JITModule};
    use cranelift_module::default_libcall_names;

    use super::Imports;

    #[test]
    fn only_runtime_table_symbols_can_be_imported() {
        let mut module = JITModule::new(JITBuilder::new(default_libcall_names()).unwrap());
        let mut imports = Imports::default();
        assert!(imports.get(&mut module, "sipc_rt_reply").is_ok());
        let err = imports.get(&mut module, "malloc").unwrap_err();
        assert!(err.0.contains("no runtime function `malloc`"), "{err}");
        assert!(imports.get(&mut module, "sipc_rt_no_such_builtin").is_err());
    }
}
