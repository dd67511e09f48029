//! Event routes run when sipc raises their event: `core:worker-one-init`
//! once at startup (here it takes a trunk out of service), and
//! `tm:local-request` on every request sipc originates (here the trunk
//! probes: it adds a header to them, and drops those to one trunk). Driven
//! through `sipc run` on loopback.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CONFIG: &str = r#"listen udp 127.0.0.1:15460;

trunk_group probed strategy priority probe every 1s down 1 up 1 {
    trunk fs1 "sip:127.0.0.1:15481" priority 1;
    trunk fs2 "sip:127.0.0.1:15482" priority 2;
}

trunk_group fixed strategy priority {
    trunk st1 "sip:127.0.0.1:15483" priority 1;
    trunk st2 "sip:127.0.0.1:15484" priority 2;
}

event_route "core:worker-one-init" {
    trunk_set_up("st1", false);
}

event_route "tm:local-request" {
    append_hf("X-Probe: sipc\r\n");
    if $ru =~ ":15482" {
        drop;
    }
}

request_route {
    if $rU == "probed" {
        if !select(probed) {
            reply(503, "No Trunk");
            exit;
        }
    } else if !select(fixed) {
        reply(503, "No Trunk");
        exit;
    }
    relay();
}
"#;

fn bind(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// Every datagram `sock` receives within `wait`.
fn drain(sock: &UdpSocket, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

fn invite(user: &str, port: u16) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:15460 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ev-{user}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: ev-{user}@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn startup_and_local_request_event_routes_run() {
    let dir = std::env::temp_dir().join(format!("sipc-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("events.route");
    std::fs::write(&config, CONFIG).unwrap();
    let (fs1, fs2, st1, st2) = (bind(15481), bind(15482), bind(15483), bind(15484));
    let _proxy = Reaper(
        Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("run")
            .arg(&config)
            .args(["--no-watch", "--control"])
            .arg(dir.join("ctl.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Probes start with the first request that uses the trunks (or at load).
    let ua = bind(15470);
    // Probes to fs1 carry the header the event route added; those to fs2
    // were dropped by it.
    let to_fs1 = drain(&fs1, Duration::from_secs(3));
    let to_fs2 = drain(&fs2, Duration::from_millis(500));
    let probes: Vec<&String> = to_fs1.iter().filter(|m| m.starts_with("OPTIONS ")).collect();
    assert!(!probes.is_empty(), "no probe reached fs1: {to_fs1:?}");
    for p in &probes {
        assert!(p.contains("\r\nX-Probe: sipc\r\n"), "{p}");
    }
    assert!(to_fs2.iter().all(|m| !m.starts_with("OPTIONS ")), "{to_fs2:?}");

    // The startup route took st1 out of service: calls go to st2.
    ua.send_to(invite("bob", 15470).as_bytes(), "127.0.0.1:15460").unwrap();
    let at_st2 = drain(&st2, Duration::from_secs(2));
    assert!(at_st2.iter().any(|m| m.starts_with("INVITE sip:bob@")), "{at_st2:?}");
    let at_st1 = drain(&st1, Duration::from_millis(300));
    assert!(at_st1.is_empty(), "{at_st1:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
