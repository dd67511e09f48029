//! Client transactions (RFC 3261 §17.1, with RFC 6026's Accepted state).
//!
//! ```text
//!  INVITE                                   non-INVITE
//!   start: send, A (unreliable), B           start: send, E (unreliable), F
//!      +---------+ A: resend, A*2             +---------+ E: resend, min(E*2, T2)
//!      | Calling |----+                       | Trying  |----+
//!      +---------+<---+                       +---------+<---+
//!   1xx |  | B: timeout  | 2xx            1xx  |   | F: timeout   | final
//!       v  +--> Term.    |                     v   +--> Term.     |
//!  +-----------+ 1xx     |               +-----------+ E: resend T2|
//!  |Proceeding |----+    |               |Proceeding |----+        |
//!  +-----------+<---+    |               +-----------+<---+        |
//!   300-699|  2xx|       |                final |                  |
//!   send ACK, D  v       v                      v                  v
//!  +-----------+ +-----------+            +-----------+ K (0 if reliable)
//!  | Completed | | Accepted  | 2xx: pass  | Completed |----> Terminated
//!  +-----------+ +-----------+            +-----------+ (finals absorbed)
//!   final: ACK again | M -> Terminated
//!   D -> Terminated
//! ```
//!
//! Every response that is not a retransmission of a final one is delivered
//! to the proxy ([`ClientAction::Deliver`]); in Accepted every 2xx is (each
//! may come from another UAS of a downstream fork). A transport error or an
//! expired B/F is a timeout the proxy turns into a 408 for that branch.
//!
//! Over an unreliable transport Timer B (F) is not armed of its own: the
//! retransmission timer A (E) adds up the intervals it waited and, when
//! they reach B (F), times out instead of retransmitting, its last interval
//! shortened to end exactly there. The deadlines are the RFC's; a request
//! answered in time then leaves one timer to fire, not two, and the proxy's
//! timer queue holds one entry per branch instead of two.
//!
//! As in [`super::server`], the timer values come with each event instead
//! of living in every transaction.

use std::time::Duration;

use super::server::millis;
use super::{Actions, Timers};
use smallvec::smallvec;

