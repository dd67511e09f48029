//! A compiled program: native route code, its constant pool and runtime
//! tables, ready to route requests.

use std::sync::Arc;

use crate::proxy::router::RouteId;
use crate::proxy::{Decision, LocalIdentity, RequestContext, Router};
use crate::runtime::{RouteCtx, Shared};
use crate::sema::ir::{CheckedProgram, Listen};

use super::CompileError;
use super::jit::JitCode;

/// A compiled route program.
///
/// It owns its `JITModule` (inside [`JitCode`]) and the constant pool the
/// code refers to by handle; the JIT memory is freed when the `Program` is
/// dropped, i.e. when the last `Arc` holding it goes away.
///
/// `Program` is `Send + Sync` without any `unsafe impl`: the compiled code
/// is immutable after `finalize_definitions` and only read (executed);
/// entry points are stored as plain addresses; the module itself sits in a
/// `Mutex` touched only on drop; the constant pool, regexes and tables are
/// read-only; the one mutable piece, "who is myself", is an `RwLock`. All
/// per-message state lives in a [`RouteCtx`] created on the routing thread's
/// stack for each message, so concurrent messages share nothing mutable.
#[derive(Debug)]
pub struct Program {
    shared: Shared,
    code: JitCode,
    request_route: Option<usize>,
    reply_route: Option<u32>,
    /// The kind of each route, by `RouteId`, to refuse hooks of the wrong kind.
    kinds: Vec<crate::syntax::ast::RouteKind>,
    listens: Vec<Listen>,
    domains: Vec<String>,
    /// `event_route "NAME"` routes, by event name.
    events: Vec<(String, u32)>,
    /// Run times of each top-level route, by `RouteId` (`None` for `route
    /// NAME` subroutines, which run inside another route's time); empty
    /// without `module metrics`, when nobody would read them and the clock
    /// is not read at all.
    times: Vec<Option<Arc<crate::metrics::route_time::RouteTime>>>,
}

impl Program {
    pub fn compile(prog: &CheckedProgram) -> Result<Program, CompileError> {
        Self::compile_with(prog, false)
    }

    /// Compiles `prog` with every statement instrumented: run on a request
    /// that carries a [`Trace`](crate::runtime::trace::Trace), its routes
    /// record what they do (coverage, `sipc trace`); on any other request
    /// they behave as the plain program's, a little slower.
    pub fn compile_instrumented(prog: &CheckedProgram) -> Result<Program, CompileError> {
        Self::compile_with(prog, true)
    }

