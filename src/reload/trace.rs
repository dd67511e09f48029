//! `sipc trace` on the proxy side: while a trace runs, the core routes
//! with a [`Tracing`] router. Messages that match the trace's filter run
//! an instrumented build of the serving config and their traces (each
//! statement run, the values it read, conditions, values written, the
//! decision) stream to the client; every other message runs the serving
//! program, as without a trace. When the client goes, the serving program
//! is put back; a reload ends the trace (its statements would no longer be
//! the code that runs).
//!
//! The filter is a Call-ID, a condition in the route language
//! (`$fU == "alice" && is_method("INVITE")`), or both. The condition is
//! checked against the config (types, names) and may only read: it is
//! compiled as one more route of the instrumented build and called as a
//! predicate on each message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::codegen::Program;
use crate::proxy::router::RouteId;
use crate::proxy::{Decision, RequestContext, Router};
use crate::runtime::trace;
use crate::sema::builtins::FUNCTIONS;
use crate::sema::ir::{CheckedProgram, ExprKind};
use crate::syntax::span::SourceMap;

/// What to trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TraceSpec {
    /// Only messages with this Call-ID.
    pub call_id: Option<String>,
    /// Only messages for which this condition (route language) holds.
    pub condition: Option<String>,
}

/// The name of the route a trace condition is compiled into.
const FILTER_ROUTE: &str = "sipc_trace_filter";

/// Builtins a trace condition may call: they only read the message or
/// state, never change what the proxy does.
const READ_ONLY: &[&str] = &[
    "is_method",
    "is_myself",
    "has_to_tag",
    "is_present_hf",
    "str_len",
    "str_lower",
    "str_upper",
    "str_substr",
    "str_contains",
    "str_starts_with",
    "to_str",
    "to_int",
    "isflagset",
    "table_get",
    "table_has",
    "trunk_is_up",
    "registered",
    "t_check_status",
    "t_is_set",
    "t_is_branch_route",
    "is_request",
    "is_reply",
    "is_first_hop",
    "nat_uac_test",
];

/// The serving config compiled for tracing.
#[derive(Debug)]
pub struct TracedBuild {
    pub program: Program,
    pub checked: CheckedProgram,
    pub sources: SourceMap,
    filter: Option<RouteId>,
}

/// Builds the instrumented program for `spec` from the config on disk,
/// which must be what is serving (`serving_hash`).
pub fn build_traced(
    path: &std::path::Path,
    opts: &crate::sema::Options,
    spec: &TraceSpec,
    serving_hash: u64,
) -> Result<TracedBuild, String> {
    let plain = super::build(path, opts).map_err(|f| {
        format!("the config on disk does not build; fix it and reload first:\n{}", f.diagnostics)
    })?;
    if plain.hash != serving_hash {
        return Err("the config files changed since the serving generation was loaded; \
                    reload (`sipc reload`) and trace again"
            .into());
    }
    let Some(cond) = spec.condition.as_deref() else {
        let program = Program::compile_instrumented(&plain.checked).map_err(|e| e.to_string())?;
        return Ok(TracedBuild {
            program,
            checked: plain.checked,
            sources: plain.sources,
            filter: None,
        });
    };
    let name = path.to_string_lossy().into_owned();
    let mut text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    text.push_str(&format!("\nroute {FILTER_ROUTE} {{\n    return {cond};\n}}\n"));
    let out = crate::sema::check_with_loader(&name, path, text, &crate::sema::FsLoader, opts);
    if out.errors() > 0 {
        return Err(format!(
            "the trace condition `{cond}` does not check:\n{}",
            crate::cli::check::render_plain(&out)
        ));
    }
    let id = out
        .program
        .routes
        .iter()
        .position(|r| r.name == FILTER_ROUTE)
        .ok_or("the trace condition was not compiled")? as RouteId;
    // The hooks a transaction armed are route indices of whichever build
    // ran its request: both builds must number their routes alike.
    let same = plain.checked.routes.len() + 1 == out.program.routes.len()
        && plain
            .checked
            .routes
            .iter()
            .zip(&out.program.routes)
            .all(|(a, b)| a.name == b.name && a.kind == b.kind);
    if !same {
        return Err(
            "the trace condition changes the config's routes; use a plain expression".into()
        );
    }
    let mut bad = None;
    crate::sema::ir::visit_exprs(&out.program.routes[id as usize].body, &mut |e| match &e.kind {
        ExprKind::Call { func, .. } if !READ_ONLY.contains(&FUNCTIONS[*func].name) => {
            bad.get_or_insert(format!("`{}()`", FUNCTIONS[*func].name));
        }
        ExprKind::CallRoute(_) => {
            bad.get_or_insert("`route(…)`".to_owned());
        }
        _ => {}
    });
    if let Some(call) = bad {
        return Err(format!(
            "a trace condition may only read; {call} may change what the proxy does \
             (allowed calls: {})",
            READ_ONLY.join(", ")
        ));
    }
    let program = Program::compile_instrumented(&out.program).map_err(|e| e.to_string())?;
    Ok(TracedBuild { program, checked: out.program, sources: out.sources, filter: Some(id) })
}

