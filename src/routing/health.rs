//! Trunk health and counters: the part of routing that outlives a config.
//!
//! [`Trunks`] lives in [`crate::proxy::services::Services`]. Each trunk's
//! [`TrunkState`] is keyed by its name *and* URI, so a reload that keeps a
//! trunk keeps its health and counters, and one that points a name at a new
//! address starts it fresh. The transaction layer reports branch outcomes by
//! peer address ([`Trunks::branch_started`], [`Trunks::branch_final`]), the
//! prober reports OPTIONS outcomes; both feed the same small state machine:
//!
//! ```text
//!           `down` failures in a row (probe timeout, non-alive reply,
//!           passive 503 or branch timeout)
//!     UP ─────────────────────────────────────────────► DOWN
//!      ▲                                                  │
//!      └──────────── `up` alive probe replies in a row ───┘
//! ```
//!
//! Passive marking only applies to probed trunks (something must bring a
//! trunk back). `active` counts INVITE branches in progress plus answered
//! calls until their BYE is routed; a trunk at `max_calls` is skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Probe settings of one trunk (from its group).
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub interval_ms: u64,
    pub down: u32,
    pub up: u32,
    pub alive: regex::Regex,
}

/// Health and counters of one trunk.
#[derive(Debug)]
pub struct TrunkState {
    pub name: String,
    pub uri: String,
    /// The trunk's address when its URI host is an IP literal.
    pub addr: Option<SocketAddr>,
    up: AtomicBool,
    fails: AtomicU32,
    oks: AtomicU32,
    pub calls: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    pub active: AtomicU64,
    pub probes_sent: AtomicU64,
    probe: Mutex<Option<ProbeConfig>>,
}

