//! The stateful proxy end to end: a compiled route program that relays
//! through transactions, driven over loopback by test user agents (UDP and
//! TCP), one scenario per test. Timers are shortened in the config
//! (`module tm`), and every scenario ends by checking that the transaction
//! table empties.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::ServerHandle;
use sipc::sip::Message;
use support::*;

/// The routes under test. `UAS1`, `UAS2` and `UAS2_TCP` are filled in.
const ROUTES: &str = r#"
listen udp 127.0.0.1:5060;
listen tcp 127.0.0.1:5060;

module tm {
    t1 = 50ms;          # 64·T1 = 3.2 s for the clean-up timers
    t4 = 200ms;
    fr_timer = 1s;      # timers B and F
    fr_inv_timer = 2s;  # timer C
}

request_route {
    if !maxfwd_ok(10) {
        reply(483, "Too Many Hops");
        exit;
    }
    if is_method("CANCEL") {
        if t_check_trans() {
            relay();
        }
        exit;
    }
    if has_to_tag() {
        if loose_route() {
            relay();
            exit;
        }
        if is_method("ACK") {
            exit;
        }
        reply(404, "Not here");
        exit;
    }
    if is_method("INVITE") {
        record_route();
    }
    $avp(caller) = $fU;
    on_reply(seen);
    switch $rU {
        case "fork":
            append_branch("sip:fork2@UAS2");
        case "tcp":
            $du = "sip:UAS2_TCP";
            relay();
            exit;
        case "branched":
            on_branch(mark);
    }
    on_failure(next);
    $du = "sip:UAS1";
    relay();
}

onreply_route seen {
    if $rs == 180 {
        append_hf("X-Seen: $avp(caller) $T_reply_code\r\n");
    }
}

branch_route mark {
    append_hf("X-Branch: marked\r\n");
}

failure_route next {
    if t_is_canceled() {
        exit;
    }
    if t_check_status("486|408") {
        append_hf("X-Failover: $avp(caller) $T_reply_code\r\n");
        $du = "sip:UAS2";
        relay();
    }
}
"#;

struct Bed {
    proxy: ServerHandle,
    px: SocketAddr,
    uac: UdpUa,
    uas1: UdpUa,
    uas2: UdpUa,
    uas2_tcp: TcpUa,
}

async fn bed() -> Bed {
    let (uac, uas1, uas2, uas2_tcp) =
        (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await, TcpUa::bind().await);
    let src = ROUTES
        .replace("UAS1", &uas1.addr.to_string())
        .replace("UAS2_TCP", &format!("{};transport=tcp", uas2_tcp.addr))
        .replace("UAS2", &uas2.addr.to_string());
    let proxy = serve_source("stateful.route", &src, |_, c| c.workers = 2).await;
    let px = proxy.addr(Transport::Udp).unwrap();
    Bed { proxy, px, uac, uas1, uas2, uas2_tcp }
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

/// The next message `ua` receives that `want` accepts (retransmissions and
/// other messages in between are skipped); panics after a few seconds.
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

fn method(m: &str) -> impl Fn(&Message) -> bool + '_ {
    move |msg| msg.method_str() == Some(m)
}

fn status(code: u16) -> impl Fn(&Message) -> bool {
    move |msg| msg.status() == Some(code)
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

/// A UAS reply with a To tag, a Contact and the Record-Route copied.
fn answer(req: &Message, code: u16, reason: &str, tag: &str, contact: SocketAddr) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        let name = req.name_of(h);
        if ["Via", "From", "Call-ID", "CSeq", "Record-Route"].contains(&name) {
            out += &format!("{name}: {}\r\n", req.value_of(h));
        }
        if name == "To" {
            out += &format!("To: {};tag={tag}\r\n", req.value_of(h));
        }
    }
    out += &format!("Contact: <sip:uas@{contact}>\r\nContent-Length: 0\r\n\r\n");
    out
}

/// The first value of header `name`.
fn header<'m>(m: &'m Message, name: &'m str) -> Option<&'m str> {
    m.headers_named(name).next().map(|h| m.value_of(h))
}

fn invite(uac: &UdpUa, user: &str, branch: &str, call_id: &str) -> String {
    request("INVITE", &format!("sip:{user}@example.com"), &uac.via(branch), call_id, "")
}

