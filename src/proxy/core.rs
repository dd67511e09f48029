//! The proxy core: one received message in, at most one message out.
//!
//! [`Core::process`] is the whole stateless proxy (RFC 3261 §16.11): parse,
//! validate (400/505/513 with the fault named), `received`/`rport`, the §16.3
//! checks, route preprocessing, the [`Router`]'s decision, the forwarding
//! edits, and response routing by Via. It is synchronous and returns an
//! [`Outgoing`]; [`Core::handle`] sends it. Messages that cannot be answered
//! are dropped and counted in [`Stats`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::dispatch::Dispatcher;
use super::request::{
    Forward, HopHeaders, Reject, apply_received, check_request, next_hop, prepare_forward,
    preprocess_routes,
};
use super::resolve::{self, Dns};
use super::response::{build_response, next_hop_for_response, strip_own_via};
use super::router::{Decision, RequestContext, Router};
use super::services::Services;
use super::stateful::{Matched, TxnConfig, TxnLayer, TxnRef};
use super::topology;
use super::transport::{Inbound, Outbound, Transport};
use super::{LocalIdentity, NextHop};
use crate::registrar::natping;
use crate::sip::{EditedMessage, HeaderName, Message, ParseLimits};

/// Counters, readable while the proxy runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub forwarded_requests: AtomicU64,
    pub forwarded_responses: AtomicU64,
    pub replied: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_stray: AtomicU64,
    pub dropped_by_route: AtomicU64,
    /// Messages refused for overload (requests got 503): every routing
    /// queue was full, or the datagram waited too long in its socket.
    pub dropped_overload: AtomicU64,
    pub send_errors: AtomicU64,
    /// Transactions created by `relay()`.
    pub transactions: AtomicU64,
    /// Request retransmissions absorbed by a transaction.
    pub absorbed: AtomicU64,
    /// Requests received, by [`crate::sip::Method`] (`Method as usize`).
    pub requests_by_method: [AtomicU64; METHODS],
    /// Replies received, by class (1xx … 6xx).
    pub replies_by_class: [AtomicU64; 6],
}

/// How many [`crate::sip::Method`] variants there are.
pub const METHODS: usize = crate::sip::Method::Extension as usize + 1;

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub transport: Transport,
    pub peer: SocketAddr,
    pub data: Bytes,
    /// The transaction and branch this request starts, told when sending fails.
    pub branch: Option<(u64, u32)>,
    /// Over TCP or TLS, send only on a connection that is already open
    /// (`set_reply_no_connect()`); never open one for this message.
    pub no_connect: bool,
    /// A copy goes to the HEP collector, if there is one (a route's
    /// `hep_capture(false)` clears it for what its request sends).
    pub capture: bool,
}

impl Outgoing {
    pub fn new(transport: Transport, peer: SocketAddr, data: Bytes) -> Self {
        Outgoing { transport, peer, data, branch: None, no_connect: false, capture: true }
    }
}

/// `step` with none of its messages captured (`hep_capture(false)`).
fn uncaptured(step: Step) -> Step {
    match step {
        Step::Send(out) => Step::Send(Outgoing { capture: false, ..out }),
        Step::Batch(steps) => Step::Batch(steps.into_iter().map(uncaptured).collect()),
        other => other,
    }
}

/// The Call-ID of a message about to be sent (for the HEP correlation
/// id): the value of its first `Call-ID` (or compact `i`) header line.
///
/// One pass over the header lines, stopping at the blank line; a line is
/// looked at only when it starts as one of the two names can (this runs
/// for every message sent while capture is on).
fn call_id_of(data: &[u8]) -> Option<&str> {
    let mut rest = data;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        match line.first() {
            None | Some(b'\r') => return None, // the end of the header
            Some(b'C' | b'c' | b'I' | b'i') => {}
            Some(_) => continue,
        }
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            return std::str::from_utf8(line[colon + 1..].trim_ascii()).ok();
        }
    }
    None
}

/// What processing a message leads to.
#[derive(Debug)]
pub enum Step {
    /// Send this now.
    Send(Outgoing),
    /// The next hop is a host name: resolve it (RFC 3263), then continue.
    Resolve(Pending),
    /// Several of the above, in order.
    Batch(Vec<Step>),
}

