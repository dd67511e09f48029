//! How long each route block takes to run: one lock-free histogram per
//! route, shared by every program that has a route of that name.
//!
//! The histograms live in a process-wide registry keyed by the route's
//! label (`request_route`, `failure_route MISSED`, …), not in the compiled
//! program: a reload compiles a new program whose routes pick up the same
//! histograms, so the series Prometheus scrapes continue across reloads
//! (a counter that went back to zero would read as a restart). A program
//! looks its histograms up once, when it is compiled; observing is then
//! two relaxed atomic adds, and the clock is read twice per route run
//! (about 40 ns in all, on a path that costs microseconds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds: compiled routes take a
/// microsecond or a few; a database or DNS lookup in a route takes
/// milliseconds. The last bucket is +Inf.
pub const BOUNDS_NS: [u64; 11] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// One route's run times.
#[derive(Debug, Default)]
pub struct RouteTime {
    /// Runs per bucket (not cumulative); the last one past every bound.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl RouteTime {
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, [(upper bound in seconds, runs)])`, the
    /// last bound `f64::MAX` (+Inf), as `prometheus-client` encodes them.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut count = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            let bound = BOUNDS_NS.get(i).map_or(f64::MAX, |&ns| ns as f64 / 1e9);
            buckets.push((bound, n));
        }
        (self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, count, buckets)
    }
}

type Registry = Mutex<Vec<(String, Arc<RouteTime>)>>;

fn registry() -> &'static Registry {
    static ROUTES: OnceLock<Registry> = OnceLock::new();
    ROUTES.get_or_init(|| Mutex::new(Vec::new()))
}

/// The histogram of the route labelled `label`, made on first use.
pub fn for_route(label: &str) -> Arc<RouteTime> {
    let mut all = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, t)) = all.iter().find(|(l, _)| l == label) {
        return Arc::clone(t);
    }
    let t = Arc::new(RouteTime::default());
    all.push((label.to_owned(), Arc::clone(&t)));
    t
}

/// Every route's histogram that has run at least once, by label.
pub fn all() -> Vec<(String, Arc<RouteTime>)> {
    let all = registry().lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|(_, t)| t.buckets.iter().any(|b| b.load(Ordering::Relaxed) > 0))
        .map(|(l, t)| (l.clone(), Arc::clone(t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_land_in_their_buckets_and_the_histogram_is_shared_by_name() {
        let t = for_route("failure_route TEST_BUCKETS");
        t.observe(Duration::from_nanos(800));
        t.observe(Duration::from_micros(3));
        t.observe(Duration::from_secs(1));
        let (sum, count, buckets) = for_route("failure_route TEST_BUCKETS").read();
        assert_eq!(count, 3);
        assert!((sum - 1.000_003_8).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (1e-6, 1));
        assert_eq!(buckets[2], (5e-6, 1));
        assert_eq!(buckets.last(), Some(&(f64::MAX, 1)));
        assert!(all().iter().any(|(l, _)| l == "failure_route TEST_BUCKETS"));
    }
}
