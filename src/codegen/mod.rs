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
//! and returns at once when the callee ended with exit or drop.
//!
//! Values are `i64`s as described in [`crate::runtime`]. Semantics chosen
//! where docs/language.md is silent: string `==`/`!=` compare bytes (case
//! sensitive; use `str_lower` for a case-insensitive test); int arithmetic
//! wraps on overflow (`+ - *`, unary `-`); `x / 0` and `x % 0` are 0, and
//! `i64::MIN / -1` wraps to `i64::MIN`; a `while` loop that reaches
//! `max_while_loops` iterations is left (with a warning logged), as if by
//! `break`. `$var`s, `$match` captures and flags are per message; `$avp`s
//! are per message too until the transaction layer lands.

mod jit;
mod lower;
pub mod eval;
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
