//! The builtins Kamailio's default kamailio.cfg needs, end to end: a
//! compiled route program served on loopback and driven by test user
//! agents, one behaviour per test (`force_rport`, `t_newtran`,
//! `set_reply_no_connect`, `t_is_set`, `$T_branch_idx`,
//! `add_path_received`).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::ServerHandle;
use sipc::sip::Message;
use support::*;
use tokio::io::AsyncWriteExt;

/// The routes under test, steered by the Request-URI user. `UAS1` and
/// `UAS2` are filled in.
const ROUTES: &str = r#"
listen udp 127.0.0.1:5060;
listen tcp 127.0.0.1:5060;

module tm {
    t1 = 50ms;          # 64·T1 = 3.2 s for the clean-up timers
    t4 = 200ms;
    fr_timer = 1s;
    fr_inv_timer = 2s;
}

request_route {
    if is_method("REGISTER") {
        add_path_received();
        $du = "sip:UAS1";
        relay();
        exit;
    }
    if has_to_tag() {
        if loose_route() {
            relay();
        }
        exit;
    }
    if $rU != "norport" {
        force_rport();
    }
    switch $rU {
        case "stateless":
            $du = "sip:UAS1";
            forward();
            exit;
        case "newtran":
            t_newtran();
            reply(404, "Not Here");
            exit;
        case "plain":
            reply(404, "Not Here");
            exit;
        case "noconnect":
            set_reply_no_connect();
        case "isset":
            on_failure(again);
            if t_is_set("failure_route") {
                append_hf("X-Failure-Set: yes\r\n");
            }
            if !t_is_set("branch_route") {
                append_hf("X-Branch-Set: no\r\n");
            }
        case "fork":
            append_branch("sip:fork2@UAS2");
            on_branch(number);
            on_reply(seen);
            on_failure(winner);
    }
    $du = "sip:UAS1";
    relay();
}

failure_route again {
    if !t_is_set("failure_route") {
        append_hf("X-In-Failure: disarmed\r\n");
    }
    $du = "sip:UAS2";
    relay();
}

branch_route number {
    append_hf("X-Branch-Idx: $T_branch_idx\r\n");
}

onreply_route seen {
    if $rs == 180 {
        append_hf("X-Reply-Branch: $T_branch_idx\r\n");
    }
}

failure_route winner {
    reply(480, "Winner " + to_str($T_branch_idx));
}
"#;

struct Bed {
    proxy: ServerHandle,
    px: SocketAddr,
    uac: UdpUa,
    uas1: UdpUa,
    uas2: UdpUa,
}

async fn bed() -> Bed {
    let (uac, uas1, uas2) = (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let src =
        ROUTES.replace("UAS1", &uas1.addr.to_string()).replace("UAS2", &uas2.addr.to_string());
    let proxy = serve_source("builtins.route", &src, |_, c| c.workers = 2).await;
    let px = proxy.addr(Transport::Udp).unwrap();
    Bed { proxy, px, uac, uas1, uas2 }
}

impl Bed {
    /// Every transaction ends (within 64·T1 plus slack), then the proxy stops.
    async fn finish(self) {
        let deadline = Instant::now() + Duration::from_secs(8);
        while self.proxy.core.transactions() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} transactions left",
                self.proxy.core.transactions()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.proxy.stop(Duration::from_secs(1)).await;
    }
}

/// The next message `ua` receives that `want` accepts (others in between
/// are skipped); panics after a few seconds.
async fn expect(ua: &UdpUa, what: &str, want: impl Fn(&Message) -> bool) -> (Message, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ua.recv_within(left).await {
            Some((m, from)) if want(&m) => return (m, from),
            Some(_) => continue,
            None => panic!("{what}: nothing arrived"),
        }
    }
}

/// Nothing matching `want` arrives within `wait`.
async fn quiet(ua: &UdpUa, wait: Duration, want: impl Fn(&Message) -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match ua.recv_within(left).await {
            Some((m, _)) if want(&m) => return false,
            Some(_) => continue,
            None => return true,
        }
    }
}

fn method(m: &str) -> impl Fn(&Message) -> bool + '_ {
    move |msg| msg.method_str() == Some(m)
}

fn status(code: u16) -> impl Fn(&Message) -> bool {
    move |msg| msg.status() == Some(code)
}