/// The router installed while a trace runs.
pub struct Tracing {
    /// The router that was serving (messages that do not match).
    pub plain: Arc<dyn Router>,
    build: TracedBuild,
    call_id: Option<String>,
    tx: mpsc::Sender<String>,
    /// Traces not delivered because the client reads too slowly.
    pub dropped: AtomicU64,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").field("call_id", &self.call_id).finish_non_exhaustive()
    }
}

impl Tracing {
    pub fn new(
        plain: Arc<dyn Router>,
        build: TracedBuild,
        spec: &TraceSpec,
        tx: mpsc::Sender<String>,
    ) -> Self {
        Tracing { plain, build, call_id: spec.call_id.clone(), tx, dropped: AtomicU64::new(0) }
    }

    fn matches(&self, ctx: &mut RequestContext) -> bool {
        if let Some(id) = &self.call_id
            && ctx.msg.original().call_id().ok().flatten() != Some(id.as_str())
        {
            return false;
        }
        match self.build.filter {
            Some(route) => self.build.program.test_route(route, ctx),
            None => true,
        }
    }

    /// Sends one message's trace to the client (never waits: a full queue
    /// drops it, counted).
    fn emit(&self, what: &str, ctx: &mut RequestContext, decision: &Decision) {
        let events = ctx.trace.take().map(|t| t.events).unwrap_or_default();
        let msg = ctx.msg.original();
        let first = msg.head().lines().next().unwrap_or("").to_owned();
        let call_id = msg.call_id().ok().flatten().unwrap_or("").to_owned();
        let mut text = format!(
            "=== {what}: {first} from {}:{} (Call-ID {call_id})\n",
            ctx.transport.via_token().to_ascii_lowercase(),
            ctx.source
        );
        for line in trace::render(
            &events,
            self.build.program.marks(),
            &self.build.checked,
            &self.build.sources,
        ) {
            text.push_str(&line);
            text.push('\n');
        }
        let decided = match decision {
            Decision::Relay => "relay".to_owned(),
            Decision::Forward => "forward".to_owned(),
            Decision::Reply { code, reason } => format!("reply {code} {}", &**reason),
            Decision::Drop => "drop".to_owned(),
        };
        text.push_str(&format!("=> {decided}\n"));
        if self.tx.try_send(text).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Router for Tracing {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        if !self.matches(ctx) {
            return self.plain.route_request(ctx);
        }
        ctx.trace = Some(Box::default());
        let d = self.build.program.route_request(ctx);
        self.emit("request", ctx, &d);
        d
    }

    fn run_hook(&self, route: RouteId, ctx: &mut RequestContext) -> Decision {
        if !self.matches(ctx) {
            return self.plain.run_hook(route, ctx);
        }
        ctx.trace = Some(Box::default());
        let d = self.build.program.run_hook(route, ctx);
        let what = if ctx.msg.original().is_request() { "hook" } else { "reply" };
        self.emit(what, ctx, &d);
        d
    }

    fn reply_route(&self) -> Option<RouteId> {
        self.plain.reply_route()
    }
}

/// A running trace: the router installed, the one it replaced, and the
/// traces to send.
pub struct Session {
    ours: Arc<dyn Router>,
    plain: Arc<dyn Router>,
    pub rx: mpsc::Receiver<String>,
    /// The generation traced; a reload ends the trace.
    pub generation: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("generation", &self.generation).finish_non_exhaustive()
    }
}

/// Are `a` and `b` the same router object?
fn same(a: &Arc<dyn Router>, b: &Arc<dyn Router>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Starts a trace: builds the instrumented program and installs the
/// tracing router (one trace at a time).
pub async fn start(reloader: &super::Reloader, spec: TraceSpec) -> Result<Session, String> {
    let _no_reload = reloader.exclusive().await;
    if reloader.trace_active.swap(true, Ordering::SeqCst) {
        return Err("a trace is already running on this proxy; one at a time".into());
    }
    let (path, opts, hash) =
        (reloader.path().to_path_buf(), reloader.options().clone(), reloader.hash());
    let spec2 = spec.clone();
    let built = tokio::task::spawn_blocking(move || build_traced(&path, &opts, &spec2, hash))
        .await
        .map_err(|e| format!("the compiler thread failed: {e}"))
        .and_then(|r| r);
    let build = match built {
        Ok(b) => b,
        Err(e) => {
            reloader.trace_active.store(false, Ordering::SeqCst);
            return Err(e);
        }
    };
    let core = reloader.core();
    build.program.set_local(core.local.clone());
    build.program.attach(core.services());
    let (tx, rx) = mpsc::channel(256);
    let plain = core.current_router();
    let ours: Arc<dyn Router> = Arc::new(Tracing::new(Arc::clone(&plain), build, &spec, tx));
    core.set_router(Arc::clone(&ours));
    Ok(Session { ours, plain, rx, generation: reloader.generation() })
}

/// Ends a trace: the serving program routes every message again (unless a
/// reload already replaced the tracing router).
pub async fn stop(reloader: &super::Reloader, session: Session) {
    let _no_reload = reloader.exclusive().await;
    let core = reloader.core();
    if same(&core.current_router(), &session.ours) {
        core.set_router(session.plain);
    }
    reloader.trace_active.store(false, Ordering::SeqCst);
}