/// The UDP datagrams of one batch (two, for a relayed INVITE: its 100
/// Trying and the request), kept off the heap.
type Datagrams = smallvec::SmallVec<[Outgoing; 4]>;

/// Work waiting for name resolution.
#[derive(Debug)]
pub struct Pending {
    pub hop: NextHop,
    then: Then,
}

#[derive(Debug)]
enum Then {
    Forward(Box<RequestContext>, Inbound),
    Response(Bytes),
    /// A stateful branch of a transaction.
    Branch {
        txn: TxnRef,
        edit: Box<EditedMessage>,
        destination: Option<String>,
    },
}

/// The swappable cell holding the router (`ArcSwap` needs a sized type).
struct RouterSlot(Arc<dyn Router>);

/// Proxy-Require options this proxy supports (none yet: every option in
/// Proxy-Require is answered 420, RFC 3261 §16.3 step 5).
const SUPPORTED: &[&str] = &[];

/// The proxy core; see the module docs.
pub struct Core {
    pub local: LocalIdentity,
    pub limits: ParseLimits,
    pub stats: Stats,
    /// The current routing program; a reload swaps it (see [`Core::set_router`]).
    router: ArcSwap<RouterSlot>,
    outbound: Arc<Outbound>,
    pub(super) txn: TxnLayer,
    services: Arc<Services>,
    dispatcher: OnceLock<Dispatcher>,
    sink: OnceLock<Arc<dyn Fn(Bytes, Inbound) + Send + Sync>>,
    dns: OnceLock<Arc<dyn Dns>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Core {
    pub fn new(
        local: LocalIdentity,
        limits: ParseLimits,
        router: Arc<dyn Router>,
        outbound: Arc<Outbound>,
        txn: TxnConfig,
    ) -> Self {
        Self {
            local,
            limits,
            stats: Stats::default(),
            router: ArcSwap::from_pointee(RouterSlot(router)),
            outbound,
            txn: TxnLayer::new(txn),
            services: Arc::new(Services::default()),
            dispatcher: OnceLock::new(),
            sink: OnceLock::new(),
            dns: OnceLock::new(),
        }
    }

    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// Processes one message and sends the result.
    pub async fn handle(self: &Arc<Self>, data: Bytes, inbound: Inbound) {
        if let Some(step) = self.process(data, inbound) {
            self.run_step(step).await;
        }
    }

    /// Sends what a step says to send, in order; name resolution runs on a
    /// task of its own (it can take seconds) so the worker's queue keeps
    /// moving.
    pub async fn run_step(self: &Arc<Self>, step: Step) {
        let mut todo = vec![step];
        while let Some(step) = todo.pop() {
            match step {
                Step::Send(out) => self.send(out).await,
                Step::Resolve(p) => {
                    let core = Arc::clone(self);
                    tokio::spawn(async move { core.resolve_then_send(p).await });
                }
                Step::Batch(steps) => todo.extend(steps.into_iter().rev()),
            }
        }
    }

    async fn resolve_then_send(self: Arc<Self>, p: Pending) {
        let Some(dns) = self.dns.get() else { return };
        let targets = resolve::resolve(dns.as_ref(), &p.hop).await;
        let first = targets.first().map(|t| (t.transport, t.addr));
        let next = match (p.then, first) {
            (Then::Branch { txn, edit, destination }, target) => {
                self.branch_resolved(&txn, *edit, destination, &p.hop, target)
            }
            (Then::Forward(ctx, inbound), Some(t)) => self.forward(*ctx, inbound, Some(t)),
            (Then::Forward(ctx, inbound), None) => {
                self.reject_request(&ctx, inbound, CANNOT_RESOLVE)
            }
            (Then::Response(data), Some((transport, peer))) => {
                bump(&self.stats.forwarded_responses);
                Some(Step::Send(Outgoing::new(transport, peer, data)))
            }
            (Then::Response(_), None) => {
                bump(&self.stats.dropped_stray);
                None
            }
        };
        if let Some(step) = next {
            Arc::clone(&self).run_step_boxed(step).await;
        }
    }

    /// [`Core::run_step`] as a boxed `Send` future: resolution and send
    /// errors lead to more steps, and the box cuts that cycle of futures.
    fn run_step_boxed(
        self: Arc<Self>,
        step: Step,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.run_step(step).await })
    }

    /// Starts name resolution for a stateful branch.
    pub(super) fn resolve_branch(
        &self,
        hop: NextHop,
        txn: TxnRef,
        edit: EditedMessage,
        destination: Option<String>,
    ) -> Step {
        Step::Resolve(Pending {
            hop,
            then: Then::Branch { txn, edit: Box::new(edit), destination },
        })
    }

    pub(super) fn has_dns(&self) -> bool {
        self.dns.get().is_some()
    }

    /// The router new messages are routed by.
    pub fn current_router(&self) -> Arc<dyn Router> {
        Arc::clone(&self.router.load().0)
    }

    /// Routes every message from now on with `router`. Messages being
    /// routed finish on the router they loaded; transactions keep theirs.
    pub fn set_router(&self, router: Arc<dyn Router>) {
        self.router.store(Arc::new(RouterSlot(router)));
    }

    pub(super) fn count_absorbed(&self) {
        bump(&self.stats.absorbed);
    }
    pub(super) fn count_created(&self) {
        bump(&self.stats.transactions);
    }
    pub(super) fn count_forwarded_request(&self) {
        bump(&self.stats.forwarded_requests);
    }
    pub(super) fn count_forwarded_response(&self) {
        bump(&self.stats.forwarded_responses);
    }
    pub(super) fn count_replied(&self) {
        bump(&self.stats.replied);
    }

    /// Installs the long-lived services the routes use (before serving).
    pub fn with_services(mut self, services: Arc<Services>) -> Self {
        self.services = services;
        self
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Installs the DNS resolver for host names (once, by the server).
    pub fn set_dns(&self, dns: Arc<dyn Dns>) {
        let _ = self.dns.set(dns);
    }

    /// Sends one message, counting failures.
    pub async fn send(self: &Arc<Self>, out: Outgoing) {
        self.capture_out(&out);
        let on_message = self.message_sink();
        let Outgoing { transport, peer, data, branch, no_connect, .. } = out;
        // For the log line of a failure (its Call-ID), when it would be written.
        let copy = tracing::enabled!(tracing::Level::DEBUG).then(|| data.clone());
        let sent = self.outbound.send(transport, peer, data, !no_connect, &on_message, self.limits);
        if let Err(e) = sent.await {
            self.send_failed(peer, branch, copy.as_deref().and_then(call_id_of), e);
        }
    }

    /// Counts a failed send to `peer` and fails over the branch it started.
    fn send_failed(
        self: &Arc<Self>,
        peer: SocketAddr,
        branch: Option<(u64, u32)>,
        call_id: Option<&str>,
        e: std::io::Error,
    ) {
        bump(&self.stats.send_errors);
        tracing::debug!(%peer, call_id = call_id.unwrap_or(""), "send failed: {e}");
        if let Some((id, index)) = branch
            && let Some(step) = self.branch_send_failed(id, index)
        {
            // On a task of its own: `send` cannot await itself.
            tokio::spawn(Arc::clone(self).run_step_boxed(step));
        }
    }

    /// Processes one message on the calling thread (a UDP receive thread,
    /// see [`super::udp`]): UDP sends happen here and now, steps that wait
    /// (streams, name resolution) go to the runtime the thread has entered.
    pub fn handle_now(self: &Arc<Self>, data: Bytes, inbound: Inbound) {
        if let Some(step) = self.process(data, inbound) {
            self.run_step_now(step);
        }
    }

    pub(in crate::proxy) fn run_step_now(self: &Arc<Self>, step: Step) {
        match step {
            Step::Send(out) if out.transport == Transport::Udp => {
                self.capture_out(&out);
                if let Err(e) = self.outbound.send_udp(out.peer, &out.data) {
                    self.send_failed(out.peer, out.branch, call_id_of(&out.data), e);
                }
            }
            Step::Batch(steps) => self.run_batch_now(steps),
            step => {
                tokio::spawn(Arc::clone(self).run_step_boxed(step));
            }
        }
    }

    /// Runs a batch's steps, its UDP datagrams in one `sendmmsg`: an INVITE
    /// relayed statefully sends its 100 Trying and the request itself, and
    /// one system call for both costs less than two. Each datagram is still
    /// captured and its failure counted and failed over as
    /// [`Core::run_step_now`] does for one.
    fn run_batch_now(self: &Arc<Self>, steps: Vec<Step>) {
        let mut datagrams = Datagrams::new();
        self.split_batch(steps, &mut datagrams);
        for out in &datagrams {
            self.capture_out(out);
        }
        let targets: smallvec::SmallVec<[(SocketAddr, &[u8]); 4]> =
            datagrams.iter().map(|o| (o.peer, &o.data[..])).collect();
        self.outbound.send_udp_many(&targets, |i, e| {
            let out = &datagrams[i];
            self.send_failed(out.peer, out.branch, call_id_of(&out.data), e);
        });
    }

    /// Collects the UDP datagrams of `steps` (nested batches included) in
    /// order and runs every other step as [`Core::run_step_now`] would.
    fn split_batch(self: &Arc<Self>, steps: Vec<Step>, datagrams: &mut Datagrams) {
        for step in steps {
            match step {
                Step::Send(out) if out.transport == Transport::Udp => datagrams.push(out),
                Step::Batch(inner) => self.split_batch(inner, datagrams),
                step => self.run_step_now(step),
            }
        }
    }

    /// Installs the routing workers' queue (once, by the server).
    pub fn set_dispatcher(&self, d: Dispatcher) {
        let _ = self.dispatcher.set(d);
    }

    /// Where transports hand received messages: the routing workers' queue,
    /// or, when it is full, an immediate `503` (see [`super::dispatch`]).
    /// Without a dispatcher the message is handled on a task of its own.
    pub fn message_sink(self: &Arc<Self>) -> Arc<dyn Fn(Bytes, Inbound) + Send + Sync> {
        // The sink holds a Weak so that the Core, which caches it, can drop.
        let weak = Arc::downgrade(self);
        let sink = self.sink.get_or_init(|| {
            Arc::new(move |data, inbound| {
                if let Some(core) = weak.upgrade() {
                    core.accept(data, inbound);
                }
            })
        });
        Arc::clone(sink)
    }

    fn accept(self: Arc<Self>, data: Bytes, inbound: Inbound) {
        let Some(d) = self.dispatcher.get() else {
            tokio::spawn(async move { self.handle(data, inbound).await });
            return;
        };
        if let Err((data, inbound)) = d.submit((data, inbound)) {
            self.shed(data, inbound);
        }
    }

    /// Refuses a message the proxy has no capacity to route: requests get
    /// `503` with `Retry-After`, the rest are dropped; all are counted.
    pub fn shed(self: &Arc<Self>, data: Bytes, inbound: Inbound) {
        bump(&self.stats.dropped_overload);
        if let Some(out) = self.overloaded(data, inbound) {
            self.run_step_now(Step::Send(out));
        }
    }

    /// The answer to a request that found every queue full.
    pub fn overloaded(&self, data: Bytes, inbound: Inbound) -> Option<Outgoing> {
        let mut msg = Message::parse_with(data, &self.limits).ok()?;
        if !msg.is_request() || msg.method_str() == Some("ACK") || msg.validate().is_err() {
            return None;
        }
        let edit = EditedMessage::new(msg);
        Some(self.reply_to(
            &edit,
            inbound,
            503,
            "Service Unavailable",
            &[("Retry-After", "5")],
            false,
        ))
    }

    /// A message received, to the HEP collector (`module hep`).
    fn capture_in(&self, data: &[u8], inbound: Inbound, call_id: Option<&str>) {
        if let Some(hep) = &self.services.hep {
            hep.capture(&super::hep::Packet {
                transport: inbound.transport,
                src: inbound.peer,
                dst: inbound.local,
                time: std::time::SystemTime::now(),
                payload: data,
                call_id,
            });
        }
    }

    /// A message about to be sent, to the HEP collector.
    fn capture_out(&self, out: &Outgoing) {
        let Some(hep) = &self.services.hep else { return };
        if !out.capture {
            return;
        }
        let src = self
            .outbound
            .local_addr(out.transport, out.peer)
            .unwrap_or_else(|| SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0));
        hep.capture(&super::hep::Packet {
            transport: out.transport,
            src,
            dst: out.peer,
            time: std::time::SystemTime::now(),
            payload: &out.data,
            call_id: call_id_of(&out.data),
        });
    }

    /// Decides what one received message produces; see the module docs.
    pub fn process(&self, data: Bytes, inbound: Inbound) -> Option<Step> {
        bump(&self.stats.received);
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return None; // keep-alive
        }
        let capture = self.services.hep.is_some();
        let raw = (capture || tracing::enabled!(tracing::Level::DEBUG)).then(|| data.clone());
        let mut msg = match Message::parse_with(data, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                if let Some(raw) = raw.as_ref().filter(|_| capture) {
                    self.capture_in(raw, inbound, None);
                }
                bump(&self.stats.dropped_malformed);
                tracing::debug!(
                    peer = %inbound.peer,
                    call_id = raw.as_deref().and_then(call_id_of).unwrap_or(""),
                    "dropped unparseable message: {e}"
                );
                return None;
            }
        };
        let raw = raw.filter(|_| capture);
        if let Err(e) = msg.validate() {
            if let Some(raw) = &raw {
                self.capture_in(raw, inbound, msg.call_id().ok().flatten());
            }
            bump(&self.stats.dropped_malformed);
            tracing::debug!(
                peer = %inbound.peer,
                call_id = msg.call_id().ok().flatten().unwrap_or(""),
                "malformed message: {e}"
            );
            if !msg.is_request()
                || msg.header(HeaderName::Via).is_none()
                || msg.method_str() == Some("ACK")
            {
                return None;
            }
            let reason = match e.status_code() {
                505 => "Version Not Supported".to_owned(),
                513 => "Message Too Large".to_owned(),
                _ => format!("Bad Request ({})", e.kind),
            };
            let edit = EditedMessage::new(msg);
            let reply = self.reply_to(&edit, inbound, e.status_code(), &reason, &[], false);
            return Some(Step::Send(reply));
        }
        // Shared from here on: the message moves by pointer through
        // dispatch, routing and the transaction layer, and a branch's copy
        // shares it with the transaction (see `EditedMessage`).
        let msg = Arc::new(msg);
        if let Some(m) = msg.method() {
            bump(&self.stats.requests_by_method[m as usize]);
        } else if let Some(code) = msg.status() {
            bump(&self.stats.replies_by_class[usize::from(code / 100).clamp(1, 6) - 1]);
        }
        match raw {
            Some(raw) => self.process_captured(msg, raw, inbound),
            None => self.dispatch(msg, inbound, &mut None),
        }
    }

    /// A valid message to its handler; a request's route may set `capture`
    /// (`hep_capture`).
    fn dispatch(
        &self,
        msg: Arc<Message>,
        inbound: Inbound,
        capture: &mut Option<bool>,
    ) -> Option<Step> {
        if msg.is_request() {
            self.process_request(msg, inbound, capture)
        } else if self.natping_reply(&msg) {
            None
        } else if let Some((txn, index)) = self.match_response(&msg) {
            self.branch_response(&txn, index, msg, inbound)
        } else {
            self.process_response(msg, inbound)
        }
    }

    /// A reply to one of the registrar's NAT ping OPTIONS (its top Via
    /// branch starts with [`natping::BRANCH_PREFIX`]): handed to the
    /// pinger, never routed (the request was the proxy's own).
    fn natping_reply(&self, msg: &Message) -> bool {
        let Ok(Some(via)) = msg.via() else { return false };
        if let Some(branch) =
            via.branch().filter(|b| b.starts_with(crate::dialog::bye::BRANCH_PREFIX))
        {
            self.dialog_bye_reply(branch, msg);
            return true;
        }
        let Some(branch) = via.branch().filter(|b| b.starts_with(natping::BRANCH_PREFIX)) else {
            return false;
        };
        match &self.services.natping {
            Some(p) => p.reply(branch),
            // A reply to a ping of an earlier run without pings now.
            None => bump(&self.stats.dropped_stray),
        }
        true
    }

    fn reply_to(
        &self,
        req: &EditedMessage,
        inbound: Inbound,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
        no_connect: bool,
    ) -> Outgoing {
        bump(&self.stats.replied);
        // Stateless replies go back where the request came from (RFC 3581 §4).
        let data = build_response(req, code, reason, extra);
        Outgoing { no_connect, ..Outgoing::new(inbound.transport, inbound.peer, data) }
    }

    /// Refuses a request its route decided to forward or relay (the
    /// route's `set_reply_no_connect()` holds for this reply too).
    pub(super) fn reject_request(
        &self,
        ctx: &RequestContext,
        inbound: Inbound,
        r: Reject,
    ) -> Option<Step> {
        self.reject_with(&ctx.msg, inbound, r, ctx.reply_no_connect)
    }

    fn reject(&self, req: &EditedMessage, inbound: Inbound, r: Reject) -> Option<Step> {
        self.reject_with(req, inbound, r, false)
    }

    fn reject_with(
        &self,
        req: &EditedMessage,
        inbound: Inbound,
        r: Reject,
        no_connect: bool,
    ) -> Option<Step> {
        if req.original().method_str() == Some("ACK") {
            return None; // ACK is never answered
        }
        let extra: Vec<(&str, &str)> = r.extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Some(Step::Send(self.reply_to(req, inbound, r.code, r.reason, &extra, no_connect)))
    }

    /// [`Core::process`] with HEP capture on: a reply is captured as it
    /// arrives; a request once its route has decided (`hep_capture`), with
    /// what the proxy sends for it.
    fn process_captured(&self, msg: Arc<Message>, raw: Bytes, inbound: Inbound) -> Option<Step> {
        let call_id = msg.call_id().ok().flatten().map(str::to_owned);
        let all = self.services.hep.as_ref().is_some_and(|h| h.capture_all);
        if !msg.is_request() {
            self.capture_in(&raw, inbound, call_id.as_deref());
            return self.dispatch(msg, inbound, &mut None);
        }
        let mut capture = None;
        let step = self.dispatch(msg, inbound, &mut capture);
        if capture.unwrap_or(all) {
            self.capture_in(&raw, inbound, call_id.as_deref());
            step
        } else {
            step.map(uncaptured)
        }
    }

    fn process_request(
        &self,
        msg: Arc<Message>,
        inbound: Inbound,
        capture: &mut Option<bool>,
    ) -> Option<Step> {
        let (cancels, key) = match self.match_request(&msg) {
            Matched::Absorbed(step) => return step,
            Matched::Cancel(txn) => (txn, None),
            Matched::New(key) => (None, Some(key)),
            Matched::Fresh => (None, None),
        };
        let mut edit = EditedMessage::new(msg);
        if inbound.transport.is_websocket() {
            // RFC 7118 §5: the sent-by is a made-up `.invalid` host; the
            // source address and port are the only way back.
            crate::proxy::request::force_rport(&mut edit, inbound.peer);
        } else {
            apply_received(&mut edit, inbound.peer);
        }
        if let Err(r) = check_request(edit.original(), &self.local, SUPPORTED) {
            return self.reject(&edit, inbound, r);
        }
        if edit
            .request_uri()
            .is_some_and(|u| crate::sip::Uri::scheme_of(u) == crate::sip::Scheme::Other)
        {
            return self.reject(
                &edit,
                inbound,
                Reject { code: 416, reason: "Unsupported URI Scheme", extra: vec![] },
            );
        }
        let mut hide = None;
        let mut hidden_du = None;
        if self.services.dialogs.hidden_len() > 0
            && let Some(hop) = self.hidden_hop(edit.original())
        {
            // A hidden dialog's request becomes what the other side must
            // see before any route looks at it (see `topology`).
            hidden_du = topology::restore_request(&mut edit, &hop, |r| self.is_own_route(r));
            hide = Some(topology::Hide { call_id: None });
        }
        let (_, path_received) = preprocess_routes(&mut edit, &self.local);
        let mut ctx = RequestContext::new(edit, inbound.peer, inbound.transport);
        ctx.destination = path_received.or(hidden_du);
        ctx.txn.hide = hide;
        ctx.txn.exists = cancels.is_some();
        ctx.services = Some(Arc::clone(&self.services));
        // One load per message: the whole request route, and the
        // transaction it may start, use this router.
        let router = self.router.load();
        let decision = router.0.route_request(&mut ctx);
        *capture = ctx.capture;
        if matches!(decision, Decision::Relay | Decision::Forward)
            && !self.services.dialogs.is_empty()
        {
            self.dialog_request(ctx.msg.original());
        }
        match decision {
            Decision::Drop => {
                bump(&self.stats.dropped_by_route);
                None
            }
            Decision::Reply { code, reason } => {
                if ctx.msg.original().method_str() == Some("ACK") {
                    return None;
                }
                let extra: Vec<(&str, &str)> =
                    ctx.reply_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                // After `t_newtran()` a final reply goes through a server
                // transaction (unless none can be made: then statelessly).
                if ctx.txn.newtran && code >= 200 {
                    let key = key.unwrap_or_else(|| crate::txn::ServerKey::of(ctx.msg.original()));
                    if let Some(step) = self.reply_in_txn(&ctx, inbound, key, code, &reason, &extra)
                    {
                        return step;
                    }
                }
                let no_connect = ctx.reply_no_connect;
                Some(Step::Send(
                    self.reply_to(&ctx.msg, inbound, code, &reason, &extra, no_connect),
                ))
            }
            Decision::Forward => self.forward(ctx, inbound, None),
            Decision::Relay => match ctx.msg.original().method_str() {
                // ACK never has a transaction of its own (§17.1.1.3).
                Some("ACK") => self.forward(ctx, inbound, None),
                // A CANCEL without its INVITE is forwarded statelessly (§16.10).
                Some("CANCEL") => match cancels {
                    Some(txn) => self.cancel(&txn, &ctx, inbound),
                    None => self.forward(ctx, inbound, None),
                },
                _ => {
                    let key = key.unwrap_or_else(|| crate::txn::ServerKey::of(ctx.msg.original()));
                    self.relay(ctx, inbound, Arc::clone(&router.0), key)
                }
            },
        }
    }

    /// §16.6 steps 3–8 on a copy to forward: returns where it goes and its
    /// bytes. `resolved` is the target found by name resolution; without it
    /// the next hop must be an IP literal.
    pub(super) fn prepare_copy(
        &self,
        edit: &mut EditedMessage,
        fwd: &Forward<'_>,
        hop: &NextHop,
        inbound: Inbound,
        resolved: Option<(Transport, SocketAddr)>,
    ) -> Result<((Transport, SocketAddr), Bytes), Reject> {
        let mut target: Option<(Transport, SocketAddr)> = None;
        let mut local = inbound.local;
        prepare_forward(edit, fwd, hop, |hop| {
            let (transport, peer) = match resolved {
                Some(t) => t,
                None => literal(hop)?,
            };
            let out_addr = self.outbound.local_addr(transport, peer).ok_or(Reject {
                code: 503,
                reason: "No Socket For Destination",
                extra: vec![],
            })?;
            target = Some((transport, peer));
            local = out_addr;
            let mut record_routes = Vec::new();
            if fwd.record_route {
                record_routes.push(rr_uri(transport, out_addr));
                if transport != inbound.transport || out_addr.ip() != inbound.local.ip() {
                    record_routes.push(rr_uri(inbound.transport, inbound.local));
                }
            }
            // Room for the branch `prepare_forward` appends (`;branch=z9hG4bK`,
            // the transaction part and a 16-digit hash), so it never regrows.
            let mut via_sent_by = String::with_capacity(96);
            via_sent_by.push_str("SIP/2.0/");
            via_sent_by.push_str(transport.via_token());
            via_sent_by.push(' ');
            crate::sip::write::push_socket_addr(&mut via_sent_by, out_addr);
            let path = fwd.path.map(|params| route_uri(transport, out_addr, params));
            Ok(HopHeaders { via_sent_by, record_routes, path })
        })?;
        let target = target.ok_or(CANNOT_RESOLVE)?;
        if let Some(hide) = fwd.hide {
            // A request forwarded without a transaction keeps its Vias, or
            // its replies could not find their way back; an ACK has none.
            let keep_vias = fwd.branch.is_none() && edit.original().method_str() != Some("ACK");
            let contact = topology::masked_contact(target.0, local);
            topology::hide_request(edit, hide, keep_vias, &contact);
        }
        Ok((target, edit.serialize()))
    }

    /// Forwards a routed request. `resolved` is the target found by name
    /// resolution; without it an IP-literal next hop is used directly and a
    /// host name is handed back as [`Step::Resolve`].
    fn forward(
        &self,
        mut ctx: RequestContext,
        inbound: Inbound,
        resolved: Option<(Transport, SocketAddr)>,
    ) -> Option<Step> {
        let fwd = Forward {
            destination: ctx.destination.as_deref(),
            record_route: ctx.record_route,
            path: ctx.path.as_deref(),
            branch: None,
            hide: ctx.txn.hide.as_ref(),
        };
        let hop = match next_hop(&ctx.msg, &fwd) {
            Err(r) => return self.reject_request(&ctx, inbound, r),
            Ok(hop) if resolved.is_none() && hop.socket_addr().is_none() => {
                if self.dns.get().is_none() {
                    return self.reject_request(&ctx, inbound, CANNOT_RESOLVE);
                }
                return Some(Step::Resolve(Pending {
                    hop,
                    then: Then::Forward(Box::new(ctx), inbound),
                }));
            }
            Ok(hop) => hop,
        };
        match self.prepare_copy(&mut ctx.msg, &fwd, &hop, inbound, resolved) {
            Ok(((transport, peer), data)) => {
                bump(&self.stats.forwarded_requests);
                Some(Step::Send(Outgoing::new(transport, peer, data)))
            }
            Err(r) => self.reject_request(&ctx, inbound, r),
        }
    }

    /// A reply without a transaction: routed back by Via (§16.11), after
    /// `reply_route`, which may drop it.
    pub(super) fn process_response(&self, msg: Arc<Message>, inbound: Inbound) -> Option<Step> {
        let Some(hop) = next_hop_for_response(&msg, &self.local) else {
            bump(&self.stats.dropped_stray);
            return None;
        };
        if !self.services.dialogs.is_empty() {
            self.dialog_stray_reply(&msg, inbound);
        }
        let mut edit = strip_own_via(msg);
        let router = self.router.load();
        if let Some(route) = router.0.reply_route() {
            let mut ctx = RequestContext::new(edit, inbound.peer, inbound.transport);
            if router.0.run_hook(route, &mut ctx) == Decision::Drop {
                bump(&self.stats.dropped_by_route);
                return None;
            }
            edit = ctx.msg;
        }
        let data = edit.serialize();
        if hop.socket_addr().is_none() && self.dns.get().is_some() {
            // A sent-by host name without `received` (RFC 3263 §5).
            return Some(Step::Resolve(Pending { hop, then: Then::Response(data) }));
        }
        let Ok((transport, peer)) = literal(&hop) else {
            bump(&self.stats.dropped_stray);
            return None;
        };
        bump(&self.stats.forwarded_responses);
        Some(Step::Send(Outgoing::new(transport, peer, data)))
    }
}

