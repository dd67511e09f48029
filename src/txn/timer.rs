//! Transaction timer values (RFC 3261 §17, table 4 of Appendix A).
//!
//! Everything derives from T1, T2 and T4, which are settings (`tm.t1`,
//! `tm.t2`, `tm.t4`) so tests can run the full state machines in seconds.
//! Timer B and F ("no final response") are `tm.fr_timer`, 64·T1 by default
//! as in the RFC; Timer C (a proxy's wait for a final response to an INVITE
//! after a provisional one, §16.6 step 11) is `tm.fr_inv_timer`, three
//! minutes by default. Timers D, H, J, L and M are 64·T1 (so D is the RFC's
//! "at least 32 s" at the default T1); I and K are T4.

use std::time::Duration;

/// The timer durations a transaction uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Timer B and F: how long a client transaction waits for a final
    /// response (an INVITE: for any response).
    pub final_response: Duration,
    /// Timer C: how long a proxied INVITE branch waits for a final
    /// response once a provisional one arrived.
    pub timer_c: Duration,
    /// How long a proxied INVITE waits for a provisional response from
    /// downstream before the proxy sends its own 100 Trying (`tm.trying_delay`).
    /// RFC 3261 §17.2.1 lets a server transaction skip the 100 when the TU
    /// answers within 200 ms, which a proxy in front of a media server
    /// nearly always does: the 180 it relays quenches the caller's
    /// retransmissions as well, and the proxy sends one datagram fewer
    /// per call. Zero, the default, sends the 100 at once, as Kamailio's tm
    /// does (operators read a proxy's 100 in their traces as "it got here").
    pub trying: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        let t1 = Duration::from_millis(500);
        Timers {
            t1,
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            final_response: t1 * 64,
            timer_c: Duration::from_secs(180),
            trying: Duration::ZERO,
        }
    }
}

impl Timers {
    /// Timer values with `t1` and the derived 64·T1 timers scaled together.
    pub fn with_t1(t1: Duration) -> Self {
        Timers { t1, final_response: t1 * 64, ..Timers::default() }
    }

    /// 64·T1: timers D, H, J, L and M.
    pub fn wait(&self) -> Duration {
        self.t1 * 64
    }
}
