//! One proxy per address: a second `sipc run` of a config whose UDP address
//! is served already (its sockets could join the first one's
//! `SO_REUSEPORT` group and split the traffic between two proxies) refuses
//! to start, naming the address and the process holding it; so does one
//! whose control socket another proxy answers on. The first keeps serving.
//! Bounded: a few seconds.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Reaper, free_udp_port, sipc_run, sipc_status, wait_started};

fn route(port: u16) -> String {
    format!("listen udp 127.0.0.1:{port};\nrequest_route {{\n    reply(200, \"first\");\n}}\n")
}

fn answered(proxy: SocketAddr) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-one\r\nMax-Forwards: 70\r\n\
         From: <sip:t@{me}>;tag=1\r\nTo: <sip:{proxy}>\r\nCall-ID: one-{}\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        std::process::id()
    );
    s.send_to(msg.as_bytes(), proxy).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned())
}

/// Runs a second `sipc run` to its end (bounded): exit code and stderr.
fn second(file: &std::path::Path, control: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .arg("run")
        .arg(file)
        .arg("--control")
        .arg(control)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second proxy started and kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_proxy_on_a_served_address_or_control_socket_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("sipc-one-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let file = dir.join("one.route");
    std::fs::write(&file, route(port)).unwrap();
    let control = dir.join("control.sock");
    let first: Reaper = sipc_run(&file, &["--control", control.to_str().unwrap()], None);
    wait_started(&control);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(answered(proxy).as_deref(), Some("SIP/2.0 200 first"));

    // The same address, another control socket.
    let (code, err) = second(&file, &dir.join("other.sock"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("udp 127.0.0.1:{port} is already served")), "{err}");
    assert!(err.contains(&format!("process {}", first.0.id())), "names the holder: {err}");

    // Another address, the same control socket.
    let other = dir.join("two.route");
    std::fs::write(&other, route(free_udp_port())).unwrap();
    let (code, err) = second(&other, &control);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already running"), "{err}");

    // The first is untouched: all its datagrams still reach it.
    for _ in 0..5 {
        assert_eq!(answered(proxy).as_deref(), Some("SIP/2.0 200 first"));
    }
    assert!(sipc_status(&control).contains("generation"));
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}
