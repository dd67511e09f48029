//! Interop with SIPp (Debian package `sip-tester`): SIPp UAC -> `sipc run
//! examples/bench/…` -> SIPp UAS on loopback, and every call must succeed
//! (SIPp exits non-zero on a failed call, and an unexpected message fails
//! its call): 2,000 calls at 200 calls/s through stateless.route, 5,000 at
//! 300 calls/s through stateful.route. Uses the shared bench ports (proxy
//! 5060, UAS 5080, UAC 5070), so these are the only tests that bind them,
//! one at a time.
//!
//! Without sipp the test says so loudly; under CI (`CI=true`) it fails.
//! `SIPC_BIN` names another sipc binary to drive (CI sets it to the release
//! build, so `cargo run --release` is what serves the SIPp calls there too).

use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use std::time::{Duration, Instant};
use support::{Reaper, have_sipp};

/// The sipc binary under test: `SIPC_BIN`, or the one cargo built for the tests.
fn sipc() -> Command {
    Command::new(std::env::var_os("SIPC_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sipc").into()))
}

fn scenarios() -> std::path::PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/sipp");
    if shared.is_dir() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp")
    }
}

/// The tests share ports: one at a time.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn sipp_calls_through_the_stateless_proxy() {
    calls_through("examples/bench/stateless.route", 200, 2000);
}

#[test]
fn sipp_calls_through_the_stateful_proxy() {
    calls_through("examples/bench/stateful.route", 300, 5000);
}

