//! The registrar and location service (RFC 3261 §10, RFC 3327 Path,
//! RFC 5626 instance/reg-id), sans-I/O.
//!
//! [`Location::register`] applies one REGISTER to the bindings of its
//! address-of-record and returns the bindings to list in the 200 OK, or the
//! error response (400, 423 with Min-Expires, 503 over `max_contacts`).
//! [`Location::lookup`] returns the live bindings of an AOR, best q first.
//! Time is passed in (seconds), so expiry is tested without waiting.
//!
//! The table is in memory, sharded by AOR so lookups on different AORs do
//! not contend; [`store`] persists it to SQLite, written behind. The route
//! builtins that call it (`save`, `lookup`) are the registrar issue's next
//! step.

mod aor;
mod location;
pub mod natping;
pub mod store;

pub use aor::{canonical_aor, canonical_aor_parts};
pub use location::{AorChange, Binding, Location, RegisterError, RegistrarConfig, contact_values};
