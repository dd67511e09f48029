//! Compiled route programs serving real SIP over loopback: the proxy core
//! with a JIT-compiled `Program` as its router, driven by test UAs; and the
//! `sipc run` command line.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::ServerHandle;
use support::*;

/// Checks and compiles `src`, then serves it on UDP 127.0.0.1 with an
/// ephemeral port (the `listen` items of the source are rebound to port 0).
async fn serve(src: &str) -> ServerHandle {
    serve_source("test.route", src, |_, _| {}).await
}

fn example_with_next_hop(port: u16) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench/stateless.route");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("127.0.0.1:5080"));
    text.replace("127.0.0.1:5080", &format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_example_forwards_and_routes_responses_back() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let p = serve(&example_with_next_hop(uas.addr.port())).await;
    let px = p.addr(Transport::Udp).unwrap();

    uac.send(px, &request("INVITE", "sip:bob@example.com", &uac.via("s1"), "run-1", "")).await;
    let (req, from) = uas.recv().await.expect("the UAS got the INVITE");
    assert_eq!(from, px);
    assert_eq!(req.request_uri_str(), Some("sip:bob@example.com"));
    assert_eq!(req.vias().count(), 2);
    assert_eq!(req.max_forwards().unwrap(), Some(69));

    uas.send(from, &response_to(&req, 200, "OK")).await;
    let (resp, _) = uac.recv().await.expect("the UAC got the 200");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().count(), 1);
    p.stop(Duration::from_secs(1)).await;
}

const SCENARIO: &str = r#"
listen udp 127.0.0.1:5060;
const NEXT_HOP = "sip:127.0.0.1:UAS_PORT";
request_route {
    if !maxfwd_ok(10) {
        reply(483, "Too Many Hops");
        exit;
    }
    if is_method("OPTIONS") {
        reply(404, "Not Found $rU");
        exit;
    }
    if $ua =~ "scanner" {
        drop;
    }
    if $rU == "rewrite" {
        $ru = "sip:carol@example.net";
        record_route();
    }
    $du = NEXT_HOP;
    forward();
    exit;
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_drops_and_request_uri_rewrites() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let p = serve(&SCENARIO.replace("UAS_PORT", &uas.addr.port().to_string())).await;
    let px = p.addr(Transport::Udp).unwrap();

    // reply(404, …) is answered to the UAC; nothing reaches the UAS.
    uac.send(px, &request("OPTIONS", "sip:nobody@example.com", &uac.via("o1"), "run-o", "")).await;
    let (resp, _) = uac.recv().await.expect("the UAC got the 404");
    assert_eq!((resp.status(), resp.reason()), (Some(404), Some("Not Found nobody")));

    // drop: no answer, nothing forwarded.
    let scan = request(
        "INVITE",
        "sip:bob@example.com",
        &uac.via("d1"),
        "run-d",
        "User-Agent: friendly-scanner\r\n",
    );
    uac.send(px, &scan).await;
    assert!(uac.recv_within(Duration::from_millis(300)).await.is_none());
    assert!(uas.recv_within(Duration::from_millis(300)).await.is_none());

    // $ru rewrite (and record_route) are visible at the UAS.
    uac.send(px, &request("INVITE", "sip:rewrite@example.com", &uac.via("r1"), "run-r", "")).await;
    let (req, _) = uas.recv().await.expect("the UAS got the rewritten INVITE");
    assert_eq!(req.request_uri_str(), Some("sip:carol@example.net"));
    assert_eq!(req.headers_named("Record-Route").count(), 1);
    assert_eq!(p.core.stats.dropped_by_route.load(std::sync::atomic::Ordering::Relaxed), 1);
    p.stop(Duration::from_secs(1)).await;
}

/// Runs the binary with a bounded wait; kills it when the bound passes.
fn run_sipc(args: &[&str], bound: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.and_then(|s| s.code()), err)
}

#[test]
fn sipc_run_on_a_broken_config_exits_1_with_the_diagnostic() {
    let dir = std::env::temp_dir().join(format!("sipc-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.route");
    std::fs::write(
        &file,
        "listen udp 127.0.0.1:5060;\nrequest_route {\n    reply(\"404\", \"x\");\n}\n",
    )
    .unwrap();
    let (code, err) = run_sipc(&["run", file.to_str().unwrap()], Duration::from_secs(20));
    let (check_code, check_err) =
        run_sipc(&["check", file.to_str().unwrap()], Duration::from_secs(20));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(check_code, Some(1));
    assert!(err.contains("E0301"), "{err}");
    assert_eq!(err, check_err, "run prints the diagnostics exactly as check does");
}

#[test]
fn sipc_run_check_only_compiles_the_examples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["default.route", "bench/stateless.route", "bench/stateful.route"] {
        let path = dir.join(name);
        let (code, err) =
            run_sipc(&["run", "--check-only", path.to_str().unwrap()], Duration::from_secs(20));
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(!err.contains("not available yet"), "{name}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn sipc_run_serves_until_sigterm() {
    let dir = std::env::temp_dir().join(format!("sipc-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("serve.route");
    // An ephemeral-ish fixed port on loopback; only binding is exercised.
    let port = 20000 + (std::process::id() % 20000) as u16;
    std::fs::write(
        &file,
        format!("listen udp 127.0.0.1:{port};\nrequest_route {{ reply(200, \"ok\"); }}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["run", "-v", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ask it something until it answers (bounded), then SIGTERM it.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let me = sock.local_addr().unwrap();
    let msg = request(
        "OPTIONS",
        "sip:x@example.com",
        &format!("SIP/2.0/UDP {me};branch=z9hG4bKsrv"),
        "srv-1",
        "",
    );
    let mut answered = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) && !answered {
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            answered = String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 ok");
        }
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(answered, "sipc run answered the OPTIONS");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_example_knows_itself_after_binding() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/default.route");
    let p = serve(&std::fs::read_to_string(path).unwrap()).await;
    let px = p.addr(Transport::Udp).unwrap();
    let uac = UdpUa::bind().await;

    // OPTIONS to the proxy itself (its real, ephemeral port): keepalive.
    let ruri = format!("sip:{px}");
    uac.send(px, &request("OPTIONS", &ruri, &uac.via("k1"), "def-k", "")).await;
    let (resp, _) = uac.recv().await.expect("keepalive answered");
    assert_eq!((resp.status(), resp.reason()), (Some(200), Some("Keepalive")));

    // A foreign domain: not an open relay.
    uac.send(px, &request("INVITE", "sip:bob@example.org", &uac.via("f1"), "def-f", "")).await;
    let (resp, _) = uac.recv().await.expect("403 answered");
    assert_eq!((resp.status(), resp.reason()), (Some(403), Some("Not relaying")));

    // A local user without a registrar yet: 404.
    let local = format!("sip:bob@sip.example.com:{}", px.port());
    uac.send(px, &request("INVITE", &local, &uac.via("l1"), "def-l", "")).await;
    let (resp, _) = uac.recv().await.expect("404 answered");
    assert_eq!((resp.status(), resp.reason()), (Some(404), Some("Not Found")));
    p.stop(Duration::from_secs(1)).await;
}
