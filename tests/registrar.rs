//! The registrar through the routes, end to end over loopback: REGISTER →
//! 200 with the bindings, calls routed to the registered contacts (parallel
//! fork at equal q, serial at lower q, NATed contacts reached at their
//! source), `*` removal, 423, expiry, Allow. One in-process server per
//! test with a memory-only location table (`db_mode = 0`); persistence and
//! authentication are tested against `sipc run` in tests/registrar_run.rs.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::ServerHandle;
use sipc::sip::Message;
use support::*;

const ROUTES: &str = r#"
listen udp 127.0.0.1:5060;

module tm {
    t1 = 50ms;
    fr_timer = 1s;
    fr_inv_timer = 2s;
}
module registrar {
    min_expires = 2s;
    max_expires = 3600s;
}
module usrloc {
    db_mode = 0;
}

request_route {
    if is_method("REGISTER") {
        if !save("location") {
            reply_error();
        }
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
    if $rU == "gone" {
        if unregister("location", "sip:bob@example.com") {
            reply(200, "Unregistered");
        } else {
            reply(404, "Nothing to unregister");
        }
        exit;
    }
    if !lookup("location") {
        if $lookup_result == "method_not_allowed" {
            reply(405, "Method Not Allowed");
        } else if $lookup_result == "not_found" {
            reply(404, "Not Found");
        } else {
            reply(500, "lookup error");
        }
        exit;
    }
    relay();
}
"#;

struct Bed {
    proxy: ServerHandle,
    _services: sipc::cli::services::RunningServices,
    px: SocketAddr,
    uac: UdpUa,
    uas1: UdpUa,
    uas2: UdpUa,
}

async fn bed() -> Bed {
    bed_with(ROUTES).await
}

async fn bed_with(routes: &str) -> Bed {
    let (uac, uas1, uas2) = (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let mut started = None;
    let proxy = serve_source("registrar.route", routes, |prog, config| {
        config.workers = 2;
        let services =
            sipc::cli::services::start(prog, &std::env::temp_dir()).expect("services start");
        assert!(services.services.location.is_some());
        config.services = Arc::clone(&services.services);
        started = Some(services);
    })
    .await;
    let services = started.expect("services started");
    let px = proxy.addr(Transport::Udp).unwrap();
    Bed { proxy, _services: services, px, uac, uas1, uas2 }
}

async fn expect(ua: &UdpUa, what: &str, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ua.recv_within(left).await {
            Some((m, _)) if want(&m) => return m,
            Some((m, _)) => {
                eprintln!("{what}: skipped {:?} {:?}", m.status(), m.reason());
            }
            None => panic!("{what}: nothing arrived"),
        }
    }
}

fn status(code: u16) -> impl Fn(&Message) -> bool {
    move |m| m.status() == Some(code)
}

fn method(name: &str) -> impl Fn(&Message) -> bool + '_ {
    move |m| m.method_str() == Some(name)
}

fn values<'m>(m: &'m Message, name: &'m str) -> Vec<&'m str> {
    m.headers_named(name).map(|h| m.value_of(h)).collect()
}

/// A REGISTER for `bob@example.com` from `ua`; `extra` holds Contact and Expires lines.
fn register(ua: &UdpUa, call_id: &str, cseq: u32, extra: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
         To: <sip:bob@example.com>\r\nFrom: <sip:bob@example.com>;tag=r{cseq}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n",
        ua.via(&format!("reg{call_id}{cseq}"))
    )
}

async fn registered(b: &Bed, ua: &UdpUa, call_id: &str, cseq: u32, extra: &str) -> Message {
    ua.send(b.px, &register(ua, call_id, cseq, extra)).await;
    expect(ua, "reply to REGISTER", |m| m.status().is_some_and(|s| s >= 200)).await
}

fn invite(uac: &UdpUa, branch: &str, call_id: &str) -> String {
    request("INVITE", "sip:bob@example.com", &uac.via(branch), call_id, "")
}

