//! What keeps a proxy on a public address standing: declared rate limits
//! ([`limit`]) and the ban table ([`ban`]) the receive path consults before
//! parsing, and the kernel socket filter that drops banned IPv4 sources
//! before they reach the proxy at all ([`filter`]). Both live in the long-lived [`crate::proxy::services::Services`]
//! and survive reloads.

pub mod acl;
pub mod ban;
pub mod feed;
pub mod filter;
pub mod limit;
pub mod scanner;
pub mod store;

pub use ban::{BanChange, Bans};
pub use limit::{LimitSpec, Limiter, Limits};
