//! Bans outlive a restart: a source banned by the route stays banned when
//! `sipc run` is stopped (SIGTERM) and started again, its datagrams going
//! unanswered while another source is served; the ban table is saved in
//! the config's SQLite file (`sipc.db` beside it). Bounded: about 5 s.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use support::{Reaper, free_udp_port, sipc_run, sipc_status, terminate, wait_started};

const ROUTES: &str = r#"
listen udp 127.0.0.1:PORT;

request_route {
    if $rU == "ban-me" {
        ban($si, 1h);
        reply(403, "Banned");
        exit;
    }
    if is_method("OPTIONS") {
        reply(200, "OK");
        exit;
    }
    drop;
}
"#;

/// The status code of the reply to an OPTIONS for `user` from `from`, or
/// `None` when none comes within 500 ms.
fn options(from: &str, proxy: SocketAddr, user: &str, n: u32) -> Option<u16> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{user}@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ban-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p{n}\r\nTo: <sip:{user}@{proxy}>\r\n\
         Call-ID: ban-{n}-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        std::process::id()
    );
    s.send_to(msg.as_bytes(), proxy).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = s.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    text.split(' ').nth(1)?.parse().ok()
}

fn start(file: &std::path::Path, control: &std::path::Path) -> Reaper {
    let proxy = sipc_run(file, &["--control", control.to_str().unwrap()], None);
    wait_started(control);
    proxy
}

#[test]
fn a_ban_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("sipc-bans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let file = dir.join("bans.route");
    std::fs::write(&file, ROUTES.replace("PORT", &port.to_string())).unwrap();
    let control = dir.join("control.sock");
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut proxy = start(&file, &control);
    assert_eq!(options("127.0.0.2", proxy_addr, "alice", 1), Some(200));
    assert_eq!(options("127.0.0.2", proxy_addr, "ban-me", 2), Some(403));
    assert_eq!(options("127.0.0.2", proxy_addr, "alice", 3), None, "banned");
    terminate(&mut proxy);
    assert!(dir.join("sipc.db").exists(), "the bans were saved");

    let _proxy = start(&file, &control);
    assert!(sipc_status(&control).contains("bans: 1 now"), "{}", sipc_status(&control));
    assert_eq!(
        options("127.0.0.2", proxy_addr, "alice", 4),
        None,
        "still banned after the restart"
    );
    assert_eq!(options("127.0.0.3", proxy_addr, "alice", 5), Some(200), "others are served");
    let _ = std::fs::remove_dir_all(&dir);
}