    fn compile_with(prog: &CheckedProgram, instrument: bool) -> Result<Program, CompileError> {
        let prog = &super::resolve_var_types(prog);
        let mut shared = Shared::new(prog).map_err(CompileError)?;
        let code = JitCode::compile_keeping_ir(prog, &mut shared, None, instrument)?;
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Program {
            shared,
            code,
            request_route: prog.request_route.map(|r| r as usize),
            reply_route: prog.reply_route,
            kinds: prog.routes.iter().map(|r| r.kind).collect(),
            listens: prog.listens.clone(),
            domains: prog.domains.clone(),
            events: prog
                .routes
                .iter()
                .enumerate()
                .filter(|(_, r)| r.kind == crate::syntax::ast::RouteKind::Event)
                .map(|(i, r)| (r.name.clone(), i as u32))
                .collect(),
            times: prog
                .routes
                .iter()
                .filter(|_| prog.settings.iter().any(|s| s.module == "metrics"))
                .map(|r| {
                    use crate::syntax::ast::RouteKind;
                    let label = match r.kind {
                        RouteKind::Sub => return None,
                        RouteKind::Request | RouteKind::Reply => r.kind.keyword().to_owned(),
                        _ => format!("{} {}", r.kind.keyword(), r.name),
                    };
                    Some(crate::metrics::route_time::for_route(&label))
                })
                .collect(),
        })
    }

    /// The Cranelift IR of every route, in `RouteId` order (`sipc dump clif`).
    pub fn clif(prog: &CheckedProgram) -> Result<Vec<String>, CompileError> {
        let prog = &super::resolve_var_types(prog);
        let mut shared = Shared::new(prog).map_err(CompileError)?;
        let mut ir = Vec::new();
        // The compiled code is dropped (and its memory freed) right away.
        JitCode::compile_keeping_ir(prog, &mut shared, Some(&mut ir), false)?;
        Ok(ir)
    }

    /// The statements of an instrumented program, by the mark index its
    /// trace events name (empty for a plain program).
    pub fn marks(&self) -> &[crate::runtime::trace::Mark] {
        &self.shared.marks
    }

    /// The `listen` items.
    pub fn listens(&self) -> &[Listen] {
        &self.listens
    }

    /// The `domain`/`alias` names.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Sets the addresses and names `is_myself` answers to (after binding,
    /// when configured ports were 0).
    pub fn set_local(&self, local: LocalIdentity) {
        self.shared.set_local(local);
    }

    /// Registers this program's trunks with the long-lived trunk registry
    /// and starts health probing, at load time rather than on the first
    /// request (call from within the tokio runtime).
    pub fn attach(&self, services: &crate::proxy::services::Services) {
        if !self.shared.routing.is_empty() {
            self.shared.routing.states(Some(&services.trunks));
        }
        for (spec, cell) in &self.shared.limits {
            let _ = cell.set(services.limits.register(spec));
        }
        services
            .bans
            .set_blocklists(self.shared.acls.iter().filter(|a| a.block).cloned().collect());
    }

    /// Makes this program's `event_route "tm:local-request"` see each
    /// request sipc originates (trunk probes, NAT keepalive OPTIONS), until
    /// another program installs itself.
    pub fn install_events(self: &Arc<Self>, services: &crate::proxy::services::Services) {
        let me: Arc<dyn crate::routing::health::LocalRequest> = Arc::clone(self) as _;
        services.trunks.set_local_request(Arc::downgrade(&me));
    }

    /// The route of event `name`, if the program has one.
    pub fn event_route(&self, name: &str) -> Option<RouteId> {
        self.events.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
    }

    /// Runs the route of event `name` on `req`; `None` when there is none.
    pub fn run_event(&self, name: &str, req: &mut RequestContext) -> Option<Decision> {
        self.event_route(name).map(|r| self.run_route(r, req))
    }

    /// Runs `event_route "core:worker-one-init"`, once at startup, on a
    /// stand-in OPTIONS (as Kamailio does for its event routes), with the
    /// server's long-lived services (trunk health, location …).
    pub fn run_startup(
        &self,
        services: &Arc<crate::proxy::services::Services>,
    ) -> Option<Decision> {
        let route = self.event_route("core:worker-one-init")?;
        let local = self.shared.local().sockets().first().copied();
        let local = local.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 5060)));
        let text = format!(
            "OPTIONS sip:sipc@{local} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sipc-startup\r\n\
             Max-Forwards: 70\r\nFrom: <sip:sipc@{local}>;tag=startup\r\nTo: <sip:sipc@{local}>\r\n\
             Call-ID: startup@sipc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = crate::sip::Message::parse(bytes::Bytes::from(text)).ok()?;
        let mut req = RequestContext::new(
            crate::sip::EditedMessage::new(msg),
            local,
            crate::proxy::Transport::Udp,
        );
        req.services = Some(Arc::clone(services));
        Some(self.run_route(route, &mut req))
    }

    /// Runs `request_route` on one request with a fresh context.
    pub fn run(&self, req: &mut RequestContext) -> Decision {
        let Some(route) = self.request_route else { return Decision::Drop };
        crate::routing::probe::note_request(&self.shared.routing, req);
        let started = self.timed().then(std::time::Instant::now);
        let mut ctx = RouteCtx::new(req, &self.shared);
        let result = self.code.call(route, &mut ctx);
        self.took(route, started);
        ctx.finish(result)
    }

    /// Whether route run times are kept (`module metrics`).
    fn timed(&self) -> bool {
        !self.times.is_empty()
    }

    fn took(&self, route: usize, started: Option<std::time::Instant>) {
        if let (Some(Some(t)), Some(started)) = (self.times.get(route), started) {
            t.observe(started.elapsed());
        }
    }

    /// Runs route `route` as a predicate on `req` (the condition of `sipc
    /// trace --where`): true when it returns true. It leaves the request's
    /// transaction scope and trace as they were; its runtime functions are
    /// read-only ones (the caller checks).
    pub fn test_route(&self, route: RouteId, req: &mut RequestContext) -> bool {
        let avps = std::mem::take(&mut req.txn.avps);
        let trace = req.trace.take();
        let mut ctx = RouteCtx::new(req, &self.shared);
        let result = self.code.call(route as usize, &mut ctx);
        let ok = !ctx.failed && result == crate::runtime::RESULT_TRUE;
        drop(ctx);
        req.txn.avps = avps;
        req.trace = trace;
        ok
    }

    /// Runs route `route` (a hook the transaction layer calls) on `req`.
    /// A route that ends without deciding passes the reply on (reply,
    /// onreply and branch routes: `Forward`) or lets the failure handling
    /// send the best reply upstream (failure routes: `Drop`).
    pub fn run_route(&self, route: RouteId, req: &mut RequestContext) -> Decision {
        use crate::syntax::ast::RouteKind;
        match self.kinds.get(route as usize) {
            Some(
                RouteKind::Failure
                | RouteKind::OnReply
                | RouteKind::Reply
                | RouteKind::Branch
                | RouteKind::Event,
            ) => {}
            _ => return Decision::Forward,
        }
        let kind = self.kinds.get(route as usize).copied().unwrap_or(RouteKind::Sub);
        let failure = kind == RouteKind::Failure;
        let started = self.timed().then(std::time::Instant::now);
        let mut ctx = RouteCtx::new(req, &self.shared);
        ctx.kind = crate::sema::builtins::Kinds::of(kind);
        let result = self.code.call(route as usize, &mut ctx);
        self.took(route as usize, started);
        if result != crate::runtime::RESULT_DROP && ctx.decision.is_none() && !ctx.failed {
            // A failure route that relays nothing again lets the best
            // reply go upstream (`Drop` there); `Forward` would send the
            // request out once more.
            ctx.decision = Some(if failure { Decision::Drop } else { Decision::Forward });
        }
        ctx.finish(result)
    }
}

/// Programs alive in this process (a reload test watches it return to its
/// baseline: no generation leaks).
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Program {
    /// How many compiled programs are alive.
    pub fn live() -> usize {
        LIVE.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl crate::routing::health::LocalRequest for Program {
    fn local_request(&self, msg: String) -> Option<String> {
        let Some(route) = self.event_route("tm:local-request") else { return Some(msg) };
        let Ok(parsed) = crate::sip::Message::parse(bytes::Bytes::from(msg.clone())) else {
            return Some(msg);
        };
        let local = self.shared.local().sockets().first().copied();
        let source = local.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut req = RequestContext::new(
            crate::sip::EditedMessage::new(parsed),
            source,
            crate::proxy::Transport::Udp,
        );
        match self.run_route(route, &mut req) {
            Decision::Drop => None,
            _ => Some(String::from_utf8_lossy(&req.msg.serialize()).into_owned()),
        }
    }
}

impl Router for Program {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        self.run(ctx)
    }

    fn run_hook(&self, route: RouteId, ctx: &mut RequestContext) -> Decision {
        self.run_route(route, ctx)
    }

    fn reply_route(&self) -> Option<RouteId> {
        self.reply_route
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn program_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Program>();
    }
}
