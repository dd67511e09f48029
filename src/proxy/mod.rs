//! The proxy core's protocol logic (RFC 3261 §16, RFC 3581), sans-I/O.
//!
//! Each function here takes a parsed message (and the proxy's identity) and
//! returns a decision or records edits; sockets, timers and the route
//! program live elsewhere. That is what lets the §16 rules be unit-tested
//! message by message, and reused by the stateless and stateful paths alike.

pub mod branch;
pub mod local;
pub mod request;
pub mod response;

pub use local::LocalIdentity;
pub use request::{NextHop, Reject};