/// The in-dialog request (ACK, BYE) the UAC sends after a 2xx: to the
/// Contact, through the recorded route.
fn in_dialog(method: &str, ok: &Message, uac: &UdpUa, branch: &str, cseq: u32) -> String {
    let sipc::sip::Contact::Addr(contact) = ok.contacts().next().unwrap().unwrap() else {
        panic!("a 2xx has a Contact address")
    };
    let routes: Vec<String> =
        ok.header_values(sipc::sip::HeaderName::RecordRoute).map(str::to_owned).collect();
    let mut out = format!("{method} {} SIP/2.0\r\nVia: {}\r\n", contact.uri.raw(), uac.via(branch));
    for r in routes.iter().rev() {
        out += &format!("Route: {r}\r\n");
    }
    out += &format!(
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        ok.header_value(sipc::sip::HeaderName::From).unwrap(),
        ok.header_value(sipc::sip::HeaderName::To).unwrap(),
        ok.call_id().unwrap().unwrap(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_call_with_record_route() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "bob", "c1", "call-basic")).await;
    let (trying, _) = expect(&b.uac, "100 Trying", status(100)).await;
    assert_eq!(trying.to().unwrap().unwrap().tag(), None);
    let (inv, from) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    assert_eq!(from, b.px);
    assert_eq!(inv.vias().count(), 2);
    let rr = inv.header_value(sipc::sip::HeaderName::RecordRoute).expect("record-routed");
    assert!(rr.contains(&b.px.to_string()), "{rr}");
    let top = inv.via().unwrap().unwrap();
    assert!(top.has_rfc3261_branch());

    b.uas1.send(from, &answer(&inv, 180, "Ringing", "u1", b.uas1.addr)).await;
    let (ringing, _) = expect(&b.uac, "180", status(180)).await;
    assert_eq!(ringing.vias().count(), 1);
    let seen = header(&ringing, "X-Seen");
    assert_eq!(seen, Some("alice 180"), "onreply_route saw the reply and the $avp");
    b.uas1.send(from, &answer(&inv, 200, "OK", "u1", b.uas1.addr)).await;
    let (ok, _) = expect(&b.uac, "200", status(200)).await;
    assert!(ok.header_value(sipc::sip::HeaderName::RecordRoute).is_some());

    b.uac.send(b.px, &in_dialog("ACK", &ok, &b.uac, "c1ack", 1)).await;
    let (ack, _) = expect(&b.uas1, "ACK at UAS1", method("ACK")).await;
    assert_eq!(ack.request_uri_str(), Some(format!("sip:uas@{}", b.uas1.addr).as_str()));

    b.uac.send(b.px, &in_dialog("BYE", &ok, &b.uac, "c1bye", 2)).await;
    let (bye, from) = expect(&b.uas1, "BYE at UAS1", method("BYE")).await;
    b.uas1.send(from, &answer(&bye, 200, "OK", "u1", b.uas1.addr)).await;
    let (bye_ok, _) = expect(&b.uac, "200 for BYE", status(200)).await;
    assert_eq!(bye_ok.cseq().unwrap().unwrap().method, "BYE");
    b.finish().await;
}