const CANNOT_RESOLVE: Reject =
    Reject { code: 503, reason: "Cannot Resolve Destination", extra: Vec::new() };

/// The transport and address of an IP-literal next hop.
fn literal(hop: &NextHop) -> Result<(Transport, SocketAddr), Reject> {
    let transport = Transport::from_name(&hop.transport).ok_or(Reject {
        code: 503,
        reason: "Unsupported Transport",
        extra: vec![],
    })?;
    let addr = hop.socket_addr().ok_or(CANNOT_RESOLVE)?;
    Ok((transport, addr))
}

fn rr_uri(transport: Transport, addr: SocketAddr) -> String {
    route_uri(transport, addr, "")
}

/// `<sip:ADDR[;transport=…];lr PARAMS>`: this proxy's address as a loose
/// router, for Record-Route and Path.
fn route_uri(transport: Transport, addr: SocketAddr, params: &str) -> String {
    let mut out = String::with_capacity(48 + params.len());
    out.push_str("<sip:");
    crate::sip::write::push_socket_addr(&mut out, addr);
    out.push_str(match transport {
        Transport::Udp => ";lr",
        Transport::Tcp => ";transport=tcp;lr",
        Transport::Tls => ";transport=tls;lr",
        Transport::Ws => ";transport=ws;lr",
        Transport::Wss => ";transport=wss;lr",
    });
    out.push_str(params);
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use super::call_id_of;

    #[test]
    fn the_call_id_of_a_message_on_its_way_out() {
        let msg = b"INVITE sip:i@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    call-id :  abc@host \r\nCSeq: 1 INVITE\r\n\r\nCall-ID: body";
        assert_eq!(call_id_of(msg), Some("abc@host"));
        let compact = b"SIP/2.0 200 OK\r\nI: short\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(call_id_of(compact), Some("short"));
        let none = b"SIP/2.0 200 OK\r\nCSeq: 1 BYE\r\n\r\nCall-ID: only in the body";
        assert_eq!(call_id_of(none), None);
    }
}
