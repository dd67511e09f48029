//! State the routes use that outlives a message and a config: the
//! location table (and, as they land, the subscriber database, trunk health
//! and rate-limit tables). The server owns one [`Services`]; every
//! [`super::RequestContext`] carries its `Arc`, so a reload that swaps the
//! compiled program keeps them (DESIGN.md, "where state lives").

use std::sync::Arc;

use crate::registrar::Location;

/// Long-lived state shared by every program generation.
#[derive(Debug, Default)]
pub struct Services {
    /// The location table `save()`/`lookup()` use; `None` when the config has
    /// no registrar.
    pub location: Option<Arc<Location>>,
    /// Trunk health and counters, by trunk name and URI.
    pub trunks: crate::routing::health::Trunks,
}
