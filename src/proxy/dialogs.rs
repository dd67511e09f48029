//! The proxy's side of dialog tracking ([`crate::dialog`]): in-dialog
//! requests as they are relayed, the BYEs sent when a dialog's time is up,
//! and the replies to those BYEs.
//!
//! The transaction layer reports the INVITE's replies and its failure
//! (`stateful::dialog`); this module sees everything else. The timeout task
//! wakes every [`TICK`] (20 ms), so a maximum duration ends the call at
//! most that late: a prepaid call is billed to within a few hundredths of
//! a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::core::{Core, Outgoing, Step};
use super::transport::Transport;
use crate::dialog::bye::{self, Bye};
use crate::dialog::now_ms;
use crate::sip::{HeaderName, Message};

/// The granularity of dialog deadlines and BYE retransmissions.
pub const TICK: Duration = Duration::from_millis(20);

/// The longest the timeout task sleeps with nothing to do, so it notices
/// that its core is gone.
const IDLE: Duration = Duration::from_secs(1);

/// The first Contact URI of a message, in angle brackets; empty when none.
pub(super) fn first_contact(msg: &Message) -> Box<str> {
    msg.list_values(HeaderName::Contact)
        .filter_map(Result::ok)
        .next()
        .map(|v| format!("<{}>", crate::dialog::uri_of(v)).into_boxed_str())
        .unwrap_or_default()
}

impl Core {
    /// Does a Record-Route value name this proxy?
    pub(super) fn is_own_route(&self, value: &str) -> bool {
        crate::sip::Uri::parse(crate::dialog::uri_of(value))
            .is_ok_and(|u| self.local.is_local_uri(&u))
    }

    /// Where an in-dialog request of a hidden dialog goes
    /// ([`crate::dialog::Dialogs::hidden_hop`]); a re-INVITE or UPDATE
    /// with a Contact refreshes its sender's.
    pub(super) fn hidden_hop(&self, msg: &Message) -> Option<crate::dialog::HiddenHop> {
        let to_tag = msg.to_tag().filter(|t| !t.is_empty())?;
        let (Ok(Some(call_id)), Some(from_tag)) = (msg.call_id(), msg.from_tag()) else {
            return None;
        };
        let refresh = matches!(msg.method_str(), Some("INVITE" | "UPDATE"));
        let contact = refresh.then(|| first_contact(msg));
        let contact = contact.as_deref().map(crate::dialog::uri_of);
        self.services().dialogs.hidden_hop(call_id, from_tag, to_tag, contact)
    }

    /// A request within a dialog (it has a To tag) that the route relayed
    /// or forwarded: the dialog notes who sent it and its CSeq; a BYE ends
    /// the call and writes its record.
    pub(super) fn dialog_request(&self, msg: &Message) {
        let Some(to_tag) = msg.to_tag().filter(|t| !t.is_empty()) else { return };
        let (Ok(Some(call_id)), Some(from_tag), Ok(Some(cseq))) =
            (msg.call_id(), msg.from_tag(), msg.cseq())
        else {
            return;
        };
        let method = msg.method_str().unwrap_or("");
        self.services().dialogs.in_dialog(call_id, from_tag, to_tag, method, cseq.seq, now_ms());
    }

    /// The first 2xx to a dialog's INVITE, from `source`: the callee's
    /// leg (its Contact, where it answered from, the Record-Route entries
    /// on its side) and the caller's route set confirm the dialog. `dst`
    /// is where the answered branch went; `flags` the transaction's now
    /// (`None`: keep those of the INVITE's relay).
    pub(super) fn dialog_answered(
        &self,
        msg: &Message,
        source: super::Inbound,
        dst: &str,
        flags: Option<u64>,
        invite: Option<&Message>,
    ) {
        let Ok(Some(call_id)) = msg.call_id() else { return };
        let (callee, caller_route) = self.callee_leg(msg, source, invite);
        let to = msg.header_value(HeaderName::To).unwrap_or("");
        self.services().dialogs.confirm(call_id, to, callee, caller_route, dst, flags, now_ms());
    }