fn ms(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTimer {
    /// INVITE retransmission.
    A,
    /// INVITE timeout (no response at all).
    B,
    /// Absorb final-response retransmissions of an INVITE.
    D,
    /// Non-INVITE retransmission.
    E,
    /// Non-INVITE timeout (no final response).
    F,
    /// Absorb final-response retransmissions of a non-INVITE.
    K,
    /// Accepted: pass 2xx retransmissions, then end.
    M,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Send the request again.
    Retransmit,
    /// Send (again) the ACK of the non-2xx final response.
    SendAck,
    /// Hand the response to the proxy.
    Deliver,
    /// No (final) response in time: act as if a 408 arrived.
    Timeout,
    Arm(ClientTimer, Duration),
    Terminate,
}

/// One client transaction; see the module docs.
#[derive(Debug)]
pub struct ClientTxn {
    invite: bool,
    reliable: bool,
    state: ClientState,
    /// The interval Timer A or E was last armed with, in milliseconds.
    retransmit_ms: u32,
    /// The intervals of A or E that ran out, summed: the time since the
    /// request was sent, for Timer B (F).
    waited_ms: u32,
}

impl ClientTxn {
    /// A transaction whose request is being sent now, with the timers to arm.
    pub fn start(invite: bool, reliable: bool, timers: &Timers) -> (Self, Actions<ClientAction>) {
        let first = millis(timers.t1).min(millis(timers.final_response));
        let txn = ClientTxn {
            invite,
            reliable,
            state: if invite { ClientState::Calling } else { ClientState::Trying },
            retransmit_ms: first,
            waited_ms: 0,
        };
        let arm = match (reliable, invite) {
            (false, true) => ClientAction::Arm(ClientTimer::A, ms(first)),
            (false, false) => ClientAction::Arm(ClientTimer::E, ms(first)),
            (true, true) => ClientAction::Arm(ClientTimer::B, timers.final_response),
            (true, false) => ClientAction::Arm(ClientTimer::F, timers.final_response),
        };
        (txn, smallvec![arm])
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Timer A (E) can still act: resend the request, or time the wait
    /// out. A fires only in Calling, E in Trying and Proceeding; a timer
    /// that can no longer act may be cancelled rather than left to fire.
    pub fn retransmits(&self) -> bool {
        match self.state {
            ClientState::Calling | ClientState::Trying => true,
            ClientState::Proceeding => !self.invite,
            _ => false,
        }
    }

    /// The transaction still waits for a final response.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, ClientState::Calling | ClientState::Trying | ClientState::Proceeding)
    }

    /// A response with status `code` matched this transaction.
    pub fn on_response(&mut self, code: u16, timers: &Timers) -> Actions<ClientAction> {
        use ClientAction::*;
        use ClientState::*;
        match (self.invite, self.state, code) {
            (_, Calling | Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                smallvec![Deliver]
            }
            (true, Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                smallvec![Deliver, Arm(ClientTimer::M, timers.wait())]
            }
            (true, Accepted, 200..=299) => smallvec![Deliver],
            (true, Calling | Proceeding, 300..) => {
                self.state = Completed;
                let mut out = smallvec![SendAck, Deliver];
                out.extend(self.end_after(ClientTimer::D, timers.wait()));
                out
            }
            (true, Completed, 300..) => smallvec![SendAck],
            (false, Trying | Proceeding, 200..) => {
                self.state = Completed;
                let mut out = smallvec![Deliver];
                out.extend(self.end_after(ClientTimer::K, timers.t4));
                out
            }
            _ => Actions::new(),
        }
    }

    /// The proxy gave up on this transaction (Timer C, or no reply after a
    /// CANCEL): it ends without another event.
    pub fn abandon(&mut self) {
        self.state = ClientState::Terminated;
    }

    /// The transport reported that the request could not be sent.
    pub fn on_transport_error(&mut self) -> Actions<ClientAction> {
        if self.is_pending() {
            self.state = ClientState::Terminated;
            smallvec![ClientAction::Timeout, ClientAction::Terminate]
        } else {
            Actions::new()
        }
    }

    pub fn on_timer(&mut self, timer: ClientTimer, timers: &Timers) -> Actions<ClientAction> {
        use ClientAction::*;
        use ClientState::*;
        match (timer, self.state) {
            (ClientTimer::A, Calling) => {
                let next = self.retransmit_ms.saturating_mul(2);
                self.retransmit_or_time_out(ClientTimer::A, next, timers)
            }
            (ClientTimer::E, Trying) => {
                let next = self.retransmit_ms.saturating_mul(2).min(millis(timers.t2));
                self.retransmit_or_time_out(ClientTimer::E, next, timers)
            }
            (ClientTimer::E, Proceeding) => {
                self.retransmit_or_time_out(ClientTimer::E, millis(timers.t2), timers)
            }
            (ClientTimer::B, Calling) | (ClientTimer::F, Trying | Proceeding) => {
                self.state = Terminated;
                smallvec![Timeout, Terminate]
            }
            (ClientTimer::D, Completed)
            | (ClientTimer::K, Completed)
            | (ClientTimer::M, Accepted) => {
                self.state = Terminated;
                smallvec![Terminate]
            }
            _ => Actions::new(),
        }
    }

    /// Timer A or E ran out: Timer B (F) if the intervals so far reach it,
    /// else a retransmission and the timer again after `next` (or what is
    /// left of B).
    fn retransmit_or_time_out(
        &mut self,
        timer: ClientTimer,
        next: u32,
        timers: &Timers,
    ) -> Actions<ClientAction> {
        self.waited_ms = self.waited_ms.saturating_add(self.retransmit_ms);
        let limit = millis(timers.final_response);
        if self.waited_ms >= limit {
            self.state = ClientState::Terminated;
            return smallvec![ClientAction::Timeout, ClientAction::Terminate];
        }
        self.retransmit_ms = next.min(limit - self.waited_ms);
        smallvec![ClientAction::Retransmit, ClientAction::Arm(timer, ms(self.retransmit_ms))]
    }

    fn end_after(&mut self, timer: ClientTimer, after: Duration) -> Actions<ClientAction> {
        if self.reliable {
            self.state = ClientState::Terminated;
            smallvec![ClientAction::Terminate]
        } else {
            smallvec![ClientAction::Arm(timer, after)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientAction::*;
    use super::*;

    #[test]
    fn invite_retransmits_with_doubling_until_b() {
        let t = Timers::default();
        let (mut c, start) = ClientTxn::start(true, false, &t);
        assert_eq!(start.as_slice(), [Arm(ClientTimer::A, t.t1)], "A also times B");
        let mut waited = t.t1;
        let mut interval = t.t1;
        // A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s resends; the last interval
        // is cut to end at B (32 s), where it times out.
        for _ in 0..5 {
            interval *= 2;
            assert_eq!(
                c.on_timer(ClientTimer::A, &t).as_slice(),
                [Retransmit, Arm(ClientTimer::A, interval)]
            );
            waited += interval;
        }
        assert_eq!(waited, t.t1 * 63);
        assert_eq!(
            c.on_timer(ClientTimer::A, &t).as_slice(),
            [Retransmit, Arm(ClientTimer::A, t.t1)]
        );
        assert_eq!(c.on_timer(ClientTimer::A, &t).as_slice(), [Timeout, Terminate]);
        assert!(c.on_timer(ClientTimer::A, &t).is_empty());
        let (_, reliable) = ClientTxn::start(true, true, &t);
        assert_eq!(reliable.as_slice(), [Arm(ClientTimer::B, t.t1 * 64)]);
    }

    #[test]
    fn b_shorter_than_t1_times_out_at_b() {
        let t = Timers { final_response: Duration::from_millis(300), ..Timers::default() };
        let (mut c, start) = ClientTxn::start(true, false, &t);
        assert_eq!(start.as_slice(), [Arm(ClientTimer::A, Duration::from_millis(300))]);
        assert_eq!(c.on_timer(ClientTimer::A, &t).as_slice(), [Timeout, Terminate]);
    }

    #[test]
    fn invite_provisional_stops_a_and_b() {
        let t = Timers::default();
        let (mut c, _) = ClientTxn::start(true, false, &t);
        assert_eq!(c.on_response(180, &t).as_slice(), [Deliver]);
        assert!(c.on_timer(ClientTimer::A, &t).is_empty());
        assert!(c.on_timer(ClientTimer::B, &t).is_empty(), "B only runs in Calling");
        assert!(c.is_pending());
    }

    #[test]
    fn invite_non_2xx_is_acked_and_retransmissions_absorbed() {
        let t = Timers::default();
        let (mut c, _) = ClientTxn::start(true, false, &t);
        assert_eq!(
            c.on_response(486, &t).as_slice(),
            [SendAck, Deliver, Arm(ClientTimer::D, t.t1 * 64)]
        );
        assert_eq!(c.on_response(486, &t).as_slice(), [SendAck]);
        assert!(!c.is_pending());
        assert_eq!(c.on_timer(ClientTimer::D, &t).as_slice(), [Terminate]);
        let (mut r, _) = ClientTxn::start(true, true, &t);
        assert_eq!(r.on_response(603, &t).as_slice(), [SendAck, Deliver, Terminate]);
    }

    #[test]
    fn invite_2xx_accepted_passes_every_2xx() {
        let t = Timers::default();
        let (mut c, _) = ClientTxn::start(true, false, &t);
        assert_eq!(c.on_response(200, &t).as_slice(), [Deliver, Arm(ClientTimer::M, t.t1 * 64)]);
        assert_eq!(c.on_response(200, &t).as_slice(), [Deliver]);
        assert!(c.on_response(180, &t).is_empty());
        assert_eq!(c.on_timer(ClientTimer::M, &t).as_slice(), [Terminate]);
    }

    #[test]
    fn non_invite_e_caps_at_t2_and_f_times_out() {
        let t = Timers::default();
        let (mut c, start) = ClientTxn::start(false, false, &t);
        assert_eq!(start.as_slice(), [Arm(ClientTimer::E, t.t1)], "E also times F");
        // 0.5 + 1 + 2 + 4 + 4 = 11.5 s: the interval caps at T2.
        let mut last = Duration::ZERO;
        for _ in 0..4 {
            if let Some(Arm(ClientTimer::E, d)) = c.on_timer(ClientTimer::E, &t).pop() {
                last = d;
            }
        }
        assert_eq!(last, t.t2);
        assert_eq!(c.on_response(100, &t).as_slice(), [Deliver]);
        // In Proceeding every T2 until F at 32 s: 15.5, 19.5, 23.5, 27.5, 31.5, then 0.5 more.
        for _ in 0..5 {
            assert_eq!(
                c.on_timer(ClientTimer::E, &t).as_slice(),
                [Retransmit, Arm(ClientTimer::E, t.t2)]
            );
        }
        assert_eq!(
            c.on_timer(ClientTimer::E, &t).as_slice(),
            [Retransmit, Arm(ClientTimer::E, t.t1)]
        );
        assert_eq!(c.on_timer(ClientTimer::E, &t).as_slice(), [Timeout, Terminate]);
        let (mut r, start) = ClientTxn::start(false, true, &t);
        assert_eq!(start.as_slice(), [Arm(ClientTimer::F, t.t1 * 64)]);
        assert_eq!(r.on_timer(ClientTimer::F, &t).as_slice(), [Timeout, Terminate]);
    }

    #[test]
    fn non_invite_final_then_k() {
        let t = Timers::default();
        let (mut c, _) = ClientTxn::start(false, false, &t);
        assert_eq!(c.on_response(200, &t).as_slice(), [Deliver, Arm(ClientTimer::K, t.t4)]);
        assert!(c.on_response(200, &t).is_empty(), "retransmitted final absorbed");
        assert_eq!(c.on_timer(ClientTimer::K, &t).as_slice(), [Terminate]);
        let (mut c, _) = ClientTxn::start(false, false, &t);
        assert_eq!(c.on_transport_error().as_slice(), [Timeout, Terminate]);
    }
}
