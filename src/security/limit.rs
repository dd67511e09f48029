//! Declared rate limits: one token bucket per key (`limit NAME by $si rate
//! 50 per 1s burst 100;`).
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per `per`; a
//! message takes one token and is within the limit when one was there. A
//! bucket is two numbers, so a check is one hash, one shard lock and a
//! little arithmetic (`cargo bench --bench security` measures it).
//!
//! Memory is bounded by `keys` (default 65,536 buckets per limit, 16 bytes
//! each plus the map's slack): the
//! buckets are spread over shards, and a shard at its share of the cap
//! makes room by dropping buckets that have refilled (a full bucket is
//! what a new key gets anyway, so forgetting it changes nothing), looking
//! at a bounded number of them; if none has refilled, the least recently
//! used of those looked at goes. A flood of forged source addresses can
//! therefore cost a limit at most its cap, and every check stays O(1).
//!
//! Limits live in the long-lived services ([`Limits`]), keyed by their
//! whole declaration: a reload that leaves a declaration unchanged keeps
//! its counters, and one that changes the rate, burst or key starts afresh.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shards per limit: the receive threads rarely touch the same one.
const SHARDS: usize = 16;
/// Buckets a full shard looks at to make room for a new key.
const EVICT_SCAN: usize = 32;

/// What a `limit` declaration says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    pub name: String,
    /// The key expression as written (part of the identity across reloads).
    pub key: String,
    /// Tokens added per `per`.
    pub rate: u32,
    pub per: Duration,
    /// Bucket size: how many messages may come at once.
    pub burst: u32,
    /// At most this many keys are tracked.
    pub keys: u32,
    /// A key that exceeds the limit is banned this long (`ban 5m`).
    pub ban: Option<Duration>,
}

impl LimitSpec {
    /// Default cap on tracked keys.
    pub const DEFAULT_KEYS: u32 = 65_536;
}

/// A bucket: tokens and when they were counted (milliseconds since the
/// limiter's start; 49 days of `u32`, after which the clock wraps and a
/// bucket at worst refills early once).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f32,
    last_ms: u32,
}

/// Buckets by the key's 64-bit hash (see [`Limiter`]).
type BucketMap = HashMap<u64, Bucket, std::hash::BuildHasherDefault<Prehashed>>;

/// The map's hasher: keys are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The buckets of one limit.
///
/// A key is stored as its 64-bit hash under a random seed, not as text: an
/// entry is 16 bytes, a new key allocates nothing, and a check hashes the
/// key once and compares no strings. Two keys share a bucket only if their
/// seeded hashes collide (about one chance in 10^10 among 65,536 keys, and
/// the seed keeps a sender from choosing keys that collide).
#[derive(Debug)]
pub struct Limiter {
    spec: LimitSpec,
    /// Tokens per millisecond.
    refill: f32,
    shards: Vec<Mutex<BucketMap>>,
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
    /// [`coarse_ms`] when the limiter was made.
    start_ms: u64,
    /// Messages over the limit, ever.
    exceeded: std::sync::atomic::AtomicU64,
    /// Messages counted here per key since the cluster's counters last
    /// took them ([`Limiter::take_counted`]); unset on a lone node.
    counted: std::sync::OnceLock<Mutex<HashMap<String, u32>>>,
}

