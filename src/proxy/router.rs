//! The boundary between the proxy core and the routing logic.
//!
//! The core does what RFC 3261 requires of every proxy; the [`Router`]
//! decides what this proxy does with each request. The compiled route
//! program implements it; tests implement it in Rust to drive the core.
//! A router is synchronous (see docs/architecture.md: route code never
//! awaits), so it runs inline on the worker that received the message.
//!
//! Besides `request_route`, a router has *hooks* the transaction layer runs
//! later: `reply_route` for every reply, and the `onreply_route`,
//! `failure_route` and `branch_route` a request armed. A transaction keeps
//! the `Arc` of the router it started with and names hooks by [`RouteId`]
//! index, so a reload in between neither changes nor renames the code its
//! hooks run.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::sip::EditedMessage;

use super::Transport;
use super::services::Services;

/// Index of a route in its program.
pub type RouteId = u32;

/// One message being routed: the message with the edits made so far, where
/// it came from, and the choices the router makes. In reply routes `msg` is
/// the reply.
#[derive(Debug)]
pub struct RequestContext {
    pub msg: EditedMessage,
    pub source: SocketAddr,
    pub transport: Transport,
    /// `$du`: where to send the request instead of its Route set or R-URI.
    pub destination: Option<String>,
    /// `record_route()` was called.
    pub record_route: bool,
    /// `force_rport()` was called: replies go to the source port, as if the
    /// top Via had asked for `rport` (RFC 3581 §4).
    pub force_rport: bool,
    /// `set_reply_no_connect()` was called: replies to this request over
    /// TCP or TLS are sent only on a connection that is still open.
    pub reply_no_connect: bool,
    /// `add_path()`/`add_path_received()` was called: the parameters the
    /// Path URI naming this proxy gets after `lr` (empty, or
    /// `;received=…`); the URI itself is made when the request leaves,
    /// from the interface it leaves on (RFC 3327 §5.1).
    pub path: Option<String>,
    /// `fix_nated_register()` or `add_rcv_param()` was called: `save()`
    /// stores the source address as every contact's `received`, so
    /// `lookup()` sends there (`$du`).
    pub nat_register: bool,
    /// What lives as long as the transaction.
    pub txn: TxnScope,
    /// `hep_capture(on)`: capture this request and what the proxy sends
    /// for it (`None`: as `module hep { capture_all }` says).
    pub capture: Option<bool>,
    /// State that outlives messages and configs (the location table …).
    pub services: Option<Arc<Services>>,
    /// Extra headers for a `Decision::Reply` (e.g. the Contacts of a
    /// registrar's 200, a digest challenge).
    pub reply_headers: Vec<(String, String)>,
    /// Where an instrumented program records what its routes did
    /// (`sipc trace`, `sipc test --coverage`); `None` for every other
    /// message.
    pub trace: Option<Box<crate::runtime::trace::Trace>>,
}

impl RequestContext {
    pub fn new(msg: EditedMessage, source: SocketAddr, transport: Transport) -> Self {
        RequestContext {
            msg,
            source,
            transport,
            destination: None,
            record_route: false,
            force_rport: false,
            reply_no_connect: false,
            path: None,
            nat_register: false,
            txn: TxnScope::default(),
            capture: None,
            services: None,
            reply_headers: Vec::new(),
            trace: None,
        }
    }
}

