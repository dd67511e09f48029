//! NAT keepalives through `sipc run` on loopback: two UAs register with a
//! private address in their Via and Contact (so their bindings are NATed);
//! the proxy pings both with OPTIONS from its listening address, each ping
//! carrying the header `event_route "tm:local-request"` adds. One UA
//! answers and stays registered; the other never answers and its binding
//! is removed after `max_failures` pings in a row (a call to it then gets
//! 404). `sipc reload --status` shows the counters. With `ping_method =
//! "crlf"`: a UDP binding gets CRLFCRLF datagrams and is never removed
//! (nothing answers them), a TCP binding gets RFC 5626 CRLFCRLF on its
//! connection and is removed once that connection is gone. Bounded: about
//! 5 s each.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipc::sip::Message;
use support::{free_udp_port, request, response_to, sipc_run, sipc_status};

const ROUTES: &str = r#"
listen udp 127.0.0.1:PORT;
module usrloc {
    db_mode = 0;
}
module nathelper {
    natping_interval = 1s;
    max_failures = 2;
    sipping_from = "sip:pinger@example.com";
}

event_route "tm:local-request" {
    append_hf("X-Keepalive: natping\r\n");
}

request_route {
    if is_method("REGISTER") {
        if !save("location") {
            reply_error();
        }
        exit;
    }
    if !lookup("location") {
        reply(404, "Not Found");
        exit;
    }
    relay();
}
"#;

fn ua() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// The next SIP message within the read timeout (keepalive datagrams skipped).
fn recv(sock: &UdpSocket) -> Option<(Message, SocketAddr)> {
    let mut buf = [0u8; 8192];
    let (mut n, mut from) = sock.recv_from(&mut buf).ok()?;
    while buf[..n].iter().all(u8::is_ascii_whitespace) {
        (n, from) = sock.recv_from(&mut buf).ok()?;
    }
    Some((Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("valid SIP"), from))
}

/// A REGISTER whose Via and Contact name a private address behind NAT.
fn register(user: &str, private: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {private};branch=z9hG4bK-reg-{user};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=r\r\n\
         Call-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{private}>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `text` from `sock` until a response with `call_id` comes back
/// (the proxy may still be starting); returns it. Answers pings meanwhile.
fn transact(sock: &UdpSocket, px: SocketAddr, text: &str, call_id: &str) -> Message {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sock.send_to(text.as_bytes(), px).unwrap();
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            if let Some((m, from)) = recv(sock) {
                if m.call_id().ok().flatten() == Some(call_id) && m.status().is_some() {
                    return m;
                }
                if m.method_str() == Some("OPTIONS") {
                    sock.send_to(response_to(&m, 200, "OK").as_bytes(), from).unwrap();
                }
            }
        }
        assert!(Instant::now() < deadline, "no answer to {call_id}");
    }
}

