//! The SIP message layer (RFC 3261 §7, §18.3, §20, §25): parsing, typed
//! header views, editing and serializing, stream framing.
//!
//! Everything here is sans-I/O: bytes in, values out. The flow on the hot path:
//!
//! ```text
//! Bytes ─► Message::parse   locate start line, headers, body (one pass, no copies)
//!       ─► Message::validate type the proxy headers; 400/505/513 on failure
//!       ─► msg.via(), msg.to() … borrow typed views on demand
//!       ─► EditedMessage       record edits (R-URI, Via, Record-Route, body)
//!       ─► serialize           apply them once; no edits = the received bytes
//! ```

mod edit;
mod error;
mod framing;
mod header_name;
mod message;
mod method;
mod name_addr;
mod params;
pub mod scan;
mod sdp;
pub mod status;
mod typed;
mod uri;
mod validate;
mod via;
pub mod write;

pub mod dump;

pub use edit::EditedMessage;
pub use error::{ErrorKind, Malformed, ParseError};
pub use framing::{Frame, frame_stream};
pub use header_name::{COMPACT_HEADERS, HeaderName, KNOWN_HEADERS};
pub use message::{Header, Message, ParseLimits, StartLine};
pub use method::Method;
pub use name_addr::NameAddr;
pub use params::{ParamIter, Params};
pub use sdp::{Connection, Media, Sdp};
pub use typed::{CSeq, Contact, parse_qvalue};
pub use uri::{Host, HostKind, Scheme, Uri, UriParts, split_host_port};
pub use via::{Via, default_port};