/// A provisional reply ends an INVITE branch's retransmissions: its Timer
/// A is taken out of the queue then, not left to fire and be ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cancels_the_retransmission_timer() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "bob", "c9", "call-cancel-a")).await;
    expect(&b.uac, "100 Trying", status(100)).await;
    let (inv, from) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    // Armed now: Timer A (re-armed in place each time it fires) and Timer C.
    let before = b.proxy.core.armed_timers();
    b.uas1.send(from, &answer(&inv, 180, "Ringing", "u9", b.uas1.addr)).await;
    expect(&b.uac, "180", status(180)).await;
    assert_eq!(b.proxy.core.armed_timers(), before - 1, "Timer A cancelled by the 180");
    b.uas1.send(from, &answer(&inv, 603, "Decline", "u9", b.uas1.addr)).await;
    expect(&b.uas1, "ACK of the 603", method("ACK")).await;
    expect(&b.uac, "603", status(603)).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_invite_is_absorbed() {
    let b = bed().await;
    let inv = invite(&b.uac, "bob", "r1", "call-retrans");
    b.uac.send(b.px, &inv).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    b.uas1.send(from, &answer(&req, 180, "Ringing", "u1", b.uas1.addr)).await;
    expect(&b.uac, "180", status(180)).await;
    // The UAC retransmits: the proxy answers with the last reply and the UAS
    // sees nothing.
    b.uac.send(b.px, &inv).await;
    let (again, _) = expect(&b.uac, "the 180 again", |m| m.status().is_some()).await;
    assert_eq!(again.status(), Some(180));
    assert!(quiet(&b.uas1, Duration::from_millis(300), method("INVITE")).await);
    assert!(b.proxy.core.stats.absorbed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    b.uas1.send(from, &answer(&req, 486, "Busy Here", "u1", b.uas1.addr)).await;
    // 486 → failure route → UAS2.
    let (second, from2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    // The 486 was ACKed hop by hop to UAS1.
    let (ack, _) = expect(&b.uas1, "ACK for 486", method("ACK")).await;
    assert_eq!(ack.via().unwrap().unwrap().branch(), req.via().unwrap().unwrap().branch());
    b.uas2.send(from2, &answer(&second, 404, "Not Found", "u2", b.uas2.addr)).await;
    expect(&b.uas2, "ACK for 404", method("ACK")).await;
    let (fin, _) = expect(&b.uac, "final", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(404), "the lowest 4xx of 486 and 404");
    b.finish().await;
}

/// Once its final reply went upstream a transaction keeps only what
/// retransmissions need (issue 25): a 2xx the UAS retransmits still reaches
/// the caller, a retransmitted INVITE is still absorbed, and when the
/// failover's 404 is retransmitted the proxy ACKs it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_transactions_still_handle_retransmissions() {
    let b = bed().await;
    let inv = invite(&b.uac, "bob", "w1", "call-waiting");
    b.uac.send(b.px, &inv).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    let ok = answer(&req, 200, "OK", "u1", b.uas1.addr);
    b.uas1.send(from, &ok).await;
    expect(&b.uac, "200", status(200)).await;
    b.uas1.send(from, &ok).await;
    let (again, _) = expect(&b.uac, "the 200 again", status(200)).await;
    assert_eq!(again.vias().count(), 1, "our Via stripped from the retransmission too");
    b.uac.send(b.px, &inv).await;
    assert!(quiet(&b.uas1, Duration::from_millis(300), method("INVITE")).await, "absorbed");
    assert!(quiet(&b.uac, Duration::from_millis(100), status(200)).await, "not answered again");

    b.uac.send(b.px, &invite(&b.uac, "bob", "w2", "call-waiting-404")).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    b.uas1.send(from, &answer(&req, 486, "Busy Here", "u1", b.uas1.addr)).await;
    expect(&b.uas1, "ACK for 486", method("ACK")).await;
    let (second, from2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    let not_found = answer(&second, 404, "Not Found", "u2", b.uas2.addr);
    b.uas2.send(from2, &not_found).await;
    let (ack, _) = expect(&b.uas2, "ACK for 404", method("ACK")).await;
    let (fin, _) = expect(&b.uac, "404", status(404)).await;
    // The caller's ACK of the 404 (the INVITE's branch) stops Timer G.
    let to = fin.header_value(sipc::sip::HeaderName::To).unwrap();
    let caller_ack = invite(&b.uac, "bob", "w2", "call-waiting-404")
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(&format!("To: {}", to.split(";tag=").next().unwrap()), &format!("To: {to}"));
    assert!(caller_ack.contains(to), "{caller_ack}");
    b.uac.send(b.px, &caller_ack).await;
    // Drains the retransmissions Timer G sent before the ACK arrived.
    let _ = quiet(&b.uac, Duration::from_millis(150), |_| false).await;
    b.uas2.send(from2, &not_found).await;
    let (ack_again, _) = expect(&b.uas2, "the ACK again", method("ACK")).await;
    assert_eq!(ack_again.as_bytes(), ack.as_bytes(), "the same ACK, kept");
    assert!(quiet(&b.uac, Duration::from_millis(200), status(404)).await, "absorbed upstream");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_first_destination_fails_over_to_the_second() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "bob", "f1", "call-failover")).await;
    let (req, from) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    b.uas1.send(from, &answer(&req, 486, "Busy Here", "u1", b.uas1.addr)).await;
    expect(&b.uas1, "ACK for 486", method("ACK")).await;
    let (second, from2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    assert_eq!(header(&second, "X-Failover"), Some("alice 486"), "failure_route ran with $avp");
    assert_eq!(second.call_id().unwrap(), Some("call-failover"));
    assert_ne!(
        second.via().unwrap().unwrap().branch(),
        req.via().unwrap().unwrap().branch(),
        "a new branch"
    );
    b.uas2.send(from2, &answer(&second, 200, "OK", "u2", b.uas2.addr)).await;
    let (ok, _) = expect(&b.uac, "200 from UAS2", status(200)).await;
    assert_eq!(ok.to().unwrap().unwrap().tag(), Some("u2"));
    assert!(quiet(&b.uac, Duration::from_millis(200), status(486)).await, "486 not passed on");
    b.uac.send(b.px, &in_dialog("ACK", &ok, &b.uac, "f1ack", 1)).await;
    expect(&b.uas2, "ACK at UAS2", method("ACK")).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_destination_times_out_then_fails_over() {
    let b = bed().await;
    let started = Instant::now();
    b.uac.send(b.px, &invite(&b.uac, "bob", "t1", "call-timeout")).await;
    // UAS1 never answers: timer A retransmits, timer B (fr_timer = 1 s) ends it.
    let (first, _) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    let (retrans, _) = expect(&b.uas1, "a retransmission", method("INVITE")).await;
    assert_eq!(retrans.via().unwrap().unwrap().branch(), first.via().unwrap().unwrap().branch());
    let (second, from2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "failed over after {waited:?}");
    assert_eq!(header(&second, "X-Failover"), Some("alice 408"));
    b.uas2.send(from2, &answer(&second, 480, "Temporarily Unavailable", "u2", b.uas2.addr)).await;
    expect(&b.uas2, "ACK", method("ACK")).await;
    let (fin, _) = expect(&b.uac, "final", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(408), "the lowest 4xx of 408 and 480");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_the_answer() {
    let b = bed().await;
    let inv = invite(&b.uac, "bob", "x1", "call-cancel");
    b.uac.send(b.px, &inv).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    b.uas1.send(from, &answer(&req, 180, "Ringing", "u1", b.uas1.addr)).await;
    expect(&b.uac, "180", status(180)).await;
    let cancel =
        inv.replace("INVITE sip:", "CANCEL sip:").replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    b.uac.send(b.px, &cancel).await;
    let (c200, _) = expect(&b.uac, "200 for CANCEL", status(200)).await;
    assert_eq!(c200.cseq().unwrap().unwrap().method, "CANCEL");
    let (cancel_req, _) = expect(&b.uas1, "CANCEL at UAS1", method("CANCEL")).await;
    assert_eq!(
        cancel_req.via().unwrap().unwrap().branch(),
        req.via().unwrap().unwrap().branch(),
        "the CANCEL names the INVITE's branch"
    );
    b.uas1.send(from, &answer(&cancel_req, 200, "OK", "u1", b.uas1.addr)).await;
    b.uas1.send(from, &answer(&req, 487, "Request Terminated", "u1", b.uas1.addr)).await;
    expect(&b.uas1, "ACK for 487", method("ACK")).await;
    let (fin, _) = expect(&b.uac, "487", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(487));
    assert!(
        quiet(&b.uas2, Duration::from_millis(300), method("INVITE")).await,
        "no failover after CANCEL"
    );
    // The UAC's ACK for the 487 is absorbed by the transaction.
    let ack = inv.replace("INVITE sip:", "ACK sip:").replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    b.uac.send(b.px, &ack).await;
    assert!(quiet(&b.uas1, Duration::from_millis(300), method("ACK")).await);
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_crossing_a_200() {
    let b = bed().await;
    let inv = invite(&b.uac, "bob", "x2", "call-cross");
    b.uac.send(b.px, &inv).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    b.uas1.send(from, &answer(&req, 200, "OK", "u1", b.uas1.addr)).await;
    let (ok, _) = expect(&b.uac, "200", status(200)).await;
    // The CANCEL arrives after the 200: answered 200, but nothing is cancelled.
    let cancel =
        inv.replace("INVITE sip:", "CANCEL sip:").replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    b.uac.send(b.px, &cancel).await;
    let (c200, _) = expect(&b.uac, "200 for CANCEL", status(200)).await;
    assert_eq!(c200.cseq().unwrap().unwrap().method, "CANCEL");
    assert!(quiet(&b.uas1, Duration::from_millis(300), method("CANCEL")).await);
    b.uac.send(b.px, &in_dialog("ACK", &ok, &b.uac, "x2ack", 1)).await;
    expect(&b.uas1, "ACK", method("ACK")).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fork_first_200_wins_and_the_other_is_cancelled() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "fork", "p1", "call-fork")).await;
    let (r1, f1) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    let (r2, f2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    assert_eq!(r2.request_uri_str(), Some(format!("sip:fork2@{}", b.uas2.addr).as_str()));
    b.uas1.send(f1, &answer(&r1, 180, "Ringing", "u1", b.uas1.addr)).await;
    b.uas2.send(f2, &answer(&r2, 180, "Ringing", "u2", b.uas2.addr)).await;
    b.uas2.send(f2, &answer(&r2, 200, "OK", "u2", b.uas2.addr)).await;
    let (ok, _) = expect(&b.uac, "200", status(200)).await;
    assert_eq!(ok.to().unwrap().unwrap().tag(), Some("u2"));
    let (cancel, _) = expect(&b.uas1, "CANCEL at UAS1", method("CANCEL")).await;
    assert_eq!(cancel.via().unwrap().unwrap().branch(), r1.via().unwrap().unwrap().branch());
    b.uas1.send(f1, &answer(&cancel, 200, "OK", "u1", b.uas1.addr)).await;
    b.uas1.send(f1, &answer(&r1, 487, "Request Terminated", "u1", b.uas1.addr)).await;
    expect(&b.uas1, "ACK for 487", method("ACK")).await;
    assert!(quiet(&b.uac, Duration::from_millis(300), status(487)).await, "487 not passed on");
    b.uac.send(b.px, &in_dialog("ACK", &ok, &b.uac, "p1ack", 1)).await;
    expect(&b.uas2, "ACK at UAS2", method("ACK")).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_6xx_stops_the_fork() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "fork", "s1", "call-6xx")).await;
    let (r1, f1) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    let (r2, f2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    b.uas1.send(f1, &answer(&r1, 180, "Ringing", "u1", b.uas1.addr)).await;
    expect(&b.uac, "180", status(180)).await;
    b.uas2.send(f2, &answer(&r2, 603, "Decline", "u2", b.uas2.addr)).await;
    expect(&b.uas2, "ACK for 603", method("ACK")).await;
    let (cancel, _) = expect(&b.uas1, "CANCEL at UAS1", method("CANCEL")).await;
    b.uas1.send(f1, &answer(&cancel, 200, "OK", "u1", b.uas1.addr)).await;
    b.uas1.send(f1, &answer(&r1, 487, "Request Terminated", "u1", b.uas1.addr)).await;
    let (fin, _) = expect(&b.uac, "final", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(603));
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_to_tcp_relay_and_branch_route() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "tcp", "u1", "call-tcp")).await;
    let req = b.uas2_tcp.recv().await.expect("INVITE over TCP");
    let top = req.via().unwrap().unwrap();
    assert_eq!(top.transport, "TCP");
    assert_eq!(req.header_count(sipc::sip::HeaderName::RecordRoute), 2, "double Record-Route");
    b.uas2_tcp.send(&answer(&req, 200, "OK", "t1", b.uas2_tcp.addr)).await;
    let (ok, _) = expect(&b.uac, "200 over UDP", status(200)).await;
    assert_eq!(ok.vias().count(), 1);

    b.uac.send(b.px, &invite(&b.uac, "branched", "u2", "call-branch")).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    assert_eq!(header(&req, "X-Branch"), Some("marked"), "branch_route edited the copy");
    b.uas1.send(from, &answer(&req, 200, "OK", "u1", b.uas1.addr)).await;
    expect(&b.uac, "200", status(200)).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_invite_transactions() {
    let b = bed().await;
    let options = request("OPTIONS", "sip:bob@example.com", &b.uac.via("n1"), "call-options", "");
    b.uac.send(b.px, &options).await;
    let (req, from) = expect(&b.uas1, "OPTIONS", method("OPTIONS")).await;
    assert!(quiet(&b.uac, Duration::from_millis(150), status(100)).await, "no 100 for non-INVITE");
    b.uas1.send(from, &answer(&req, 200, "OK", "u1", b.uas1.addr)).await;
    expect(&b.uac, "200 for OPTIONS", status(200)).await;
    // A retransmission after the final gets the final again, not a new request.
    b.uac.send(b.px, &options).await;
    expect(&b.uac, "200 again", status(200)).await;
    // (Timer E retransmissions of the first copy may still be queued at the
    // UAS; a request routed again would carry a new branch.)
    let branch = req.via().unwrap().unwrap().branch().unwrap().to_owned();
    let rerouted = move |m: &Message| {
        m.method_str() == Some("OPTIONS")
            && m.via().unwrap().unwrap().branch() != Some(branch.as_str())
    };
    assert!(quiet(&b.uas1, Duration::from_millis(200), rerouted).await);

    let message = request("MESSAGE", "sip:bob@example.com", &b.uac.via("n2"), "call-message", "");
    b.uac.send(b.px, &message).await;
    // The MESSAGE goes unanswered: timer E retransmits, timer F gives 408,
    // then the failure route tries UAS2, which answers.
    expect(&b.uas1, "MESSAGE", method("MESSAGE")).await;
    let (second, from2) = expect(&b.uas2, "MESSAGE at UAS2", method("MESSAGE")).await;
    b.uas2.send(from2, &answer(&second, 202, "Accepted", "u2", b.uas2.addr)).await;
    expect(&b.uac, "202", status(202)).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_c_cancels_a_branch_that_rings_forever() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "bob", "c1", "call-timer-c")).await;
    let (req, from) = expect(&b.uas1, "INVITE", method("INVITE")).await;
    let rang = Instant::now();
    b.uas1.send(from, &answer(&req, 180, "Ringing", "u1", b.uas1.addr)).await;
    expect(&b.uac, "180", status(180)).await;
    // fr_inv_timer = 2 s: then the proxy cancels the branch.
    let (cancel, _) = expect(&b.uas1, "CANCEL after timer C", method("CANCEL")).await;
    let waited = rang.elapsed();
    assert!(waited >= Duration::from_millis(1800), "CANCEL after {waited:?}");
    b.uas1.send(from, &answer(&cancel, 200, "OK", "u1", b.uas1.addr)).await;
    b.uas1.send(from, &answer(&req, 487, "Request Terminated", "u1", b.uas1.addr)).await;
    let (fin, _) = expect(&b.uac, "final", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(487));
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_merged_and_503_becomes_500() {
    let b = bed().await;
    b.uac.send(b.px, &invite(&b.uac, "fork", "a1", "call-auth")).await;
    let (r1, f1) = expect(&b.uas1, "INVITE at UAS1", method("INVITE")).await;
    let (r2, f2) = expect(&b.uas2, "INVITE at UAS2", method("INVITE")).await;
    let challenge = |req: &Message, realm: &str, tag: &str, contact| {
        answer(req, 407, "Proxy Authentication Required", tag, contact).replace(
            "Content-Length: 0",
            &format!(
                "Proxy-Authenticate: Digest realm=\"{realm}\", nonce=\"n\"\r\nContent-Length: 0"
            ),
        )
    };
    b.uas1.send(f1, &challenge(&r1, "one", "u1", b.uas1.addr)).await;
    b.uas2.send(f2, &challenge(&r2, "two", "u2", b.uas2.addr)).await;
    let (fin, _) = expect(&b.uac, "407", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(407));
    let realms: Vec<&str> =
        fin.headers_named("Proxy-Authenticate").map(|h| fin.value_of(h)).collect();
    assert_eq!(realms.len(), 2, "both challenges: {realms:?}");
    assert!(realms.iter().any(|r| r.contains("one")) && realms.iter().any(|r| r.contains("two")));

    b.uac.send(b.px, &invite(&b.uac, "bob", "a2", "call-503")).await;
    let (req, from) = expect(&b.uas1, "INVITE", |m| {
        m.method_str() == Some("INVITE") && m.call_id().ok().flatten() == Some("call-503")
    })
    .await;
    b.uas1.send(from, &answer(&req, 503, "Service Unavailable", "u1", b.uas1.addr)).await;
    let (fin, _) = expect(&b.uac, "final", |m| m.status().is_some_and(|s| s >= 300)).await;
    assert_eq!(fin.status(), Some(500), "a downstream 503 goes upstream as 500");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_transaction_table_answers_503() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let src = format!(
        "listen udp 127.0.0.1:5060;\nmodule tm {{ max_transactions = 1; t1 = 50ms; }}\n\
         request_route {{\n    $du = \"sip:{}\";\n    relay();\n}}\n",
        uas.addr
    );
    let proxy = serve_source("full.route", &src, |_, _| {}).await;
    let px = proxy.addr(Transport::Udp).unwrap();
    uac.send(px, &invite(&uac, "bob", "m1", "call-full-1")).await;
    expect(&uas, "first INVITE", method("INVITE")).await;
    uac.send(px, &invite(&uac, "bob", "m2", "call-full-2")).await;
    let (busy, _) = expect(&uac, "503", status(503)).await;
    assert_eq!(busy.call_id().unwrap(), Some("call-full-2"));
    assert!(busy.headers_named("Retry-After").next().is_some());
    proxy.stop(Duration::from_secs(1)).await;
}