impl TrunkState {
    fn new(name: &str, uri: &str) -> TrunkState {
        TrunkState {
            name: name.to_owned(),
            uri: uri.to_owned(),
            addr: uri_addr(uri),
            up: AtomicBool::new(true),
            fails: AtomicU32::new(0),
            oks: AtomicU32::new(0),
            calls: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            active: AtomicU64::new(0),
            probes_sent: AtomicU64::new(0),
            probe: Mutex::new(None),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the trunk up or down by hand (`trunk_set_up`).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.fails.store(0, Ordering::Relaxed);
        self.oks.store(0, Ordering::Relaxed);
    }

    pub fn probe(&self) -> Option<ProbeConfig> {
        self.probe.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_probe(&self, p: Option<ProbeConfig>) {
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// A probe got an alive reply, or a call was answered.
    pub fn alive(&self) {
        self.fails.store(0, Ordering::Relaxed);
        let oks = self.oks.fetch_add(1, Ordering::Relaxed) + 1;
        let need = self.probe().map_or(1, |p| p.up);
        if !self.is_up() && oks >= need {
            tracing::info!(trunk = %self.name, "trunk is up");
            self.up.store(true, Ordering::Relaxed);
        }
    }

    /// A probe failed, or (passively) a call got 503 or timed out.
    pub fn dead(&self) {
        let Some(p) = self.probe() else { return };
        self.oks.store(0, Ordering::Relaxed);
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if self.is_up() && fails >= p.down {
            tracing::warn!(trunk = %self.name, "trunk is down");
            self.up.store(false, Ordering::Relaxed);
        }
    }

    /// A counter by name: `calls`, `answered`, `failed`, `active`, `up`.
    pub fn counter(&self, name: &str) -> Option<i64> {
        let v = match name {
            "calls" => self.calls.load(Ordering::Relaxed),
            "answered" => self.answered.load(Ordering::Relaxed),
            "failed" => self.failed.load(Ordering::Relaxed),
            "active" => self.active.load(Ordering::Relaxed),
            "probes" => self.probes_sent.load(Ordering::Relaxed),
            "up" => u64::from(self.is_up()),
            _ => return None,
        };
        Some(v as i64)
    }
}

/// The address of `sip:1.2.3.4:5060` (port 5060 when absent); `None` for names.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = crate::sip::Uri::parse(uri).ok()?;
    let ip: std::net::IpAddr = u.host_str.trim_matches(['[', ']']).parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// Every trunk any program declared, with health and counters. Cloning
/// shares it (the prober holds a weak reference).
#[derive(Debug, Default)]
pub struct Trunks {
    inner: Arc<TrunksInner>,
}

impl std::ops::Deref for Trunks {
    type Target = TrunksInner;
    fn deref(&self) -> &TrunksInner {
        &self.inner
    }
}

impl Trunks {
    pub fn downgrade(&self) -> std::sync::Weak<TrunksInner> {
        Arc::downgrade(&self.inner)
    }
}

#[derive(Debug, Default)]
pub struct TrunksInner {
    by_key: RwLock<HashMap<(String, String), Arc<TrunkState>>>,
    by_addr: RwLock<HashMap<SocketAddr, Arc<TrunkState>>>,
    /// Answered calls by Call-ID, until their BYE.
    dialogs: Mutex<HashMap<String, Arc<TrunkState>>>,
    /// The prober task was started.
    pub(crate) prober: AtomicBool,
    /// What runs on each request sipc sends on its own (the program's
    /// `event_route "tm:local-request"`), held weakly: the serving program
    /// installs itself, and a program replaced by a reload goes away.
    local_request: RwLock<Option<std::sync::Weak<dyn LocalRequest>>>,
}

/// Something that sees (and may edit or stop) a request sipc originates.
pub trait LocalRequest: Send + Sync + std::fmt::Debug {
    /// The request to send instead of `msg`; `None`: do not send it.
    fn local_request(&self, msg: String) -> Option<String>;
}

impl TrunksInner {
    /// Installs what sees each locally originated request.
    pub fn set_local_request(&self, hook: std::sync::Weak<dyn LocalRequest>) {
        *self.local_request.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// `msg` as the local-request hook leaves it (`None`: not to be sent).
    pub fn local_request(&self, msg: String) -> Option<String> {
        let hook = self.local_request.read().unwrap_or_else(|e| e.into_inner()).clone();
        match hook.and_then(|h| h.upgrade()) {
            Some(h) => h.local_request(msg),
            None => Some(msg),
        }
    }

    /// The state of trunk `name` at `uri`, created on first use.
    pub fn register(&self, name: &str, uri: &str) -> Arc<TrunkState> {
        let key = (name.to_owned(), uri.to_owned());
        if let Some(s) = self.by_key.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Arc::clone(s);
        }
        let mut map = self.by_key.write().unwrap_or_else(|e| e.into_inner());
        let state =
            Arc::clone(map.entry(key).or_insert_with(|| Arc::new(TrunkState::new(name, uri))));
        if let Some(a) = state.addr {
            self.by_addr.write().unwrap_or_else(|e| e.into_inner()).insert(a, Arc::clone(&state));
        }
        state
    }

    /// Installs the trunks of a newly loaded program: `(state, probe)` for
    /// each. Trunks no longer declared keep their state but stop being probed.
    pub fn install(&self, trunks: &[(Arc<TrunkState>, Option<ProbeConfig>)]) {
        for s in self.by_key.read().unwrap_or_else(|e| e.into_inner()).values() {
            s.set_probe(None);
        }
        for (s, p) in trunks {
            s.set_probe(p.clone());
            if let Some(a) = s.addr {
                self.by_addr.write().unwrap_or_else(|e| e.into_inner()).insert(a, Arc::clone(s));
            }
        }
    }

    /// Every trunk that is currently probed.
    pub fn probed(&self) -> Vec<(Arc<TrunkState>, ProbeConfig)> {
        let map = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        map.values().filter_map(|s| s.probe().map(|p| (Arc::clone(s), p))).collect()
    }

    /// The newest state registered under `name`.
    /// Every trunk, by name (metrics).
    pub fn all(&self) -> Vec<Arc<TrunkState>> {
        let map = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<TrunkState>> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|a, b| Arc::ptr_eq(a, b));
        all
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<TrunkState>> {
        let map = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        let by_addr = self.by_addr.read().unwrap_or_else(|e| e.into_inner());
        // Prefer the one currently reachable by address (the latest program's).
        let mut found = None;
        for s in map.values().filter(|s| s.name == name) {
            if s.addr.and_then(|a| by_addr.get(&a)).is_some_and(|c| Arc::ptr_eq(c, s)) {
                return Some(Arc::clone(s));
            }
            found = Some(Arc::clone(s));
        }
        found
    }

    fn at(&self, peer: SocketAddr) -> Option<Arc<TrunkState>> {
        self.by_addr.read().unwrap_or_else(|e| e.into_inner()).get(&peer).cloned()
    }

    /// A branch was sent to `peer`.
    pub fn branch_started(&self, peer: SocketAddr, invite: bool) {
        if !invite {
            return;
        }
        if let Some(s) = self.at(peer) {
            s.calls.fetch_add(1, Ordering::Relaxed);
            s.active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A branch to `peer` ended with `code` (408 for a timeout).
    pub fn branch_final(&self, peer: SocketAddr, invite: bool, code: u16, call_id: &str) {
        let Some(s) = self.at(peer) else { return };
        if code == 503 || code == 408 {
            s.dead();
        } else if code < 500 {
            s.alive();
        }
        if !invite {
            return;
        }
        if (200..300).contains(&code) {
            s.answered.fetch_add(1, Ordering::Relaxed);
            self.dialogs.lock().unwrap_or_else(|e| e.into_inner()).insert(call_id.to_owned(), s);
        } else {
            s.failed.fetch_add(1, Ordering::Relaxed);
            let _ =
                s.active.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// A BYE of an answered call was routed.
    pub fn call_ended(&self, call_id: &str) {
        let s = self.dialogs.lock().unwrap_or_else(|e| e.into_inner()).remove(call_id);
        if let Some(s) = s {
            let _ =
                s.active.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// Whether any trunk is known (cheap test before per-message work).
    pub fn is_empty(&self) -> bool {
        self.by_key.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// The transaction layer's hook: a branch to `peer` ended with `code`.
pub fn on_branch_final(
    services: &Option<Arc<crate::proxy::services::Services>>,
    peer: SocketAddr,
    invite: bool,
    code: u16,
    call_id: &str,
) {
    if let Some(s) = services {
        s.trunks.branch_final(peer, invite, code, call_id);
    }
}

/// The transaction layer's hook: a branch was sent to `peer`.
pub fn on_branch_started(
    services: &Option<Arc<crate::proxy::services::Services>>,
    peer: SocketAddr,
    invite: bool,
) {
    if let Some(s) = services {
        s.trunks.branch_started(peer, invite);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> ProbeConfig {
        ProbeConfig { interval_ms: 1000, down: 2, up: 1, alive: regex::Regex::new("^2").unwrap() }
    }

    #[test]
    fn state_survives_a_second_registration_and_follows_the_uri() {
        let t = Trunks::default();
        let a = t.register("fs1", "sip:127.0.0.1:5081");
        a.calls.fetch_add(3, Ordering::Relaxed);
        let b = t.register("fs1", "sip:127.0.0.1:5081");
        assert!(Arc::ptr_eq(&a, &b));
        let c = t.register("fs1", "sip:127.0.0.1:5082");
        assert_eq!(c.counter("calls"), Some(0));
    }

    #[test]
    fn passive_failures_mark_a_probed_trunk_down_and_probes_bring_it_back() {
        let t = Trunks::default();
        let s = t.register("fs1", "sip:127.0.0.1:5081");
        let peer = s.addr.unwrap();
        t.branch_final(peer, true, 503, "a");
        t.branch_final(peer, true, 503, "b");
        assert!(s.is_up(), "unprobed trunks are not marked");
        t.install(&[(Arc::clone(&s), Some(probe()))]);
        t.branch_final(peer, true, 503, "c");
        assert!(s.is_up());
        t.branch_final(peer, true, 408, "d");
        assert!(!s.is_up());
        s.alive();
        assert!(s.is_up());
    }

    #[test]
    fn active_counts_calls_until_bye() {
        let t = Trunks::default();
        let s = t.register("fs1", "sip:127.0.0.1:5081");
        let peer = s.addr.unwrap();
        t.branch_started(peer, true);
        t.branch_started(peer, true);
        assert_eq!(s.counter("active"), Some(2));
        t.branch_final(peer, true, 200, "x");
        t.branch_final(peer, true, 486, "y");
        assert_eq!(s.counter("active"), Some(1));
        assert_eq!((s.counter("answered"), s.counter("failed")), (Some(1), Some(1)));
        t.call_ended("x");
        assert_eq!(s.counter("active"), Some(0));
    }
}
