//! Server transactions (RFC 3261 §17.2, with RFC 6026's Accepted state).
//!
//! ```text
//!  INVITE                                  non-INVITE
//!            |request / send 100                      |request
//!            v                                        v
//!      +-----------+ 1xx: send              +-----------+
//!      |Proceeding |-----+                  |  Trying   |
//!      +-----------+<----+                  +-----------+
//!   2xx |     | 300-699: send,                    | 1xx       | final
//!  send |     | G (unreliable), H                 v           |
//!    L  |     v                             +-----------+     |
//!       | +-----------+ G: resend           |Proceeding |-----+ final: send
//!       | | Completed |-----+               +-----------+     |  J (0 if reliable)
//!       | +-----------+<----+                                 v
//!       |  ACK| I     | H: no ACK                       +-----------+
//!       |     v       |                                 | Completed | request: resend
//!       | +-----------+                                 +-----------+
//!       | | Confirmed | ACK absorbed                          | J
//!       | +-----------+                                       v
//!       v     | I (0 if reliable)                        Terminated
//!  +---------+|
//!  |Accepted |+----> Terminated
//!  +---------+ 2xx retransmissions sent, requests absorbed; L -> Terminated
//! ```
//!
//! A retransmitted request is answered with the last response sent (in
//! Proceeding and Completed) and otherwise absorbed: the proxy never routes
//! it again.
//!
//! The timer values are passed to each event rather than kept: a proxy holds
//! one transaction per call for 64·T1 after it ended, and the few bytes per
//! transaction are what that state costs (see `benches/txn_memory.rs`).

use std::time::Duration;

use bytes::Bytes;

use super::{Actions, Timers};
use smallvec::smallvec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerTimer {
    /// Retransmit a non-2xx final response to an INVITE (unreliable only).
    G,
    /// Give up waiting for the ACK.
    H,
    /// Absorb ACK retransmissions, then end.
    I,
    /// Absorb request retransmissions of a non-INVITE, then end.
    J,
    /// Accepted: forward 2xx retransmissions, then end.
    L,
    /// An INVITE has had no response for `tm.trying_delay`: the proxy
    /// sends its 100 Trying now (see [`ServerTxn::owes_trying`]).
    Trying,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    Send(Bytes),
    Arm(ServerTimer, Duration),
    /// The transaction is over; forget it.
    Terminate,
}

/// One server transaction; see the module docs.
#[derive(Debug)]
pub struct ServerTxn {
    invite: bool,
    reliable: bool,
    state: ServerState,
    status: u16,
    /// Timer G's next interval, in milliseconds (doubles up to T2).
    g_ms: u32,
    /// The response a retransmitted request gets (Proceeding, Completed).
    last: Option<Bytes>,
}

impl ServerTxn {
    pub fn new(invite: bool, reliable: bool, timers: &Timers) -> Self {
        ServerTxn {
            invite,
            reliable,
            state: if invite { ServerState::Proceeding } else { ServerState::Trying },
            status: 0,
            g_ms: millis(timers.t1),
            last: None,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The status of the last response sent (0 before any).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// An INVITE that no response has been sent for yet: its 100 Trying
    /// is due (when `tm.trying_delay` passed, or a retransmission of the
    /// request arrived first). The proxy builds the 100 from the request,
    /// which this state machine does not keep, and hands it to
    /// [`ServerTxn::respond`].
    pub fn owes_trying(&self) -> bool {
        self.invite && self.state == ServerState::Proceeding && self.status == 0
    }

    /// A final response has been sent.
    pub fn is_final(&self) -> bool {
        self.status >= 200
    }

    /// A retransmission of the request arrived: what to send back, if anything.
    pub fn on_request(&mut self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last.clone(),
            _ => None,
        }
    }

    /// An ACK for a non-2xx final response arrived (INVITE only). The
    /// response is no longer resent, so it is dropped.
    pub fn on_ack(&mut self, timers: &Timers) -> Actions<ServerAction> {
        if !self.invite || self.state != ServerState::Completed {
            return Actions::new();
        }
        self.state = ServerState::Confirmed;
        self.last = None;
        self.end_after(ServerTimer::I, timers.t4)
    }

    /// The proxy sends response `code` (serialized as `data`).
    pub fn respond(&mut self, code: u16, data: Bytes, timers: &Timers) -> Actions<ServerAction> {
        use ServerState::*;
        let mut out = Actions::new();
        match (self.state, code) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.remember(code, &data);
                out.push(ServerAction::Send(data));
            }
            (Proceeding, 200..=299) if self.invite => {
                // Accepted never resends the 2xx itself (RFC 6026): not kept.
                self.state = Accepted;
                self.status = code;
                self.last = None;
                out.push(ServerAction::Send(data));
                out.push(ServerAction::Arm(ServerTimer::L, timers.wait()));
            }
            // RFC 6026 §8.5: 2xx retransmissions pass through Accepted.
            (Accepted, 200..=299) => out.push(ServerAction::Send(data)),
            (Proceeding, 300..) if self.invite => {
                self.state = Completed;
                self.remember(code, &data);
                out.push(ServerAction::Send(data));
                if !self.reliable {
                    out.push(ServerAction::Arm(ServerTimer::G, timers.t1));
                }
                out.push(ServerAction::Arm(ServerTimer::H, timers.wait()));
            }
            (Trying | Proceeding, 200..) if !self.invite => {
                self.state = Completed;
                self.remember(code, &data);
                out.push(ServerAction::Send(data));
                out.extend(self.end_after(ServerTimer::J, timers.wait()));
            }
            _ => {}
        }
        out
    }

    pub fn on_timer(&mut self, timer: ServerTimer, timers: &Timers) -> Actions<ServerAction> {
        use ServerState::*;
        match (timer, self.state) {
            (ServerTimer::G, Completed) if self.invite => {
                self.g_ms = self.g_ms.saturating_mul(2).min(millis(timers.t2));
                let mut out: Actions<ServerAction> =
                    self.last.clone().map(ServerAction::Send).into_iter().collect();
                out.push(ServerAction::Arm(
                    ServerTimer::G,
                    Duration::from_millis(self.g_ms.into()),
                ));
                out
            }
            (ServerTimer::H, Completed) if self.invite => self.terminate(),
            (ServerTimer::I, Confirmed)
            | (ServerTimer::J, Completed)
            | (ServerTimer::L, Accepted) => self.terminate(),
            _ => Actions::new(),
        }
    }

    /// Keeps the response a retransmitted request gets. A final one is kept
    /// for 64·T1, so it is copied to its exact size (a serialized message's
    /// buffer has room to spare); a provisional one is replaced soon.
    fn remember(&mut self, code: u16, data: &Bytes) {
        self.status = code;
        self.last = Some(if code >= 200 { Bytes::copy_from_slice(data) } else { data.clone() });
    }

    /// Arms `timer` over an unreliable transport, ends at once otherwise.
    fn end_after(&mut self, timer: ServerTimer, after: Duration) -> Actions<ServerAction> {
        if self.reliable { self.terminate() } else { smallvec![ServerAction::Arm(timer, after)] }
    }

    fn terminate(&mut self) -> Actions<ServerAction> {
        self.state = ServerState::Terminated;
        self.last = None;
        smallvec![ServerAction::Terminate]
    }
}

