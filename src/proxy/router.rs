//! The boundary between the proxy core and the routing logic.
//!
//! The core does what RFC 3261 requires of every proxy; the [`Router`]
//! decides what this proxy does with each request. The compiled route
//! program implements it; tests implement it in Rust to drive the core.
//! A router is synchronous (see docs/architecture.md: route code never
//! awaits), so it runs inline on the worker that received the message.

use std::net::SocketAddr;

use crate::sip::EditedMessage;

use super::Transport;

/// One request being routed: the message with the edits made so far, where it
/// came from, and the forwarding choices the router makes.
#[derive(Debug)]
pub struct RequestContext {
    pub msg: EditedMessage,
    pub source: SocketAddr,
    pub transport: Transport,
    /// `$du`: where to send the request instead of its Route set or R-URI.
    pub destination: Option<String>,
    /// `record_route()` was called.
    pub record_route: bool,
}

/// What to do with a request once routing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward statelessly to `destination`, the Route set or the R-URI.
    Forward,
    /// Answer with this status.
    Reply { code: u16, reason: String },
    /// Do nothing.
    Drop,
}

/// The routing logic the proxy core calls for every request.
pub trait Router: Send + Sync + 'static {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision;
}
