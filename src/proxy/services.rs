//! State the routes use that outlives a message and a config: the
//! location table and the digest authentication state (subscriber cache,
//! nonce key), trunk health, rate limits and the ban table. The
//! server owns one [`Services`]; every [`super::RequestContext`] carries its
//! `Arc`, so a reload that swaps the compiled program keeps them
//! (DESIGN.md, "where state lives"). `sipc run` builds them from the
//! program's settings (`cli::services`).

use std::sync::Arc;

use crate::auth::Auth;
use crate::registrar::Location;

/// Long-lived state shared by every program generation.
#[derive(Debug, Default)]
pub struct Services {
    /// The location table `save()`/`lookup()` use; `None` when the config has
    /// no registrar.
    pub location: Option<Arc<Location>>,
    /// What `auth_check()`/`auth_challenge()` use; `None` when the config
    /// does not authenticate.
    pub auth: Option<Arc<Auth>>,
    /// NAT keepalives of the location table's bindings (`module
    /// nathelper`); `None` when not configured.
    pub natping: Option<Arc<crate::registrar::natping::NatPinger>>,
    /// Trunk health and counters, by trunk name and URI.
    pub trunks: crate::routing::health::Trunks,
    /// The rtpengine ng client the `rtpengine_*` builtins use (`module
    /// rtpengine`); `None` when no route calls them.
    pub rtpengine: Option<crate::rtpengine::NgClient>,
    /// Banned sources and keys (`ban()`, `limit … ban`): the receive path
    /// drops a banned source's datagrams before parsing them.
    pub bans: crate::security::Bans,
    /// The token buckets of every `limit` declaration, by declaration.
    pub limits: crate::security::Limits,
    /// Calls followed with `dlg_manage()`, their profiles and the
    /// accounting writer their records go to.
    pub dialogs: crate::dialog::Dialogs,
    /// HEP capture to a Homer collector (`module hep`); `None` when off.
    pub hep: Option<crate::proxy::hep::HepSender>,
    /// The counters of what is shared with the other nodes of a cluster
    /// (set when shared).
    pub cluster: crate::cluster::ClusterStats,
}