/// `want`, for the message of call `call_id` only (retransmissions of an
/// earlier call are skipped).
fn of<'a>(
    call_id: &'a str,
    want: impl Fn(&Message) -> bool + 'a,
) -> impl Fn(&Message) -> bool + 'a {
    move |m| m.call_id().ok().flatten() == Some(call_id) && want(m)
}

fn header<'m>(m: &'m Message, name: &'m str) -> Option<&'m str> {
    m.headers_named(name).next().map(|h| m.value_of(h))
}

/// A UAS reply with a To tag and the Record-Route copied.
fn answer(req: &Message, code: u16, reason: &str, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        let name = req.name_of(h);
        if ["Via", "From", "Call-ID", "CSeq", "Record-Route", "Path"].contains(&name) {
            out += &format!("{name}: {}\r\n", req.value_of(h));
        }
        if name == "To" {
            out += &format!("To: {};tag={tag}\r\n", req.value_of(h));
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A request whose Via names `via_port` (no `rport`) rather than the port
/// it is sent from.
fn request_via_port(
    method: &str,
    user: &str,
    via_port: u16,
    branch: &str,
    call_id: &str,
) -> String {
    let via = format!("SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bK{branch}");
    request(method, &format!("sip:{user}@example.com"), &via, call_id, "")
}

/// `force_rport()`: the UA's Via names another port and asks for no
/// `rport`; replies still come back to the port the request came from,
/// whether relayed statefully, forwarded statelessly or answered by the
/// proxy through a transaction. Without it, a transaction replies to the
/// Via's port (RFC 3261 §18.2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_rport_sends_replies_to_the_source_port() {
    let b = bed().await;
    // Where the Via says replies go; only the control case gets them there.
    let via_ua = UdpUa::bind().await;
    let via_port = via_ua.addr.port();

    for (user, call_id) in [("bob", "rport-stateful"), ("stateless", "rport-stateless")] {
        b.uac.send(b.px, &request_via_port("INVITE", user, via_port, call_id, call_id)).await;
        let (inv, from) = expect(&b.uas1, "INVITE at UAS1", of(call_id, method("INVITE"))).await;
        let caller_via = inv.vias().nth(1).unwrap().unwrap();
        assert_eq!(caller_via.rport(), Some(Some(b.uac.addr.port())), "{user}: rport set");
        assert_eq!(caller_via.received(), Some("127.0.0.1"), "{user}: received set");
        b.uas1.send(from, &answer(&inv, 486, "Busy Here", "u1")).await;
        let (busy, _) = expect(&b.uac, "486 at the source port", of(call_id, status(486))).await;
        // The ACK: absorbed by the transaction, or passed on statelessly.
        let ack = format!(
            "ACK sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bK{call_id}\r\n\
             Max-Forwards: 70\r\nTo: {}\r\nFrom: <sip:alice@example.com>;tag=a1\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            busy.header_value(sipc::sip::HeaderName::To).unwrap()
        );
        b.uac.send(b.px, &ack).await;
    }
    b.uac
        .send(b.px, &request_via_port("MESSAGE", "newtran", via_port, "rport-nt", "rport-nt"))
        .await;
    expect(&b.uac, "404 of t_newtran at the source port", status(404)).await;
    assert!(quiet(&via_ua, Duration::from_millis(300), |_| true).await, "nothing at the Via port");

    // Control: no force_rport, a transaction replies to the Via's port.
    b.uac.send(b.px, &request_via_port("MESSAGE", "norport", via_port, "ctl", "rport-ctl")).await;
    let (msg, from) = expect(&b.uas1, "MESSAGE at UAS1", method("MESSAGE")).await;
    assert_eq!(msg.vias().nth(1).unwrap().unwrap().rport(), None);
    b.uas1.send(from, &answer(&msg, 200, "OK", "u2")).await;
    let (ok, _) = expect(&via_ua, "200 at the Via port", status(200)).await;
    assert_eq!(ok.call_id().unwrap(), Some("rport-ctl"));
    b.finish().await;
}

/// `t_newtran()` then `reply()`: the reply goes through a transaction,
/// which answers retransmissions itself, retransmits the non-2xx final
/// reply to an INVITE until the ACK, and absorbs that ACK. A plain
/// `reply()` is stateless: the retransmission runs the route again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_newtran_answers_statefully() {
    let b = bed().await;
    let core = &b.proxy.core;
    let inv = request("INVITE", "sip:newtran@example.com", &b.uac.via("nt1"), "newtran-1", "");
    b.uac.send(b.px, &inv).await;
    let (first, _) = expect(&b.uac, "404", status(404)).await;
    assert_eq!(core.transactions(), 1, "a transaction answered");
    // Timer G: the 404 comes again by itself (T1 = 50 ms) until the ACK.
    let (again, _) = expect(&b.uac, "404 retransmitted", status(404)).await;
    assert_eq!(again.to().unwrap().unwrap().tag(), first.to().unwrap().unwrap().tag());
    // A retransmitted INVITE is absorbed (and gets the 404).
    let absorbed = || core.stats.absorbed.load(std::sync::atomic::Ordering::Relaxed);
    let before = absorbed();
    b.uac.send(b.px, &inv).await;
    expect(&b.uac, "404 for the retransmission", status(404)).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while absorbed() == before {
        assert!(Instant::now() < deadline, "the retransmission was not absorbed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ack = format!(
        "ACK sip:newtran@example.com SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nTo: {}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nCall-ID: newtran-1\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        b.uac.via("nt1"),
        first.header_value(sipc::sip::HeaderName::To).unwrap()
    );
    b.uac.send(b.px, &ack).await;
    // Replies already on their way are read and dropped, then none come.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while b.uac.recv_within(Duration::from_millis(20)).await.is_some() {}
    assert!(quiet(&b.uac, Duration::from_millis(500), status(404)).await, "ACKed: no more 404s");
    assert!(quiet(&b.uas1, Duration::from_millis(10), |_| true).await, "the ACK went nowhere");

    // Stateless: no transaction, and the retransmission is routed again.
    let plain = request("OPTIONS", "sip:plain@example.com", &b.uac.via("pl1"), "plain-1", "");
    let before = absorbed();
    let created = core.stats.transactions.load(std::sync::atomic::Ordering::Relaxed);
    b.uac.send(b.px, &plain).await;
    expect(&b.uac, "404", of("plain-1", status(404))).await;
    b.uac.send(b.px, &plain).await;
    expect(&b.uac, "404 again", of("plain-1", status(404))).await;
    assert_eq!(absorbed(), before, "routed again, not absorbed");
    assert_eq!(core.stats.transactions.load(std::sync::atomic::Ordering::Relaxed), created);
    b.finish().await;
}

/// `set_reply_no_connect()`: the caller's TCP connection closes while its
/// INVITE is pending; the callee's 200 is then not sent (no connection is
/// opened to the caller's address). Without it the proxy connects to the
/// caller's address to deliver the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_reply_no_connect_opens_no_connection_for_replies() {
    let b = bed().await;
    let tcp_px = b.proxy.addr(Transport::Tcp).unwrap();
    for (user, reconnects) in [("noconnect", false), ("bob", true)] {
        // The caller connects from a port it can listen on afterwards.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let caller = sock.local_addr().unwrap();
        let mut stream = sock.connect(tcp_px).await.unwrap();
        let via = format!("SIP/2.0/TCP {caller};branch=z9hG4bKtcp{user}");
        let call_id = format!("noconnect-{user}");
        let inv = request("INVITE", &format!("sip:{user}@example.com"), &via, &call_id, "");
        stream.write_all(inv.as_bytes()).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        let trying = read_message(&mut stream, &mut buf).await.expect("100 Trying");
        assert_eq!(trying.status(), Some(100));
        let (inv, from) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
        stream.shutdown().await.unwrap();
        drop(stream);
        // The proxy sees the connection close and forgets it.
        let deadline = Instant::now() + Duration::from_secs(3);
        while b.proxy.core.outbound().tcp_connections() > 0 {
            assert!(Instant::now() < deadline, "the proxy keeps the closed connection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listener = {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.set_reuseaddr(true).unwrap();
            s.bind(caller).unwrap();
            s.listen(4).unwrap()
        };
        let errors = b.proxy.core.stats.send_errors.load(std::sync::atomic::Ordering::Relaxed);
        b.uas1.send(from, &answer(&inv, 200, "OK", "u1")).await;
        let accepted = tokio::time::timeout(Duration::from_millis(800), listener.accept()).await;
        if reconnects {
            let (mut conn, _) = accepted.expect("the proxy connects to deliver the 200").unwrap();
            let mut buf = bytes::BytesMut::new();
            let ok = read_message(&mut conn, &mut buf).await.expect("the 200");
            assert_eq!(ok.status(), Some(200));
        } else {
            assert!(accepted.is_err(), "no connection is opened for the reply");
            let after = b.proxy.core.stats.send_errors.load(std::sync::atomic::Ordering::Relaxed);
            assert!(after > errors, "the 200 was not sent");
        }
    }
    b.finish().await;
}

/// `t_is_set`: true once the hook is armed, false for one that is not; a
/// failure route is disarmed while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_is_set_reports_armed_hooks() {
    let b = bed().await;
    let inv = request("INVITE", "sip:isset@example.com", &b.uac.via("is1"), "isset-1", "");
    b.uac.send(b.px, &inv).await;
    let (first, from) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    assert_eq!(header(&first, "X-Failure-Set"), Some("yes"));
    assert_eq!(header(&first, "X-Branch-Set"), Some("no"));
    b.uas1.send(from, &answer(&first, 486, "Busy Here", "u1")).await;
    let (second, from) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    assert_eq!(header(&second, "X-In-Failure"), Some("disarmed"));
    b.uas2.send(from, &answer(&second, 486, "Busy Here", "u2")).await;
    expect(&b.uac, "486", status(486)).await;
    b.finish().await;
}

