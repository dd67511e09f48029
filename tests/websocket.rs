//! SIP over WebSocket (RFC 7118) through `sipc run`, with a Rust
//! WebSocket client (tokio-tungstenite) playing the browser the way JsSIP
//! does (`SIP/2.0/WS x.invalid` Vias, `.invalid` Contacts) and plain UDP
//! user agents on the other side: the upgrade's rules, a browser that
//! registers, is called over its own connection and calls out, in-dialog
//! requests crossing back both ways, bindings removed when the connection
//! closes, and connections that misbehave closing alone while another
//! client keeps being served. Bounded: every wait is a few seconds.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use support::{Reaper, free_udp_port, sipc_run, wait_started};

const WAIT: Duration = Duration::from_secs(3);

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proxy {
    _proc: Reaper,
    dir: PathBuf,
    udp: SocketAddr,
    ws: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sipc run` with a registrar on UDP and WS: REGISTER saved, in-dialog
/// requests loose-routed (a Contact alias gives the way back to a
/// WebSocket client), `bob` at `bob` (a UDP phone), anyone else looked
/// up. Requests and replies from WebSocket clients get their Contact
/// aliased, as Kamailio's WebRTC configs do.
fn start(name: &str, bob: SocketAddr, websocket: &str) -> Proxy {
    start_with(name, bob, websocket, "")
}

fn start_with(name: &str, bob: SocketAddr, websocket: &str, settings: &str) -> Proxy {
    let dir = std::env::temp_dir().join(format!("sipc-ws-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (udp, ws) = (free_udp_port(), free_tcp_port());
    let route = dir.join("ws.route");
    std::fs::write(
        &route,
        format!(
            r#"listen udp 127.0.0.1:{udp};
listen ws 127.0.0.1:{ws};
settings {{ dns = false; {settings} }}
module usrloc {{ db_mode = 0; }}
module websocket {{ {websocket} }}

request_route {{
    if is_method("REGISTER") {{
        save("location");
        exit;
    }}
    if has_to_tag() {{
        if loose_route() {{
            handle_ruri_alias();
            relay();
            exit;
        }}
        if is_method("ACK") {{
            if t_check_trans() {{ relay(); }}
            exit;
        }}
        reply(404, "Not here");
        exit;
    }}
    if is_method("CANCEL") {{
        if t_check_trans() {{ relay(); }}
        exit;
    }}
    if $proto == "ws" || $proto == "wss" {{
        set_contact_alias();
    }}
    if is_method("INVITE") {{
        record_route();
    }}
    if $rU == "bob" {{
        $du = "sip:{bob}";
        relay();
        exit;
    }}
    if !lookup("location") {{
        reply(404, "Not Found");
        exit;
    }}
    relay();
}}

reply_route {{
    if $proto == "ws" || $proto == "wss" {{
        set_contact_alias();
    }}
}}
"#
        ),
    )
    .unwrap();
    let control = dir.join("control.sock");
    let proc = sipc_run(&route, &["--control", control.to_str().unwrap()], None);
    wait_started(&control);
    Proxy {
        _proc: proc,
        dir,
        udp: format!("127.0.0.1:{udp}").parse().unwrap(),
        ws: format!("127.0.0.1:{ws}").parse().unwrap(),
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket connection to `addr` asking for `protocol`, from
/// `origin`.
async fn connect(
    addr: SocketAddr,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, WsError> {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    assert_eq!(resp.headers()["sec-websocket-protocol"], "sip");
    Ok(ws)
}

async fn ws_send(ws: &mut Ws, text: &str) {
    ws.send(WsMessage::text(text.to_owned())).await.unwrap();
}

/// The next SIP message on `ws` (pings skipped), or `None` when the
/// connection closed or nothing came within `WAIT`.
async fn ws_recv(ws: &mut Ws) -> Option<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(WsMessage::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(WsMessage::Binary(b)) => return Some(String::from_utf8_lossy(&b).into_owned()),
            Ok(WsMessage::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The next SIP message on `ws` that is not a provisional reply.
async fn ws_recv_final(ws: &mut Ws) -> String {
    loop {
        let m = ws_recv(ws).await.expect("a message over the WebSocket within 3 s");
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

async fn udp_recv(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a datagram within 3 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn udp_recv_final(sock: &UdpSocket) -> String {
    loop {
        let m = udp_recv(sock).await;
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

/// The values of header `name` in `msg`, in order (one per line).
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    headers(msg, name).first().copied().unwrap_or_else(|| panic!("no {name} in:\n{msg}"))
}

/// A reply to `req` as a user agent makes it: its Vias, From, To (with a
/// tag), Call-ID, CSeq and Record-Routes, and `contact`.
fn reply(req: &str, status: &str, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in headers(req, "Via") {
        out += &format!("Via: {v}\r\n");
    }
    for rr in headers(req, "Record-Route") {
        out += &format!("Record-Route: {rr}\r\n");
    }
    let to = header(req, "To");
    let to = if to.contains("tag=") { to.to_owned() } else { format!("{to};tag=callee") };
    out += &format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n",
        header(req, "From"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
    );
    out
}

/// An in-dialog request from the side that received `peer_msg` (the
/// INVITE, or the 200 for the caller): Request-URI the other side's
/// Contact, Route the Record-Routes (reversed for the caller, RFC 3261
/// §12.1.2).
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    cseq: u32,
    peer_msg: &str,
    caller: bool,
    via: &str,
    from: &str,
    to: &str,
    call_id: &str,
) -> String {
    let target = header(peer_msg, "Contact").trim_matches(['<', '>']).to_owned();
    let mut routes: Vec<&str> = headers(peer_msg, "Record-Route")
        .into_iter()
        .flat_map(|v| v.split(',').map(str::trim))
        .collect();
    if caller {
        routes.reverse();
    }
    let mut out = format!("{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n");
    for r in routes {
        out += &format!("Route: {r}\r\n");
    }
    out += &format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    );
    out
}

const ALICE_VIA: &str = "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK";
const ALICE_CONTACT: &str = "<sip:a8d2h1@df7jal23ls0d.invalid;transport=ws;ob>";

fn register(ws_addr: SocketAddr, expires: u32, n: u32) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: {ALICE_VIA}reg{n}\r\nMax-Forwards: 70\r\n\
         To: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=reg\r\n\
         Call-ID: alice-reg-{ws_addr}\r\nCSeq: {n} REGISTER\r\nContact: {ALICE_CONTACT};expires={expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn register_alice(proxy: &Proxy) -> Ws {
    let mut alice = connect(proxy.ws, Some("sip"), None).await.unwrap();
    ws_send(&mut alice, &register(proxy.ws, 600, 1)).await;
    let ok = ws_recv_final(&mut alice).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    alice
}

fn invite(to_uri: &str, via: &str, from_tag: &str, call_id: &str, contact: &str) -> String {
    format!(
        "INVITE {to_uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: <{to_uri}>\r\n\
         From: <sip:caller@example.com>;tag={from_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn the_upgrade_needs_the_sip_subprotocol_and_an_allowed_origin() {
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy =
        start("upgrade", bob.local_addr().unwrap(), r#"origins = "https://app.example.com";"#);
    let status = |r: Result<Ws, WsError>| match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => 101,
    };
    let app = Some("https://app.example.com");
    assert_eq!(status(connect(proxy.ws, None, app).await), 400, "no subprotocol");
    assert_eq!(status(connect(proxy.ws, Some("chat"), app).await), 400, "not sip");
    let evil = Some("https://evil.example.net");
    assert_eq!(status(connect(proxy.ws, Some("sip"), evil).await), 403, "origin");
    assert_eq!(status(connect(proxy.ws, Some("chat, sip"), app).await), 101);
}

#[tokio::test]
async fn a_browser_registers_is_called_over_its_connection_and_calls_out() {
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_addr = bob.local_addr().unwrap();
    let proxy = start("calls", bob_addr, "");
    let mut alice = register_alice(&proxy).await;

    // Bob calls alice: the INVITE reaches her over her own connection,
    // with a Via and a Record-Route for each side of the proxy.
    let bob_via = format!("SIP/2.0/UDP {bob_addr};branch=z9hG4bKb1;rport");
    let bob_contact = format!("<sip:bob@{bob_addr}>");
    let inv = invite("sip:alice@example.com", &bob_via, "b1", "ws-call-in", &bob_contact);
    bob.send_to(inv.as_bytes(), proxy.udp).await.unwrap();
    let got = ws_recv_final(&mut alice).await;
    assert!(got.starts_with("INVITE sip:a8d2h1@df7jal23ls0d.invalid"), "{got}");
    let top_via = header(&got, "Via");
    assert!(top_via.starts_with(&format!("SIP/2.0/WS {}", proxy.ws)), "{got}");
    let rr: Vec<&str> =
        headers(&got, "Record-Route").iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    assert_eq!(rr.len(), 2, "double Record-Route: {got}");
    assert!(rr[0].contains(&format!("{};transport=ws", proxy.ws)), "{got}");
    assert!(rr[1].contains(&proxy.udp.to_string()) && !rr[1].contains("transport="), "{got}");
    ws_send(&mut alice, &reply(&got, "180 Ringing", ALICE_CONTACT)).await;
    ws_send(&mut alice, &reply(&got, "200 OK", ALICE_CONTACT)).await;
    let ok = udp_recv_final(&bob).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(header(&ok, "Contact").contains(";alias=127.0.0.1~"), "aliased: {ok}");

    // Bob's ACK and alice's BYE cross back through the proxy.
    let to = header(&ok, "To").to_owned();
    let from = header(&inv, "From").to_owned();
    let ack =
        in_dialog("ACK", 1, &ok, true, "SIP/2.0/UDP x;branch=z9hG4bKb2", &from, &to, "ws-call-in")
            .replace("Via: SIP/2.0/UDP x", &format!("Via: SIP/2.0/UDP {bob_addr}"));
    bob.send_to(ack.as_bytes(), proxy.udp).await.unwrap();
    let got_ack = ws_recv(&mut alice).await.expect("the ACK over the WebSocket");
    assert!(got_ack.starts_with("ACK sip:a8d2h1@df7jal23ls0d.invalid"), "{got_ack}");
    let bye = in_dialog("BYE", 2, &got, false, &format!("{ALICE_VIA}a1"), &to, &from, "ws-call-in");
    ws_send(&mut alice, &bye).await;
    let got_bye = udp_recv(&bob).await;
    assert!(got_bye.starts_with(&format!("BYE sip:bob@{bob_addr}")), "{got_bye}");
    bob.send_to(reply(&got_bye, "200 OK", &bob_contact).as_bytes(), proxy.udp).await.unwrap();
    let bye_ok = ws_recv_final(&mut alice).await;
    assert!(bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"), "{bye_ok}");

    // Alice calls bob; bob's BYE finds her over her connection.
    let out = invite(
        "sip:bob@example.com",
        &format!("{ALICE_VIA}o1"),
        "a2",
        "ws-call-out",
        ALICE_CONTACT,
    );
    ws_send(&mut alice, &out).await;
    let got = udp_recv(&bob).await;
    assert!(got.starts_with("INVITE sip:bob@example.com"), "{got}");
    assert!(header(&got, "Contact").contains(";alias=127.0.0.1~"), "{got}");
    assert_eq!(headers(&got, "Record-Route").iter().flat_map(|v| v.split(',')).count(), 2, "{got}");
    bob.send_to(reply(&got, "200 OK", &bob_contact).as_bytes(), proxy.udp).await.unwrap();
    let ok = ws_recv_final(&mut alice).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let (from, to) = (header(&got, "To").to_owned(), header(&got, "From").to_owned());
    let bye = in_dialog(
        "BYE",
        1,
        &got,
        false,
        &format!("SIP/2.0/UDP {bob_addr};branch=z9hG4bKb3;rport"),
        &format!("{from};tag=callee"),
        &to,
        "ws-call-out",
    );
    bob.send_to(bye.as_bytes(), proxy.udp).await.unwrap();
    let got_bye = ws_recv(&mut alice).await.expect("bob's BYE over the WebSocket");
    assert!(got_bye.starts_with("BYE sip:a8d2h1@df7jal23ls0d.invalid"), "{got_bye}");
}

#[tokio::test]
async fn closing_the_connection_removes_its_bindings() {
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_addr = bob.local_addr().unwrap();
    let proxy = start("close", bob_addr, "");
    let mut alice = register_alice(&proxy).await;
    alice.close(None).await.unwrap();
    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let via = format!("SIP/2.0/UDP {bob_addr};branch=z9hG4bKc1;rport");
    let inv =
        invite("sip:alice@example.com", &via, "c1", "ws-gone", &format!("<sip:bob@{bob_addr}>"));
    bob.send_to(inv.as_bytes(), proxy.udp).await.unwrap();
    let answer = udp_recv_final(&bob).await;
    assert!(answer.starts_with("SIP/2.0 404"), "no binding left: {answer}");
}

/// Sends an OPTIONS to bob over `ws` and expects bob to get it: the
/// connection and the proxy still serve.
async fn still_served(ws: &mut Ws, bob: &UdpSocket, n: u32) {
    let opt = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: {ALICE_VIA}p{n}\r\nMax-Forwards: 70\r\n\
         To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=p\r\nCall-ID: ws-ping-{n}\r\n\
         CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    ws_send(ws, &opt).await;
    // Earlier pings, unanswered, may arrive again first (retransmissions).
    for _ in 0..20 {
        let got = udp_recv(bob).await;
        if got.contains(&format!("Call-ID: ws-ping-{n}")) {
            return;
        }
        assert!(got.contains("Call-ID: ws-ping-"), "{got}");
    }
    panic!("ws-ping-{n} did not reach bob");
}

/// Whether the proxy closed `tcp` (reads end) within `WAIT`.
async fn closed(tcp: &mut TcpStream) -> bool {
    closed_within(tcp, WAIT).await
}

#[tokio::test]
async fn a_misbehaving_connection_closes_alone() {
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = start("abuse", bob.local_addr().unwrap(), "");
    let mut good = register_alice(&proxy).await;
    still_served(&mut good, &bob, 1).await;

    // Garbage where the HTTP upgrade belongs.
    let mut raw = TcpStream::connect(proxy.ws).await.unwrap();
    raw.write_all(b"\x16\x03\x01\x02\x00garbage garbage\r\n\r\n").await.unwrap();
    assert!(closed(&mut raw).await, "garbage before the upgrade closes the connection");
    still_served(&mut good, &bob, 2).await;

    // A frame larger than any SIP message the proxy takes.
    let mut big = connect(proxy.ws, Some("sip"), None).await.unwrap();
    let _ = big.send(WsMessage::text("x".repeat(200_000))).await;
    assert!(ws_recv(&mut big).await.is_none(), "an oversize message closes the connection");
    still_served(&mut good, &bob, 3).await;

    // An unmasked client frame (RFC 6455 §5.1: the server must close).
    let mut tcp = TcpStream::connect(proxy.ws).await.unwrap();
    tcp.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: sip\r\n\r\n",
            proxy.ws
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp.write_all(&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']).await.unwrap();
    assert!(closed(&mut tcp).await, "an unmasked frame closes the connection");
    still_served(&mut good, &bob, 4).await;

    // An abrupt close in the middle of a frame.
    let mut cut = TcpStream::connect(proxy.ws).await.unwrap();
    cut.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n").await.unwrap();
    drop(cut);
    still_served(&mut good, &bob, 5).await;
    let _ = Path::new(&proxy.dir);
}

/// Opens a WebSocket connection to `addr` from the loopback address `from`.
async fn connect_from(addr: SocketAddr, from: &str) -> Result<Ws, WsError> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .map_err(|_| WsError::ConnectionClosed)?
        .map(|(ws, _)| ws)
}

#[tokio::test]
async fn one_source_holds_at_most_its_share_of_connections() {
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = start_with(
        "persource",
        bob.local_addr().unwrap(),
        "",
        "tcp_max_connections_per_source = 2;",
    );
    let _a = connect_from(proxy.ws, "127.0.0.1").await.expect("the first");
    let _b = connect_from(proxy.ws, "127.0.0.1").await.expect("the second");
    assert!(connect_from(proxy.ws, "127.0.0.1").await.is_err(), "a third from the same source");
    let mut other = connect_from(proxy.ws, "127.0.0.2").await.expect("another source");
    still_served(&mut other, &bob, 1).await;
    // A closed connection gives its place back.
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(proxy.ws, "127.0.0.1").await.expect("a place again");
    still_served(&mut again, &bob, 2).await;
}

/// Reads `ws` for `for_` (answering pings, as every client library does);
/// returns the pings received, or `None` if the connection closed.
async fn pings_within(ws: &mut Ws, for_: Duration) -> Option<u32> {
    let deadline = tokio::time::Instant::now() + for_;
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Some(pings),
            Ok(Some(Ok(WsMessage::Ping(_)))) => pings += 1,
            Ok(Some(Ok(WsMessage::Close(_)) | Err(_)) | None) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A raw TCP connection upgraded to a WebSocket with the `sip`
/// subprotocol, which then says nothing (and answers no ping).
async fn silent_upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: sip\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp
}

/// Whether the proxy closes `tcp` within `wait` (pings read and ignored).
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn binary_and_fragmented_messages_pings_and_silence() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = start(
        "frames",
        bob.local_addr().unwrap(),
        "keepalive_interval = 1s; keepalive_timeout = 3s;",
    );
    let mut good = register_alice(&proxy).await;

    // A SIP message in a binary frame is as good as in a text one.
    let opt = |n: u32| {
        format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: {ALICE_VIA}f{n}\r\nMax-Forwards: 70\r\n\
             To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=f\r\nCall-ID: ws-frame-{n}\r\n\
             CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // Bob answers each, so no retransmission reaches him later.
    good.send(WsMessage::binary(opt(1).into_bytes())).await.unwrap();
    let got = udp_recv(&bob).await;
    assert!(got.contains("Call-ID: ws-frame-1"), "{got}");
    bob.send_to(reply(&got, "200 OK", "<sip:bob@127.0.0.1>").as_bytes(), proxy.udp).await.unwrap();

    // One SIP message in three frames: reassembled, then routed whole.
    let text = opt(2);
    let (a, rest) = text.split_at(20);
    let (b, c) = rest.split_at(rest.len() / 2);
    good.send(WsMessage::Frame(Frame::message(
        a.as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    good.send(WsMessage::Frame(Frame::message(
        b.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    good.send(WsMessage::Frame(Frame::message(
        c.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let got = udp_recv(&bob).await;
    assert!(got.contains("Call-ID: ws-frame-2") && got.contains("CSeq: 2 OPTIONS"), "{got}");
    bob.send_to(reply(&got, "200 OK", "<sip:bob@127.0.0.1>").as_bytes(), proxy.udp).await.unwrap();
    // The answers reach alice (and nothing else is left for bob).
    for n in [1, 2] {
        let r = ws_recv(&mut good).await.expect("the 200s");
        assert!(r.starts_with("SIP/2.0 200") && r.contains(&format!("CSeq: {n} OPTIONS")), "{r}");
    }

    // Silent past keepalive_timeout: a client that answers the proxy's
    // pings stays; one that answers nothing is closed.
    let mut mute = silent_upgrade(proxy.ws).await;
    let pings = pings_within(&mut good, Duration::from_millis(4500)).await;
    assert!(pings.is_some_and(|n| n >= 2), "pings every second, answered: {pings:?}");
    assert!(closed_within(&mut mute, Duration::from_secs(2)).await, "the mute one is gone");
    still_served(&mut good, &bob, 10).await;

    // A handshake that never ends is dropped after the handshake timeout.
    let mut slow = TcpStream::connect(proxy.ws).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let keep = tokio::spawn(async move {
        // `good` answers pings meanwhile, as a live browser does.
        let _ = pings_within(&mut good, Duration::from_secs(12)).await;
        good
    });
    assert!(
        closed_within(&mut slow, Duration::from_secs(12)).await,
        "a handshake still unfinished after 10 s closes"
    );
    let mut good = keep.await.unwrap();
    still_served(&mut good, &bob, 11).await;
}
