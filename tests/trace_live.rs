//! `sipc trace` against a live `sipc run`: SIPp calls go through the proxy
//! while a trace follows the INVITEs (by a condition) or one message (by
//! Call-ID); the traces show the statements run, the values read and the
//! decision; messages that do not match are routed as usual; a condition
//! that does not check or could change routing is refused; the proxy keeps
//! serving after a trace ends.
//!
//! Needs SIPp (Debian `sip-tester`): without it the test says so loudly;
//! under CI (`CI=true`) it fails.

mod support;

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::have_sipp;

/// Kills and reaps a child process when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PROXY: &str = "127.0.0.1:15360";
const UAS_PORT: &str = "15380";

const CONFIG: &str = r#"listen udp 127.0.0.1:15360;

request_route {
    if $rU == "blocked" {
        reply(403, "Forbidden");
        exit;
    }
    if has_to_tag() {
        if loose_route() {
            relay();
        }
        exit;
    }
    if is_method("INVITE") {
        record_route();
    }
    $du = "sip:127.0.0.1:15380";
    relay();
}
"#;

fn sipc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipc"));
    c.env("NO_COLOR", "1");
    c
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `text` from `sock` to the proxy and waits (bounded) for a reply.
fn ask(sock: &UdpSocket, text: &str) -> Option<String> {
    sock.send_to(text.as_bytes(), PROXY).unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !reply.starts_with("SIP/2.0 100") {
                return Some(reply);
            }
        }
    }
    None
}

fn message(sock: &UdpSocket, user: &str, call_id: &str) -> String {
    let port = sock.local_addr().unwrap().port();
    format!(
        "MESSAGE sip:{user}@127.0.0.1:15360 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Starts `sipc trace` with `args`; returns it once the proxy has accepted
/// the trace (its "tracing" line), or its stderr if it refused.
fn start_trace(control: &Path, args: &[&str]) -> Result<Child, String> {
    let mut child = sipc()
        .arg("trace")
        .arg("--control")
        .arg(control)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded: the child exits (EOF) on refusal, prints a line on success.
    while !seen.ends_with(b"\n") && err.read(&mut byte).unwrap_or(0) == 1 {
        seen.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&seen).into_owned();
    if line.starts_with("tracing") {
        Ok(child)
    } else {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        let _ = child.wait();
        Err(format!("{line}{rest}"))
    }
}

/// Waits (bounded) for a child to exit, killing it after `limit`.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let status = loop {
        match child.try_wait().unwrap() {
            Some(s) => break s.code(),
            None if started.elapsed() > limit => {
                let _ = child.kill();
                break child.wait().ok().and_then(|s| s.code());
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    (status, out)
}

#[test]
fn trace_a_live_proxy_under_sipp_traffic() {
    if !have_sipp() {
        let msg = "SIPp is not installed (apt-get install sip-tester): the trace test did NOT run";
        assert!(std::env::var("CI").is_err(), "{msg}");
        eprintln!("\n*** {msg} ***\n");
        return;
    }
    let dir = Dir(std::env::temp_dir().join(format!("sipc-trace-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = dir.0.join("traced.route");
    std::fs::write(&config, CONFIG).unwrap();
    let control = dir.0.join("ctl.sock");
    let _proxy = Reaper(
        sipc()
            .arg("run")
            .arg(&config)
            .arg("--control")
            .arg(&control)
            .args(["--no-watch", "-n", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _uas = Reaper(
        Command::new("sipp")
            // In the foreground (no `-bg`, which would detach it from the
            // reaper and leave it running after the test).
            .args(["-sn", "uas", "-i", "127.0.0.1", "-p", UAS_PORT, "-nostdin"])
            .current_dir(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    while ask(&ua, &message(&ua, "blocked", "probe")).is_none() || !control.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the proxy did not start");
    }

    // 1. Trace the INVITEs while SIPp places calls.
    let trace = start_trace(&control, &["--where", "is_method(\"INVITE\")", "--count", "3"])
        .expect("the trace starts");
    let uac = Command::new("timeout")
        .args(["60", "sipp", "-sn", "uac", PROXY, "-i", "127.0.0.1", "-p", "15370"])
        .args(["-m", "6", "-r", "10", "-nostdin", "-timeout", "50", "-timeout_error"])
        .current_dir(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    // Every call, traced or not, went through: non-matching messages (the
    // ACKs, BYEs, replies) were routed by the serving program.
    assert!(uac.success(), "SIPp calls failed while tracing: {uac:?}");
    let (code, out) = finish(trace, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("\n=> ").count() + usize::from(out.starts_with("=> ")), 3, "{out}");
    assert_eq!(out.matches("=== request: INVITE sip:service@127.0.0.1:15360 SIP/2.0").count(), 3);
    for line in [
        "traced.route:4  if $rU == \"blocked\" {      [$rU = \"service\"; -> false]",
        "traced.route:8  if has_to_tag() {      [-> false]",
        "traced.route:15  record_route();",
        "traced.route:17  $du = \"sip:127.0.0.1:15380\";      [<- \"sip:127.0.0.1:15380\"]",
        "traced.route:18  relay();      [-> true]",
        "=> relay",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    assert!(!out.contains("=== request: ACK") && !out.contains("=== request: BYE"), "{out}");

    // 2. One Call-ID: other messages are not traced.
    let trace = start_trace(&control, &["--call-id", "trace-me", "--count", "1"]).unwrap();
    let reply = ask(&ua, &message(&ua, "blocked", "not-me")).unwrap();
    assert!(reply.starts_with("SIP/2.0 403 Forbidden"), "{reply}");
    let reply = ask(&ua, &message(&ua, "blocked", "trace-me")).unwrap();
    assert!(reply.starts_with("SIP/2.0 403 Forbidden"), "{reply}");
    let (code, out) = finish(trace, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(Call-ID trace-me)"), "{out}");
    assert!(!out.contains("not-me"), "{out}");
    assert!(
        out.contains("traced.route:4  if $rU == \"blocked\" {      [$rU = \"blocked\"; -> true]")
    );
    assert!(out.contains("traced.route:5  reply(403, \"Forbidden\");"), "{out}");
    assert!(out.contains("-> exit\n=> reply 403 Forbidden\n"), "{out}");

    // 3. Conditions that do not check, or that could change routing, are refused.
    let err = start_trace(&control, &["--where", "$fU == "]).unwrap_err();
    assert!(err.contains("does not check"), "{err}");
    let err = start_trace(&control, &["--where", "relay()"]).unwrap_err();
    assert!(err.contains("may only read") && err.contains("`relay()`"), "{err}");

    // 4. After the traces the proxy routes as before, and traces again.
    let reply = ask(&ua, &message(&ua, "blocked", "after")).unwrap();
    assert!(reply.starts_with("SIP/2.0 403 Forbidden"), "{reply}");
    let trace = start_trace(&control, &["--call-id", "again", "--count", "1"]).unwrap();
    ask(&ua, &message(&ua, "blocked", "again")).unwrap();
    let (code, out) = finish(trace, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(out.contains("(Call-ID again)"), "{out}");
}

#[test]
fn no_proxy_exits_2() {
    let out = sipc()
        .args(["trace", "--control", "/nonexistent/sipc.sock", "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sipc answers"));
}
