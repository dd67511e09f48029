//! Programs free their JIT memory: compiling and dropping 10,000
//! programs keeps the resident set flat.

use std::sync::Arc;

use sipc::codegen::Program;
use sipc::sema::{self, Options};

/// Resident set size in pages, from /proc/self/statm.
fn resident_pages() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn compiling_and_dropping_programs_keeps_memory_flat() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench/stateless.route");
    let out = sema::check_path(&path, "stateless.route", &Options::default()).unwrap();
    assert_eq!(out.errors(), 0);
    let round = |n: usize| {
        for _ in 0..n {
            let p = Arc::new(Program::compile(&out.program).unwrap());
            let shared = Arc::clone(&p);
            drop(p);
            drop(shared); // the last Arc frees the JIT memory
        }
    };
    round(100); // warm up allocator pools
    let Some(before) = resident_pages() else { return }; // not Linux
    round(10_000);
    let after = resident_pages().unwrap();
    let grown_kib = after.saturating_sub(before) * 4;
    eprintln!(
        "RSS before {} KiB, after 10,000 programs {} KiB (+{grown_kib} KiB)",
        before * 4,
        after * 4
    );
    // Each module maps at least one page of code plus data;
    // leaking them would grow RSS by several MiB over 10,000 programs.
    assert!(grown_kib < 2048, "resident memory grew by {grown_kib} KiB");
}
