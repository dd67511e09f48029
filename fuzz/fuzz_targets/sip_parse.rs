//! Arbitrary bytes through everything the proxy does to a received message:
//! stream framing, parsing, validation, every typed view, SDP, edits and
//! re-serialization. Nothing may panic; an edited message must re-parse.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sipc::sip::{EditedMessage, Message, ParseLimits, Sdp};

fuzz_target!(|data: &[u8]| {
    // The one-pass URI path and the general parser agree on any text.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(sipc::sip::Uri::parse(text), sipc::sip::Uri::parse_general(text), "{text:?}");
    }
    let _ = sipc::sip::frame_stream(data, &Default::default());
    let Ok(mut msg) = Message::parse(Bytes::copy_from_slice(data)) else { return };
    let fresh = msg.clone();
    let valid = msg.validate().is_ok();
    if valid {
        // What validation kept answers as parsing it again does.
        assert_eq!(msg.via(), fresh.via());
        assert_eq!(msg.next_via(), fresh.next_via());
        assert_eq!(msg.request_uri_parts(), fresh.request_uri_parts());
        assert_eq!(msg.max_forwards(), fresh.max_forwards());
        assert_eq!((msg.to_tag(), msg.from_tag()), (fresh.to_tag(), fresh.from_tag()));
    }
    let _ = sipc::sip::dump::render(&msg);
    let _ = msg.request_uri();
    for r in msg.record_routes().chain(msg.paths()) {
        let _ = r;
    }
    if let Ok(sdp) = Sdp::parse(&msg.body()) {
        let _ = sdp.connection();
        for m in sdp.media() {
            let _ = (m.connection(), m.attributes().count());
        }
    }
    let mut e = EditedMessage::new(msg.clone());
    assert_eq!(e.serialize(), msg.as_bytes());
    e.remove_first_value("Via");
    e.remove_first_value("Route");
    e.insert_first("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz");
    e.insert_first("Record-Route", "<sip:192.0.2.1;lr>");
    e.set_header("Max-Forwards", "69");
    if msg.is_request() {
        e.set_request_uri("sip:fuzz@192.0.2.2");
    }
    let out = e.serialize();
    // Edits add headers and bytes: re-parse with room for them.
    let roomy = ParseLimits { max_headers: 1024, max_message_size: 1 << 20, max_header_len: 1 << 20 };
    let reparsed = Message::parse_with(out, &roomy).expect("an edited message re-parses");
    if valid {
        // The inserted Via and the headers the proxy typed are still typed.
        assert!(reparsed.via().is_ok_and(|v| v.is_some()));
        assert!(reparsed.cseq().is_ok());
    }
});
