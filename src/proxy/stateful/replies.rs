//! The reply side (§16.7): matching replies to branches, passing
//! provisional and 2xx replies on, reply routes, the failure route and the
//! best final reply.

use super::*;
use crate::proxy::topology;

impl Core {
    /// The reply `msg` to one of our branches, if it is one (`None`: handle
    /// it statelessly).
    pub(in crate::proxy) fn match_response(&self, msg: &Message) -> Option<(TxnRef, u32)> {
        let via = msg.via().ok().flatten()?;
        let (id, index, hash) = self.txn.parse_branch(via.branch()?)?;
        let txn = self.txn.table.by_id(id)?;
        let ok = {
            let t = lock(&txn);
            t.via_hash == hash && (index as usize) < t.branches.len()
        };
        ok.then_some((txn, index))
    }

    /// A reply to branch `index` of `txn` (§16.7).
    pub(in crate::proxy) fn branch_response(
        &self,
        txn_ref: &TxnRef,
        index: u32,
        msg: Arc<Message>,
        source: Inbound,
    ) -> Option<Step> {
        let code = msg.status()?;
        if msg.cseq().ok().flatten().is_some_and(|c| c.method == "CANCEL") {
            return None; // the reply to our own CANCEL
        }
        let mut t = lock(txn_ref);
        let i = index as usize;
        let b = t.branches.get_mut(i)?;
        let actions = b.client.on_response(code, &self.txn.config.timers);
        if !b.client.retransmits()
            && let Some(handle) = b.retransmit.take()
        {
            self.txn.timers.cancel(handle);
        }
        let mut steps = Vec::new();
        let mut deliver = false;
        for a in actions {
            match a {
                ClientAction::SendAck => {
                    let b = &mut t.branches[i];
                    if !b.acked {
                        // From now on only the ACK is sent on this branch.
                        b.kept = ack_for(&b.kept, &msg).unwrap_or_default();
                        b.acked = true;
                    }
                    if !b.kept.is_empty() {
                        steps.push(send(b.target, b.kept.clone()));
                    }
                }
                ClientAction::Deliver => deliver = true,
                other => append(&mut steps, self.client_actions(&mut t, index, [other])),
            }
        }
        if code >= 200 && !t.branches[i].acked {
            t.branches[i].kept = Bytes::new();
        }
        let compacted = t.live.is_none();
        if deliver && !compacted {
            append(&mut steps, self.deliver(&mut t, index, msg, code, source));
            append(&mut steps, self.remove_if_done(&mut t));
        } else if deliver {
            // A 2xx retransmitted in Accepted, after the transaction was
            // compacted: upstream by its Via, as a reply without one.
            drop(t);
            steps.extend(self.process_response(msg, source));
        } else {
            append(&mut steps, self.remove_if_done(&mut t));
        }
        batch(steps)
    }

    pub(super) fn deliver(
        &self,
        t: &mut Txn,
        index: u32,
        msg: Arc<Message>,
        code: u16,
        source: Inbound,
    ) -> Vec<Step> {
        let i = index as usize;
        let mut steps = Vec::new();
        report_final(t, i, code);
        if t.dialog && code > 100 {
            self.dialog_reply(t, i, &msg, code, source);
        }
        if code < 200 {
            let b = &mut t.branches[i];
            b.provisional = true;
            if b.cancel == CancelState::Pending {
                steps.extend(self.send_cancel(t, index));
            }
            if code > 100 && t.invite {
                // Timer C restarts (§16.7 step 2): its queue entry re-arms
                // itself from this time when it fires.
                t.branches[i].provisional_at = Some(std::time::Instant::now());
            }
        }
        // Reply routes, if any, see the reply as it will go upstream.
        let mut edit = strip_own_via(msg);
        if let Some(live) = t.live.as_deref().filter(|l| l.scope.hide.is_some()) {
            let contact = topology::masked_contact(live.inbound.transport, live.inbound.local);
            topology::restore_reply(&mut edit, &live.request, |r| self.is_own_route(r), &contact);
        }
        let mut dropped = false;
        if let Some(live) = t.live.as_deref_mut() {
            let hooks = [live.router.reply_route(), live.scope.on_reply];
            if hooks.iter().any(Option::is_some) {
                let mut ctx = RequestContext::new(edit, source.peer, source.transport);
                ctx.txn = live.scope.clone();
                ctx.txn.branch_index = index;
                ctx.services = live.services.clone();
                for route in hooks.into_iter().flatten() {
                    if live.router.run_hook(route, &mut ctx) == Decision::Drop {
                        dropped = true;
                    }
                }
                live.scope.avps = std::mem::take(&mut ctx.txn.avps);
                live.scope.flags = ctx.txn.flags;
                edit = ctx.msg;
            }
        }
        if dropped && code >= 200 {
            tracing::debug!(code, "a final reply cannot be dropped; passing it on");
        }
        match code {
            100 => {}
            101..=199 => {
                if !dropped {
                    let actions = t.server.respond(code, edit.serialize(), &self.txn.config.timers);
                    append(&mut steps, self.server_actions(t, actions));
                    self.count_forwarded_response();
                }
            }
            200..=299 => {
                let data = edit.serialize();
                let actions = t.server.respond(code, data.clone(), &self.txn.config.timers);
                if actions.is_empty() {
                    // Already final upstream: a 2xx still goes (RFC 6026 §8.4).
                    steps.push(reply(t, data));
                } else {
                    append(&mut steps, self.server_actions(t, actions));
                }
                self.count_forwarded_response();
                if !t.answered {
                    t.answered = true;
                    append(&mut steps, self.cancel_pending(t, Some(index)));
                }
            }
            _ => {
                let keep = !t.server.is_final();
                let b = &mut t.branches[i];
                b.code = code;
                if keep {
                    b.response = Some(Box::new(edit));
                }
                if ends_fork(code) {
                    append(&mut steps, self.cancel_pending(t, Some(index)));
                }
                append(&mut steps, self.finish_if_done(t));
            }
        }
        steps
    }

