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
//! Once nothing can be routed in a transaction any more, it drops the
//! program and the request and keeps only what absorbing retransmissions
//! needs ([`compact`]).
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
//! - After `t_newtran()`, a final reply the request route decides is sent
//!   through a server transaction of its own (no branches), which absorbs
//!   retransmissions (resending the reply) and the ACK of a non-2xx.

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
use super::timer_queue::{TimerHandle, TimerQueue};
use super::transport::{Inbound, Transport};
use crate::sip::{EditedMessage, HeaderName, Message};
use crate::txn::best::{best, ends_fork, upstream_status};
use crate::txn::{ClientAction, ClientTimer, ClientTxn, ServerAction, ServerKey, ServerState};
use crate::txn::{ServerTimer, ServerTxn, Timers};

/// Settings of the transaction layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    pub timers: Timers,
    /// Beyond this many live transactions new requests get 503. A 2xx'd
    /// INVITE stays 64·T1 (RFC 6026), and its BYE as long, so at 4,000
    /// calls/s about 260,000 transactions are alive, most of them waiting
    /// at a few hundred bytes each (`cargo bench --bench txn_memory`).
    pub max_transactions: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig { timers: Timers::default(), max_transactions: 1_000_000 }
    }
}

/// A timer of some transaction, by id (a fired timer of a transaction that
/// is gone, or that moved on, is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerEvent {
    Server(u64, ServerTimer),
    Client(u64, u32, ClientTimer),
    /// Timer C of a branch. It is armed once per branch: a provisional
    /// reply only notes its time, and the timer, when it fires, arms itself
    /// again for what is left (one queue entry per branch instead of one
    /// per provisional reply).
    C(u64, u32),
    /// A CANCEL was sent on a branch and no final reply came.
    CancelWait(u64, u32),
}

pub(super) type TxnRef = Arc<Mutex<Txn>>;

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

    /// The transaction part of branch `index` of transaction `id`:
    /// `<salt><id in hex>-<index>`.
    fn branch_part(&self, id: u64, index: u32) -> String {
        let mut out = String::with_capacity(self.salt.len() + 24);
        out.push_str(&self.salt);
        let digits = (64 - id.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            out.push(char::from(b"0123456789abcdef"[(id >> (shift * 4)) as usize & 15]));
        }
        out.push('-');
        crate::sip::write::push_u64(&mut out, index.into());
        out
    }

    /// The transaction id, branch index and loop hash a Via branch of ours
    /// names (`z9hG4bK<salt><id>-<index>.<hash>`).
    ///
    /// Runs for every reply, so it cuts by position: the hash is the last
    /// 16 bytes after a `.` (a `.` anywhere else fails the number parses, as
    /// a split at the first `.` would fail the hash's).
    fn parse_branch(&self, branch: &str) -> Option<(u64, u32, u64)> {
        let rest = branch.strip_prefix(MAGIC_COOKIE)?.strip_prefix(self.salt.as_str())?;
        let dot = rest.len().checked_sub(17)?;
        if rest.as_bytes()[dot] != b'.' {
            return None;
        }
        let (part, hash) = (&rest[..dot], &rest[dot + 1..]);
        let dash = memchr::memchr(b'-', part.as_bytes())?;
        let (id, index) = (&part[..dash], &part[dash + 1..]);
        Some((parse_hex(id)?, index.parse().ok()?, parse_hex(hash)?))
    }
}

