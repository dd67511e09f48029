//! What the transaction layer tells the dialog table
//! ([`crate::dialog::Dialogs`]) about an INVITE that starts a dialog: that
//! it was relayed, its provisional replies with a To tag, its first 2xx,
//! and its failure.

use super::*;
use crate::dialog::{Leg, Pending, now_ms};
use crate::proxy::dialogs::first_contact;

impl Core {
    /// `relay()` of an initial INVITE whose route called `dlg_manage()`:
    /// the dialog starts. `msg` is the request as received, `ruri` its
    /// Request-URI as relayed. False when the request cannot start one.
    pub(super) fn dialog_started(
        &self,
        msg: &Message,
        ruri: &str,
        inbound: Inbound,
        pending: Pending,
    ) -> bool {
        if !pending.managed || msg.to_tag().is_some_and(|t| !t.is_empty()) {
            return false;
        }
        let (Ok(Some(call_id)), Some(from), Some(to)) =
            (msg.call_id(), msg.header_value(HeaderName::From), msg.header_value(HeaderName::To))
        else {
            return false;
        };
        let caller = Leg {
            transport: inbound.transport.name().into(),
            addr: Some(inbound.peer),
            contact: first_contact(msg),
            route: Vec::new(),
            cseq: msg.cseq().ok().flatten().map_or(0, |c| c.seq),
        };
        self.services().dialogs.create(call_id, from, to, ruri, caller, pending, now_ms());
        true
    }

    /// A reply on branch `index` of a dialog's INVITE.
    pub(super) fn dialog_reply(
        &self,
        t: &Txn,
        index: usize,
        msg: &Message,
        code: u16,
        source: Inbound,
    ) {
        let Ok(Some(call_id)) = msg.call_id() else { return };
        let dialogs = &self.services().dialogs;
        // A hidden dialog's callee never saw the caller's Record-Route.
        let hidden_invite =
            t.live.as_deref().filter(|l| l.scope.hide.is_some()).map(|l| l.request.original());
        match code {
            101..=199 => {
                let to_tag = msg.to_tag().unwrap_or("");
                dialogs.provisional(call_id, to_tag);
                if let Some(invite) = hidden_invite
                    && !to_tag.is_empty()
                {
                    let (callee, caller_route) = self.callee_leg(msg, source, Some(invite));
                    dialogs.early_leg(call_id, to_tag, callee, caller_route);
                }
            }
            200..=299 => {
                let (transport, peer) = t.branches[index].target;
                let dst = format!("{}:{peer}", transport.name());
                let flags = t.live.as_deref().map_or(0, |l| l.scope.flags);
                self.dialog_answered(msg, source, &dst, Some(flags), hidden_invite);
            }
            _ => {}
        }
    }

    /// The INVITE of a dialog failed: `code` goes upstream, with
    /// `response`'s reason phrase (the standard one when it has none).
    pub(super) fn dialog_failed(&self, t: &Txn, code: u16, response: &[u8]) {
        let Some(live) = t.live.as_deref() else { return };
        let Ok(Some(call_id)) = live.request.original().call_id() else { return };
        let line = response.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
        let phrase = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.splitn(3, ' ').nth(2))
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| crate::sip::status::phrase_of(code));
        self.services().dialogs.fail(
            call_id,
            code,
            phrase.trim(),
            t.canceled,
            Some(live.scope.flags),
            now_ms(),
        );
    }
}