impl Limiter {
    pub fn new(spec: LimitSpec) -> Self {
        let per_ms = spec.per.as_secs_f64() * 1e3;
        let per_shard = (spec.keys as usize).div_ceil(SHARDS).max(1);
        Limiter {
            refill: (f64::from(spec.rate) / per_ms.max(1e-3)) as f32,
            shards: (0..SHARDS).map(|_| Mutex::new(BucketMap::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            per_shard,
            start_ms: coarse_ms(),
            exceeded: Default::default(),
            counted: std::sync::OnceLock::new(),
            spec,
        }
    }

    /// Counts the messages of each key from now on for the other nodes of
    /// a cluster (`crate::cluster::counters`), which debit what they
    /// counted with [`Limiter::debit`].
    pub fn share(&self) {
        let _ = self.counted.set(Mutex::new(HashMap::new()));
    }

    /// The messages counted per key since the last call (when shared).
    pub fn take_counted(&self) -> HashMap<String, u32> {
        match self.counted.get() {
            Some(c) => std::mem::take(&mut *c.lock().unwrap_or_else(|e| e.into_inner())),
            None => HashMap::new(),
        }
    }

    /// Takes `n` tokens from `key`'s bucket: messages of that key other
    /// nodes let through. The bucket may go below zero (to `-burst`), so
    /// a key that used more than its share elsewhere waits for that here.
    pub fn debit(&self, key: &str, n: u32) {
        self.debit_at(key, n, coarse_ms());
    }

    /// [`Limiter::debit`] at `now_ms`.
    pub fn debit_at(&self, key: &str, n: u32, now_ms: u64) {
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        let now_ms = now_ms.saturating_sub(self.start_ms) as u32;
        let burst = self.spec.burst as f32;
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.entry(hash).or_insert(Bucket { tokens: burst, last_ms: now_ms });
        let elapsed = now_ms.wrapping_sub(b.last_ms) as f32;
        b.tokens = ((b.tokens + elapsed * self.refill).min(burst) - n as f32).max(-burst);
        b.last_ms = now_ms;
    }

    pub fn spec(&self) -> &LimitSpec {
        &self.spec
    }

    /// Takes a token for `key` now: true when the message is within the
    /// limit.
    pub fn check(&self, key: &str) -> bool {
        self.check_at(key, coarse_ms())
    }

    /// [`Limiter::check`] at `now_ms` on the [`coarse_ms`] clock.
    pub fn check_at(&self, key: &str, now_ms: u64) -> bool {
        let hash = self.hasher.hash_one(key);
        // The shard from the high bits, the map's buckets from the low ones.
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        let now_ms = now_ms.saturating_sub(self.start_ms) as u32;
        let burst = self.spec.burst as f32;
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let ok = if let Some(b) = map.get_mut(&hash) {
            let elapsed = now_ms.wrapping_sub(b.last_ms) as f32;
            b.tokens = (b.tokens + elapsed * self.refill).min(burst);
            b.last_ms = now_ms;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        } else {
            if map.len() >= self.per_shard {
                self.make_room(&mut map, now_ms);
            }
            map.insert(hash, Bucket { tokens: burst - 1.0, last_ms: now_ms });
            burst >= 1.0
        };
        drop(map);
        if !ok {
            self.exceeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else if let Some(c) = self.counted.get() {
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            match c.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    c.insert(key.to_owned(), 1);
                }
            }
        }
        ok
    }

    /// Drops refilled buckets among the first [`EVICT_SCAN`], or the least
    /// recently used of them.
    fn make_room(&self, map: &mut BucketMap, now_ms: u32) {
        let burst = self.spec.burst as f32;
        let mut oldest: Option<(u64, u32)> = None;
        let mut full: Vec<u64> = Vec::new();
        for (k, b) in map.iter().take(EVICT_SCAN) {
            let idle = now_ms.wrapping_sub(b.last_ms);
            if b.tokens + idle as f32 * self.refill >= burst {
                full.push(*k);
            } else if oldest.is_none_or(|(_, i)| idle > i) {
                oldest = Some((*k, idle));
            }
        }
        if full.is_empty() {
            full.extend(oldest.map(|(k, _)| k));
        }
        for k in full {
            map.remove(&k);
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages found over the limit since the declaration was first loaded.
    pub fn exceeded(&self) -> u64 {
        self.exceeded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Milliseconds on the kernel's coarse monotonic clock: updated each
/// scheduler tick (1–4 ms), read from the vDSO without touching the TSC, so
/// a limit check spends a few nanoseconds on the time instead of the 25 a
/// precise `Instant::now()` costs on the VMs measured (`cargo bench --bench
/// security`). Buckets count milliseconds; a tick's error is noise next to
/// any rate a config declares.
pub fn coarse_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map_or(0, |t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

/// Every limit of the programs loaded, by declaration (see the module docs).
#[derive(Debug, Default)]
pub struct Limits {
    by_spec: Mutex<HashMap<LimitSpec, Arc<Limiter>>>,
    /// Limiters count for the cluster ([`Limiter::share`]).
    shared: std::sync::atomic::AtomicBool,
}

impl Limits {
    /// The limiter of `spec`: the one a previous program used when the
    /// declaration is the same, a new one otherwise.
    pub fn register(&self, spec: &LimitSpec) -> Arc<Limiter> {
        let mut map = self.by_spec.lock().unwrap_or_else(|e| e.into_inner());
        // Forget limiters no program holds any more (a changed or removed
        // declaration, once the programs that used it are gone).
        map.retain(|s, l| s == spec || Arc::strong_count(l) > 1);
        let shared = self.shared.load(std::sync::atomic::Ordering::Relaxed);
        Arc::clone(map.entry(spec.clone()).or_insert_with(|| {
            let l = Limiter::new(spec.clone());
            if shared {
                l.share();
            }
            Arc::new(l)
        }))
    }

    /// Every limiter from now on counts for the cluster.
    pub fn share_all(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Relaxed);
        let map = self.by_spec.lock().unwrap_or_else(|e| e.into_inner());
        map.values().for_each(|l| l.share());
    }

    /// The limiters registered now.
    pub fn all(&self) -> Vec<Arc<Limiter>> {
        self.by_spec.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Each registered limit with its tracked keys and exceeded count.
    pub fn summary(&self) -> Vec<(String, usize, u64)> {
        let map = self.by_spec.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> =
            map.values().map(|l| (l.spec.name.clone(), l.len(), l.exceeded())).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: u32, per_ms: u64, burst: u32, keys: u32) -> LimitSpec {
        LimitSpec {
            name: "t".into(),
            key: "$si".into(),
            rate,
            per: Duration::from_millis(per_ms),
            burst,
            keys,
            ban: None,
        }
    }

    #[test]
    fn burst_then_the_rate() {
        let l = Limiter::new(spec(10, 1000, 5, 100));
        let t0 = coarse_ms();
        assert_eq!((0..8).filter(|_| l.check_at("a", t0)).count(), 5, "the burst");
        // 10 per second: one token per 100 ms.
        assert!(!l.check_at("a", t0 + 50));
        assert!(l.check_at("a", t0 + 160));
        assert!(!l.check_at("a", t0 + 170));
        // Another key has its own bucket.
        assert!(l.check_at("b", t0));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + 60_000;
        assert_eq!((0..8).filter(|_| l.check_at("a", later)).count(), 5);
        assert_eq!(l.exceeded(), 3 + 1 + 1 + 3);
    }

    #[test]
    fn the_key_cap_holds_under_a_flood_of_keys() {
        let l = Limiter::new(spec(1, 1000, 2, 1000));
        let t0 = coarse_ms();
        for i in 0..50_000u64 {
            l.check_at(&format!("10.0.{}.{}", i / 256, i % 256), t0 + i / 1000);
        }
        assert!(l.len() <= 1000 + SHARDS, "{} keys tracked", l.len());
        // A key that is hot keeps being limited while the flood goes on.
        let now = t0 + 100;
        l.check_at("hot", now);
        l.check_at("hot", now);
        assert!(!l.check_at("hot", now));
    }

    #[test]
    fn an_unchanged_declaration_keeps_its_counters() {
        let limits = Limits::default();
        let a = limits.register(&spec(1, 1000, 1, 10));
        let t0 = coarse_ms();
        assert!(a.check_at("x", t0));
        let again = limits.register(&spec(1, 1000, 1, 10));
        assert!(!again.check_at("x", t0), "the same bucket");
        let changed = limits.register(&spec(2, 1000, 1, 10));
        assert!(changed.check_at("x", t0), "a new declaration starts afresh");
        drop((a, again));
        limits.register(&spec(2, 1000, 1, 10));
        assert_eq!(limits.summary().len(), 1, "the unused limiter is forgotten");
    }
}
