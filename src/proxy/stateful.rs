//! The stateful proxy (RFC 3261 §16 with §17 transactions): what `relay()`
//! does, and what happens to every reply and timer afterwards.
//!
//! A proxied request becomes one [`Txn`]: the server transaction facing the
//! caller, the *response context* of §16.7 (the best final response so far,
//! armed routes, transaction variables) and one client transaction per
//! branch. It lives in the [`TxnTable`] under the request's [`ServerKey`]
//! (so retransmissions, the ACK of a non-2xx and CANCEL find it) and under
//! its numeric id, which every branch's Via carries
//! (`z9hG4bK<salt><id>-<index>.<loop hash>`), so a reply finds its branch
//! with one lookup and a reply meant for an earlier run of this proxy (other
//! salt) does not.
//!
//! The transaction keeps the `Arc` of the router (the compiled program) it
//! started with; its failure, branch and reply routes run there, named by
//! index. All transaction work is synchronous under the transaction's lock
//! and returns [`Step`]s for the core to send, like the stateless path.
//!
//! Decisions made here, where RFC 3261 leaves room:
//! - `reply()` in `request_route` stays stateless (as Kamailio's
//!   `sl_send_reply`): a retransmission of the request runs the route again
//!   and gets the same reply with the same To tag. In a failure route it is
//!   sent through the transaction.
//! - `drop` in a reply route suppresses a provisional reply; a final reply
//!   cannot be dropped (the caller would wait forever) and is passed on.
//! - When a branch times out after a CANCEL (no 487 arrived), the caller
//!   gets `487 Request Terminated`; other timeouts give `408`.
//! - A transport error sending a branch counts as a `503` from it (§8.1.3.1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::branch::MAGIC_COOKIE;
use super::core::{Core, Outgoing, Step};
use super::request::{Forward, Reject, next_hop};
use super::response::{build_response, strip_own_via};
use super::router::{BranchTarget, Decision, RequestContext, Router, TxnScope};
use super::services::Services;
use super::timer_queue::TimerQueue;
use super::transport::{Inbound, Transport};
use crate::sip::{EditedMessage, HeaderName, Message};
use crate::txn::best::{best, ends_fork, upstream_status};
use crate::txn::{ClientAction, ClientTimer, ClientTxn, ServerAction, ServerKey, ServerState};
use crate::txn::{ServerTimer, ServerTxn, Timers};

/// Settings of the transaction layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    pub timers: Timers,
    /// Beyond this many live transactions new requests get 503.
    pub max_transactions: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig { timers: Timers::default(), max_transactions: 200_000 }
    }
}

/// A timer of some transaction, by id (a fired timer of a transaction that
/// is gone, or that moved on, is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerEvent {
    Server(u64, ServerTimer),
    Client(u64, u32, ClientTimer),
    /// Timer C of a branch, with the epoch it was armed in (each
    /// provisional reply re-arms it).
    C(u64, u32, u32),
    /// A CANCEL was sent on a branch and no final reply came.
    CancelWait(u64, u32),
}

pub(super) type TxnRef = Arc<Mutex<Txn>>;

const SHARDS: usize = 64;