#[test]
fn nated_bindings_are_pinged_and_silent_ones_removed() {
    let dir = std::env::temp_dir().join(format!("sipc-natping-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let px: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let file = dir.join("natping.route");
    std::fs::write(&file, ROUTES.replace("PORT", &port.to_string())).unwrap();
    let control = dir.join("ctl.sock");
    let _proxy = sipc_run(
        &file,
        &["--no-watch", "--control", control.to_str().unwrap()],
        Some(&dir.join("stderr.log")),
    );
    let (alice, bob) = (ua(), ua());
    let ok = transact(&alice, px, &register("alice", "192.168.1.10:5060"), "reg-alice");
    assert_eq!(ok.status(), Some(200));
    let ok = transact(&bob, px, &register("bob", "192.168.1.11:5060"), "reg-bob");
    assert_eq!(ok.status(), Some(200));

    // Alice answers every ping; bob never does. Bob's binding goes after
    // two unanswered pings: within about two intervals and a half.
    let (mut alice_pings, mut bob_pings) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut next_status = Instant::now();
    let mut removed = false;
    while !removed {
        assert!(
            Instant::now() < deadline,
            "bob's binding was not removed: {}",
            sipc_status(&control)
        );
        while let Some((m, from)) = recv(&alice) {
            assert_eq!(m.method_str(), Some("OPTIONS"), "alice gets pings only");
            assert_eq!(from, px, "pings leave from the proxy's listening socket");
            assert_eq!(m.request_uri_str(), Some("sip:alice@192.168.1.10:5060"));
            assert_eq!(hdr(&m, "X-Keepalive"), Some("natping"), "the event route ran");
            assert!(hdr(&m, "From").unwrap().contains("sip:pinger@example.com"));
            let branch = m.via().unwrap().unwrap().branch().unwrap().to_owned();
            assert!(branch.starts_with("z9hG4bK-sipc-natping-"), "{branch}");
            alice.send_to(response_to(&m, 200, "OK").as_bytes(), from).unwrap();
            alice_pings += 1;
        }
        while let Some((m, from)) = recv(&bob) {
            assert_eq!((m.method_str(), from), (Some("OPTIONS"), px));
            bob_pings += 1;
        }
        if Instant::now() >= next_status {
            next_status = Instant::now() + Duration::from_millis(250);
            removed = sipc_status(&control).contains("bindings removed 1");
        }
    }
    assert!(bob_pings >= 2, "bob was pinged {bob_pings} times before removal");
    assert!(alice_pings >= 2, "alice was pinged {alice_pings} times");

    // A call to bob finds no binding; alice still has hers.
    let invite = request("INVITE", "sip:bob@example.com", &via(&alice, "c1"), "call-bob", "");
    assert_eq!(transact(&alice, px, &invite, "call-bob").status(), Some(404));
    let msg = request("MESSAGE", "sip:alice@example.com", &via(&bob, "m1"), "msg-alice", "");
    bob.send_to(msg.as_bytes(), px).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        assert!(Instant::now() < deadline, "the MESSAGE did not reach alice");
        if let Some((m, from)) = recv(&alice) {
            if m.method_str() == Some("MESSAGE") {
                assert_eq!(m.request_uri_str(), Some("sip:alice@192.168.1.10:5060"));
                break;
            }
            if m.method_str() == Some("OPTIONS") {
                alice.send_to(response_to(&m, 200, "OK").as_bytes(), from).unwrap();
            }
        }
    }

    let s = sipc_status(&control);
    let line = s.lines().find(|l| l.starts_with("nat pings:")).expect("counters in the status");
    let count = |what: &str| -> u64 {
        let at = line.find(what).unwrap_or_else(|| panic!("{what} in {line}")) + what.len();
        line[at..].trim_start().split([',', ' ']).next().unwrap().parse().unwrap()
    };
    assert!(count("sent") >= 4, "{line}");
    assert!(count("replies") >= 2, "{line}");
    assert!(count("failed") >= 2, "{line}");
    assert_eq!(count("bindings removed"), 1, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

const CRLF_ROUTES: &str = r#"
listen udp 127.0.0.1:PORT;
listen tcp 127.0.0.1:TPORT;
module usrloc {
    db_mode = 0;
}
module nathelper {
    natping_interval = 1s;
    ping_method = "crlf";
    max_failures = 2;
}

request_route {
    if is_method("REGISTER") {
        if !save("location") {
            reply_error();
        }
        exit;
    }
    if !lookup("location") {
        reply(404, "Not Found");
        exit;
    }
    relay();
}
"#;

#[test]
fn crlf_keepalives_over_udp_and_on_tcp_connections() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("sipc-natping-crlf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let tport = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let px: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tpx: SocketAddr = format!("127.0.0.1:{tport}").parse().unwrap();
    let file = dir.join("crlf.route");
    let routes =
        CRLF_ROUTES.replace("TPORT", &tport.to_string()).replace("PORT", &port.to_string());
    std::fs::write(&file, routes).unwrap();
    let control = dir.join("ctl.sock");
    let _proxy = sipc_run(
        &file,
        &["--no-watch", "--control", control.to_str().unwrap()],
        Some(&dir.join("stderr.log")),
    );
    let dave = ua();
    let ok = transact(&dave, px, &register("dave", "192.168.1.13:5060"), "reg-dave");
    assert_eq!(ok.status(), Some(200));

    // Carol registers over TCP from behind NAT.
    let mut carol = std::net::TcpStream::connect(tpx).unwrap();
    carol.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let reg = register("carol", "192.168.1.12:5060")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("5060>", "5060;transport=tcp>");
    carol.write_all(reg.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    // The 200 OK (no body), then at least two keepalives on the same connection.
    let keepalives = |got: &[u8]| {
        let end = got.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let rest = &got[end..];
        assert!(rest.iter().all(|b| b"\r\n".contains(b)), "{:?}", String::from_utf8_lossy(rest));
        Some(rest.len() / 4)
    };
    while !(got.starts_with(b"SIP/2.0 200") && keepalives(&got).is_some_and(|n| n >= 2)) {
        assert!(Instant::now() < deadline, "carol got {:?}", String::from_utf8_lossy(&got));
        if let Ok(n) = carol.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    // Dave gets CRLFCRLF datagrams from the proxy's listening socket.
    let mut dgram = [0u8; 64];
    let mut crlf = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while crlf < 2 {
        assert!(Instant::now() < deadline, "dave got {crlf} keepalives");
        if let Ok((n, from)) = dave.recv_from(&mut dgram) {
            assert_eq!((&dgram[..n], from), (&b"\r\n\r\n"[..], px));
            crlf += 1;
        }
    }

    // Carol's connection goes away: her pings fail and her binding goes.
    drop(carol);
    let deadline = Instant::now() + Duration::from_secs(6);
    while !sipc_status(&control).contains("bindings removed 1") {
        assert!(Instant::now() < deadline, "carol was not removed: {}", sipc_status(&control));
        std::thread::sleep(Duration::from_millis(200));
    }
    let invite = request("INVITE", "sip:carol@example.com", &via(&dave, "c1"), "call-carol", "");
    assert_eq!(transact(&dave, px, &invite, "call-carol").status(), Some(404));
    // Dave, who never answered anything, is still there.
    let msg = request("MESSAGE", "sip:dave@example.com", &via(&dave, "m1"), "msg-dave", "");
    dave.send_to(msg.as_bytes(), px).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 8192];
    loop {
        assert!(Instant::now() < deadline, "the MESSAGE did not reach dave");
        if let Ok((n, _)) = dave.recv_from(&mut buf)
            && buf[..n].starts_with(b"MESSAGE ")
        {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn via(sock: &UdpSocket, branch: &str) -> String {
    format!("SIP/2.0/UDP {};branch=z9hG4bK{branch};rport", sock.local_addr().unwrap())
}

fn hdr<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers_named(name).next().map(|h| m.value_of(h))
}
