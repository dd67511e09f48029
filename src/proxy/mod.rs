//! The proxy: RFC 3261 §16 protocol logic (sans-I/O: [`request`],
//! [`response`], [`branch`], [`local`]), the stateless [`core`] that applies
//! it to each message with the [`router`]'s decision, and the I/O around it
//! ([`transport`], [`server`]).
//!
//! The protocol modules take parsed messages and return decisions or record
//! edits, so the §16 rules are unit-tested message by message; sockets live
//! only in `transport` and `server`.

pub mod branch;
pub mod core;
pub mod dialogs;
pub mod dispatch;
pub mod hep;
mod holder;
pub mod local;
pub mod nat;
pub mod natping;
pub mod request;
pub mod resolve;
pub mod response;
pub mod router;
pub mod server;
pub mod services;
pub mod stateful;
pub mod timer_queue;
pub mod tls;
pub mod topology;
pub mod transport;
pub mod udp;
pub mod ws;

pub use local::LocalIdentity;
pub use request::{Forward, HopHeaders, NextHop, Reject};
pub use router::{Decision, Reason, RequestContext, Router};
pub use transport::{Inbound, Transport};
