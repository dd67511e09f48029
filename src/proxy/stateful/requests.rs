//! The request side: matching requests to transactions, `relay()`,
//! starting branches, CANCEL.

use super::*;
use crate::proxy::NextHop;

impl Core {
    /// Absorbs retransmissions and the ACK of non-2xx replies (§17.2) and
    /// finds the transaction a CANCEL cancels.
    pub(in crate::proxy) fn match_request(&self, msg: &Message) -> Matched {
        let method = msg.method_str().unwrap_or("");
        if method == "CANCEL" {
            return Matched::Cancel(
                ServerKey::cancelled_invite(msg).and_then(|k| self.txn.table.by_key(&k)),
            );
        }
        if self.txn.table.len() == 0 {
            return Matched::Fresh;
        }
        let key = ServerKey::of(msg);
        let Some(txn) = key.as_ref().and_then(|k| self.txn.table.by_key(k)) else {
            return Matched::New(key);
        };
        let mut t = lock(&txn);
        if method == "ACK" {
            if t.server.state() == ServerState::Accepted {
                // An ACK for a 2xx reusing the INVITE's branch (RFC 2543
                // style): it is end-to-end, route it.
                return Matched::New(key);
            }
            let actions = t.server.on_ack(&self.txn.config.timers);
            let steps = self.server_actions(&mut t, actions);
            return Matched::Absorbed(batch(steps));
        }
        self.count_absorbed();
        if t.server.owes_trying() {
            // The caller retransmitted before any response went back (the
            // 100 Trying was being held for `tm.trying_delay`): send it now.
            return Matched::Absorbed(batch(self.send_trying(&mut t)));
        }
        let resend = t.server.on_request();
        Matched::Absorbed(resend.map(|data| reply(&t, data)))
    }

    /// `relay()` of a request that is neither ACK nor a CANCEL: creates the
    /// transaction, answers 100 to an INVITE (at once, or
    /// after `tm.trying_delay` unless a response went back first), and starts the branches.
    pub(in crate::proxy) fn relay(
        &self,
        ctx: RequestContext,
        inbound: Inbound,
        router: Arc<dyn Router>,
        key: Option<ServerKey>,
    ) -> Option<Step> {
        let Some(key) = key else {
            return self.reject_request(&ctx, inbound, Reject::new(400, "Bad Request"));
        };
        if self.txn.table.len() >= self.txn.config.max_transactions {
            let mut r = Reject::new(503, "Service Unavailable");
            r.extra.push(("Retry-After", "5".into()));
            return self.reject_request(&ctx, inbound, r);
        }
        let id = self.txn.next_id.fetch_add(1, Ordering::Relaxed);
        let invite = ctx.msg.original().method_str() == Some("INVITE");
        let reliable = inbound.transport != Transport::Udp;
        let reply_to = reply_target(&ctx.msg, inbound, ctx.force_rport);
        let RequestContext {
            msg,
            destination,
            record_route,
            reply_no_connect,
            path,
            txn: mut scope,
            services,
            ..
        } = ctx;
        let extra = std::mem::take(&mut scope.branches);
        let via_hash = crate::proxy::branch::loop_hash(msg.original());
        let mut pending = if invite { scope.dialog.take() } else { None };
        if let Some(p) = pending.as_mut() {
            p.flags = scope.flags;
        }
        let txn = Txn {
            id,
            key: key.clone(),
            invite,
            via_hash,
            reply_to,
            reply_no_connect,
            server: ServerTxn::new(invite, reliable, &self.txn.config.timers),
            branches: Vec::with_capacity(1 + extra.len()),
            live: Some(Box::new(Live {
                router,
                request: msg,
                inbound,
                scope,
                services,
                record_route,
                path,
            })),
            resolving: 0,
            canceled: false,
            answered: false,
            removed: false,
            dialog: false,
        };
        let txn_ref: TxnRef = Arc::new(Mutex::new(txn));
        if !self.txn.table.insert(key, id, Arc::clone(&txn_ref)) {
            return None; // the original is being handled
        }
        self.count_created();
        let mut t = lock(&txn_ref);
        if let Some(p) = pending
            && let Some(live) = t.live.as_deref()
        {
            let ruri = live.request.request_uri().unwrap_or("");
            let started = self.dialog_started(live.request.original(), ruri, inbound, *p);
            t.dialog = started;
        }
        let mut steps = Vec::new();
        if invite {
            let delay = self.txn.config.timers.trying;
            if delay.is_zero() {
                append(&mut steps, self.send_trying(&mut t));
            } else {
                self.txn.timers.arm(delay, TimerEvent::Server(id, ServerTimer::Trying));
            }
        }
        append(&mut steps, self.start_branches(&mut t, &txn_ref, destination, extra));
        append(&mut steps, self.finish_if_done(&mut t));
        batch(steps)
    }