/// A final reply to `req` from a UAS.
fn reply(req: &Message, code: u16, reason: &str) -> String {
    response_to(req, code, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_call_reaches_the_contact() {
    let b = bed().await;
    let contact = format!("Contact: <sip:bob@{}>\r\nExpires: 600\r\n", b.uas1.addr);
    let ok = registered(&b, &b.uas1, "r1", 1, &contact).await;
    assert_eq!(ok.status(), Some(200));
    let contacts = values(&ok, "Contact");
    assert_eq!(contacts.len(), 1);
    assert!(
        contacts[0].starts_with(&format!("<sip:bob@{}>;expires=", b.uas1.addr)),
        "{contacts:?}"
    );
    let left: u32 = contacts[0].rsplit('=').next().unwrap().parse().unwrap();
    assert!((598..=600).contains(&left), "remaining expiry {left}");
    assert!(values(&ok, "Date")[0].ends_with(" GMT"));

    b.uac.send(b.px, &invite(&b.uac, "i1", "call-1")).await;
    let inv = expect(&b.uas1, "INVITE at the contact", method("INVITE")).await;
    assert_eq!(inv.request_uri_str(), Some(format!("sip:bob@{}", b.uas1.addr).as_str()));
    b.uas1.send(b.px, &reply(&inv, 486, "Busy Here")).await;
    expect(&b.uac, "486 upstream", status(486)).await;

    // A query (no Contact) lists the binding without changing it.
    let q = registered(&b, &b.uas1, "r1", 2, "").await;
    assert_eq!(values(&q, "Contact").len(), 1);
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_contacts_fork_in_parallel_and_lower_q_serially() {
    let b = bed().await;
    // Each device registers its own contact (from its own address, so
    // neither counts as NATed).
    registered(&b, &b.uas1, "r2a", 1, &format!("Contact: <sip:bob@{}>\r\n", b.uas1.addr)).await;
    let ok =
        registered(&b, &b.uas2, "r2b", 1, &format!("Contact: <sip:bob@{}>\r\n", b.uas2.addr)).await;
    assert_eq!(values(&ok, "Contact").len(), 2, "the 200 lists every binding of the AOR");
    b.uac.send(b.px, &invite(&b.uac, "i2", "call-2")).await;
    let one = expect(&b.uas1, "INVITE at contact 1", method("INVITE")).await;
    let two = expect(&b.uas2, "INVITE at contact 2", method("INVITE")).await;
    assert_ne!(one.request_uri_str(), two.request_uri_str());
    b.uas1.send(b.px, &reply(&one, 486, "Busy Here")).await;
    b.uas2.send(b.px, &reply(&two, 486, "Busy Here")).await;
    expect(&b.uac, "486 upstream", status(486)).await;

    // Now q: uas2 preferred, uas1 only after uas2 failed.
    let q = |ua: &UdpUa, q: &str| format!("Contact: <sip:bob@{}>;q={q}\r\n", ua.addr);
    registered(&b, &b.uas1, "r2a", 2, &q(&b.uas1, "0.5")).await;
    registered(&b, &b.uas2, "r2b", 2, &q(&b.uas2, "0.9")).await;
    b.uac.send(b.px, &invite(&b.uac, "i3", "call-3")).await;
    let first = expect(&b.uas2, "INVITE at the q=0.9 contact", method("INVITE")).await;
    assert!(b.uas1.recv_within(Duration::from_millis(300)).await.is_none(), "not in parallel");
    b.uas2.send(b.px, &reply(&first, 480, "Temporarily Unavailable")).await;
    let second = expect(&b.uas1, "INVITE at the q=0.5 contact", method("INVITE")).await;
    b.uas1.send(b.px, &reply(&second, 486, "Busy Here")).await;
    expect(&b.uac, "final reply upstream", |m| m.status().is_some_and(|s| s >= 400)).await;
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_removes_too_brief_is_423_and_unregister() {
    let b = bed().await;
    let brief = registered(
        &b,
        &b.uas1,
        "r3",
        1,
        &format!("Contact: <sip:bob@{}>\r\nExpires: 1\r\n", b.uas1.addr),
    )
    .await;
    assert_eq!(brief.status(), Some(423));
    assert_eq!(values(&brief, "Min-Expires"), ["2"]);

    registered(&b, &b.uas1, "r3", 2, &format!("Contact: <sip:bob@{}>\r\n", b.uas1.addr)).await;
    let gone = registered(&b, &b.uas1, "r3", 3, "Contact: *\r\nExpires: 0\r\n").await;
    assert_eq!(gone.status(), Some(200));
    assert!(values(&gone, "Contact").is_empty());
    b.uac.send(b.px, &invite(&b.uac, "i4", "call-4")).await;
    expect(&b.uac, "404 once removed", status(404)).await;

    registered(&b, &b.uas1, "r3", 4, &format!("Contact: <sip:bob@{}>\r\n", b.uas1.addr)).await;
    let gone = request("OPTIONS", "sip:gone@example.com", &b.uac.via("u1"), "un-1", "");
    b.uac.send(b.px, &gone).await;
    expect(&b.uac, "unregister()", status(200)).await;
    b.uac.send(b.px, &invite(&b.uac, "i5", "call-5")).await;
    expect(&b.uac, "404 after unregister()", status(404)).await;
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_expire() {
    let b = bed().await;
    let c = format!("Contact: <sip:bob@{}>;expires=2\r\n", b.uas1.addr);
    assert_eq!(registered(&b, &b.uas1, "r4", 1, &c).await.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    b.uac.send(b.px, &invite(&b.uac, "i6", "call-6")).await;
    expect(&b.uac, "404 after expiry", status(404)).await;
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nated_contacts_are_reached_at_their_source_and_allow_is_honoured() {
    let b = bed().await;
    // The Contact names a private address; the REGISTER came from uas1.
    let c = "Contact: <sip:bob@10.255.0.9:5062>\r\nAllow: INVITE, ACK, CANCEL, BYE\r\n";
    registered(&b, &b.uas1, "r5", 1, c).await;
    b.uac.send(b.px, &invite(&b.uac, "i7", "call-7")).await;
    let inv = expect(&b.uas1, "INVITE at the NAT source", method("INVITE")).await;
    assert_eq!(inv.request_uri_str(), Some("sip:bob@10.255.0.9:5062"));
    b.uas1.send(b.px, &reply(&inv, 486, "Busy Here")).await;
    expect(&b.uac, "486 upstream", status(486)).await;
    let msg = request("MESSAGE", "sip:bob@example.com", &b.uac.via("m1"), "msg-1", "");
    b.uac.send(b.px, &msg).await;
    expect(&b.uac, "405: MESSAGE not in Allow", status(405)).await;
    b.proxy.stop(Duration::from_secs(1)).await;
}

/// A TCP client behind NAT (its Via and Contact name a private address)
/// registers over its own connection; a call to it must come back over
/// that connection, not as UDP to the connection's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nated_tcp_contacts_are_reached_over_their_connection() {
    use tokio::io::AsyncWriteExt;
    let routes = ROUTES.replacen(
        "listen udp 127.0.0.1:5060;",
        "listen udp 127.0.0.1:5060;\nlisten tcp 127.0.0.1:5060;",
        1,
    );
    let b = bed_with(&routes).await;
    let tcp_addr = b.proxy.addr(Transport::Tcp).expect("a TCP listener");
    let mut stream = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let register = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 10.0.0.9:5060;branch=z9hG4bKnattcp1;rport\r\nMax-Forwards: 70\r\n\
        To: <sip:bob@example.com>\r\nFrom: <sip:bob@example.com>;tag=nt1\r\n\
        Call-ID: nat-tcp-1\r\nCSeq: 1 REGISTER\r\n\
        Contact: <sip:bob@10.0.0.9:5060;transport=tcp>\r\nExpires: 600\r\n\
        Content-Length: 0\r\n\r\n";
    stream.write_all(register.as_bytes()).await.unwrap();
    let ok = read_message(&mut stream, &mut buf).await.expect("reply to REGISTER");
    assert_eq!(ok.status(), Some(200));

    b.uac.send(b.px, &invite(&b.uac, "nt-i1", "call-nat-tcp")).await;
    let inv =
        read_message(&mut stream, &mut buf).await.expect("INVITE over the client's connection");
    assert_eq!(inv.method_str(), Some("INVITE"));
    assert_eq!(inv.request_uri_str(), Some("sip:bob@10.0.0.9:5060;transport=tcp"));
    let top_via = values(&inv, "Via")[0].to_owned();
    assert!(top_via.starts_with("SIP/2.0/TCP"), "sent over TCP: {top_via}");
    stream.write_all(reply(&inv, 486, "Busy Here").as_bytes()).await.unwrap();
    expect(&b.uac, "486 upstream", status(486)).await;
    b.proxy.stop(Duration::from_secs(1)).await;
}
