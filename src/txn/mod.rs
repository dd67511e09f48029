//! SIP transactions (RFC 3261 §17, RFC 6026), sans-I/O.
//!
//! The state machines here take events (a request or response arrived, a
//! timer fired, the proxy wants to send a response) and return actions
//! (send these bytes, arm this timer, the transaction ended). They never
//! touch a socket or a clock, so every transition is unit-tested without
//! I/O; the proxy's stateful layer ([`crate::proxy::stateful`]) owns the
//! sockets, the timer service and the transaction table, and feeds them.
//!
//! - [`key`]: which transaction a message belongs to (§17.1.3, §17.2.3,
//!   with the RFC 2543 fallback);
//! - [`server`]: the INVITE and non-INVITE server transactions;
//! - [`client`]: the INVITE and non-INVITE client transactions;
//! - [`best`]: choosing the response to send upstream when a fork ends
//!   (§16.7 step 6);
//! - [`timer`]: T1, T2, T4 and the timers derived from them.

pub mod best;
pub mod client;
pub mod key;
pub mod server;
pub mod timer;

pub use client::{ClientAction, ClientState, ClientTimer, ClientTxn};
pub use key::ServerKey;
pub use server::{ServerAction, ServerState, ServerTimer, ServerTxn};
pub use timer::Timers;

/// What a state machine asks for after an event: at most three actions,
/// kept inline (a call makes a dozen of these; none needs the heap).
pub type Actions<A> = smallvec::SmallVec<[A; 3]>;
