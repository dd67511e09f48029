//! Control of rtpengine, the media relay, over its ng protocol.
//!
//! [`bencode`] is the protocol's encoding, [`instances`] the relays a proxy
//! uses (weights, up/down, counters, which relay serves a call) and [`ng`]
//! the client: cookies, retransmission, failover, background pings of down
//! instances. Route builtins sit on top of [`NgClient`].

pub mod bencode;
pub mod flags;
pub mod instances;
pub mod ng;

pub use bencode::{Dict, Value};
pub use instances::{InstanceSpec, InstanceStats};
pub use ng::{NgClient, NgError, NgSettings};
