//! What the security checks cost per message: a `within_limit` token-bucket
//! check ([`Limiter::check`]) on one of 10,000 tracked source addresses,
//! the receive path's ban test ([`Bans::drops`]) with nothing banned and
//! with 10,000 bans, and, as the baseline in the same run, a plain
//! `HashMap` lookup of the same keys under a mutex (what any per-key
//! table costs) and the clock read a check includes. The goal for a limit
//! check is under 50 ns.
//!
//! `cargo bench --bench security`

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sipc::security::{Bans, LimitSpec, Limiter};

const KEYS: usize = 10_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("203.0.{}.{}", i / 256, i % 256)).collect()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let keys = keys();
    let limiter = Limiter::new(LimitSpec {
        name: "per_source".into(),
        key: "$si".into(),
        rate: 50,
        per: Duration::from_secs(1),
        burst: 100,
        keys: LimitSpec::DEFAULT_KEYS,
        ban: None,
    });
    let now = Instant::now();
    for k in &keys {
        limiter.check(k);
    }
    let baseline: Mutex<HashMap<String, u64>> =
        Mutex::new(keys.iter().map(|k| (k.clone(), 0)).collect());

    let mut i = 0usize;
    c.bench_function("baseline: HashMap get_mut under a Mutex", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let mut m = baseline.lock().unwrap();
            *m.get_mut(black_box(keys[i].as_str())).unwrap() += 1;
        })
    });
    c.bench_function("baseline: Instant::now()", |b| b.iter(|| black_box(Instant::now())));
    let mut i = 0usize;
    c.bench_function("within_limit: Limiter::check", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(limiter.check(black_box(&keys[i])))
        })
    });

    let bans = Bans::default();
    let ips: Vec<IpAddr> =
        (0..KEYS).map(|i| IpAddr::V4(Ipv4Addr::new(198, 51, (i / 256) as u8, i as u8))).collect();
    let mut i = 0usize;
    c.bench_function("ban test, nothing banned: Bans::drops", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(bans.drops(black_box(ips[i])))
        })
    });
    for k in &keys {
        bans.ban(k, Duration::from_secs(3600), now);
    }
    let mut i = 0usize;
    c.bench_function("ban test, 10,000 banned, source not banned: Bans::drops", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(bans.drops(black_box(ips[i])))
        })
    });
    let banned: Vec<IpAddr> = keys.iter().map(|k| k.parse().unwrap()).collect();
    let mut i = 0usize;
    c.bench_function("ban test, 10,000 banned, source banned: Bans::drops", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(bans.drops(black_box(banned[i])))
        })
    });
    c.final_summary();
}
