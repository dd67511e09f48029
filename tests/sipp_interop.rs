//! Interop with SIPp (Debian package `sip-tester`): SIPp UAC -> `sipc run
//! examples/bench/…` -> SIPp UAS on loopback, and every call must succeed
//! (SIPp exits non-zero on a failed call, and an unexpected message fails
//! its call): 2,000 calls at 200 calls/s through stateless.route, 5,000 at
//! 300 calls/s through stateful.route. Uses the shared bench ports (proxy
//! 5060, UAS 5080, UAC 5070), so these are the only tests that bind them,
//! one at a time.
//!
//! Without sipp the test says so loudly; under CI (`CI=true`) it fails.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child process when dropped, so a failing assertion cleans up.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_sipp() -> bool {
    Command::new("sipp").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
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
        Command::new(env!("CARGO_BIN_EXE_sipc"))
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
    // Wait (bounded) until the proxy answers on 5060: an OPTIONS is
    // forwarded to the UAS, which answers it (-aa), and the 200 comes back.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(20) && !up {
        let port = probe.local_addr().unwrap().port();
        let opt = format!(
            "OPTIONS sip:probe@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKprobe{}\r\n\
             Max-Forwards: 70\r\nTo: <sip:probe@127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n\
             Call-ID: probe-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            started.elapsed().as_millis(),
            started.elapsed().as_millis()
        );
        let _ = probe.send_to(opt.as_bytes(), "127.0.0.1:5060");
        let mut buf = [0u8; 4096];
        up = probe.recv_from(&mut buf).is_ok();
    }
    assert!(up, "sipc did not answer on 127.0.0.1:5060 within 20 s");
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