/// The live transactions, sharded by key and by id.
pub(super) struct TxnTable {
    keys: Vec<Mutex<HashMap<ServerKey, u64>>>,
    txns: Vec<Mutex<HashMap<u64, TxnRef>>>,
    count: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxnTable {
    fn new() -> Self {
        TxnTable {
            keys: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            txns: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicUsize::new(0),
        }
    }

    fn key_shard(&self, key: &ServerKey) -> &Mutex<HashMap<ServerKey, u64>> {
        &self.keys[key.shard_hash() as usize % SHARDS]
    }

    fn by_id(&self, id: u64) -> Option<TxnRef> {
        lock(&self.txns[id as usize % SHARDS]).get(&id).cloned()
    }

    fn by_key(&self, key: &ServerKey) -> Option<TxnRef> {
        let id = *lock(self.key_shard(key)).get(key)?;
        self.by_id(id)
    }

    /// Inserts unless the key is taken (a retransmission racing its original).
    fn insert(&self, key: ServerKey, id: u64, txn: TxnRef) -> bool {
        let mut keys = lock(self.key_shard(&key));
        if keys.contains_key(&key) {
            return false;
        }
        keys.insert(key, id);
        lock(&self.txns[id as usize % SHARDS]).insert(id, txn);
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn remove(&self, key: &ServerKey, id: u64) {
        let mut keys = lock(self.key_shard(key));
        if keys.get(key) == Some(&id) {
            keys.remove(key);
        }
        if lock(&self.txns[id as usize % SHARDS]).remove(&id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// The transaction layer of a [`Core`].
pub(super) struct TxnLayer {
    pub(super) table: TxnTable,
    pub(super) timers: Arc<TimerQueue<TimerEvent>>,
    pub(super) config: TxnConfig,
    /// Distinguishes this process's branches from an earlier run's.
    salt: String,
    next_id: AtomicU64,
}

impl TxnLayer {
    pub(super) fn new(config: TxnConfig) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let salt = format!("sc{:06x}", (nanos ^ std::process::id().rotate_left(13)) & 0xff_ffff);
        TxnLayer {
            table: TxnTable::new(),
            timers: Arc::new(TimerQueue::default()),
            config,
            salt,
            next_id: AtomicU64::new(1),
        }
    }

    /// The transaction part of branch `index` of transaction `id`.
    fn branch_part(&self, id: u64, index: u32) -> String {
        format!("{}{id:x}-{index}", self.salt)
    }

    /// The transaction id and branch index a Via branch of ours names.
    fn parse_branch(&self, branch: &str) -> Option<(u64, u32)> {
        let part = branch.strip_prefix(MAGIC_COOKIE)?.split_once('.')?.0;
        let (id, index) = part.strip_prefix(self.salt.as_str())?.split_once('-')?;
        Some((u64::from_str_radix(id, 16).ok()?, index.parse().ok()?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    No,
    /// Cancel as soon as a provisional reply shows the branch is alive (§9.1).
    Pending,
    Sent,
}

/// One outgoing branch: a client transaction and what it got back.
struct Branch {
    via_branch: String,
    target: (Transport, SocketAddr),
    /// The request as sent (retransmissions; ACK and CANCEL are built from it).
    request: Bytes,
    client: ClientTxn,
    /// The final reply (after reply-route edits), for the best-reply choice.
    response: Option<EditedMessage>,
    /// Final status; a timeout counts as 408, a transport error as 503.
    code: u16,
    provisional: bool,
    cancel: CancelState,
    c_epoch: u32,
    timed_out: bool,
}

impl Branch {
    fn failed(code: u16, timers: Timers) -> Branch {
        let (mut client, _) = ClientTxn::start(false, true, timers);
        client.abandon();
        Branch {
            via_branch: String::new(),
            target: (Transport::Udp, SocketAddr::from(([0, 0, 0, 0], 0))),
            request: Bytes::new(),
            client,
            response: None,
            code,
            provisional: false,
            cancel: CancelState::No,
            c_epoch: 0,
            timed_out: false,
        }
    }
}

/// One proxied request; see the module docs.
pub(super) struct Txn {
    id: u64,
    key: ServerKey,
    invite: bool,
    router: Arc<dyn Router>,
    /// The request as the request route left it, before per-branch edits.
    request: EditedMessage,
    inbound: Inbound,
    /// Where replies go: the source for reliable transports and `rport`,
    /// else the received address and the Via's port (§18.2.2).
    reply_to: (Transport, SocketAddr),
    scope: TxnScope,
    services: Option<Arc<Services>>,
    record_route: bool,
    server: ServerTxn,
    branches: Vec<Branch>,
    /// Branches waiting for name resolution.
    resolving: usize,
    canceled: bool,
    answered: bool,
    /// The transaction left the table.
    removed: bool,
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("id", &self.id)
            .field("server", &self.server.state())
            .field("branches", &self.branches.len())
            .finish_non_exhaustive()
    }
}

/// What the transaction layer says about a request before routing.
pub(super) enum Matched {
    /// A retransmission or a hop-by-hop ACK: handled, with what to send.
    Absorbed(Option<Step>),
    /// A CANCEL, with the INVITE transaction it cancels if there is one.
    Cancel(Option<TxnRef>),
    New,
}

impl Core {
    /// Absorbs retransmissions and the ACK of non-2xx replies (§17.2) and
    /// finds the transaction a CANCEL cancels.
    pub(super) fn match_request(&self, msg: &Message) -> Matched {
        let method = msg.method_str().unwrap_or("");
        if method == "CANCEL" {
            return Matched::Cancel(
                ServerKey::cancelled_invite(msg).and_then(|k| self.txn.table.by_key(&k)),
            );
        }
        let Some(txn) = ServerKey::of(msg).and_then(|k| self.txn.table.by_key(&k)) else {
            return Matched::New;
        };
        let mut t = lock(&txn);
        if method == "ACK" {
            if t.server.state() == ServerState::Accepted {
                // An ACK for a 2xx reusing the INVITE's branch (RFC 2543
                // style): it is end-to-end, route it.
                return Matched::New;
            }
            let actions = t.server.on_ack();
            let steps = self.server_actions(&mut t, actions);
            return Matched::Absorbed(batch(steps));
        }
        self.count_absorbed();
        let resend = t.server.on_request();
        let to = t.reply_to;
        Matched::Absorbed(resend.map(|data| send(to, data)))
    }

    /// `relay()` of a request that is neither ACK nor a CANCEL: creates the
    /// transaction, answers 100 to an INVITE, and starts the branches.
    pub(super) fn relay(
        &self,
        ctx: RequestContext,
        inbound: Inbound,
        router: Arc<dyn Router>,
    ) -> Option<Step> {
        let Some(key) = ServerKey::of(ctx.msg.original()) else {
            return self.reject_request(&ctx.msg, inbound, Reject::new(400, "Bad Request"));
        };
        if self.txn.table.len() >= self.txn.config.max_transactions {
            let mut r = Reject::new(503, "Service Unavailable");
            r.extra.push(("Retry-After", "5".into()));
            return self.reject_request(&ctx.msg, inbound, r);
        }
        let id = self.txn.next_id.fetch_add(1, Ordering::Relaxed);
        let invite = ctx.msg.original().method_str() == Some("INVITE");
        let reliable = inbound.transport != Transport::Udp;
        let reply_to = reply_target(&ctx.msg, inbound);
        let RequestContext { msg, destination, record_route, txn: mut scope, services, .. } = ctx;
        let extra = std::mem::take(&mut scope.branches);
        let txn = Txn {
            id,
            key: key.clone(),
            invite,
            router,
            request: msg,
            inbound,
            reply_to,
            scope,
            services,
            record_route,
            server: ServerTxn::new(invite, reliable, self.txn.config.timers),
            branches: Vec::new(),
            resolving: 0,
            canceled: false,
            answered: false,
            removed: false,
        };
        let txn_ref: TxnRef = Arc::new(Mutex::new(txn));
        if !self.txn.table.insert(key, id, Arc::clone(&txn_ref)) {
            return None; // the original is being handled
        }
        self.count_created();
        let mut t = lock(&txn_ref);
        let mut steps = Vec::new();
        if invite {
            let trying = build_response(&t.request, 100, "Trying", &[]);
            let actions = t.server.respond(100, trying);
            steps.extend(self.server_actions(&mut t, actions));
        }
        steps.extend(self.start_branches(&mut t, &txn_ref, destination, extra));
        steps.extend(self.finish_if_done(&mut t));
        batch(steps)
    }

    /// Starts the main branch (to `destination`, the Route set or the R-URI)
    /// and one branch per `extra` target.
    fn start_branches(
        &self,
        t: &mut Txn,
        txn_ref: &TxnRef,
        destination: Option<String>,
        extra: Vec<BranchTarget>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        steps.extend(self.start_branch(t, txn_ref, None, destination, &[]));
        for target in extra {
            steps.extend(self.start_target(t, txn_ref, target));
        }
        steps
    }

    /// Starts a branch to `target` (its URI, destination and Route set).
    fn start_target(&self, t: &mut Txn, txn_ref: &TxnRef, target: BranchTarget) -> Option<Step> {
        let BranchTarget { uri, destination, route } = target;
        self.start_branch(t, txn_ref, Some(uri), destination, &route)
    }

    /// Runs the branch route, prepares the copy and sends it.
    fn start_branch(
        &self,
        t: &mut Txn,
        txn_ref: &TxnRef,
        uri: Option<String>,
        mut destination: Option<String>,
        route: &[String],
    ) -> Option<Step> {
        let mut edit = t.request.clone();
        if let Some(uri) = uri {
            edit.set_request_uri(uri);
        }
        for r in route.iter().rev() {
            edit.insert_first("Route", r);
        }
        if let Some(route) = t.scope.on_branch {
            let mut ctx = RequestContext::new(edit, t.inbound.peer, t.inbound.transport);
            ctx.txn = t.scope.clone();
            ctx.services = t.services.clone();
            ctx.destination = destination;
            ctx.record_route = t.record_route;
            let decision = t.router.run_hook(route, &mut ctx);
            t.scope.avps = ctx.txn.avps;
            t.scope.flags = ctx.txn.flags;
            if decision == Decision::Drop {
                return None;
            }
            edit = ctx.msg;
            destination = ctx.destination;
        }
        let index = t.branches.len() as u32;
        let part = self.txn.branch_part(t.id, index);
        let fwd = Forward {
            destination: destination.as_deref(),
            record_route: t.record_route,
            branch: Some(&part),
        };
        let hop = match next_hop(&edit, &fwd) {
            Ok(hop) => hop,
            Err(r) => {
                t.branches.push(Branch::failed(r.code, self.txn.config.timers));
                return None;
            }
        };
        if hop.socket_addr().is_none() {
            if !self.has_dns() {
                t.branches.push(Branch::failed(503, self.txn.config.timers));
                return None;
            }
            t.resolving += 1;
            return Some(self.resolve_branch(hop, Arc::clone(txn_ref), edit, destination));
        }
        self.send_branch(t, edit, destination.as_deref(), None)
    }

    /// Prepares and sends a branch whose next hop is known (`resolved`, or
    /// an IP literal).
    pub(super) fn send_branch(
        &self,
        t: &mut Txn,
        mut edit: EditedMessage,
        destination: Option<&str>,
        resolved: Option<(Transport, SocketAddr)>,
    ) -> Option<Step> {
        let index = t.branches.len() as u32;
        let part = self.txn.branch_part(t.id, index);
        let fwd = Forward { destination, record_route: t.record_route, branch: Some(&part) };
        let (target, data) = match self.prepare_copy(&mut edit, &fwd, t.inbound, resolved) {
            Ok(x) => x,
            Err(r) => {
                t.branches.push(Branch::failed(r.code, self.txn.config.timers));
                return None;
            }
        };
        let via_branch = Message::parse(data.clone())
            .ok()
            .and_then(|m| m.via().ok().flatten().and_then(|v| v.branch().map(str::to_owned)))
            .unwrap_or_default();
        let reliable = target.0 != Transport::Udp;
        let (client, actions) = ClientTxn::start(t.invite, reliable, self.txn.config.timers);
        t.branches.push(Branch {
            via_branch,
            target,
            request: data.clone(),
            client,
            response: None,
            code: 0,
            provisional: false,
            cancel: CancelState::No,
            c_epoch: 0,
            timed_out: false,
        });
        crate::routing::health::on_branch_started(&t.services, target.1, t.invite);
        let mut steps = self.client_actions(t, index, actions);
        if t.invite {
            self.txn.timers.arm(self.txn.config.timers.timer_c, TimerEvent::C(t.id, index, 0));
        }
        self.count_forwarded_request();
        steps.push(Step::Send(Outgoing {
            transport: target.0,
            peer: target.1,
            data,
            branch: Some((t.id, index)),
        }));
        batch(steps)
    }

    /// A branch whose name resolution finished (`target` is `None` when it
    /// failed).
    pub(super) fn branch_resolved(
        &self,
        txn_ref: &TxnRef,
        edit: EditedMessage,
        destination: Option<String>,
        target: Option<(Transport, SocketAddr)>,
    ) -> Option<Step> {
        let mut t = lock(txn_ref);
        t.resolving = t.resolving.saturating_sub(1);
        if t.removed {
            return None;
        }
        let mut steps = Vec::new();
        if t.canceled || t.answered || t.server.is_final() {
            // Too late for a new branch.
        } else {
            match target {
                Some(target) => steps.extend(self.send_branch(
                    &mut t,
                    edit,
                    destination.as_deref(),
                    Some(target),
                )),
                None => t.branches.push(Branch::failed(503, self.txn.config.timers)),
            }
        }
        steps.extend(self.finish_if_done(&mut t));
        batch(steps)
    }

    /// The reply `msg` to one of our branches, if it is one (`None`: handle
    /// it statelessly).
    pub(super) fn match_response(&self, msg: &Message) -> Option<(TxnRef, u32)> {
        let via = msg.via().ok().flatten()?;
        let branch = via.branch()?;
        let (id, index) = self.txn.parse_branch(branch)?;
        let txn = self.txn.table.by_id(id)?;
        let ok = lock(&txn).branches.get(index as usize).is_some_and(|b| b.via_branch == branch);
        ok.then_some((txn, index))
    }

    /// A reply to branch `index` of `txn` (§16.7).
    pub(super) fn branch_response(
        &self,
        txn_ref: &TxnRef,
        index: u32,
        msg: Message,
        source: Inbound,
    ) -> Option<Step> {
        let code = msg.status()?;
        if msg.cseq().ok().flatten().is_some_and(|c| c.method == "CANCEL") {
            return None; // the reply to our own CANCEL
        }
        let mut t = lock(txn_ref);
        let i = index as usize;
        let actions = t.branches.get_mut(i)?.client.on_response(code);
        let mut steps = Vec::new();
        let mut deliver = false;
        for a in actions {
            match a {
                ClientAction::SendAck => steps.extend(ack_for(&t.branches[i], &msg)),
                ClientAction::Deliver => deliver = true,
                other => steps.extend(self.client_actions(&mut t, index, vec![other])),
            }
        }
        if deliver {
            steps.extend(self.deliver(&mut t, index, msg, code, source));
        }
        steps.extend(self.remove_if_done(&mut t));
        batch(steps)
    }

    fn deliver(
        &self,
        t: &mut Txn,
        index: u32,
        msg: Message,
        code: u16,
        source: Inbound,
    ) -> Vec<Step> {
        let i = index as usize;
        let mut steps = Vec::new();
        report_final(t, i, code);
        if code < 200 {
            let b = &mut t.branches[i];
            b.provisional = true;
            if b.cancel == CancelState::Pending {
                steps.extend(self.send_cancel(t, index));
            }
            if code > 100 && t.invite {
                let b = &mut t.branches[i];
                b.c_epoch += 1;
                let ev = TimerEvent::C(t.id, index, b.c_epoch);
                self.txn.timers.arm(self.txn.config.timers.timer_c, ev);
            }
        }
        // Reply routes see the reply as it will go upstream.
        let mut ctx = RequestContext::new(strip_own_via(msg), source.peer, source.transport);
        ctx.txn = t.scope.clone();
        ctx.services = t.services.clone();
        let mut dropped = false;
        for route in [t.router.reply_route(), t.scope.on_reply].into_iter().flatten() {
            if t.router.run_hook(route, &mut ctx) == Decision::Drop {
                dropped = true;
            }
        }
        t.scope.avps = std::mem::take(&mut ctx.txn.avps);
        t.scope.flags = ctx.txn.flags;
        if dropped && code >= 200 {
            tracing::debug!(code, "a final reply cannot be dropped; passing it on");
        }
        let edit = ctx.msg;
        match code {
            100 => {}
            101..=199 => {
                if !dropped {
                    let actions = t.server.respond(code, edit.serialize());
                    steps.extend(self.server_actions(t, actions));
                    self.count_forwarded_response();
                }
            }
            200..=299 => {
                let data = edit.serialize();
                let actions = t.server.respond(code, data.clone());
                if actions.is_empty() {
                    // Already final upstream: a 2xx still goes (RFC 6026 §8.4).
                    steps.push(send(t.reply_to, data));
                } else {
                    steps.extend(self.server_actions(t, actions));
                }
                self.count_forwarded_response();
                if !t.answered {
                    t.answered = true;
                    steps.extend(self.cancel_pending(t, Some(index)));
                }
            }
            _ => {
                let b = &mut t.branches[i];
                b.code = code;
                b.response = Some(edit);
                if ends_fork(code) {
                    steps.extend(self.cancel_pending(t, Some(index)));
                }
                steps.extend(self.finish_if_done(t));
            }
        }
        steps
    }

    /// When no branch is pending: runs the failure route (which may start
    /// new branches or reply), else sends the best reply (§16.7 step 6).
    fn finish_if_done(&self, t: &mut Txn) -> Vec<Step> {
        if t.answered
            || t.server.is_final()
            || t.resolving > 0
            || t.branches.iter().any(|b| b.client.is_pending())
        {
            return Vec::new();
        }
        // The next group of serial targets (contacts of lower q) first.
        if !t.canceled && !t.scope.serial.is_empty() {
            let group = t.scope.serial.remove(0);
            let Some(txn_ref) = self.txn.table.by_id(t.id) else { return Vec::new() };
            let mut steps = Vec::new();
            for target in group {
                steps.extend(self.start_target(t, &txn_ref, target));
            }
            steps.extend(self.finish_if_done(t));
            return steps;
        }
        let codes: Vec<u16> =
            t.branches.iter().map(|b| if b.code == 0 { 408 } else { b.code }).collect();
        let winner = best(&codes);
        let code = winner.map_or(500, |w| codes[w]);
        if let Some(route) = t.scope.on_failure.take() {
            let mut ctx =
                RequestContext::new(t.request.clone(), t.inbound.peer, t.inbound.transport);
            ctx.txn = t.scope.clone();
            ctx.services = t.services.clone();
            ctx.txn.reply_code = code;
            ctx.txn.canceled = t.canceled;
            ctx.txn.branch_timeout = winner.is_some_and(|w| t.branches[w].timed_out);
            ctx.record_route = t.record_route;
            let decision = t.router.run_hook(route, &mut ctx);
            let RequestContext { msg, destination, txn: mut scope, reply_headers, .. } = ctx;
            let extra = std::mem::take(&mut scope.branches);
            t.scope = TxnScope {
                exists: false,
                reply_code: 0,
                canceled: false,
                branch_timeout: false,
                ..scope
            };
            match decision {
                Decision::Relay | Decision::Forward if !t.canceled => {
                    let before = t.branches.len();
                    t.request = msg;
                    let Some(txn_ref) = self.txn.table.by_id(t.id) else { return Vec::new() };
                    let mut steps = self.start_branches(t, &txn_ref, destination, extra);
                    if t.branches.len() > before || t.resolving > 0 {
                        steps.extend(self.finish_if_done(t));
                        return steps;
                    }
                    // Every new branch failed at once: fall through to the
                    // best reply, now including them.
                    steps.extend(self.finish_if_done(t));
                    return steps;
                }
                Decision::Reply { code, reason } => {
                    let extra: Vec<(&str, &str)> =
                        reply_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    let data = build_response(&msg, code, &reason, &extra);
                    let actions = t.server.respond(code, data);
                    self.count_replied();
                    return self.server_actions(t, actions);
                }
                _ => {}
            }
        }
        let data = self.best_reply(t, winner);
        let upstream = Message::parse(data.clone()).ok().and_then(|m| m.status()).unwrap_or(500);
        let actions = t.server.respond(upstream, data);
        self.count_forwarded_response();
        self.server_actions(t, actions)
    }

    /// The reply to send upstream for the chosen branch: its reply with the
    /// challenges of every 401/407 merged in and 503 made 500, or a local
    /// 408 (487 after a CANCEL) when the branch got no reply.
    fn best_reply(&self, t: &Txn, winner: Option<usize>) -> Bytes {
        let Some(b) = winner.map(|w| &t.branches[w]) else {
            return build_response(&t.request, 500, "Server Internal Error", &[]);
        };
        let Some(resp) = &b.response else {
            return match (b.code, t.canceled) {
                (_, true) => build_response(&t.request, 487, "Request Terminated", &[]),
                (0 | 408, _) => build_response(&t.request, 408, "Request Timeout", &[]),
                (code, _) => build_response(&t.request, upstream_status(code), reason(code), &[]),
            };
        };
        let mut out = resp.clone();
        if matches!(b.code, 401 | 407) {
            for other in t.branches.iter().filter(|o| !std::ptr::eq(*o, b)) {
                let Some(r) = &other.response else { continue };
                for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
                    let values: Vec<String> = r.current_values(name).map(str::to_owned).collect();
                    for v in values {
                        out.append(name, &v);
                    }
                }
            }
        }
        let data = out.serialize();
        if b.code == 503 { with_status(&data, 500, "Server Internal Error") } else { data }
    }

    /// `relay()` of a CANCEL whose INVITE transaction exists: cancels every
    /// pending branch and answers the CANCEL 200 (§16.10).
    pub(super) fn cancel(
        &self,
        txn_ref: &TxnRef,
        cancel: &EditedMessage,
        inbound: Inbound,
    ) -> Option<Step> {
        let mut steps = Vec::new();
        {
            let mut t = lock(txn_ref);
            if !t.server.is_final() {
                t.canceled = true;
                steps.extend(self.cancel_pending(&mut t, None));
                steps.extend(self.finish_if_done(&mut t));
            }
        }
        self.count_replied();
        steps.push(Step::Send(Outgoing {
            transport: inbound.transport,
            peer: inbound.peer,
            data: build_response(cancel, 200, "OK", &[]),
            branch: None,
        }));
        batch(steps)
    }

    /// Cancels every pending branch except `except`.
    fn cancel_pending(&self, t: &mut Txn, except: Option<u32>) -> Vec<Step> {
        let mut steps = Vec::new();
        for index in 0..t.branches.len() as u32 {
            let b = &mut t.branches[index as usize];
            if Some(index) == except
                || !b.client.is_pending()
                || b.cancel != CancelState::No
                || !t.invite
            {
                continue;
            }
            if b.provisional {
                steps.extend(self.send_cancel(t, index));
            } else {
                b.cancel = CancelState::Pending;
            }
        }
        steps
    }

    fn send_cancel(&self, t: &mut Txn, index: u32) -> Option<Step> {
        let b = &mut t.branches[index as usize];
        b.cancel = CancelState::Sent;
        let data = cancel_for(&b.request)?;
        let target = b.target;
        self.txn.timers.arm(self.txn.config.timers.wait(), TimerEvent::CancelWait(t.id, index));
        Some(send(target, data))
    }

    /// A timer fired.
    pub(super) fn on_timer(&self, ev: TimerEvent) -> Option<Step> {
        let id = match ev {
            TimerEvent::Server(id, _)
            | TimerEvent::Client(id, ..)
            | TimerEvent::C(id, ..)
            | TimerEvent::CancelWait(id, _) => id,
        };
        let txn_ref = self.txn.table.by_id(id)?;
        let mut t = lock(&txn_ref);
        let mut steps = Vec::new();
        match ev {
            TimerEvent::Server(_, timer) => {
                let actions = t.server.on_timer(timer);
                steps.extend(self.server_actions(&mut t, actions));
            }
            TimerEvent::Client(_, index, timer) => {
                let actions = t.branches.get_mut(index as usize)?.client.on_timer(timer);
                steps.extend(self.client_actions(&mut t, index, actions));
            }
            TimerEvent::C(_, index, epoch) => {
                let b = t.branches.get_mut(index as usize)?;
                if b.client.is_pending() && b.c_epoch == epoch {
                    if b.provisional {
                        if b.cancel != CancelState::Sent {
                            steps.extend(self.send_cancel(&mut t, index));
                        }
                    } else {
                        steps.extend(self.abandon(&mut t, index, 408));
                    }
                }
            }
            TimerEvent::CancelWait(_, index) => {
                if t.branches.get(index as usize)?.client.is_pending() {
                    steps.extend(self.abandon(&mut t, index, 408));
                }
            }
        }
        steps.extend(self.remove_if_done(&mut t));
        batch(steps)
    }

    /// Sending branch `index` of transaction `id` failed.
    pub(super) fn branch_send_failed(&self, id: u64, index: u32) -> Option<Step> {
        let txn_ref = self.txn.table.by_id(id)?;
        let mut t = lock(&txn_ref);
        let actions = t.branches.get_mut(index as usize)?.client.on_transport_error();
        let mut steps = Vec::new();
        if !actions.is_empty() {
            t.branches[index as usize].code = 503;
            steps.extend(self.finish_if_done(&mut t));
        }
        steps.extend(self.remove_if_done(&mut t));
        batch(steps)
    }

    /// Gives up on a branch as if it answered `code` (a timeout).
    fn abandon(&self, t: &mut Txn, index: u32, code: u16) -> Vec<Step> {
        report_final(t, index as usize, 408);
        let b = &mut t.branches[index as usize];
        b.client.abandon();
        b.code = code;
        b.timed_out = true;
        self.finish_if_done(t)
    }

    fn client_actions(&self, t: &mut Txn, index: u32, actions: Vec<ClientAction>) -> Vec<Step> {
        let mut steps = Vec::new();
        for a in actions {
            match a {
                ClientAction::Retransmit => {
                    let b = &t.branches[index as usize];
                    steps.push(send(b.target, b.request.clone()));
                }
                ClientAction::Arm(timer, after) => {
                    self.txn.timers.arm(after, TimerEvent::Client(t.id, index, timer));
                }
                ClientAction::Timeout => {
                    report_final(t, index as usize, 408);
                    let b = &mut t.branches[index as usize];
                    b.code = 408;
                    b.timed_out = true;
                    steps.extend(self.finish_if_done(t));
                }
                ClientAction::SendAck | ClientAction::Deliver | ClientAction::Terminate => {}
            }
        }
        steps
    }

    fn server_actions(&self, t: &mut Txn, actions: Vec<ServerAction>) -> Vec<Step> {
        let mut steps = Vec::new();
        for a in actions {
            match a {
                ServerAction::Send(data) => steps.push(send(t.reply_to, data)),
                ServerAction::Arm(timer, after) => {
                    self.txn.timers.arm(after, TimerEvent::Server(t.id, timer));
                }
                ServerAction::Terminate => {}
            }
        }
        steps.extend(self.remove_if_done(t));
        steps
    }

    /// Forgets the transaction once its server side and every branch ended.
    fn remove_if_done(&self, t: &mut Txn) -> Vec<Step> {
        let server_done = t.server.state() == ServerState::Terminated;
        let branches_done = t
            .branches
            .iter()
            .all(|b| matches!(b.client.state(), crate::txn::ClientState::Terminated));
        if server_done && branches_done && t.resolving == 0 && !t.removed {
            t.removed = true;
            self.txn.table.remove(&t.key, t.id);
        }
        Vec::new()
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.txn.table.len()
    }

    /// Timers armed and not yet fired.
    pub fn armed_timers(&self) -> usize {
        self.txn.timers.len()
    }

    /// Runs the transaction timers while the core lives; after `stop`
    /// turns true it ends once no transaction is left (the server's grace
    /// period bounds that).
    pub fn start_timers(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let queue = Arc::clone(&self.txn.timers);
        tokio::spawn(async move {
            loop {
                let (due, next) = queue.due(tokio::time::Instant::now());
                let Some(core) = weak.upgrade() else { return };
                for ev in due {
                    if let Some(step) = core.on_timer(ev) {
                        core.run_step(step).await;
                    }
                }
                if *stop.borrow() && core.transactions() == 0 {
                    return;
                }
                drop(core);
                tokio::select! {
                    _ = queue.wait(next) => {}
                    r = stop.changed() => if r.is_err() { return },
                }
            }
        })
    }
}

/// Several steps as one.
fn batch(mut steps: Vec<Step>) -> Option<Step> {
    match steps.len() {
        0 => None,
        1 => steps.pop(),
        _ => Some(Step::Batch(steps)),
    }
}

fn send(to: (Transport, SocketAddr), data: Bytes) -> Step {
    Step::Send(Outgoing { transport: to.0, peer: to.1, data, branch: None })
}

/// Where replies to this request go (RFC 3261 §18.2.2, RFC 3581 §4).
fn reply_target(req: &EditedMessage, inbound: Inbound) -> (Transport, SocketAddr) {
    if inbound.transport != Transport::Udp {
        return (inbound.transport, inbound.peer);
    }
    let via = req.original().via().ok().flatten();
    match via {
        Some(v) if v.rport().is_none() && v.maddr().is_none() => {
            (Transport::Udp, SocketAddr::new(inbound.peer.ip(), v.port_or_default()))
        }
        _ => (Transport::Udp, inbound.peer),
    }
}

/// A reason phrase for statuses this proxy makes up.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        408 => "Request Timeout",
        416 => "Unsupported URI Scheme",
        487 => "Request Terminated",
        500 | 503 => "Server Internal Error",
        _ => "Error",
    }
}

/// `data` with its status line replaced.
fn with_status(data: &Bytes, code: u16, reason: &str) -> Bytes {
    let Some(end) = data.iter().position(|&b| b == b'\n') else { return data.clone() };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n").into_bytes();
    out.extend_from_slice(&data[end + 1..]);
    Bytes::from(out)
}

/// The ACK of a non-2xx final reply, sent hop-by-hop on the branch
/// (§17.1.1.3): the request's Request-URI, top Via, Route set, From,
/// Call-ID and CSeq number, and the reply's To.
fn ack_for(b: &Branch, resp: &Message) -> Option<Step> {
    let req = Message::parse(b.request.clone()).ok()?;
    let to = resp.header_value(HeaderName::To)?;
    let data = hop_request(&req, "ACK", to)?;
    Some(send(b.target, data))
}

/// The CANCEL of a branch (§9.1).
fn cancel_for(request: &Bytes) -> Option<Bytes> {
    let req = Message::parse(request.clone()).ok()?;
    let to = req.header_value(HeaderName::To)?;
    hop_request(&req, "CANCEL", to)
}

fn hop_request(req: &Message, method: &str, to: &str) -> Option<Bytes> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(512);
    let _ = write!(out, "{method} {} SIP/2.0\r\n", req.request_uri_str()?);
    // Our Via is the first header line of a request we forwarded.
    let _ = write!(out, "Via: {}\r\n", req.header_value(HeaderName::Via)?);
    for r in req.header_values(HeaderName::Route) {
        let _ = write!(out, "Route: {r}\r\n");
    }
    let _ = write!(out, "From: {}\r\n", req.header_value(HeaderName::From)?);
    let _ = write!(out, "To: {to}\r\n");
    let _ = write!(out, "Call-ID: {}\r\n", req.header_value(HeaderName::CallId)?);
    let _ = write!(out, "CSeq: {} {method}\r\n", req.cseq().ok()??.seq);
    out.push_str("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

/// Tells trunk health and counters (routing/health.rs) the first final
/// outcome of branch `i`.
fn report_final(t: &Txn, i: usize, code: u16) {
    let b = &t.branches[i];
    if code >= 200 && b.code == 0 && !(code < 300 && t.answered) {
        let call_id = t.request.original().call_id().ok().flatten().unwrap_or("");
        crate::routing::health::on_branch_final(&t.services, b.target.1, t.invite, code, call_id);
    }
}