/// `$T_branch_idx`: 0 and 1 in the branch route of a two-way fork, the
/// index of the branch a reply came on in the onreply route, and that of
/// the winning reply in the failure route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_branch_idx_names_the_branch() {
    let b = bed().await;
    let inv = request("INVITE", "sip:fork@example.com", &b.uac.via("fk1"), "fork-1", "");
    b.uac.send(b.px, &inv).await;
    let (one, from1) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    let (two, from2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    assert_eq!(header(&one, "X-Branch-Idx"), Some("0"));
    assert_eq!(header(&two, "X-Branch-Idx"), Some("1"));
    b.uas2.send(from2, &answer(&two, 180, "Ringing", "u2")).await;
    let (ringing, _) = expect(&b.uac, "180", status(180)).await;
    assert_eq!(header(&ringing, "X-Reply-Branch"), Some("1"));
    // 486 beats 503 (RFC 3261 §16.7 step 6): branch 1 wins.
    b.uas1.send(from1, &answer(&one, 503, "Service Unavailable", "u1")).await;
    b.uas2.send(from2, &answer(&two, 486, "Busy Here", "u2")).await;
    let (winner, _) = expect(&b.uac, "480", status(480)).await;
    assert_eq!(winner.reason(), Some("Winner 1"));
    b.finish().await;
}

