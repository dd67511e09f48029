//! NAT traversal of signalling, end to end over loopback: test user agents
//! that write private addresses (192.168.x) in their Via and Contact while
//! their packets come from 127.0.0.1 and an ephemeral port, as a phone
//! behind NAT looks to a proxy on the Internet. A NATed phone registers and
//! a call reaches it at its source (`fix_nated_register`), a NATed caller's
//! Contact carries its source as `;alias=` (`set_contact_alias`) and the
//! callee's in-dialog BYE goes there (`handle_ruri_alias`), and the
//! callee's private Contact in its 200 OK is rewritten in an onreply route
//! (`fix_nated_contact`). A UA that is not behind NAT is left alone.

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
module usrloc {
    db_mode = 0;
}

request_route {
    # replies go back to the port a request came from (RFC 3581)
    force_rport();
    # Kamailio's nat_uac_test("19")
    let nated = nat_uac_test("private_contact|via_ip_differs|via_port_differs");
    if is_method("REGISTER") {
        if nated {
            fix_nated_register();
        }
        if !save("location") {
            reply_error();
        }
        exit;
    }
    if has_to_tag() {
        if loose_route() {
            if $du == "" {
                handle_ruri_alias();
            }
            relay();
            exit;
        }
        if is_method("ACK") {
            exit;
        }
        reply(404, "Not here");
        exit;
    }
    if nat_uac_test("via_ip_differs|via_port_differs") {
        append_hf("X-Via-Differs: yes\r\n");
    }
    if nat_uac_test("private_sdp") {
        append_hf("X-Private-SDP: yes\r\n");
    }
    if nated && is_first_hop() {
        set_contact_alias();
    }
    record_route();
    on_reply(callee_reply);
    if !lookup("location") {
        reply(404, "Not Found");
        exit;
    }
    relay();
}

onreply_route callee_reply {
    if nat_uac_test("private_contact") {
        fix_nated_contact();
    }
}
"#;

struct Bed {
    proxy: ServerHandle,
    _services: sipc::cli::services::RunningServices,
    px: SocketAddr,
}

async fn bed() -> Bed {
    let mut started = None;
    let proxy = serve_source("nat.route", ROUTES, |prog, config| {
        config.workers = 2;
        let services =
            sipc::cli::services::start(prog, &std::env::temp_dir()).expect("services start");
        config.services = Arc::clone(&services.services);
        started = Some(services);
    })
    .await;
    let px = proxy.addr(Transport::Udp).unwrap();
    Bed { proxy, _services: started.expect("services started"), px }
}

async fn expect(ua: &UdpUa, what: &str, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ua.recv_within(left).await {
            Some((m, _)) if want(&m) => return m,
            Some(_) => {}
            None => panic!("{what}: nothing arrived"),
        }
    }
}

fn header<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers_named(name).next().map(|h| m.value_of(h))
}

