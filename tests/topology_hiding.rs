//! Topology hiding (`topology_hide()`) through `sipc run` on loopback: an
//! inside phone on 127.0.0.2 (behind an inside proxy that record-routed),
//! an outside phone on 127.0.0.3, the proxy on 127.0.0.1. Every message
//! either side receives is searched for the other side's address and
//! Call-ID: none may appear. Calls go both ways and end by BYE from either
//! side; a call is cancelled while ringing; an OPTIONS outside a dialog is
//! hidden as a transaction. Every wait is bounded (3 s).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use sipc::sip::{HeaderName, Message};
use support::{Reaper, UdpUa, free_udp_port, sipc_run, sipc_status, wait_started};

const INSIDE: &str = "127.0.0.2";
const OUTSIDE: &str = "127.0.0.3";

struct Proxy {
    addr: SocketAddr,
    control: PathBuf,
    dir: PathBuf,
    _proc: Reaper,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An SBC in the shape of examples/sbc.route, reduced to what this tests:
/// calls from the inside go out to `outside`, others in to `inside`.
fn start(name: &str, inside: SocketAddr, outside: SocketAddr) -> Proxy {
    let dir = std::env::temp_dir().join(format!("sipc-topo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let route = format!(
        r#"listen udp 127.0.0.1:{port};
settings {{ log_stderror = true; dns = false; }}
acl inside {INSIDE};

request_route {{
    if is_method("CANCEL") {{
        if t_check_trans() {{
            relay();
        }}
        exit;
    }}
    if has_to_tag() {{
        if loose_route() {{
            relay();
            exit;
        }}
        if is_method("ACK") {{
            exit;
        }}
        reply(404, "Not Here");
        exit;
    }}
    record_route();
    topology_hide();
    if in_acl(inside) {{
        $du = "sip:{outside}";
    }} else {{
        $du = "sip:{inside}";
    }}
    relay();
}}
"#
    );
    let file = dir.join("sbc.route");
    std::fs::write(&file, route).unwrap();
    let control = dir.join("control.sock");
    let proc = sipc_run(&file, &["--control", control.to_str().unwrap()], None);
    wait_started(&control);
    Proxy { addr: format!("127.0.0.1:{port}").parse().unwrap(), control, dir, _proc: proc }
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(m.as_bytes()).into_owned()
}

/// Asserts `m` carries nothing of the other side: its address, its
/// Call-ID.
fn hides(m: &Message, other_ip: &str, other_call_id: &str) {
    let t = text(m);
    assert!(!t.contains(other_ip), "{other_ip} leaked:\n{t}");
    assert!(!t.contains(other_call_id), "Call-ID {other_call_id} leaked:\n{t}");
}

async fn recv(ua: &UdpUa, what: &str) -> Message {
    ua.recv().await.unwrap_or_else(|| panic!("no {what} within 3 s")).0
}

fn call_id(m: &Message) -> String {
    m.call_id().unwrap().unwrap().to_owned()
}

/// The first Record-Route or Contact URI of `m`.
fn first_uri(m: &Message, name: HeaderName) -> String {
    let v = m.header_value(name).unwrap();
    sipc::dialog::uri_of(v.split(',').next().unwrap()).to_owned()
}

/// A reply of a UAS to `req`: its Via, From, Call-ID, CSeq and
/// Record-Route copied, a To tag, and its own Contact.
fn answer(req: &Message, code: u16, reason: &str, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        let name = req.name_of(h);
        let value = req.value_of(h);
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => {
                out += &format!("{name}: {value}\r\n")
            }
            "To" if value.contains("tag=") => out += &format!("To: {value}\r\n"),
            "To" => out += &format!("To: {value};tag=callee1\r\n"),
            _ => {}
        }
    }
    if code > 100 && code < 300 {
        out += &format!("Contact: <{contact}>\r\n");
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A request from `ua` within a dialog, with its own Via.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    ua: &UdpUa,
    method: &str,
    ruri: &str,
    route: &[String],
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    branch: &str,
) -> String {
    let mut out =
        format!("{method} {ruri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n", ua.via(branch));
    for r in route {
        out += &format!("Route: <{r}>\r\n");
    }
    out + &format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The initial INVITE of `ua`: its Contact, and a Record-Route of the
/// proxy in front of it (the phone's own address stands for it).
fn invite(ua: &UdpUa, call_id: &str, callee: &str) -> String {
    format!(
        "INVITE sip:{callee}@sbc.example.com SIP/2.0\r\nVia: {}\r\n\
         Record-Route: <sip:{};lr>\r\nMax-Forwards: 70\r\n\
         From: <sip:caller@sbc.example.com>;tag=caller1\r\nTo: <sip:{callee}@sbc.example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{}>\r\nContent-Length: 0\r\n\r\n",
        ua.via("inv1"),
        ua.addr,
        ua.addr
    )
}

fn live_dialogs(control: &std::path::Path) -> String {
    let status = sipc_status(control);
    status.lines().find(|l| l.starts_with("dialogs:")).unwrap_or("").to_owned()
}

/// One answered call from `caller` to `callee`, ended by a BYE from
/// `hangup_by_callee`'s side, every message checked on arrival.
async fn call(proxy: &Proxy, caller: &UdpUa, callee: &UdpUa, hangup_by_callee: bool) {
    let caller_ip = caller.addr.ip().to_string();
    let callee_ip = callee.addr.ip().to_string();
    let caller_cid = format!("call-{}@{caller_ip}", caller.addr.port());
    caller.send(proxy.addr, &invite(caller, &caller_cid, "bob")).await;
    let _trying = recv(caller, "100 Trying").await;

    // The callee sees only the proxy.
    let inv = recv(callee, "INVITE").await;
    hides(&inv, &caller_ip, &caller_cid);
    let callee_cid = call_id(&inv);
    assert_eq!(inv.vias().count(), 1, "only the proxy's Via:\n{}", text(&inv));
    assert_eq!(inv.record_routes().count(), 1, "only the proxy's Record-Route");
    let proxy_contact = first_uri(&inv, HeaderName::Contact);
    let callee_contact = format!("sip:bob@{}", callee.addr);
    callee.send(proxy.addr, &answer(&inv, 180, "Ringing", &callee_contact)).await;
    let ringing = recv(caller, "180").await;
    hides(&ringing, &callee_ip, &callee_cid);
    assert_eq!(call_id(&ringing), caller_cid);
    callee.send(proxy.addr, &answer(&inv, 200, "OK", &callee_contact)).await;

    // The caller's reply has its own Vias, Call-ID and route set back.
    let ok = recv(caller, "200").await;
    hides(&ok, &callee_ip, &callee_cid);
    assert_eq!(call_id(&ok), caller_cid);
    assert_eq!(ok.via().unwrap().unwrap().branch(), Some("z9hG4bKinv1"));
    let rr: Vec<String> = ok.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    assert_eq!(rr.len(), 2, "the proxy's entry and the caller side's: {rr:?}");
    assert_eq!(rr[1], format!("sip:{};lr", caller.addr));
    let to = ok.header_value(HeaderName::To).unwrap().to_owned();
    let from = "<sip:caller@sbc.example.com>;tag=caller1".to_owned();
    let caller_sees = first_uri(&ok, HeaderName::Contact);
    assert!(caller_sees.contains("127.0.0.1"), "the proxy's Contact: {caller_sees}");

    // The ACK, as the caller's side sends it past its own proxy: to the
    // proxy's Record-Route entry, for the proxy's Contact.
    let route_to_proxy = vec![rr[0].clone()];
    let ack =
        in_dialog(caller, "ACK", &caller_sees, &route_to_proxy, &from, &to, &caller_cid, 1, "ack1");
    caller.send(proxy.addr, &ack).await;
    let ack = recv(callee, "ACK").await;
    hides(&ack, &caller_ip, &caller_cid);
    assert_eq!(ack.request_uri_str(), Some(callee_contact.as_str()));
    assert_eq!(call_id(&ack), callee_cid);
    assert_eq!(ack.vias().count(), 1);
    assert!(live_dialogs(&proxy.control).contains("1 live"), "{}", live_dialogs(&proxy.control));

    let callee_route: Vec<String> =
        inv.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    if hangup_by_callee {
        let bye = in_dialog(
            callee,
            "BYE",
            &proxy_contact,
            &callee_route,
            &to,
            &from,
            &callee_cid,
            1,
            "bye1",
        );
        callee.send(proxy.addr, &bye).await;
        let bye = recv(caller, "BYE").await;
        hides(&bye, &callee_ip, &callee_cid);
        assert_eq!(bye.request_uri_str(), Some(format!("sip:caller@{}", caller.addr).as_str()));
        assert_eq!(call_id(&bye), caller_cid);
        let routes: Vec<String> = bye.routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(routes, [format!("sip:{};lr", caller.addr)], "the caller side's route set");
        caller.send(proxy.addr, &answer(&bye, 200, "OK", "")).await;
        let done = recv(callee, "200 to the BYE").await;
        hides(&done, &caller_ip, &caller_cid);
        assert_eq!(call_id(&done), callee_cid);
        assert_eq!(done.via().unwrap().unwrap().branch(), Some("z9hG4bKbye1"));
    } else {
        let bye = in_dialog(
            caller,
            "BYE",
            &caller_sees,
            &route_to_proxy,
            &from,
            &to,
            &caller_cid,
            2,
            "bye2",
        );
        caller.send(proxy.addr, &bye).await;
        let bye = recv(callee, "BYE").await;
        hides(&bye, &caller_ip, &caller_cid);
        assert_eq!(call_id(&bye), callee_cid);
        assert_eq!(bye.request_uri_str(), Some(callee_contact.as_str()));
        callee.send(proxy.addr, &answer(&bye, 200, "OK", "")).await;
        let done = recv(caller, "200 to the BYE").await;
        hides(&done, &callee_ip, &callee_cid);
        assert_eq!(call_id(&done), caller_cid);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !live_dialogs(&proxy.control).contains("0 live") {
        assert!(std::time::Instant::now() < deadline, "{}", live_dialogs(&proxy.control));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_side_of_a_call_sees_the_other() {
    let inside = UdpUa::bind_at(&format!("{INSIDE}:0")).await;
    let outside = UdpUa::bind_at(&format!("{OUTSIDE}:0")).await;
    let proxy = start("calls", inside.addr, outside.addr);
    // Inside calls out; the outside hangs up. Then the other way round,
    // and the caller hangs up.
    call(&proxy, &inside, &outside, true).await;
    call(&proxy, &outside, &inside, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_ringing_stays_hidden() {
    let inside = UdpUa::bind_at(&format!("{INSIDE}:0")).await;
    let outside = UdpUa::bind_at(&format!("{OUTSIDE}:0")).await;
    let proxy = start("cancel", inside.addr, outside.addr);
    let cid = "cancelled@127.0.0.2";
    let inv = invite(&inside, cid, "carol");
    inside.send(proxy.addr, &inv).await;
    let _trying = recv(&inside, "100 Trying").await;
    let got = recv(&outside, "INVITE").await;
    hides(&got, INSIDE, cid);
    outside
        .send(proxy.addr, &answer(&got, 180, "Ringing", &format!("sip:carol@{}", outside.addr)))
        .await;
    let _ringing = recv(&inside, "180").await;

    // The CANCEL repeats the INVITE's Via branch, Call-ID and CSeq.
    let cancel = inv
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(&format!("Record-Route: <sip:{};lr>\r\n", inside.addr), "")
        .replace(&format!("Contact: <sip:caller@{}>\r\n", inside.addr), "");
    inside.send(proxy.addr, &cancel).await;
    let ok = recv(&inside, "200 to the CANCEL").await;
    assert_eq!((ok.status(), call_id(&ok).as_str()), (Some(200), cid));
    let c = recv(&outside, "CANCEL").await;
    hides(&c, INSIDE, cid);
    assert_eq!(c.method_str(), Some("CANCEL"));
    assert_eq!(call_id(&c), call_id(&got), "the CANCEL names the INVITE it cancels");
    assert_eq!(c.via().unwrap().unwrap().branch(), got.via().unwrap().unwrap().branch());
    outside.send(proxy.addr, &answer(&c, 200, "OK", "")).await;
    outside.send(proxy.addr, &answer(&got, 487, "Request Terminated", "")).await;
    let terminated = recv(&inside, "487").await;
    assert_eq!(terminated.status(), Some(487));
    hides(&terminated, OUTSIDE, &call_id(&got));
    assert_eq!(call_id(&terminated), cid);
    // The proxy acknowledges the 487 on its own branch.
    let ack = recv(&outside, "ACK of the 487").await;
    assert_eq!(ack.method_str(), Some("ACK"));
    hides(&ack, INSIDE, cid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_a_dialog_is_hidden_as_a_transaction() {
    let inside = UdpUa::bind_at(&format!("{INSIDE}:0")).await;
    let outside = UdpUa::bind_at(&format!("{OUTSIDE}:0")).await;
    let proxy = start("options", inside.addr, outside.addr);
    let cid = "message-1@127.0.0.2";
    let msg = format!(
        "MESSAGE sip:dave@sbc.example.com SIP/2.0\r\nVia: {}\r\nVia: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bKinner\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@sbc.example.com>;tag=m1\r\nTo: <sip:dave@sbc.example.com>\r\n\
         Call-ID: {cid}\r\nCSeq: 7 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        inside.via("msg1")
    );
    inside.send(proxy.addr, &msg).await;
    let got = recv(&outside, "MESSAGE").await;
    hides(&got, INSIDE, cid);
    assert_eq!(got.vias().count(), 1);
    assert_eq!(&got.body()[..], b"hello");
    outside
        .send(proxy.addr, &answer(&got, 202, "Accepted", &format!("sip:dave@{}", outside.addr)))
        .await;
    let reply = recv(&inside, "202").await;
    hides(&reply, OUTSIDE, &call_id(&got));
    assert_eq!(call_id(&reply), cid);
    let vias: Vec<String> = reply.vias().map(|v| v.unwrap().branch().unwrap().to_owned()).collect();
    assert_eq!(vias, ["z9hG4bKmsg1", "z9hG4bKinner"], "both Vias back, in order");
}
