//! Hot-reload latency: the time from saving examples/default.route to the
//! first message answered by the new program, over 100 saves, through the
//! real file watcher (debounce included) of a proxy serving on loopback.
//!
//! Baseline, measured in the same run: the check + JIT compile of the same
//! file alone. The ratio says what watching, debouncing and swapping add.
//! Target (issue 7): p99 under 50 ms.
//!
//! `cargo bench --bench reload_latency` (`-- --quick` for 20 saves).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::start;
use sipc::reload::Reloader;
use sipc::sema::Options;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let saves = if std::env::args().any(|a| a == "--quick") { 20 } else { 100 };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/default.route");
    let text = std::fs::read_to_string(&src).unwrap();
    assert!(text.contains("\"Keepalive\""));
    let dir = std::env::temp_dir().join(format!("sipc-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("default.route");
    let version = |n: usize| text.replace("\"Keepalive\"", &format!("\"Keepalive {n}\""));
    std::fs::write(&path, version(0)).unwrap();

    let built = sipc::reload::build(&path, &Options::default()).unwrap();
    let mut config = sipc::cli::run::server_config_in(&built.checked, &dir).unwrap();
    for l in &mut config.listens {
        l.addr.set_port(0);
    }
    let proxy = start(config, built.program.clone()).await.unwrap();
    built.program.set_local(proxy.core.local.clone());
    let reloader = Reloader::new(&path, Options::default(), Arc::clone(&proxy.core), &built, None);
    drop(built);
    sipc::reload::watch::spawn(Arc::clone(&reloader)).unwrap();
    let px = proxy.addr(Transport::Udp).unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();

    // Baseline: check + compile alone, same file, same run.
    let mut compile: Vec<Duration> = (0..saves)
        .map(|_| {
            let t = Instant::now();
            sipc::reload::build(&path, &Options::default()).unwrap();
            t.elapsed()
        })
        .collect();
    compile.sort();

    let mut latency = Vec::with_capacity(saves);
    let mut buf = vec![0u8; 65536];
    let mut seq = 0u64;
    for n in 1..=saves {
        let want = format!("Keepalive {n}");
        let t = Instant::now();
        std::fs::write(&path, version(n)).unwrap();
        loop {
            seq += 1;
            let msg = format!(
                "OPTIONS sip:{px} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKb{seq};rport\r\n\
                 Max-Forwards: 70\r\nTo: <sip:{px}>\r\nFrom: <sip:bench@{me}>;tag=b\r\n\
                 Call-ID: reload-bench-{seq}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            sock.send_to(msg.as_bytes(), px).await.unwrap();
            let got =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await;
            if let Ok(Ok((len, _))) = got
                && String::from_utf8_lossy(&buf[..len])
                    .lines()
                    .next()
                    .is_some_and(|l| l.ends_with(&want))
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "save {n} was never served");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        latency.push(t.elapsed());
        // Let the watcher go quiet before the next save.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    latency.sort();
    let (p50, p99) = (percentile(&latency, 0.5), percentile(&latency, 0.99));
    let (c50, c99) = (percentile(&compile, 0.5), percentile(&compile, 0.99));
    println!(
        "reload latency over {saves} saves of examples/default.route (save -> first reply by the new program):"
    );
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   (target: p99 < 50 ms)",
        ms(p50),
        ms(p99),
        ms(*latency.last().unwrap())
    );
    println!("baseline, check + JIT compile alone: p50 {:.1} ms   p99 {:.1} ms", ms(c50), ms(c99));
    println!(
        "ratio latency/compile: p50 {:.1}x   p99 {:.1}x",
        ms(p50) / ms(c50),
        ms(p99) / ms(c99)
    );
    println!(
        "watch debounce: {} ms; reloads {:?} (attempted, failed)",
        sipc::reload::watch::DEBOUNCE.as_millis(),
        reloader.counts()
    );
    proxy.stop(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