/// A request as a phone at `private` (its own idea of its address) writes
/// it, whatever address its packets really leave from. A REGISTER is
/// addressed to the user's own AOR, anything else to the Request-URI.
fn request_from(
    method: &str,
    ruri: &str,
    private: &str,
    user: &str,
    call_id: &str,
    extra: &str,
    body: &str,
) -> String {
    let to = if method == "REGISTER" { format!("sip:{user}@example.com") } else { ruri.to_owned() };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {private};branch=z9hG4bK-{call_id}-{method}\r\n\
         Max-Forwards: 70\r\nTo: <{to}>\r\nFrom: <sip:{user}@example.com>;tag={user}1\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{private}>\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.168.1.30\r\ns=-\r\nc=IN IP4 192.168.1.30\r\n\
                   t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nated_phone_registers_is_called_at_its_source_and_dialogs_follow_the_alias() {
    let b = bed().await;
    let (alice, bob) = (UdpUa::bind().await, UdpUa::bind().await);

    // alice, behind NAT, registers 192.168.1.20:5060 from 127.0.0.1:PORT.
    let reg = request_from(
        "REGISTER",
        "sip:example.com",
        "192.168.1.20:5060",
        "alice",
        "nat-reg",
        "Expires: 600\r\n",
        "",
    );
    alice.send(b.px, &reg).await;
    let ok = expect(&alice, "200 to the REGISTER at the source port", |m| {
        m.status().is_some_and(|s| s >= 200)
    })
    .await;
    assert_eq!(ok.status(), Some(200));
    assert!(
        header(&ok, "Contact").unwrap().starts_with("<sip:alice@192.168.1.20:5060>;expires="),
        "the binding is listed as registered: {:?}",
        header(&ok, "Contact")
    );

    // bob, behind NAT too, calls alice with an SDP offer.
    let invite = request_from(
        "INVITE",
        "sip:alice@example.com",
        "192.168.1.30:5060",
        "bob",
        "nat-call",
        "Content-Type: application/sdp\r\n",
        SDP,
    );
    bob.send(b.px, &invite).await;
    let inv =
        expect(&alice, "INVITE at alice's source address", |m| m.method_str() == Some("INVITE"))
            .await;
    assert_eq!(inv.request_uri_str(), Some("sip:alice@192.168.1.20:5060"));
    assert_eq!(header(&inv, "X-Via-Differs"), Some("yes"));
    assert_eq!(header(&inv, "X-Private-SDP"), Some("yes"));
    let bob_contact = header(&inv, "Contact").unwrap().to_owned();
    assert_eq!(
        bob_contact,
        format!("<sip:bob@192.168.1.30:5060;alias=127.0.0.1~{}~1>", bob.addr.port()),
        "bob's Contact carries where his packets come from"
    );

    // alice answers with her private Contact: bob gets it fixed to where
    // the 200 came from.
    let answer = response_to(&inv, 200, "OK").replace(
        "Content-Length: 0\r\n",
        "Contact: <sip:alice@192.168.1.20:5060>\r\nContent-Length: 0\r\n",
    );
    alice.send(b.px, &answer).await;
    let ok = expect(&bob, "200 OK at bob", |m| m.status() == Some(200)).await;
    assert_eq!(header(&ok, "Contact"), Some(format!("<sip:alice@{}>", alice.addr).as_str()));

    // alice hangs up: her BYE goes to bob's Contact (with its alias)
    // through the proxy's Record-Route, and the proxy sends it to bob's
    // source with the alias taken off.
    let rr = header(&inv, "Record-Route").expect("record-routed").to_owned();
    let bye_uri = bob_contact.trim_start_matches('<').trim_end_matches('>');
    let bye = format!(
        "BYE {bye_uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-nat-bye\r\n\
         Max-Forwards: 70\r\nRoute: {rr}\r\nTo: <sip:bob@example.com>;tag=bob1\r\n\
         From: <sip:alice@example.com>;tag=uas1\r\nCall-ID: nat-call\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    alice.send(b.px, &bye).await;
    let bye = expect(&bob, "BYE at bob's source address", |m| m.method_str() == Some("BYE")).await;
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.168.1.30:5060"));
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_is_not_behind_nat_is_left_alone() {
    let b = bed().await;
    let (carol, dave) = (UdpUa::bind().await, UdpUa::bind().await);
    // Both write their real (loopback) address in Via and Contact. A
    // loopback Contact counts as private, as in Kamailio, but it is where
    // the packets come from: there is nothing to fix or alias.
    let d = dave.addr.to_string();
    let reg = request_from("REGISTER", "sip:example.com", &d, "dave", "plain-reg", "", "");
    dave.send(b.px, &reg).await;
    expect(&dave, "200 to dave's REGISTER", |m| m.status() == Some(200)).await;

    let c = carol.addr.to_string();
    let invite = request_from("INVITE", "sip:dave@example.com", &c, "carol", "plain-call", "", "");
    carol.send(b.px, &invite).await;
    let inv = expect(&dave, "INVITE at dave", |m| m.method_str() == Some("INVITE")).await;
    assert_eq!(inv.request_uri_str(), Some(format!("sip:dave@{d}").as_str()));
    assert_eq!(header(&inv, "X-Via-Differs"), None);
    assert_eq!(header(&inv, "X-Private-SDP"), None);
    assert_eq!(header(&inv, "Contact"), Some(format!("<sip:carol@{c}>").as_str()));

    let answer = response_to(&inv, 200, "OK").replace(
        "Content-Length: 0\r\n",
        &format!("Contact: <sip:dave@{d}>\r\nContent-Length: 0\r\n"),
    );
    dave.send(b.px, &answer).await;
    let ok = expect(&carol, "200 OK at carol", |m| m.status() == Some(200)).await;
    assert_eq!(header(&ok, "Contact"), Some(format!("<sip:dave@{d}>").as_str()));
    b.proxy.stop(Duration::from_secs(1)).await;
}

/// Request-side fixes and a `reply_route` on stateless replies; `UAS` is
/// filled in.
const STATELESS: &str = r#"
listen udp 127.0.0.1:5060;

request_route {
    force_rport();
    if nat_uac_test("private_contact") {
        fix_nated_contact();
        add_rcv_param();
    }
    $du = "sip:UAS";
    forward();
}

reply_route {
    if is_reply() && nat_uac_test("private_contact") {
        fix_nated_contact();
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_fixed_on_requests_and_in_reply_route() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let src = STATELESS.replace("UAS", &uas.addr.to_string());
    let proxy = serve_source("nat-stateless.route", &src, |_, c| c.workers = 2).await;
    let px = proxy.addr(Transport::Udp).unwrap();

    let msg = request_from(
        "MESSAGE",
        "sip:erin@example.com",
        "192.168.1.50:5060",
        "frank",
        "stateless-1",
        "",
        "",
    );
    uac.send(px, &msg).await;
    let req = expect(&uas, "MESSAGE at the UAS", |m| m.method_str() == Some("MESSAGE")).await;
    assert_eq!(
        header(&req, "Contact"),
        Some(format!("<sip:frank@{}>;received=\"sip:{}\"", uac.addr, uac.addr).as_str()),
        "host:port is the source, and received= names it too"
    );

    let answer = response_to(&req, 200, "OK").replace(
        "Content-Length: 0\r\n",
        "Contact: <sip:erin@10.0.0.9:5070;transport=udp>\r\nContent-Length: 0\r\n",
    );
    uas.send(px, &answer).await;
    let ok = expect(&uac, "200 OK at the caller", |m| m.status() == Some(200)).await;
    assert_eq!(
        header(&ok, "Contact"),
        Some(format!("<sip:erin@{};transport=udp>", uas.addr).as_str())
    );
    proxy.stop(Duration::from_secs(1)).await;
}
