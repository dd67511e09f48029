//! Editing and serializing: what a proxy does to a message on its way
//! through, checked by parsing the result again.

use std::path::Path;

use bytes::Bytes;
use sipc::sip::{EditedMessage, HeaderName, Message};

fn load(name: &str) -> Message {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip").join(name);
    Message::parse(Bytes::from(std::fs::read(path).unwrap())).unwrap()
}

fn reparse(e: &EditedMessage) -> Message {
    let out = e.serialize();
    let mut m = Message::parse(out.clone()).unwrap_or_else(|err| {
        panic!("{err}\n{}", String::from_utf8_lossy(&out));
    });
    m.validate().unwrap();
    assert_eq!(m.as_bytes().len(), out.len(), "no trailing bytes");
    m
}

#[test]
fn no_edits_is_the_received_buffer() {
    let m = load("invite_sdp.sip");
    let e = EditedMessage::new(m.clone());
    assert!(e.is_unchanged());
    let out = e.serialize();
    assert_eq!(out, m.as_bytes());
    assert_eq!(out.as_ptr(), m.as_bytes().as_ptr(), "no copy when nothing changed");
}

#[test]
fn a_proxy_forwarding_an_invite() {
    let m = load("invite_sdp.sip");
    let mut e = EditedMessage::new(m.clone());
    e.set_request_uri("sip:+4930123456@192.0.2.50:5060");
    e.insert_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1");
    e.insert_first("Record-Route", "<sip:192.0.2.1;lr>");
    e.set_header("Max-Forwards", "69");
    let out = reparse(&e);
    assert_eq!(out.request_uri_str(), Some("sip:+4930123456@192.0.2.50:5060"));
    let vias: Vec<_> = out.vias().map(|v| v.unwrap().branch().unwrap().to_owned()).collect();
    assert_eq!(vias, ["z9hG4bKproxy1", "z9hG4bK-524287-1---77ba8a1f2c3d4e5f"]);
    assert_eq!(out.record_routes().next().unwrap().unwrap().uri.raw(), "sip:192.0.2.1;lr");
    assert_eq!(out.max_forwards().unwrap(), Some(69));
    assert_eq!(out.header_count(HeaderName::MaxForwards), 1);
    assert_eq!(out.body(), m.body());
    assert_eq!(out.content_length(), Some(m.body_len() as u32));
    // Everything not edited is carried over verbatim, in order.
    for name in ["Contact", "To", "From", "Call-ID", "CSeq", "Allow", "User-Agent"] {
        let a: Vec<_> = m.headers_named(name).map(|h| m.value_of(h)).collect();
        let b: Vec<_> = out.headers_named(name).map(|h| out.value_of(h)).collect();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn record_route_goes_above_existing_ones() {
    let m = load("ringing_180.sip");
    let mut e = EditedMessage::new(m);
    e.insert_first("Record-Route", "<sip:edge.example.com;lr>");
    let out = reparse(&e);
    let rr: Vec<_> = out.record_routes().map(|r| r.unwrap().uri.host_str).collect();
    assert_eq!(rr, ["edge.example.com", "pbx.example.com"]);
}

#[test]
fn response_loses_its_top_via_even_when_it_shares_a_line() {
    let m = load("multi_via.sip");
    let mut e = EditedMessage::new(m);
    let removed = e.remove_first_value("Via").unwrap();
    assert!(removed.contains("proxy1.example.com"));
    let out = reparse(&e);
    let hosts: Vec<_> = out.vias().map(|v| v.unwrap().host.to_string()).collect();
    assert_eq!(hosts, ["proxy2.example.com", "192.0.2.9", "ua.example.com"]);
    let mut e = EditedMessage::new(out);
    for _ in 0..2 {
        e.remove_first_value("v").unwrap();
    }
    let out = reparse(&e);
    assert_eq!(out.vias().count(), 1);
    assert_eq!(out.via().unwrap().unwrap().transport, "TLS");
}

/// What is left of a shared line keeps every value but the empty ones; a
/// quoted comma is not a separator.
#[test]
fn the_rest_of_a_shared_line_keeps_every_value_and_drops_empty_ones() {
    for (vias, first, rest) in [
        ("SIP/2.0/UDP p1;branch=z9hG4bK1 ,SIP/2.0/UDP p2;branch=z9hG4bK2", "p1", vec!["p2"]),
        ("SIP/2.0/UDP p1;branch=z9hG4bK1, , SIP/2.0/UDP p2;branch=z9hG4bK2,", "p1", vec!["p2"]),
        (
            "SIP/2.0/UDP p1;branch=z9hG4bK1,SIP/2.0/UDP p2;x=\"a,b\";branch=z9hG4bK2, SIP/2.0/UDP p3",
            "p1",
            vec!["p2", "p3"],
        ),
        ("SIP/2.0/UDP p1;branch=z9hG4bK1,", "p1", vec![]),
    ] {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: {vias}\r\nVia: SIP/2.0/UDP ua;branch=z9hG4bKu\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let mut e = EditedMessage::new(Message::parse(Bytes::from(text)).unwrap());
        let removed = e.remove_first_value("Via").unwrap();
        assert!(removed.contains(first), "{vias}");
        let out = reparse(&e);
        let hosts: Vec<String> = out.vias().map(|v| v.unwrap().host.to_string()).collect();
        let mut want: Vec<String> = rest.iter().map(|h| h.to_string()).collect();
        want.push("ua".into());
        assert_eq!(hosts, want, "{vias}");
    }
}

#[test]
fn loose_routing_pops_the_top_route() {
    let m = load("ack_in_dialog.sip");
    let mut e = EditedMessage::new(m);
    assert!(e.remove_first_value("Route").unwrap().contains("pbx.example.com"));
    assert!(e.remove_first_value("Route").is_none());
    let out = reparse(&e);
    assert_eq!(out.routes().count(), 0);
}

#[test]
fn new_body_recomputes_content_length_and_type() {
    let m = load("compact.sip");
    let mut e = EditedMessage::new(m);
    e.set_body(Bytes::from_static(b"<xml/>"), Some("application/xml"));
    let out = reparse(&e);
    assert_eq!(&out.body()[..], b"<xml/>");
    assert_eq!(out.content_length(), Some(6));
    assert_eq!(out.content_type(), Some("application/xml"));
    assert_eq!(out.header_count(HeaderName::ContentType), 1);
    // The compact name as written is kept for the rewritten header.
    assert!(out.headers_named("l").any(|h| out.name_of(h) == "l"));

    let mut e = EditedMessage::new(out);
    e.set_body(Bytes::new(), None);
    let out = reparse(&e);
    assert_eq!(out.body_len(), 0);
    assert_eq!(out.content_type(), None);
}

#[test]
fn content_length_is_added_when_missing() {
    let text = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\nhello";
    let m = Message::parse(Bytes::from(text)).unwrap();
    assert_eq!(m.body_len(), 5);
    let mut e = EditedMessage::new(m);
    e.append("X-Proxy", "sipc");
    let out = reparse(&e);
    assert_eq!(out.content_length(), Some(5));
    assert_eq!(out.header_value(HeaderName::Other), Some("sipc"));
}

#[test]
fn remove_all_and_append() {
    let m = load("invite_sdp.sip");
    let mut e = EditedMessage::new(m);
    e.append("X-Trace", "1");
    assert_eq!(e.remove_all("ALLOW"), 1);
    assert_eq!(e.remove_all("x-trace"), 0, "only received lines are counted");
    e.append("P-Asserted-Identity", "<sip:+4930999@example.com>");
    let out = reparse(&e);
    assert_eq!(out.header_count(HeaderName::Allow), 0);
    assert_eq!(out.headers_named("X-Trace").count(), 0);
    assert_eq!(out.headers_named("p-asserted-identity").count(), 1);
    let last = out.headers().last().unwrap();
    assert_eq!(out.name_of(last), "P-Asserted-Identity", "appended after all others");
}
