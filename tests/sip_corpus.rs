//! A corpus of real-world-shaped messages (tests/data/sip): every one must
//! parse, validate, serialize back byte-for-byte, and type the way a proxy
//! reads it. One test per message, so a failure names the message.

use std::path::Path;

use bytes::Bytes;
use sipc::sip::{Contact, HeaderName, Host, Message, Method, Scheme, Sdp};

fn load(name: &str) -> Message {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip").join(name);
    let bytes = Bytes::from(std::fs::read(&path).unwrap());
    let mut msg = Message::parse(bytes.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    msg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(msg.as_bytes(), &bytes, "{name}: the message is the whole file");
    assert_eq!(sipc::sip::EditedMessage::new(msg.clone()).serialize(), bytes, "{name}: round trip");
    msg
}

#[test]
fn every_file_in_the_corpus_parses_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        load(&name);
        n += 1;
    }
    assert!(n >= 15, "corpus has {n} messages");
}

#[test]
fn invite_with_sdp() {
    let m = load("invite_sdp.sip");
    assert_eq!(m.method(), Some(Method::Invite));
    let ruri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        (ruri.scheme, ruri.user, ruri.host_str),
        (Scheme::Sip, Some("+4930123456"), "pbx.example.com")
    );
    assert_eq!(ruri.params.get("user"), Some(Some("phone")));
    let via = m.via().unwrap().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK-524287-1---77ba8a1f2c3d4e5f"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.port, Some(5060));
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.display, Some("\"Alice Liddell\""));
    assert_eq!(from.tag(), Some("8d2c4f1e"));
    assert_eq!(m.to().unwrap().unwrap().tag(), None);
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.cseq().unwrap().unwrap().seq, 1);
    assert_eq!(m.list_values(HeaderName::Allow).count(), 10);
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert_eq!(m.header_value(HeaderName::UserAgent), Some("Zoiper rv2.10.8.2"));
    let body = m.body();
    let sdp = Sdp::parse(&body).unwrap();
    assert_eq!(sdp.connection().unwrap().address, "198.51.100.7");
    let audio = sdp.media().next().unwrap();
    assert_eq!((audio.kind, audio.port, audio.formats), ("audio", 49170, "0 8 101"));
    assert_eq!(audio.attributes().filter(|(n, _)| *n == "rtpmap").count(), 3);
    assert_eq!(m.body_len() as u32, m.content_length().unwrap());
}

#[test]
fn register_with_several_contacts_and_path() {
    let m = load("register_contacts.sip");
    let contacts: Vec<_> = m.contacts().map(Result::unwrap).collect();
    assert_eq!(contacts.len(), 3);
    let Contact::Addr(first) = contacts[0] else { panic!("star") };
    assert_eq!(first.uri.transport(), Some("tcp"));
    assert_eq!((contacts[0].q(), contacts[0].expires()), (Some(700), Some(3600)));
    assert_eq!(
        first.params.get("+sip.instance"),
        Some(Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""))
    );
    assert_eq!(first.params.get("reg-id"), Some(Some("1")));
    let Contact::Addr(second) = contacts[1] else { panic!("star") };
    assert_eq!(second.display, Some("\"Bob Mobile\""));
    assert_eq!(contacts[1].q(), Some(1000));
    assert_eq!(contacts[2].expires(), Some(60));
    assert_eq!(m.expires().unwrap(), Some(7200));
    let paths: Vec<_> = m.paths().map(|p| p.unwrap().uri.host_str).collect();
    assert_eq!(paths, ["edge1.example.com", "edge2.example.com"]);
    assert_eq!(m.via().unwrap().unwrap().transport, "TCP");
}

#[test]
fn responses() {
    let t = load("trying_100.sip");
    assert_eq!((t.status(), t.reason()), (Some(100), Some("Trying")));
    assert_eq!(t.vias().count(), 2);
    let r = load("ringing_180.sip");
    assert_eq!(r.status(), Some(180));
    assert_eq!(r.to().unwrap().unwrap().tag(), Some("as6f1b2c3d"));
    let rr = r.record_routes().next().unwrap().unwrap();
    assert!(rr.uri.is_loose_router());
    assert_eq!(rr.uri.params.get("ftag"), Some(Some("8d2c4f1e")));
    let vias: Vec<_> = r.vias().map(Result::unwrap).collect();
    assert_eq!(vias[0].received(), Some("192.0.2.10"));
    assert_eq!(vias[1].rport(), Some(Some(5060)));
    let ok = load("ok_200_sdp.sip");
    assert_eq!(ok.reason(), Some("OK"));
    assert_eq!(Sdp::parse(&ok.body()).unwrap().connection().unwrap().address, "192.0.2.50");
    let auth = load("unauthorized_401.sip");
    assert_eq!(auth.status(), Some(401));
    assert_eq!(auth.header_count(HeaderName::WwwAuthenticate), 2);
    assert!(auth.header_value(HeaderName::WwwAuthenticate).unwrap().contains("SHA-256"));
    let t487 = load("terminated_487.sip");
    assert_eq!((t487.status(), t487.reason()), (Some(487), Some("Request Terminated")));
    assert_eq!(t487.cseq().unwrap().unwrap().method, "INVITE");
}

