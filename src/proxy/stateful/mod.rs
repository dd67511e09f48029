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
    /// Beyond this many live transactions new requests get 503. A 2xx'd
    /// INVITE stays 64·T1 (RFC 6026), so at 4,000 calls/s about 260,000
    /// transactions are alive (about 4 KiB each, measured).
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
    /// Timer C of a branch, with the epoch it was armed in (each
    /// provisional reply re-arms it).
    C(u64, u32, u32),
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
    /// The request as sent (retransmissions; ACK and CANCEL are built from
    /// it); emptied once the branch has its final reply.
    request: Bytes,
    /// The ACK of a non-2xx final reply, kept to answer its retransmissions.
    ack: Option<Bytes>,
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
            ack: None,
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
    /// The request and stored replies were dropped ([`shed`]).
    shed: bool,
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

/// Drops what a transaction no longer needs once its final reply went
/// upstream: the request (no new branch, failure route or local reply can
/// follow) and the branches' stored replies. A transaction then lingers for
/// 64·T1 (RFC 6026's Accepted state, Timers J/H/L) holding little more than
/// its state machines.
fn shed(t: &mut Txn) {
    static EMPTY: std::sync::OnceLock<EditedMessage> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(|| {
        let text = "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let msg = Message::parse(Bytes::from_static(text.as_bytes()));
        EditedMessage::new(msg.expect("a minimal request parses"))
    });
    if !t.shed {
        t.shed = true;
        t.request = empty.clone();
        for b in &mut t.branches {
            b.response = None;
        }
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

mod messages;
mod replies;
mod requests;
mod table;
mod timers;

use messages::*;
pub(super) use table::TxnTable;
use table::lock;
