//! 1,000 reload cycles of examples/default.route through a running proxy:
//! the count of live programs and the resident memory return to their
//! baseline (no generation or JIT memory leaks). Its own test binary, so
//! nothing else compiles programs meanwhile.

use std::sync::Arc;
use std::time::Duration;

use sipc::codegen::Program;
use sipc::proxy::server::start;
use sipc::reload::Reloader;
use sipc::sema::Options;

/// Resident set size in KiB, from /proc/self/statm.
fn resident_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    text.split_whitespace().nth(1)?.parse::<u64>().ok().map(|p| p * 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reloads_leave_one_program_and_flat_memory() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/default.route");
    let built = sipc::reload::build(&path, &Options::default()).expect("default.route builds");
    let mut config =
        sipc::cli::run::server_config_in(&built.checked, path.parent().unwrap()).unwrap();
    for l in &mut config.listens {
        l.addr.set_port(0);
    }
    let proxy = start(config, built.program.clone()).await.unwrap();
    let reloader = Reloader::new(&path, Options::default(), Arc::clone(&proxy.core), &built, None);
    drop(built);
    assert_eq!(Program::live(), 1);
    for _ in 0..50 {
        reloader.reload("warm-up").await.unwrap();
    }
    let before = resident_kib();
    for i in 0..1000 {
        reloader.reload("test").await.unwrap();
        if std::env::var_os("SIPC_RSS_TRACE").is_some() && i % 100 == 0 {
            eprintln!("{i}: {:?} KiB", resident_kib());
        }
    }
    assert_eq!(reloader.generation(), 1051);
    assert_eq!(Program::live(), 1, "only the serving generation is alive");
    if let (Some(before), Some(after)) = (before, resident_kib()) {
        let grown = after.saturating_sub(before);
        eprintln!("RSS {before} KiB before, {after} KiB after 1,000 reloads (+{grown} KiB)");
        // A leaked generation keeps its JIT pages, constant pool and
        // regexes: 1,000 of them would be many MiB.
        assert!(grown < 4096, "resident memory grew by {grown} KiB over 1,000 reloads");
    }
    proxy.stop(Duration::from_secs(1)).await;
}