#[test]
fn compact_forms() {
    let m = load("compact.sip");
    assert_eq!(m.method(), Some(Method::Message));
    assert_eq!(m.call_id().unwrap(), Some("compact.0123@192.0.2.1"));
    assert_eq!(m.from().unwrap().unwrap().tag(), Some("49583"));
    assert_eq!(m.contacts().count(), 1);
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.header_value(HeaderName::Subject), Some("lunch?"));
    assert_eq!(m.header_value(HeaderName::Event), Some("presence"));
    assert_eq!(m.header_value(HeaderName::Supported), Some("100rel"));
    assert_eq!(m.headers_named("Content-Length").count(), 1);
    assert_eq!(&m.body()[..], "Ist das Essen da?\n".as_bytes());
}

#[test]
fn ipv6_everywhere() {
    let m = load("ipv6.sip");
    let ruri = m.request_uri().unwrap().unwrap();
    assert_eq!(ruri.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
    assert_eq!(ruri.port, Some(5070));
    let via = m.via().unwrap().unwrap();
    assert_eq!(via.host.to_string(), "[2001:db8::9]");
    let route = m.routes().next().unwrap().unwrap();
    assert_eq!(route.uri.host, Some(Host::V6("2001:db8::1".parse().unwrap())));
    assert_eq!(m.from().unwrap().unwrap().uri.host_str, "[2001:db8::9]");
}

#[test]
fn folded_headers() {
    let m = load("folded.sip");
    assert_eq!(m.via().unwrap().unwrap().branch(), Some("z9hG4bKfold1"));
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.to().unwrap().unwrap().tag(), Some("bobtag"));
    assert_eq!(m.cseq().unwrap().unwrap().method, "BYE");
    assert!(m.header_value(HeaderName::Subject).unwrap().ends_with("next line"));
}

#[test]
fn escaped_uris() {
    let m = load("escaped_uri.sip");
    let ruri = m.request_uri().unwrap().unwrap();
    assert_eq!(ruri.user, Some("sips%3Auser%40example.com"));
    assert_eq!(&*sipc::sip::scan::percent_decode(ruri.user.unwrap()), b"sips:user@example.com");
    assert_eq!(ruri.maddr(), Some("192.0.2.2"));
    assert_eq!(m.to().unwrap().unwrap().uri.user, Some("%61lice"));
    assert_eq!(m.from().unwrap().unwrap().display, Some("\"%20weird \\\"name\\\"\""));
}

#[test]
fn several_vias_on_one_line() {
    let m = load("multi_via.sip");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 4);
    assert_eq!(vias.iter().map(|v| v.transport).collect::<Vec<_>>(), ["UDP", "TCP", "UDP", "TLS"]);
    assert_eq!(vias[1].port, Some(5080));
    assert_eq!(vias[2].rport(), Some(Some(5999)));
    assert_eq!(vias[3].port_or_default(), 5061);
}

#[test]
fn other_methods_and_schemes() {
    assert_eq!(load("cancel.sip").method(), Some(Method::Cancel));
    let ack = load("ack_in_dialog.sip");
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.routes().count(), 1);
    let sub = load("tel_subscribe.sip");
    let ruri = sub.request_uri().unwrap().unwrap();
    assert_eq!((ruri.scheme, ruri.user), (Scheme::Tel, Some("+1-201-555-0123")));
    assert_eq!(sub.via().unwrap().unwrap().transport, "WSS");
    assert_eq!(sub.from().unwrap().unwrap().display, Some("\"Ünïcödé Üser\""));
    let star = load("register_star.sip");
    assert_eq!(star.contacts().next().unwrap().unwrap(), Contact::Star);
    let lf = load("lf_only.sip");
    assert_eq!(lf.method(), Some(Method::Cancel));
    assert_eq!(lf.call_id().unwrap(), load("cancel.sip").call_id().unwrap());
}
