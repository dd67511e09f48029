//! The code generator: a [`CheckedProgram`] compiled with Cranelift to one
//! native function per route, wrapped in a [`Program`] that the proxy core
//! calls as its [`crate::proxy::Router`].
//!
//! # ABI
//!
//! Every route is `extern "C" fn(ctx: *mut RouteCtx) -> i64`. The result:
//! - [`RESULT_EXIT`](crate::runtime::RESULT_EXIT) (`i64::MIN`): `exit` —
//!   stop handling the message; the decision is whatever a builtin chose
//!   (`relay`, `reply`, …), or drop when none did;
//! - [`RESULT_DROP`](crate::runtime::RESULT_DROP) (`i64::MIN + 1`): `drop` —
//!   discard the message, even after `relay()`;
//! - anything else is the route's return value for `route(NAME)` callers:
//!   `return;` and falling off the end give 1, `return true` 1, `return
//!   false` -1, `return N` N (clamped above the two sentinels). A caller
//!   sees `route(NAME)` as true when the value is positive.
//!
//! A `route(NAME)` call site calls `sipc_rt_enter` (the depth guard, at most
//! [`MAX_DEPTH`](crate::runtime::MAX_DEPTH) nested calls; tripping it fails
//! the message with 500), calls the callee directly, calls `sipc_rt_leave`
//! and returns at once when the callee ended with exit or drop. The guard
//! is left out when the call graph cannot nest that deep ([`depth`]).
//!
//! Values are `i64`s as described in [`crate::runtime`]. Semantics chosen
//! where docs/language.md is silent: string `==`/`!=` compare bytes (case
//! sensitive; use `str_lower` for a case-insensitive test); int arithmetic
//! wraps on overflow (`+ - *`, unary `-`); `x / 0` and `x % 0` are 0, and
//! `i64::MIN / -1` wraps to `i64::MIN`; a `while` loop that reaches
//! `max_while_loops` iterations is left (with a warning logged), as if by
//! `break`. `$var`s and `$match` captures are per message; `$avp`s and flags
//! belong to the transaction (see [`crate::runtime::RouteCtx`]).

mod depth;
pub mod eval;
mod jit;
mod lower;
pub mod program;

pub use eval::Evaluator;
pub use program::Program;

use crate::sema::ir::CheckedProgram;

/// Why a checked program could not be compiled (an internal error: the
/// checker guarantees well-formed input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compile error: {0}")]
pub struct CompileError(pub String);

/// Compiles a checked program (which must have no errors).
pub fn compile(prog: &CheckedProgram) -> Result<Program, CompileError> {
    Program::compile(prog)
}

/// Fixes the type of `$var` slots the checker left `unknown` (a slot whose
/// first assignment reads the slot itself, `$var(n) = $var(n) + 1`): the
/// type of the first assigned value whose type can be inferred; `str` when
/// none can.
pub(crate) fn resolve_var_types(prog: &CheckedProgram) -> CheckedProgram {
    use crate::sema::builtins::Ty;
    use crate::sema::ir::{Expr, ExprKind, Place, Stmt};
    fn infer(p: &CheckedProgram, e: &Expr) -> Ty {
        match &e.kind {
            _ if e.ty != Ty::Unknown => e.ty,
            ExprKind::MsgVar(i) => p.msg_vars.get(*i as usize).map_or(Ty::Unknown, |v| v.ty),
            ExprKind::Binary { lhs, rhs, .. } => match infer(p, lhs) {
                Ty::Unknown => infer(p, rhs),
                t => t,
            },
            ExprKind::Unary { expr, .. } => infer(p, expr),
            _ => Ty::Unknown,
        }
    }
    fn walk(p: &CheckedProgram, body: &[Stmt], found: &mut Vec<Ty>) {
        for s in body {
            match s {
                Stmt::Assign { target: Place::MsgVar(i), value } => {
                    let slot = &mut found[*i as usize];
                    if *slot == Ty::Unknown {
                        *slot = infer(p, value);
                    }
                }
                Stmt::If { then_body, else_body, .. } => {
                    walk(p, then_body, found);
                    walk(p, else_body, found);
                }
                Stmt::Switch { cases, default, .. } => {
                    for (_, b) in cases {
                        walk(p, b, found);
                    }
                    if let Some(d) = default {
                        walk(p, d, found);
                    }
                }
                Stmt::While { body, .. } => walk(p, body, found),
                _ => {}
            }
        }
    }
    let mut out = prog.clone();
    if out.msg_vars.iter().all(|v| v.ty != Ty::Unknown) {
        return out;
    }
    let mut found: Vec<Ty> = out.msg_vars.iter().map(|v| v.ty).collect();
    for r in &prog.routes {
        walk(prog, &r.body, &mut found);
    }
    for (v, t) in out.msg_vars.iter_mut().zip(found) {
        v.ty = if t == Ty::Unknown { Ty::Str } else { t };
    }
    out
}

/// The type of an expression for code generation. A `$var` read is typed by
/// its slot: the checker fixes the slot's type at its first assignment,
/// which may come after (in checking order) a read still typed `unknown`.
pub(crate) fn expr_ty(
    prog: &CheckedProgram,
    e: &crate::sema::ir::Expr,
) -> crate::sema::builtins::Ty {
    match e.kind {
        crate::sema::ir::ExprKind::MsgVar(i) => {
            prog.msg_vars.get(i as usize).map_or(e.ty, |v| v.ty)
        }
        _ => e.ty,
    }
}

/// The catalog indices of every builtin function the program calls.
pub fn called_builtins(prog: &CheckedProgram) -> std::collections::BTreeSet<usize> {
    prog.called_builtins()
}

/// Builtins the program calls whose behaviour lands later (see
/// [`crate::runtime`]): `(name, what brings it)`.
pub fn not_yet_available(prog: &CheckedProgram) -> Vec<(&'static str, &'static str)> {
    use crate::runtime::builtins::LATER;
    called_builtins(prog)
        .into_iter()
        .filter_map(|i| {
            let name = crate::sema::builtins::FUNCTIONS[i].name;
            LATER.iter().find(|(n, _)| *n == name).copied()
        })
        .collect()
}