    /// Sends the 100 Trying an INVITE's server transaction owes (nothing
    /// once a response went back, or once the request was let go).
    pub(super) fn send_trying(&self, t: &mut Txn) -> Vec<Step> {
        if !t.server.owes_trying() {
            return Vec::new();
        }
        let Some(live) = t.live.as_deref() else { return Vec::new() };
        let trying = build_response(&live.request, 100, "Trying", &[]);
        let actions = t.server.respond(100, trying, &self.txn.config.timers);
        self.server_actions(t, actions)
    }

    /// A final reply of the request route after `t_newtran()`: a server
    /// transaction without branches is made for the request and sends the
    /// reply, so retransmissions of the request get it again (and, over
    /// UDP, a non-2xx reply to an INVITE is retransmitted until its ACK,
    /// which the transaction absorbs). `None` when no transaction can be
    /// made (no key, or the table is full): the caller replies statelessly.
    pub(in crate::proxy) fn reply_in_txn(
        &self,
        ctx: &RequestContext,
        inbound: Inbound,
        key: Option<ServerKey>,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> Option<Option<Step>> {
        let key = key?;
        if self.txn.table.len() >= self.txn.config.max_transactions {
            return None;
        }
        let id = self.txn.next_id.fetch_add(1, Ordering::Relaxed);
        let invite = ctx.msg.original().method_str() == Some("INVITE");
        let reliable = inbound.transport != Transport::Udp;
        let txn = Txn {
            id,
            key: key.clone(),
            invite,
            via_hash: 0,
            reply_to: reply_target(&ctx.msg, inbound, ctx.force_rport),
            reply_no_connect: ctx.reply_no_connect,
            server: ServerTxn::new(invite, reliable, &self.txn.config.timers),
            branches: Vec::new(),
            // Nothing is ever routed in it: it only answers.
            live: None,
            resolving: 0,
            canceled: false,
            answered: false,
            removed: false,
            dialog: false,
        };
        let txn_ref: TxnRef = Arc::new(Mutex::new(txn));
        if !self.txn.table.insert(key, id, Arc::clone(&txn_ref)) {
            return Some(None); // the original is being handled
        }
        self.count_created();
        self.count_replied();
        let mut t = lock(&txn_ref);
        let data = build_response(&ctx.msg, code, reason, extra);
        let actions = t.server.respond(code, data, &self.txn.config.timers);
        Some(batch(self.server_actions(&mut t, actions)))
    }

    /// Starts the main branch (to `destination`, the Route set or the R-URI)
    /// and one branch per `extra` target.
    pub(super) fn start_branches(
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
    pub(super) fn start_target(
        &self,
        t: &mut Txn,
        txn_ref: &TxnRef,
        target: BranchTarget,
    ) -> Option<Step> {
        let BranchTarget { uri, destination, route } = target;
        self.start_branch(t, txn_ref, Some(uri), destination, &route)
    }

    /// Runs the branch route, prepares the copy and sends it.
    pub(super) fn start_branch(
        &self,
        t: &mut Txn,
        txn_ref: &TxnRef,
        uri: Option<String>,
        mut destination: Option<String>,
        route: &[String],
    ) -> Option<Step> {
        let live = t.live.as_deref_mut()?;
        let mut edit = live.request.clone();
        if let Some(uri) = uri {
            edit.set_request_uri(uri);
        }
        for r in route.iter().rev() {
            edit.insert_first("Route", r);
        }
        if let Some(route) = live.scope.on_branch {
            let mut ctx = RequestContext::new(edit, live.inbound.peer, live.inbound.transport);
            ctx.txn = live.scope.clone();
            // The index this branch gets when it is sent: branches wait for
            // name resolution in the order they were started.
            ctx.txn.branch_index = (t.branches.len() + t.resolving as usize) as u32;
            ctx.services = live.services.clone();
            ctx.destination = destination;
            ctx.record_route = live.record_route;
            let decision = live.router.run_hook(route, &mut ctx);
            live.scope.avps = ctx.txn.avps;
            live.scope.flags = ctx.txn.flags;
            live.scope.media_offered |= ctx.txn.media_offered;
            if decision == Decision::Drop {
                return None;
            }
            edit = ctx.msg;
            destination = ctx.destination;
        }
        // The next hop depends on the destination alone (the Via branch is
        // made when the copy is sent).
        let fwd = Forward {
            destination: destination.as_deref(),
            record_route: live.record_route,
            path: live.path.as_deref(),
            branch: None,
            hide: None,
        };
        let hop = match next_hop(&edit, &fwd) {
            Ok(hop) => hop,
            Err(r) => {
                t.branches.push(Branch::failed(r.code, &self.txn.config.timers));
                return None;
            }
        };
        if hop.socket_addr().is_none() {
            if !self.has_dns() {
                t.branches.push(Branch::failed(503, &self.txn.config.timers));
                return None;
            }
            t.resolving += 1;
            return Some(self.resolve_branch(hop, Arc::clone(txn_ref), edit, destination));
        }
        self.send_branch(t, edit, destination.as_deref(), &hop, None)
    }

    /// Prepares and sends a branch whose next hop is known (`resolved`, or
    /// an IP literal).
    pub(in crate::proxy) fn send_branch(
        &self,
        t: &mut Txn,
        mut edit: EditedMessage,
        destination: Option<&str>,
        hop: &NextHop,
        resolved: Option<(Transport, SocketAddr)>,
    ) -> Option<Step> {
        let live = t.live.as_deref()?;
        let index = t.branches.len() as u32;
        let part = self.txn.branch_part(t.id, index);
        let fwd = Forward {
            destination,
            record_route: live.record_route,
            path: live.path.as_deref(),
            branch: Some((&part, t.via_hash)),
            hide: live.scope.hide.as_ref(),
        };
        let inbound = live.inbound;
        let (target, data) = match self.prepare_copy(&mut edit, &fwd, hop, inbound, resolved) {
            Ok(x) => x,
            Err(r) => {
                t.branches.push(Branch::failed(r.code, &self.txn.config.timers));
                return None;
            }
        };
        let reliable = target.0 != Transport::Udp;
        let (client, actions) = ClientTxn::start(t.invite, reliable, &self.txn.config.timers);
        t.branches.push(Branch::new(target, data.clone(), client));
        crate::routing::health::on_branch_started(&live.services, target.1, t.invite);
        let mut steps = self.client_actions(t, index, actions);
        if t.invite {
            self.txn.timers.arm(self.txn.config.timers.timer_c, TimerEvent::C(t.id, index));
        }
        self.count_forwarded_request();
        steps.push(Step::Send(Outgoing {
            branch: Some((t.id, index)),
            ..Outgoing::new(target.0, target.1, data)
        }));
        batch(steps)
    }

    /// A branch whose name resolution finished (`target` is `None` when it
    /// failed).
    pub(in crate::proxy) fn branch_resolved(
        &self,
        txn_ref: &TxnRef,
        edit: EditedMessage,
        destination: Option<String>,
        hop: &NextHop,
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
                    hop,
                    Some(target),
                )),
                None => t.branches.push(Branch::failed(503, &self.txn.config.timers)),
            }
        }
        append(&mut steps, self.finish_if_done(&mut t));
        append(&mut steps, self.remove_if_done(&mut t));
        batch(steps)
    }

    /// `relay()` of a CANCEL whose INVITE transaction exists: cancels every
    /// pending branch and answers the CANCEL 200 (§16.10).
    pub(in crate::proxy) fn cancel(
        &self,
        txn_ref: &TxnRef,
        cancel: &RequestContext,
        inbound: Inbound,
    ) -> Option<Step> {
        let mut steps = Vec::new();
        {
            let mut t = lock(txn_ref);
            if !t.server.is_final() {
                t.canceled = true;
                append(&mut steps, self.cancel_pending(&mut t, None));
                append(&mut steps, self.finish_if_done(&mut t));
            }
        }
        self.count_replied();
        let ok = build_response(&cancel.msg, 200, "OK", &[]);
        steps.push(Step::Send(Outgoing {
            no_connect: cancel.reply_no_connect,
            ..Outgoing::new(inbound.transport, inbound.peer, ok)
        }));
        batch(steps)
    }

    /// Cancels every pending branch except `except`.
    pub(super) fn cancel_pending(&self, t: &mut Txn, except: Option<u32>) -> Vec<Step> {
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

    pub(super) fn send_cancel(&self, t: &mut Txn, index: u32) -> Option<Step> {
        let b = &mut t.branches[index as usize];
        b.cancel = CancelState::Sent;
        let data = cancel_for(&b.kept)?;
        let target = b.target;
        self.txn.timers.arm(self.txn.config.timers.wait(), TimerEvent::CancelWait(t.id, index));
        Some(send(target, data))
    }
}