/// Transaction-scoped state the routes see and set: armed hooks, `$avp`s,
/// flags, extra branches, and what the transaction layer tells the failure
/// and reply routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnScope {
    pub on_failure: Option<RouteId>,
    pub on_reply: Option<RouteId>,
    pub on_branch: Option<RouteId>,
    /// `$avp(x)` values by slot (empty before the first route ran).
    pub avps: Vec<String>,
    pub flags: u64,
    /// Targets forked in parallel with the main branch (`append_branch()`,
    /// the other contacts of `lookup()` with the same q).
    pub branches: Vec<BranchTarget>,
    /// Groups of targets tried one group after another when every branch
    /// of the current group failed, before the failure route runs
    /// (`lookup()`'s contacts of lower q).
    pub serial: Vec<Vec<BranchTarget>>,
    /// `t_check_trans()`: the request belongs to a transaction (for a CANCEL:
    /// the INVITE it cancels is known).
    pub exists: bool,
    /// `$T_reply_code`: the winning reply of a failure route.
    pub reply_code: u16,
    /// `$T_branch_idx`: the branch a branch route prepares, an onreply
    /// route's reply came on, or whose reply won in a failure route.
    pub branch_index: u32,
    /// `t_newtran()` was called: a final reply the request route decides
    /// is sent through a server transaction.
    pub newtran: bool,
    /// `t_is_canceled()`.
    pub canceled: bool,
    /// `t_branch_timeout()`: the failure came from a timeout.
    pub branch_timeout: bool,
    /// What `select()` chose and what is left for `next_destination()`.
    pub routing: RoutingScope,
    /// An rtpengine offer was made for the request (`rtpengine_offer` or
    /// `rtpengine_manage` on an INVITE or UPDATE with SDP), so the SDP of
    /// its replies is the answer; without one it is a late offer.
    pub media_offered: bool,
    /// What the request route decided about the dialog an initial INVITE
    /// starts (`dlg_manage()` and friends), until the INVITE is relayed.
    pub dialog: Option<Box<crate::dialog::Pending>>,
    /// `topology_hide()`, or an in-dialog request of a hidden dialog: the
    /// copies this request is forwarded as hide what is behind the proxy
    /// ([`super::topology`]).
    pub hide: Option<super::topology::Hide>,
}

/// The trunk a transaction goes to and its failover sequence (trunk
/// indices of the transaction's program).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingScope {
    pub out_trunk: Option<u32>,
    pub failover: Vec<u32>,
    /// Attributes of the chosen table row.
    pub attrs: Vec<(String, String)>,
}

/// Where one extra branch goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchTarget {
    /// The branch's Request-URI.
    pub uri: String,
    /// Send there instead of following the R-URI (`$du` of the branch: a
    /// NATed contact's source address).
    pub destination: Option<String>,
    /// Route header values put on the branch, top first (a registration's
    /// Path, RFC 3327).
    pub route: Vec<String>,
}

impl BranchTarget {
    pub fn uri(uri: impl Into<String>) -> Self {
        BranchTarget { uri: uri.into(), ..Default::default() }
    }
}

/// The reason phrase of a reply a route decided on. Answering allocates
/// nothing for a constant reason: a standard phrase
/// ([`crate::sip::status`]) is a `&'static str`, and any other constant
/// (`reply(404, "Not Here")`) is the program's own shared copy.
#[derive(Debug, Clone)]
pub enum Reason {
    Fixed(&'static str),
    Shared(std::sync::Arc<str>),
}

impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Reason::Fixed(s) => s,
            Reason::Shared(s) => s,
        }
    }
}

/// Reasons are equal when their text is.
impl PartialEq for Reason {
    fn eq(&self, other: &Reason) -> bool {
        **self == **other
    }
}

impl Eq for Reason {}

impl From<&'static str> for Reason {
    fn from(s: &'static str) -> Reason {
        Reason::Fixed(s)
    }
}

impl From<String> for Reason {
    fn from(s: String) -> Reason {
        Reason::Shared(s.into())
    }
}

/// What to do with a request once routing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward statelessly to `destination`, the Route set or the R-URI.
    Forward,
    /// Relay statefully (`relay()`): create a transaction and branches.
    Relay,
    /// Answer with this status.
    Reply { code: u16, reason: Reason },
    /// Do nothing (or, in a reply route, do not pass this reply on).
    Drop,
}

/// The routing logic the proxy core calls for every request.
pub trait Router: Send + Sync + 'static {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision;

    /// Runs the hook `route` (a failure, branch or onreply route) on `ctx`.
    fn run_hook(&self, route: RouteId, ctx: &mut RequestContext) -> Decision {
        let _ = (route, ctx);
        Decision::Forward
    }

    /// The `reply_route` run for every reply, if the program has one.
    fn reply_route(&self) -> Option<RouteId> {
        None
    }
}