/// `tm.trying_delay` (RFC 3261 §17.2.1): the proxy holds its 100 Trying
/// while the callee may still answer first. A 180 within the delay goes up
/// alone; a callee that stays silent gets the caller a 100 after the delay;
/// a retransmitted INVITE is answered 100 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trying_is_held_for_the_configured_delay() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let src = format!(
        "listen udp 127.0.0.1:5060;\nmodule tm {{ t1 = 50ms; t4 = 200ms; fr_timer = 1s; trying_delay = 200ms; }}\n\
         request_route {{\n  if has_to_tag() {{ if loose_route() {{ relay(); }} exit; }}\n  \
         if is_method(\"INVITE\") {{ record_route(); }}\n  $du = \"sip:{}\";\n  relay();\n}}\n",
        uas.addr
    );
    let proxy = serve_source("trying.route", &src, |_, c| c.workers = 1).await;
    let px = proxy.addr(Transport::Udp).unwrap();

    // The callee rings at once: the caller sees the 180 and no 100.
    uac.send(px, &invite(&uac, "bob", "t1", "call-trying-1")).await;
    let (req, from) = expect(&uas, "INVITE", invite_of("call-trying-1")).await;
    uas.send(from, &answer(&req, 180, "Ringing", "u1", uas.addr)).await;
    let (first, _) = expect(&uac, "a reply", |m| m.status().is_some()).await;
    assert_eq!(first.status(), Some(180), "the 180 comes first");
    assert!(quiet(&uac, Duration::from_millis(400), status(100)).await, "no 100 after the 180");
    uas.send(from, &answer(&req, 486, "Busy Here", "u1", uas.addr)).await;
    expect(&uac, "486", status(486)).await;

    // A silent callee: the 100 comes after the delay, not before.
    let sent = Instant::now();
    uac.send(px, &invite(&uac, "bob", "t2", "call-trying-2")).await;
    let (req2, from2) = expect(&uas, "INVITE", invite_of("call-trying-2")).await;
    expect(&uac, "100 Trying", status(100)).await;
    let waited = sent.elapsed();
    assert!(waited >= Duration::from_millis(190), "100 after {waited:?}");
    assert!(waited < Duration::from_millis(1000), "100 after {waited:?}");
    uas.send(from2, &answer(&req2, 486, "Busy Here", "u1", uas.addr)).await;
    expect(&uac, "486", status(486)).await;

    // A retransmission before the delay is over gets the 100 at once.
    let inv = invite(&uac, "bob", "t3", "call-trying-3");
    uac.send(px, &inv).await;
    let (req3, from3) = expect(&uas, "INVITE", invite_of("call-trying-3")).await;
    let again = Instant::now();
    uac.send(px, &inv).await;
    expect(&uac, "100 Trying", status(100)).await;
    assert!(again.elapsed() < Duration::from_millis(150), "100 after {:?}", again.elapsed());
    // Not routed again: what reaches the callee is the proxy's own branch
    // retransmitting (Timer A), never a second branch.
    let branch3 = req3.via().unwrap().unwrap().branch().map(str::to_owned);
    let other_branch = |m: &Message| {
        invite_of("call-trying-3")(m)
            && m.via().unwrap().unwrap().branch().map(str::to_owned) != branch3
    };
    assert!(quiet(&uas, Duration::from_millis(100), other_branch).await, "absorbed");
    uas.send(from3, &answer(&req3, 486, "Busy Here", "u1", uas.addr)).await;
    expect(&uac, "486", status(486)).await;
    proxy.stop(Duration::from_secs(1)).await;
}

/// An INVITE of call `call_id` (the proxy retransmits earlier calls' INVITEs
/// every T1 until their callee answers).
fn invite_of(call_id: &str) -> impl Fn(&Message) -> bool + '_ {
    move |m| m.method_str() == Some("INVITE") && m.call_id().ok().flatten() == Some(call_id)
}