/// A duration in whole milliseconds, saturating (timer settings are far
/// below the 49 days a `u32` holds).
pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServerAction::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn invite_non_2xx_retransmits_until_ack_then_ends() {
        let t = Timers::default();
        let mut s = ServerTxn::new(true, false, &t);
        assert_eq!(s.respond(100, b("100"), &t).as_slice(), [Send(b("100"))]);
        assert_eq!(s.on_request(), Some(b("100")));
        let out = s.respond(486, b("486"), &t);
        assert_eq!(
            out.as_slice(),
            [Send(b("486")), Arm(ServerTimer::G, t.t1), Arm(ServerTimer::H, t.t1 * 64)]
        );
        assert_eq!(s.on_request(), Some(b("486")));
        assert_eq!(
            s.on_timer(ServerTimer::G, &t).as_slice(),
            [Send(b("486")), Arm(ServerTimer::G, t.t1 * 2)]
        );
        // Late responses from other branches are not sent once final.
        assert!(s.respond(500, b("500"), &t).is_empty());
        assert_eq!(s.on_ack(&t).as_slice(), [Arm(ServerTimer::I, t.t4)]);
        assert_eq!(s.state(), ServerState::Confirmed);
        assert!(s.on_timer(ServerTimer::G, &t).is_empty(), "G stops in Confirmed");
        assert_eq!(s.on_request(), None);
        assert_eq!(s.on_timer(ServerTimer::I, &t).as_slice(), [Terminate]);
    }

    #[test]
    fn g_doubles_up_to_t2() {
        let t = Timers::default();
        let mut s = ServerTxn::new(true, false, &t);
        s.respond(404, b("404"), &t);
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            if let Some(Arm(ServerTimer::G, d)) = s.on_timer(ServerTimer::G, &t).pop() {
                last = d;
            }
        }
        assert_eq!(last, t.t2);
        assert_eq!(s.on_timer(ServerTimer::H, &t).as_slice(), [Terminate]);
    }

    #[test]
    fn invite_2xx_goes_to_accepted_and_passes_retransmissions() {
        let t = Timers::default();
        let mut s = ServerTxn::new(true, true, &t);
        assert_eq!(
            s.respond(200, b("200"), &t).as_slice(),
            [Send(b("200")), Arm(ServerTimer::L, t.t1 * 64)]
        );
        assert_eq!(s.state(), ServerState::Accepted);
        assert_eq!(s.on_request(), None, "INVITE retransmissions are absorbed");
        assert_eq!(s.respond(200, b("200b"), &t).as_slice(), [Send(b("200b"))]);
        assert!(s.respond(486, b("486"), &t).is_empty());
        assert_eq!(s.on_timer(ServerTimer::L, &t).as_slice(), [Terminate]);
    }

    #[test]
    fn reliable_invite_has_no_g_and_no_i() {
        let t = Timers::default();
        let mut s = ServerTxn::new(true, true, &t);
        let out = s.respond(603, b("603"), &t);
        assert!(!out.iter().any(|a| matches!(a, Arm(ServerTimer::G, _))));
        assert_eq!(s.on_ack(&t).as_slice(), [Terminate]);
    }

    #[test]
    fn non_invite_completes_with_j() {
        let t = Timers::default();
        let mut s = ServerTxn::new(false, false, &t);
        assert_eq!(s.state(), ServerState::Trying);
        assert_eq!(s.on_request(), None, "nothing to resend in Trying");
        s.respond(180, b("180"), &t);
        assert_eq!(
            s.respond(200, b("200"), &t).as_slice(),
            [Send(b("200")), Arm(ServerTimer::J, t.t1 * 64)]
        );
        assert_eq!(s.on_request(), Some(b("200")));
        assert_eq!(s.on_timer(ServerTimer::J, &t).as_slice(), [Terminate]);
        let mut r = ServerTxn::new(false, true, &t);
        assert_eq!(r.respond(404, b("404"), &t).as_slice(), [Send(b("404")), Terminate]);
    }
}
