//! Property tests: generated messages parse to what they were built from and
//! serialize back byte-for-byte; edited messages re-parse; arbitrary and
//! mutated bytes never panic.

use bytes::Bytes;
use proptest::prelude::*;
use sipc::sip::{EditedMessage, HeaderName, Message};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

/// A header value: printable text, sometimes folded onto a second line.
fn value() -> impl Strategy<Value = String> {
    ("[!-~][ -~]{0,40}", proptest::option::of("[!-~][ -~]{0,20}")).prop_map(|(a, b)| {
        let a = a.trim_end().to_owned();
        match b {
            Some(b) => format!("{a}\r\n  {}", b.trim_end()),
            None => a,
        }
    })
}

#[derive(Debug, Clone)]
struct Generated {
    method: String,
    user: String,
    host: String,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    lf_only: bool,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        prop::sample::select(vec!["INVITE", "OPTIONS", "REGISTER", "BYE", "FOO-BAR"]),
        "[a-z0-9+]{1,10}",
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){1,2}",
        prop::collection::vec((token(), value()), 0..12),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(|(m, user, host, extra, body, lf_only)| Generated {
            method: m.to_owned(),
            user,
            host,
            // Unknown names only, so a generated "To" cannot duplicate a required header.
            extra: extra
                .into_iter()
                .filter(|(n, _)| HeaderName::classify(n) == HeaderName::Other)
                .collect(),
            body,
            lf_only,
        })
}

fn render(g: &Generated) -> Vec<u8> {
    let eol = if g.lf_only { "\n" } else { "\r\n" };
    let mut s = format!("{} sip:{}@{} SIP/2.0{eol}", g.method, g.user, g.host);
    s += &format!("Via: SIP/2.0/UDP {};branch=z9hG4bK{}{eol}", g.host, g.user);
    s += &format!("To: <sip:{}@{}>{eol}From: <sip:x@{}>;tag=1{eol}", g.user, g.host, g.host);
    s += &format!("Call-ID: {}@{}{eol}CSeq: 1 {}{eol}", g.user, g.host, g.method);
    for (n, v) in &g.extra {
        s += &format!("{n}: {}{eol}", v.replace("\r\n", eol));
    }
    s += &format!("Content-Length: {}{eol}{eol}", g.body.len());
    let mut out = s.into_bytes();
    out.extend_from_slice(&g.body);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_then_serialize_is_identity(g in generated()) {
        let bytes = Bytes::from(render(&g));
        let m = Message::parse(bytes.clone()).unwrap();
        prop_assert_eq!(m.as_bytes(), &bytes);
        prop_assert_eq!(EditedMessage::new(m.clone()).serialize(), bytes);
        prop_assert_eq!(m.method_str(), Some(g.method.as_str()));
        prop_assert_eq!(&m.body()[..], &g.body[..]);
        prop_assert_eq!(m.headers().len(), 6 + g.extra.len());
        for (h, (n, v)) in m.headers()[5..].iter().zip(&g.extra) {
            prop_assert_eq!(m.name_of(h), n.as_str());
            let eol = if g.lf_only { "\n" } else { "\r\n" };
            let want = v.replace("\r\n", eol);
            prop_assert_eq!(m.value_of(h), want.trim());
        }
        m.check().unwrap();
    }

    #[test]
    fn edited_messages_reparse(g in generated(), uri in "[a-z]{1,8}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let m = Message::parse(Bytes::from(render(&g))).unwrap();
        let mut e = EditedMessage::new(m);
        e.set_request_uri(format!("sip:{uri}@192.0.2.7:5080"));
        e.insert_first("Via", "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKnew");
        e.insert_first("Record-Route", "<sip:192.0.2.1;lr>");
        e.set_body(Bytes::from(body.clone()), Some("application/octet-stream"));
        let mut out = Message::parse(e.serialize()).unwrap();
        out.validate().unwrap();
        prop_assert_eq!(out.vias().count(), 2);
        prop_assert_eq!(&out.body()[..], &body[..]);
        prop_assert_eq!(out.content_length(), Some(body.len() as u32));
        prop_assert_eq!(out.request_uri().unwrap().unwrap().user, Some(uri.as_str()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(g in generated(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = render(&g);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        exercise(&bytes);
    }
}

/// Parses and, on success, reads everything a proxy might read.
fn exercise(bytes: &[u8]) {
    let _ = sipc::sip::frame_stream(bytes, &Default::default());
    if let Ok(mut m) = Message::parse(Bytes::copy_from_slice(bytes)) {
        let fresh = m.clone();
        if m.validate().is_ok() {
            // What validation kept answers as parsing it again does.
            assert_eq!(m.via(), fresh.via());
            assert_eq!(m.next_via(), fresh.next_via());
            assert_eq!(m.request_uri_parts(), fresh.request_uri_parts());
            assert_eq!(m.max_forwards(), fresh.max_forwards());
            assert_eq!((m.to_tag(), m.from_tag()), (fresh.to_tag(), fresh.from_tag()));
        }
        let _ = sipc::sip::dump::render(&m);
        let mut e = EditedMessage::new(m);
        e.remove_first_value("Via");
        e.set_header("Max-Forwards", "1");
        let _ = Message::parse(e.serialize());
    }
}