fn calls_through(route: &str, rate: u32, calls: u32) {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !have_sipp() {
        let msg =
            "SIPp is not installed (apt-get install sip-tester): the SIPp interop test did NOT run";
        assert!(std::env::var("CI").is_err(), "{msg}");
        eprintln!("\n*** {msg} ***\n");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let _proxy = Reaper(
        sipc()
            .args(["run", route])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipc starts"),
    );
    let scen = scenarios();
    let _uas = Reaper(
        Command::new("sipp")
            .args(["-sf"])
            .arg(scen.join("uas.xml"))
            .args(["-i", "127.0.0.1", "-p", "5080", "-nostdin", "-aa"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    );
    wait_for_proxy();
    let status = Command::new("timeout")
        .arg("120")
        .arg("sipp")
        .arg("-sf")
        .arg(scen.join("uac.xml"))
        .args(["127.0.0.1:5060", "-i", "127.0.0.1", "-p", "5070", "-nostdin"])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string(), "-l", "2000"])
        .args(["-recv_timeout", "10000"])
        .args(["-timeout", "90", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp uac runs");
    assert!(status.success(), "{route}: SIPp reported failed calls (exit {status})");
}

/// Issue 7 (a): under SIPp load at 200 calls/s through stateful.route, the
/// config is rewritten 50 times (rename saves and in-place writes
/// alternating), each version stamping its number into a header the UAS
/// sees; no call fails, and the UAS saw the versions go by.
#[test]
fn sipp_calls_survive_fifty_reloads() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !have_sipp() {
        assert!(std::env::var("CI").is_err(), "SIPp is not installed: the reload test did NOT run");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = fresh_dir("reload");
    let original = std::fs::read_to_string(root.join("examples/bench/stateful.route")).unwrap();
    let marker = "$du = NEXT_HOP;";
    assert!(original.contains(marker));
    let version = |n: u32| {
        original.replace(marker, &format!("{marker}\n        append_hf(\"X-Gen: {n}\\r\\n\");"))
    };
    let config = dir.join("stateful.route");
    std::fs::write(&config, version(0)).unwrap();
    let _proxy = serve_in(&dir, &dir.join("ctl.sock"));
    let scen = scenarios();
    let _uas = uas_in(&dir, &["-trace_msg", "-message_file", "uas_messages.log"]);
    wait_for_proxy();
    let mut uac = Command::new("timeout")
        .arg("120")
        .arg("sipp")
        .arg("-sf")
        .arg(scen.join("uac.xml"))
        .args(["127.0.0.1:5060", "-i", "127.0.0.1", "-p", "5070", "-nostdin"])
        .args(["-r", "200", "-m", "3000", "-l", "2000", "-recv_timeout", "10000"])
        .args(["-timeout", "90", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uac runs");
    std::thread::sleep(Duration::from_millis(1000));
    for n in 1..=50u32 {
        if n % 2 == 0 {
            let tmp = dir.join("stateful.route.new");
            std::fs::write(&tmp, version(n)).unwrap();
            std::fs::rename(&tmp, &config).unwrap();
        } else {
            std::fs::write(&config, version(n)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = uac.wait().expect("sipp uac finishes");
    let log = std::fs::read_to_string(dir.join("uas_messages.log")).unwrap_or_default();
    let seen: std::collections::BTreeSet<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix("X-Gen: "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "calls failed during reloads (exit {status})");
    assert!(seen.contains(&50), "the last version served calls: saw {seen:?}");
    assert!(seen.len() >= 45, "versions seen by the UAS: {seen:?}");
}

/// A new, empty directory for one test's files.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sipc-sipp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sipc run stateful.route` in `dir`, with its control socket at `control`.
fn serve_in(dir: &Path, control: &Path) -> Reaper {
    Reaper(
        sipc()
            .args(["run", "stateful.route", "--control"])
            .arg(control)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipc starts"),
    )
}

/// The SIPp UAS on 5080 answering every call, run in `dir` with `extra` arguments.
fn uas_in(dir: &Path, extra: &[&str]) -> Reaper {
    Reaper(
        Command::new("sipp")
            .arg("-sf")
            .arg(scenarios().join("uas.xml"))
            .args(["-i", "127.0.0.1", "-p", "5080", "-nostdin", "-aa"])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    )
}

/// Waits (bounded) until the proxy on 5060 forwards an OPTIONS to the UAS
/// and the answer comes back.
fn wait_for_proxy() {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let port = probe.local_addr().unwrap().port();
        let n = started.elapsed().as_millis();
        let opt = format!(
            "OPTIONS sip:probe@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKprobe{n}\r\n\
             Max-Forwards: 70\r\nTo: <sip:probe@127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n\
             Call-ID: probe-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = probe.send_to(opt.as_bytes(), "127.0.0.1:5060");
        let mut buf = [0u8; 4096];
        if probe.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("sipc did not answer on 127.0.0.1:5060 within 20 s");
}

/// Issue 9: examples/freeswitch-cluster.route in front of three SIPp UAS on
/// 5081–5083 (they answer the OPTIONS probes with `-aa`): 600 calls with no
/// failure; then one UAS is stopped, and once the probes have marked it
/// down, 600 more calls all succeed on the other two. (The even spread is
/// asserted in tests/routing.rs.)
#[test]
fn sipp_calls_through_the_freeswitch_cluster_example() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !have_sipp() {
        assert!(
            std::env::var("CI").is_err(),
            "SIPp is not installed: the cluster test did NOT run"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("sipc-sipp-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _proxy = Reaper(
        sipc()
            .args(["run", "examples/freeswitch-cluster.route", "--no-watch", "--control"])
            .arg(dir.join("ctl.sock"))
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipc starts"),
    );
    let scen = scenarios();
    let media = |port: u16| {
        Reaper(
            Command::new("sipp")
                .arg("-sf")
                .arg(scen.join("uas.xml"))
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-nostdin",
                    "-aa",
                    "-trace_stat",
                ])
                .args(["-stf", &format!("uas_{port}.csv"), "-fd", "1"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sipp uas starts"),
        )
    };
    let (fs1, fs2, mut fs3) = (media(5081), media(5082), Some(media(5083)));
    wait_for_proxy();
    let calls = |n: u32| {
        Command::new("timeout")
            .arg("120")
            .arg("sipp")
            .arg("-sf")
            .arg(scen.join("uac.xml"))
            .args(["127.0.0.1:5060", "-i", "127.0.0.1", "-p", "5070", "-nostdin"])
            .args(["-r", "100", "-m", &n.to_string(), "-l", "1000", "-recv_timeout", "10000"])
            .args(["-timeout", "90", "-timeout_error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("sipp uac runs")
    };
    let status = calls(600);
    assert!(status.success(), "calls failed with all three media servers up (exit {status})");
    // One media server stops; the probes (every 2 s, down after 1 miss) take
    // it out of the rotation.
    drop(fs3.take());
    std::thread::sleep(Duration::from_secs(6));
    let status = calls(600);
    assert!(status.success(), "calls failed with one media server stopped (exit {status})");
    drop((fs1, fs2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 25: with `tm.max_transactions` reached, new requests get 503 and
/// memory stays bounded by the table: SIPp offers twice the calls the table
/// holds (answered calls linger 64·T1 = 32 s), the proxy's RSS is read once
/// the table is full and again after as many more calls, all refused, and
/// must not have grown beyond a few MiB; the table never holds more than
/// the limit.
#[test]
fn sipp_overload_keeps_memory_bounded() {
    const LIMIT: usize = 2_000;
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !have_sipp() {
        assert!(
            std::env::var("CI").is_err(),
            "SIPp is not installed: the overload test did NOT run"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = fresh_dir("overload");
    let original = std::fs::read_to_string(root.join("examples/bench/stateful.route")).unwrap();
    assert!(original.contains("module tm {"));
    let limited =
        original.replace("module tm {", &format!("module tm {{\n    max_transactions = {LIMIT};"));
    std::fs::write(dir.join("stateful.route"), limited).unwrap();
    let control = dir.join("ctl.sock");
    let proxy = serve_in(&dir, &control);
    let scen = scenarios();
    let _uas = uas_in(&dir, &[]);
    wait_for_proxy();
    let pid = proxy.0.id();
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS of the proxy")
    };
    let transactions = || {
        let out = sipc()
            .args(["reload", "--status", "--control"])
            .arg(&control)
            .output()
            .expect("sipc reload --status runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("transactions: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .expect("the status names the live transactions")
    };
    // Each round offers LIMIT calls (two transactions each when answered):
    // the first fills the table, the second finds it full throughout.
    let round = |name: &str| {
        let log = dir.join(format!("{name}.csv"));
        let _ = Command::new("timeout")
            .arg("120")
            .arg("sipp")
            .arg("-sf")
            .arg(scen.join("uac.xml"))
            .args(["127.0.0.1:5060", "-i", "127.0.0.1", "-p", "5070", "-nostdin"])
            .args(["-r", "400", "-m", &LIMIT.to_string(), "-l", "2000"])
            .args(["-recv_timeout", "3000", "-timeout", "60", "-timeout_error"])
            .args(["-trace_stat", "-stf"])
            .arg(&log)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("sipp uac runs");
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    let failed = |stats: &str| -> u64 {
        // The last line of SIPp's statistics; FailedCall(C) is a column.
        let mut lines = stats.lines();
        let head: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
        let last: Vec<&str> = stats.lines().last().unwrap_or("").split(';').collect();
        head.iter()
            .position(|h| *h == "FailedCall(C)")
            .and_then(|i| last.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let first = round("fill");
    let (rss_full, live_full) = (rss_kib(), transactions());
    let second = round("beyond");
    let (rss_after, live_after) = (rss_kib(), transactions());
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "table full: {live_full} transactions, RSS {rss_full} KiB, {} calls refused; \
         after {LIMIT} more: {live_after}, {rss_after} KiB, {} refused",
        failed(&first),
        failed(&second)
    );
    assert!(live_full <= LIMIT && live_after <= LIMIT, "{live_full}, {live_after} > {LIMIT}");
    assert!(live_full > LIMIT / 2, "the first round filled the table: {live_full}");
    assert!(failed(&first) > 0, "the first round went beyond the limit");
    assert!(
        failed(&second) as usize == LIMIT,
        "every call of the second round was refused: {} of {LIMIT}",
        failed(&second)
    );
    assert!(
        rss_after <= rss_full + 8 * 1024,
        "RSS grew from {rss_full} KiB to {rss_after} KiB under refused load"
    );
}