    /// When no branch is pending: runs the failure route (which may start
    /// new branches or reply), else sends the best reply (§16.7 step 6).
    pub(super) fn finish_if_done(&self, t: &mut Txn) -> Vec<Step> {
        if t.answered
            || t.server.is_final()
            || t.resolving > 0
            || t.branches.iter().any(|b| b.client.is_pending())
        {
            return Vec::new();
        }
        let Some(live) = t.live.as_deref_mut() else { return Vec::new() };
        // The next group of serial targets (contacts of lower q) first.
        if !t.canceled && !live.scope.serial.is_empty() {
            let group = live.scope.serial.remove(0);
            let Some(txn_ref) = self.txn.table.by_id(t.id) else { return Vec::new() };
            let mut steps = Vec::new();
            for target in group {
                steps.extend(self.start_target(t, &txn_ref, target));
            }
            append(&mut steps, self.finish_if_done(t));
            return steps;
        }
        let codes: Vec<u16> =
            t.branches.iter().map(|b| if b.code == 0 { 408 } else { b.code }).collect();
        let winner = best(&codes);
        let code = winner.map_or(500, |w| codes[w]);
        if let Some(route) = live.scope.on_failure.take() {
            let mut ctx = RequestContext::new(
                live.request.clone(),
                live.inbound.peer,
                live.inbound.transport,
            );
            ctx.txn = live.scope.clone();
            ctx.services = live.services.clone();
            ctx.txn.reply_code = code;
            ctx.txn.branch_index = winner.map_or(0, |w| w as u32);
            ctx.txn.canceled = t.canceled;
            ctx.txn.branch_timeout = winner.is_some_and(|w| t.branches[w].timed_out);
            ctx.record_route = live.record_route;
            let decision = live.router.run_hook(route, &mut ctx);
            let RequestContext { msg, destination, txn: mut scope, reply_headers, .. } = ctx;
            let extra = std::mem::take(&mut scope.branches);
            live.scope = TxnScope {
                exists: false,
                reply_code: 0,
                branch_index: 0,
                canceled: false,
                branch_timeout: false,
                ..scope
            };
            match decision {
                Decision::Relay | Decision::Forward if !t.canceled => {
                    live.request = msg;
                    let Some(txn_ref) = self.txn.table.by_id(t.id) else { return Vec::new() };
                    let mut steps = self.start_branches(t, &txn_ref, destination, extra);
                    // Waits for the new branches; if every one failed at
                    // once, sends the best reply, now including them.
                    append(&mut steps, self.finish_if_done(t));
                    return steps;
                }
                Decision::Reply { code, reason } => {
                    let extra: Vec<(&str, &str)> =
                        reply_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    let data = build_response(&msg, code, &reason, &extra);
                    if t.dialog && code >= 300 {
                        self.dialog_failed(t, code, &data);
                    }
                    let actions = t.server.respond(code, data, &self.txn.config.timers);
                    self.count_replied();
                    return self.server_actions(t, actions);
                }
                _ => {}
            }
        }
        let (upstream, data) = self.best_reply(t, winner);
        if t.dialog && upstream >= 300 {
            self.dialog_failed(t, upstream, &data);
        }
        let actions = t.server.respond(upstream, data, &self.txn.config.timers);
        self.count_forwarded_response();
        self.server_actions(t, actions)
    }

    /// The reply to send upstream for the chosen branch: its reply with the
    /// challenges of every 401/407 merged in and 503 made 500, or a local
    /// 408 (487 after a CANCEL) when the branch got no reply. Returns its
    /// status with it.
    pub(super) fn best_reply(&self, t: &Txn, winner: Option<usize>) -> (u16, Bytes) {
        let local = |code: u16| match t.live.as_deref() {
            Some(live) => (code, build_response(&live.request, code, reason(code), &[])),
            None => (code, Bytes::new()),
        };
        let Some(b) = winner.map(|w| &t.branches[w]) else { return local(500) };
        let Some(resp) = &b.response else {
            return match (b.code, t.canceled) {
                (_, true) => local(487),
                (0 | 408, _) => local(408),
                (code, _) => local(upstream_status(code)),
            };
        };
        let mut out = EditedMessage::clone(resp);
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
        if b.code == 503 { (500, with_status(&data, 500, reason(500))) } else { (b.code, data) }
    }
}
