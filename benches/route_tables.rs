//! Routing table lookups and compile time.
//!
//! Longest-prefix lookup in a `by prefix(…)` table at 1,000, 100,000 and
//! 1,000,000 rows, against two baselines measured in the same run: an exact
//! `HashMap` lookup in the 1,000,000-row key set and a linear longest-prefix
//! scan of the 1,000-row table. Then the time to check and compile a
//! configuration whose table is a 1,000,000-row CSV file.
//!
//! Targets: lookup under 200 ns at 1,000,000 rows; compile under 2 s.
//! Run with `cargo bench --bench route_tables`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use sipc::routing::index::PrefixIndex;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + (self.next() % 10) as u8)).collect()
    }
}

fn keys(n: usize, rng: &mut Rng) -> Vec<String> {
    let mut set = std::collections::HashSet::new();
    while set.len() < n {
        let len = 3 + (rng.next() % 8) as usize;
        set.insert(rng.digits(len));
    }
    set.into_iter().collect()
}

/// Nanoseconds per call of `f` over `queries`, best of 5 rounds.
fn per_lookup(queries: &[String], mut f: impl FnMut(&str) -> Option<u32>) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut hits = 0u64;
        for q in queries {
            hits += u64::from(black_box(f(black_box(q))).is_some());
        }
        black_box(hits);
        best = best.min(start.elapsed().as_nanos() as f64 / queries.len() as f64);
    }
    best
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let queries: Vec<String> = (0..200_000).map(|_| rng.digits(12)).collect();
    let mut results = Vec::new();
    let mut big_keys = Vec::new();
    for n in [1_000, 100_000, 1_000_000] {
        let ks = keys(n, &mut rng);
        let (idx, errs) =
            PrefixIndex::build(ks.iter().enumerate().map(|(i, k)| (k.as_str(), i as u32)));
        assert!(errs.is_empty());
        let ns = per_lookup(&queries, |q| idx.longest_prefix(q));
        println!("prefix lookup, {n:>9} rows: {ns:7.1} ns");
        results.push((n, ns));
        if n == 1_000 {
            let scan = per_lookup(&queries[..20_000], |q| {
                ks.iter()
                    .enumerate()
                    .filter(|(_, k)| q.starts_with(k.as_str()))
                    .max_by_key(|(_, k)| k.len())
                    .map(|(i, _)| i as u32)
            });
            println!(
                "baseline: linear scan, 1,000 rows: {scan:7.1} ns ({:.1}x the index)",
                scan / ns
            );
        }
        if n == 1_000_000 {
            big_keys = ks;
        }
    }
    let map: HashMap<&str, u32> =
        big_keys.iter().enumerate().map(|(i, k)| (k.as_str(), i as u32)).collect();
    let exact_q: Vec<String> =
        (0..200_000).map(|i| big_keys[(i * 7919) % big_keys.len()].clone()).collect();
    let hm = per_lookup(&exact_q, |q| map.get(q).copied());
    let big = results.last().map_or(0.0, |r| r.1);
    println!(
        "baseline: HashMap exact lookup, 1,000,000 rows: {hm:7.1} ns (prefix lookup is {:.2}x)",
        big / hm
    );
    println!("target: < 200 ns at 1,000,000 rows: {}", if big < 200.0 { "met" } else { "MISSED" });

    // Compile time of a 1,000,000-row CSV table.
    let dir = std::env::temp_dir().join(format!("sipc-bench-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut csv = String::from("key,target,strip,prefix\n");
    for (i, k) in big_keys.iter().enumerate() {
        let g = if i % 3 == 0 { "carrier_a" } else { "carrier_b" };
        csv.push_str(&format!("{k},{g},{},\n", i % 3));
    }
    std::fs::write(dir.join("routes.csv"), csv).expect("write csv");
    let cfg = "listen udp 127.0.0.1:5060;\n\
        trunk_group carrier_a strategy priority {\n    trunk a1 \"sip:10.0.0.1:5060\";\n}\n\
        trunk_group carrier_b strategy priority {\n    trunk b1 \"sip:10.0.0.2:5060\";\n}\n\
        table big by prefix($rU) from \"routes.csv\" {}\n\
        request_route {\n    if (select(big)) {\n        relay();\n        exit;\n    }\n    reply(404, \"Not Found\");\n}\n";
    let path = dir.join("big.route");
    std::fs::write(&path, cfg).expect("write cfg");
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let out = sipc::sema::check_path(&path, "big.route", &Default::default()).expect("check");
        assert_eq!(out.errors(), 0, "{:?}", out.diagnostics.first());
        let program = sipc::codegen::Program::compile(&out.program).expect("compile");
        black_box(&program);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!("check + compile, 1,000,000-row CSV table: {best:.3} s");
    println!("target: < 2 s: {}", if best < 2.0 { "met" } else { "MISSED" });
    let _ = std::fs::remove_dir_all(&dir);
}