/// 1 to 16 hex digits as a `u64` (`from_str_radix` without its sign
/// handling and per-digit overflow checks: this runs twice for every reply).
fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    // The digits are or-ed together to test for a non-digit once, at the end.
    let (v, bad) = s.bytes().fold((0u64, 0u8), |(v, bad), b| {
        let d = crate::sip::scan::HEX_VALUE[b as usize];
        (v << 4 | u64::from(d & 0xf), bad | d)
    });
    (bad & 0xf0 == 0).then_some(v)
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
    target: (Transport, SocketAddr),
    /// Until the final reply, the request as sent (retransmissions; the
    /// CANCEL and the ACK are built from it); after a non-2xx final reply
    /// to an INVITE, its ACK (resent for each retransmission of the
    /// reply); otherwise empty.
    kept: Bytes,
    client: ClientTxn,
    /// Timer A (E) as last armed, to cancel once it can no longer act (a
    /// reply came): one fewer timer to fire, look up and ignore per branch.
    retransmit: Option<TimerHandle>,
    /// The final reply (after reply-route edits), for the best-reply
    /// choice; dropped once the transaction is final.
    response: Option<Box<EditedMessage>>,
    /// When the last provisional reply (101–199) arrived: Timer C runs
    /// from there.
    provisional_at: Option<std::time::Instant>,
    /// Final status; a timeout counts as 408, a transport error as 503.
    code: u16,
    provisional: bool,
    acked: bool,
    cancel: CancelState,
    timed_out: bool,
}

impl Branch {
    fn new(target: (Transport, SocketAddr), kept: Bytes, client: ClientTxn) -> Branch {
        Branch {
            target,
            kept,
            client,
            retransmit: None,
            response: None,
            provisional_at: None,
            code: 0,
            provisional: false,
            acked: false,
            cancel: CancelState::No,
            timed_out: false,
        }
    }

    fn failed(code: u16, timers: &Timers) -> Branch {
        let (mut client, _) = ClientTxn::start(false, true, timers);
        client.abandon();
        let mut b = Branch::new(
            (Transport::Udp, SocketAddr::from(([0, 0, 0, 0], 0))),
            Bytes::new(),
            client,
        );
        b.code = code;
        b
    }
}

/// What a transaction needs only while it can still route: to start
/// branches, run its failure, branch and reply routes, and build its
/// replies. Dropped by [`compact`] once it cannot.
pub(super) struct Live {
    router: Arc<dyn Router>,
    /// The request as the request route left it, before per-branch edits.
    request: EditedMessage,
    inbound: Inbound,
    scope: TxnScope,
    services: Option<Arc<Services>>,
    record_route: bool,
    /// The Path parameters of `add_path_received()` (see
    /// [`RequestContext::path`]).
    path: Option<String>,
}

