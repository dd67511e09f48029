//! Declared rate limits: one token bucket per key (`limit NAME by $si rate
//! 50 per 1s burst 100;`).
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per `per`; a
//! message takes one token and is within the limit when one was there. A
//! bucket is two numbers, so a check is one hash, one shard lock and a
//! little arithmetic (`cargo bench --bench security` measures it).
//!
//! Memory is bounded by `keys` (default 65,536 buckets per limit): the
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
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of one limit.
#[derive(Debug)]
pub struct Limiter {
    spec: LimitSpec,
    /// Tokens per nanosecond.
    refill: f64,
    shards: Vec<Mutex<HashMap<Box<str>, Bucket, foldhash::fast::RandomState>>>,
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
    /// Messages over the limit, ever.
    exceeded: std::sync::atomic::AtomicU64,
}

impl Limiter {
    pub fn new(spec: LimitSpec) -> Self {
        let per_ns = spec.per.as_nanos().max(1) as f64;
        let per_shard = (spec.keys as usize).div_ceil(SHARDS).max(1);
        Limiter {
            refill: f64::from(spec.rate) / per_ns,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            per_shard,
            exceeded: Default::default(),
            spec,
        }
    }

    pub fn spec(&self) -> &LimitSpec {
        &self.spec
    }

    /// Takes a token for `key` at `now`: true when the message is within
    /// the limit.
    pub fn check(&self, key: &str, now: Instant) -> bool {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let burst = f64::from(self.spec.burst);
        let ok = if let Some(b) = map.get_mut(key) {
            let elapsed = now.saturating_duration_since(b.last).as_nanos() as f64;
            b.tokens = (b.tokens + elapsed * self.refill).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        } else {
            if map.len() >= self.per_shard {
                self.make_room(&mut map, now);
            }
            map.insert(key.into(), Bucket { tokens: burst - 1.0, last: now });
            burst >= 1.0
        };
        if !ok {
            self.exceeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        ok
    }

    /// Drops refilled buckets among the first [`EVICT_SCAN`], or the least
    /// recently used of them.
    fn make_room(
        &self,
        map: &mut HashMap<Box<str>, Bucket, foldhash::fast::RandomState>,
        now: Instant,
    ) {
        let burst = f64::from(self.spec.burst);
        let mut oldest: Option<(&str, Instant)> = None;
        let mut full: Vec<Box<str>> = Vec::new();
        for (k, b) in map.iter().take(EVICT_SCAN) {
            let elapsed = now.saturating_duration_since(b.last).as_nanos() as f64;
            if b.tokens + elapsed * self.refill >= burst {
                full.push(k.clone());
            } else if oldest.is_none_or(|(_, t)| b.last < t) {
                oldest = Some((k, b.last));
            }
        }
        if full.is_empty() {
            let victim: Option<Box<str>> = oldest.map(|(k, _)| k.into());
            if let Some(k) = victim {
                map.remove(&k);
            }
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

/// Every limit of the programs loaded, by declaration (see the module docs).
#[derive(Debug, Default)]
pub struct Limits {
    by_spec: Mutex<HashMap<LimitSpec, Arc<Limiter>>>,
}

impl Limits {
    /// The limiter of `spec`: the one a previous program used when the
    /// declaration is the same, a new one otherwise.
    pub fn register(&self, spec: &LimitSpec) -> Arc<Limiter> {
        let mut map = self.by_spec.lock().unwrap_or_else(|e| e.into_inner());
        // Forget limiters no program holds any more (a changed or removed
        // declaration, once the programs that used it are gone).
        map.retain(|s, l| s == spec || Arc::strong_count(l) > 1);
        Arc::clone(map.entry(spec.clone()).or_insert_with(|| Arc::new(Limiter::new(spec.clone()))))
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
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| l.check("a", t0)).count(), 5, "the burst");
        // 10 per second: one token per 100 ms.
        assert!(!l.check("a", t0 + Duration::from_millis(50)));
        assert!(l.check("a", t0 + Duration::from_millis(160)));
        assert!(!l.check("a", t0 + Duration::from_millis(170)));
        // Another key has its own bucket.
        assert!(l.check("b", t0));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| l.check("a", later)).count(), 5);
        assert_eq!(l.exceeded(), 3 + 1 + 1 + 3);
    }

    #[test]
    fn the_key_cap_holds_under_a_flood_of_keys() {
        let l = Limiter::new(spec(1, 1000, 2, 1000));
        let t0 = Instant::now();
        for i in 0..50_000 {
            l.check(&format!("10.0.{}.{}", i / 256, i % 256), t0 + Duration::from_micros(i));
        }
        assert!(l.len() <= 1000 + SHARDS, "{} keys tracked", l.len());
        // A key that is hot keeps being limited while the flood goes on.
        let now = t0 + Duration::from_millis(100);
        l.check("hot", now);
        l.check("hot", now);
        assert!(!l.check("hot", now));
    }

    #[test]
    fn an_unchanged_declaration_keeps_its_counters() {
        let limits = Limits::default();
        let a = limits.register(&spec(1, 1000, 1, 10));
        let t0 = Instant::now();
        assert!(a.check("x", t0));
        let again = limits.register(&spec(1, 1000, 1, 10));
        assert!(!again.check("x", t0), "the same bucket");
        let changed = limits.register(&spec(2, 1000, 1, 10));
        assert!(changed.check("x", t0), "a new declaration starts afresh");
        drop((a, again));
        limits.register(&spec(2, 1000, 1, 10));
        assert_eq!(limits.summary().len(), 1, "the unused limiter is forgotten");
    }
}