    /// The callee's leg from its reply (its Contact, where it answered
    /// from, the Record-Route entries on its side) and the caller's route
    /// set: the entries below this proxy's in the reply or, for a hidden
    /// dialog (whose callee never saw them), those of the `invite` as it
    /// arrived.
    pub(super) fn callee_leg(
        &self,
        msg: &Message,
        source: super::Inbound,
        invite: Option<&Message>,
    ) -> (crate::dialog::Leg, Vec<Box<str>>) {
        let values = |m: &Message| -> Vec<String> {
            m.list_values(HeaderName::RecordRoute)
                .filter_map(Result::ok)
                .map(|v| v.trim().to_owned())
                .collect()
        };
        let (mut caller_route, callee_route) =
            bye::split_route_set(&values(msg), |r| self.is_own_route(r));
        if let Some(invite) = invite {
            caller_route = values(invite).into_iter().map(String::into_boxed_str).collect();
        }
        let callee = crate::dialog::Leg {
            transport: source.transport.name().into(),
            addr: Some(source.peer),
            contact: first_contact(msg),
            route: callee_route,
            cseq: 0,
        };
        (callee, caller_route)
    }

    /// A reply to an INVITE that has no transaction here (the proxy
    /// restarted while it rang): an early dialog restored from the
    /// snapshot is still confirmed or ended by it. `dst` is unknown then;
    /// the flags stay those of the INVITE's relay.
    pub(super) fn dialog_stray_reply(&self, msg: &Message, source: super::Inbound) {
        let Some(code) = msg.status().filter(|c| *c > 100) else { return };
        let (Ok(Some(call_id)), Ok(Some(cseq))) = (msg.call_id(), msg.cseq()) else { return };
        if cseq.method != "INVITE" {
            return;
        }
        let dialogs = &self.services().dialogs;
        match code {
            101..=199 => dialogs.provisional(call_id, msg.to_tag().unwrap_or("")),
            200..=299 => self.dialog_answered(msg, source, "", None, None),
            _ => {
                let phrase = msg.reason().unwrap_or_else(|| crate::sip::status::phrase_of(code));
                dialogs.fail(call_id, code, phrase, code == 487, None, now_ms());
            }
        }
    }

    /// A reply to a BYE this proxy sent for a dialog that timed out (by its
    /// Via branch): noted, never routed.
    pub(super) fn dialog_bye_reply(&self, branch: &str, msg: &Message) {
        if let Some(code) = msg.status() {
            self.services().dialogs.byes.reply(branch, code);
        }
    }
}

/// The address this proxy sends from towards `to` over `transport`.
fn local_addr(core: &Core, transport: &str, to: SocketAddr) -> Option<SocketAddr> {
    let t = Transport::from_name(transport)?;
    let local = core.outbound().local_addr(t, to)?;
    if local.ip().is_unspecified() {
        Some(SocketAddr::new(super::natping::route_ip(to).unwrap_or(local.ip()), local.port()))
    } else {
        Some(local)
    }
}

fn send(core: &Arc<Core>, bye: &Bye) {
    let Some(t) = Transport::from_name(&bye.transport) else { return };
    // `event_route "tm:local-request"` sees it first, as every request the
    // proxy originates.
    let Some(data) = core.services().trunks.local_request(bye.data.clone()) else { return };
    core.run_step_now(Step::Send(Outgoing::new(t, bye.to, Bytes::from(data))));
}

/// Ends the dialogs whose time is up with a BYE to each side, and resends
/// unanswered BYEs. The task ends when the core is dropped.
pub fn spawn(core: &Arc<Core>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(core);
    tokio::spawn(async move {
        loop {
            // The services, not the core: the sleep must not keep the core alive.
            let Some(services) = weak.upgrade().map(|core| Arc::clone(core.services())) else {
                return;
            };
            let dialogs = &services.dialogs;
            // Registered before looking, so a deadline armed in between
            // still wakes it (`notify_one` keeps a permit).
            let woken = dialogs.wake.notified();
            let now = Instant::now();
            let next_deadline = dialogs
                .next_deadline_ms()
                .map(|at| now + Duration::from_millis(at.saturating_sub(now_ms())));
            let next = next_deadline.into_iter().chain(dialogs.byes.next_due()).min();
            let sleep = next.map_or(IDLE, |at| at.saturating_duration_since(now).clamp(TICK, IDLE));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = woken => tokio::time::sleep(TICK).await,
            }
            let Some(core) = weak.upgrade() else { return };
            let dialogs = &core.services().dialogs;
            for d in dialogs.expired(now_ms()) {
                core.services().trunks.call_ended(&d.call_id);
                let why = if d.max_ms.is_some() { "Call duration limit" } else { "Dialog timeout" };
                tracing::info!(call_id = %d.call_id, "dialog ended: {why}; sending BYE to both sides");
                let seq = dialogs.byes.next_seq();
                for b in bye::byes_for(&d, seq, |t, to| local_addr(&core, t, to), why) {
                    send(&core, &b);
                    dialogs.byes.sent(b, Instant::now());
                }
            }
            for b in dialogs.byes.due(Instant::now()) {
                send(&core, &b);
            }
        }
    })
}