/// One proxied request; see the module docs.
pub(super) struct Txn {
    id: u64,
    key: ServerKey,
    invite: bool,
    /// The loop-detection hash at the end of every branch's Via branch
    /// (the same for all: it hashes the request as received).
    via_hash: u64,
    /// Where replies go: the source for reliable transports, `rport` and
    /// `force_rport()`, else the received address and the Via's port
    /// (§18.2.2).
    reply_to: (Transport, SocketAddr),
    /// `set_reply_no_connect()`: replies go only on an open connection.
    reply_no_connect: bool,
    server: ServerTxn,
    branches: Vec<Branch>,
    /// `None` once compacted: see [`Live`].
    live: Option<Box<Live>>,
    /// Branches waiting for name resolution.
    resolving: u32,
    canceled: bool,
    answered: bool,
    /// The transaction left the table.
    removed: bool,
    /// An INVITE that started a dialog (`dlg_manage()`): its replies and
    /// failure are reported to the dialog table.
    dialog: bool,
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("id", &self.id)
            .field("server", &self.server.state())
            .field("branches", &self.branches.len())
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

/// Drops what a transaction no longer needs once nothing can be routed in
/// it again: its final reply went upstream, no branch waits for a reply or
/// for name resolution. What stays is what absorbing retransmissions takes
/// (RFC 3261 §17, RFC 6026): the key, the server and client state machines,
/// the reply a retransmitted request gets (kept once, shared with the send
/// queue), each branch's target and the ACK of its non-2xx reply. A 2xx
/// retransmitted in Accepted then goes upstream as a reply without a
/// transaction does, by its Via (the transaction's own reply route, whose
/// program is no longer held, does not run for it).
///
/// The transaction then lingers for 64·T1 (Timers H, J, L, M, D) at a few
/// hundred bytes (`cargo bench --bench txn_memory`).
fn compact(t: &mut Txn) {
    let done = t.server.is_final()
        && t.resolving == 0
        && !t.branches.iter().any(|b| b.client.is_pending());
    // A hidden transaction keeps its request: a 2xx retransmitted in
    // Accepted has no Via below this proxy's to go back by, and is
    // restored from it.
    let hidden = t.live.as_deref().is_some_and(|l| l.scope.hide.is_some());
    if done && t.live.is_some() && !hidden {
        t.live = None;
        for b in &mut t.branches {
            b.response = None;
            if !b.acked {
                b.kept = Bytes::new();
            }
        }
        t.branches.shrink_to_fit();
    }
}

/// What the transaction layer says about a request before routing.
pub(super) enum Matched {
    /// A retransmission or a hop-by-hop ACK: handled, with what to send.
    Absorbed(Option<Step>),
    /// A CANCEL, with the INVITE transaction it cancels if there is one.
    Cancel(Option<TxnRef>),
    /// A new request, with its transaction key (computed once, here, and
    /// used by `relay()`); `None` when it has no usable Via or CSeq.
    New(Option<ServerKey>),
    /// A new request while no transaction exists at all (a stateless
    /// configuration, or an idle proxy): nothing to look up, and the key
    /// is computed only if `relay()` needs it.
    Fresh,
}

mod dialog;
mod messages;
mod replies;
mod requests;
mod table;
mod timers;

use messages::*;
pub(super) use table::TxnTable;
use table::lock;

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The table-driven hex reading is `u64::from_str_radix` for 1 to 16
        /// digits, without its sign.
        #[test]
        fn hex_reads_as_from_str_radix(s in "[0-9a-fA-F]{0,17}|[0-9a-fA-Fg-z+ .-]{0,17}") {
            let expected = match s.len() {
                1..=16 if !s.starts_with('+') => u64::from_str_radix(&s, 16).ok(),
                _ => None,
            };
            proptest::prop_assert_eq!(parse_hex(&s), expected);
        }
    }

    #[test]
    fn branch_parts_parse_back() {
        let layer = TxnLayer::new(TxnConfig::default());
        for (id, index) in [(0u64, 0u32), (1, 0), (0xabc, 7), (16, 10), (u64::MAX, 65_535)] {
            let part = layer.branch_part(id, index);
            assert_eq!(part, format!("{}{id:x}-{index}", layer.salt));
            let branch = format!("{MAGIC_COOKIE}{part}.{:016x}", 0x1234u64);
            assert_eq!(layer.parse_branch(&branch), Some((id, index, 0x1234)));
        }
        assert_eq!(layer.parse_branch("z9hG4bKother1-0.0000000000001234"), None);
        let short = format!("{MAGIC_COOKIE}{}.1234", layer.branch_part(1, 0));
        assert_eq!(layer.parse_branch(&short), None, "the hash has 16 digits");
        let salt = &layer.salt;
        for bad in [
            format!("{MAGIC_COOKIE}{salt}1-0.00000000000012345"),
            format!("{MAGIC_COOKIE}{salt}1-0.0.00000000000001234"),
            format!("{MAGIC_COOKIE}{salt}1.0-0.0000000000001234"),
            format!("{MAGIC_COOKIE}{salt}10.0000000000001234"),
            format!("{MAGIC_COOKIE}{salt}1-x.0000000000001234"),
            format!("{MAGIC_COOKIE}{salt}.0000000000001234"),
            format!("{MAGIC_COOKIE}{salt}1-0.000000000000123g"),
            format!("{MAGIC_COOKIE}{salt}1-0_0000000000001234"),
            // Signs are not digits (`from_str_radix` would take this one).
            format!("{MAGIC_COOKIE}{salt}+1-0.0000000000001234"),
            format!("{MAGIC_COOKIE}{salt}1-0.+000000000001234"),
        ] {
            assert_eq!(layer.parse_branch(&bad), None, "{bad}");
        }
    }
}