/// `add_path_received()`: the REGISTER reaches the registrar with a Path
/// naming the proxy and the UA's source address; a request the registrar
/// routes back through that Path goes to the source address, not to the
/// (unreachable) Contact in its Request-URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_path_received_routes_back_to_the_source() {
    let b = bed().await;
    let reg = request(
        "REGISTER",
        "sip:example.com",
        &b.uac.via("rg1"),
        "path-1",
        "Contact: <sip:alice@10.0.0.99:5060>\r\nSupported: path\r\n",
    );
    b.uac.send(b.px, &reg).await;
    let (at_registrar, from) =
        expect(&b.uas1, "REGISTER at the registrar", method("REGISTER")).await;
    let path = header(&at_registrar, "Path").expect("a Path header");
    assert_eq!(path, format!("<sip:{};lr;received=sip:{}>", b.px, b.uac.addr));
    b.uas1.send(from, &answer(&at_registrar, 200, "OK", "r1")).await;
    expect(&b.uac, "200 for the REGISTER", status(200)).await;

    // The registrar's lookup: the Path as Route, the Contact as R-URI.
    let invite = format!(
        "INVITE sip:alice@10.0.0.99:5060 SIP/2.0\r\nVia: {}\r\nRoute: {path}\r\nMax-Forwards: 70\r\n\
         To: <sip:alice@example.com>;tag=x1\r\nFrom: <sip:bob@example.com>;tag=b1\r\n\
         Call-ID: path-2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        b.uas1.via("pi1")
    );
    b.uas1.send(b.px, &invite).await;
    let (inv, from) = expect(&b.uac, "INVITE at the UA's source address", method("INVITE")).await;
    assert_eq!(inv.request_uri_str(), Some("sip:alice@10.0.0.99:5060"));
    assert_eq!(inv.routes().count(), 0, "the proxy consumed its own Route");
    b.uac.send(from, &answer(&inv, 486, "Busy Here", "a2")).await;
    expect(&b.uas1, "486 at the registrar", status(486)).await;
    b.finish().await;
}
