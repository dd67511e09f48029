//! Control of rtpengine, the media relay, over its ng protocol.
//!
//! [`bencode`] is the protocol's encoding and [`instances`] the relays a
//! proxy uses (weights, up/down, counters, which relay serves a call).

pub mod bencode;
pub mod instances;

pub use bencode::{Dict, Value};
pub use instances::{InstanceSpec, InstanceStats};
