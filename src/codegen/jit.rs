//! The native side: building a `JITModule` from a checked program, calling
//! its route functions, and freeing its memory.
//!
//! This is one of the two modules allowed `unsafe` (the other is
//! [`crate::runtime::abi`]): calling JIT-compiled code through a function
//! pointer and releasing the code memory cannot be expressed safely.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::Mutex;

use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

use super::CompileError;
use super::lower::{FnLower, Imports, signature};
use crate::runtime::abi::{self, RUNTIME};
use crate::runtime::{RouteCtx, Shared};
use crate::sema::ir::CheckedProgram;

/// Compiled route functions and the module that owns their memory.
pub struct JitCode {
    /// `Some` until dropped; behind a mutex only so that `JitCode` is `Sync`
    /// without an `unsafe impl` (it is never locked while routes run).
    module: Mutex<Option<JITModule>>,
    /// Entry address of each route, indexed by `RouteId`.
    entries: Vec<usize>,
}

impl std::fmt::Debug for JitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitCode").field("routes", &self.entries.len()).finish_non_exhaustive()
    }
}

fn err(what: &str) -> impl Fn(cranelift_module::ModuleError) -> CompileError + '_ {
    move |e| CompileError(format!("{what}: {e:?}"))
}

impl JitCode {
    /// Compiles every route of `prog`; string constants are interned into
    /// `shared`. With `ir`, each route's Cranelift IR (as lowered, before
    /// optimisation) is pushed onto it, in `RouteId` order; with
    /// `instrument`, the routes record what they do
    /// ([`crate::runtime::trace`]).
    pub fn compile_keeping_ir(
        prog: &CheckedProgram,
        shared: &mut Shared,
        mut ir: Option<&mut Vec<String>>,
        instrument: bool,
    ) -> Result<JitCode, CompileError> {
        let bad = abi::check_catalog();
        if !bad.is_empty() {
            return Err(CompileError(bad.join("; ")));
        }
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v).map_err(|e| CompileError(format!("cranelift flag {k}: {e}")))
        };
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "opt_level", "speed")?;
        let isa = cranelift_native::builder()
            .map_err(|e| CompileError(format!("host not supported: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| CompileError(format!("cranelift isa: {e}")))?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        for e in RUNTIME {
            builder.symbol(e.symbol, e.native.addr());
        }
        // The builder would fall back to `dlsym` (the process and libc) for
        // a name missing from this table; that can never happen because
        // every import is checked against the table before
        // `finalize_definitions` below, so a missing or mistyped symbol is
        // a compile error, never a silent libc fallback.
        let mut module = JITModule::new(builder);
        let guard_calls = super::depth::max_call_depth(prog) > crate::runtime::MAX_DEPTH as usize;

        let route_sig = signature(&module, 0);
        let mut ids = Vec::with_capacity(prog.routes.len());
        for (i, _) in prog.routes.iter().enumerate() {
            let id = module
                .declare_function(&format!("route_{i}"), Linkage::Local, &route_sig)
                .map_err(err("declare route"))?;
            ids.push(id);
        }
        let mut imports = Imports::default();
        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        for (i, id) in ids.iter().enumerate() {
            ctx.func.signature = route_sig.clone();
            ctx.func.name = UserFuncName::user(0, id.as_u32());
            let b = cranelift_frontend::FunctionBuilder::new(&mut ctx.func, &mut fctx);
            FnLower::route(
                b,
                &mut module,
                &mut imports,
                shared,
                prog,
                &ids,
                i as u32,
                guard_calls,
                instrument,
            )?;
            if let Some(ir) = ir.as_deref_mut() {
                ir.push(ctx.func.display().to_string());
            }
            module.define_function(*id, &mut ctx).map_err(err("define route"))?;
            module.clear_context(&mut ctx);
        }
        // Every import must be a runtime function with the arity it was
        // declared with: a missing or mistyped symbol is an error here.
        for (_, decl) in module.declarations().get_functions() {
            if decl.linkage != Linkage::Import {
                continue;
            }
            let name = decl.name.as_deref().unwrap_or("");
            match abi::lookup(name) {
                Some(e) if decl.signature.params.len() == e.native.arity() + 1 => {}
                Some(_) => {
                    return Err(CompileError(format!("import `{name}` has the wrong arity")));
                }
                None => {
                    return Err(CompileError(format!("import `{name}` is not a runtime function")));
                }
            }
        }
        module.finalize_definitions().map_err(err("finalize"))?;
        let entries = ids.iter().map(|id| module.get_finalized_function(*id) as usize).collect();
        Ok(JitCode { module: Mutex::new(Some(module)), entries })
    }

    /// Runs route `route` on `ctx` and returns its encoded result.
    pub fn call(&self, route: usize, ctx: &mut RouteCtx<'_>) -> i64 {
        let addr = self.entries[route];
        // SAFETY: `addr` is the finalized entry of a function this module
        // compiled with the signature `(ptr) -> i64` in the host's default
        // (C) calling convention; the code stays mapped until `self` drops,
        // and `self` is borrowed for the whole call.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(*mut c_void) -> i64>(addr) };
        f((ctx as *mut RouteCtx<'_>).cast::<c_void>())
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        let module = self.module.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(m) = module {
            // SAFETY: `drop` has `&mut self`, so no `call` is running and the
            // entry addresses, which live only in `self`, die with it.
            unsafe { m.free_memory() };
        }
    }
}
