//! Invalid input: each message must be refused with the error that names what
//! is wrong, never a panic. The proxy answers these with 400 (505, 513).

use bytes::Bytes;
use sipc::sip::{ErrorKind, HeaderName as H, Message, ParseLimits};

/// A valid OPTIONS; cases below break one thing in it.
const BASE: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
Call-ID: base@192.0.2.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn replace(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn outcome(bytes: &[u8], limits: &ParseLimits) -> Result<(), sipc::sip::ParseError> {
    let mut m = Message::parse_with(Bytes::copy_from_slice(bytes), limits)?;
    m.validate()
}

#[test]
fn base_message_is_valid() {
    outcome(BASE.as_bytes(), &ParseLimits::default()).unwrap();
}

/// Request-URIs of any scheme without a host are still valid ones.
#[test]
fn tel_and_other_request_uris_are_valid() {
    for uri in ["tel:+1-201-555-0123;phone-context=example.com", "urn:service:sos"] {
        let text = replace("OPTIONS sip:bob@example.com SIP", &format!("OPTIONS {uri} SIP"));
        outcome(text.as_bytes(), &ParseLimits::default()).unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
}

#[test]
fn invalid_messages_are_refused_with_the_right_error() {
    use ErrorKind::*;
    let long_header = format!("X-Long: {}\r\n", "a".repeat(20_000));
    let many_headers: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, String, ErrorKind)> = vec![
        ("empty", String::new(), Empty),
        ("only crlf", "\r\n\r\n".into(), Empty),
        ("no header end", BASE.trim_end().to_owned(), Truncated),
        ("request line only", "OPTIONS sip:a@b SIP/2.0".into(), Truncated),
        ("double space in request line", replace("OPTIONS sip", "OPTIONS  sip"), BadRequestLine),
        (
            "trailing space in request line",
            replace("SIP/2.0\r\nVia", "SIP/2.0 \r\nVia"),
            BadRequestLine,
        ),
        ("no version", replace(" SIP/2.0\r\nVia", "\r\nVia"), BadRequestLine),
        (
            "uri in angle brackets",
            replace("sip:bob@example.com SIP", "<sip:bob@example.com> SIP"),
            BadRequestLine,
        ),
        ("method with bad char", replace("OPTIONS sip", "OPT(IONS sip"), BadRequestLine),
        // Found by the fuzzer: slicing a str at byte 4 inside a multi-byte character.
        ("multi-byte version", replace("SIP/2.0\r\nVia", "SIPơ.0\r\nVia"), BadRequestLine),
        ("version 3.0", replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"), UnsupportedVersion),
        ("status code too long", "SIP/2.0 4294967301 Huge\r\n\r\n".into(), BadStatusLine),
        ("status code 99", "SIP/2.0 099 Low\r\n\r\n".into(), BadStatusLine),
        ("status code letters", "SIP/2.0 2OO OK\r\n\r\n".into(), BadStatusLine),
        ("response version", "SIP/1.0 200 OK\r\n\r\n".into(), UnsupportedVersion),
        ("header without colon", replace("Max-Forwards: 70", "Max-Forwards 70"), BadHeaderLine),
        ("header name with space", replace("Max-Forwards: 70", "Max Forwards: 70"), BadHeaderLine),
        ("fold before any header", replace("SIP/2.0\r\nVia", "SIP/2.0\r\n Via"), FoldWithoutHeader),
        // Built below: a raw 0xFF byte cannot be written in a `String`.
        ("not utf-8", String::new(), NotUtf8),
        (
            "content-length too big",
            replace("Content-Length: 0", "Content-Length: 10"),
            BadContentLength,
        ),
        (
            "negative content-length",
            replace("Content-Length: 0", "Content-Length: -1"),
            BadContentLength,
        ),
        (
            "content-length text",
            replace("Content-Length: 0", "Content-Length: zero"),
            BadContentLength,
        ),
        (
            "two content-lengths",
            replace("Content-Length: 0", "Content-Length: 0\r\nl: 0"),
            DuplicateHeader(H::ContentLength),
        ),
        (
            "missing via",
            replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase\r\n", ""),
            MissingHeader(H::Via),
        ),
        ("missing to", replace("To: <sip:bob@example.com>\r\n", ""), MissingHeader(H::To)),
        (
            "missing from",
            replace("From: <sip:alice@example.com>;tag=a1\r\n", ""),
            MissingHeader(H::From),
        ),
        ("missing call-id", replace("Call-ID: base@192.0.2.1\r\n", ""), MissingHeader(H::CallId)),
        ("missing cseq", replace("CSeq: 1 OPTIONS\r\n", ""), MissingHeader(H::CSeq)),
        (
            "two froms",
            replace("Call-ID", "f: <sip:x@y>;tag=2\r\nCall-ID"),
            DuplicateHeader(H::From),
        ),
        ("two call-ids", replace("CSeq", "i: other\r\nCSeq"), DuplicateHeader(H::CallId)),
        (
            "two max-forwards",
            replace("To:", "Max-Forwards: 69\r\nTo:"),
            DuplicateHeader(H::MaxForwards),
        ),
        ("cseq method mismatch", replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), CSeqMethodMismatch),
        (
            "cseq overflow",
            replace("CSeq: 1 OPTIONS", "CSeq: 36893488147419103232 OPTIONS"),
            BadHeader(H::CSeq),
        ),
        ("cseq without method", replace("CSeq: 1 OPTIONS", "CSeq: 1"), BadHeader(H::CSeq)),
        (
            "max-forwards 300",
            replace("Max-Forwards: 70", "Max-Forwards: 300"),
            BadHeader(H::MaxForwards),
        ),
        (
            "max-forwards negative",
            replace("Max-Forwards: 70", "Max-Forwards: -1"),
            BadHeader(H::MaxForwards),
        ),
        ("empty params in via", replace(";branch=z9hG4bKbase", ";;,;,,"), BadHeader(H::Via)),
        ("via without transport", replace("SIP/2.0/UDP 192", "SIP/2.0 192"), BadHeader(H::Via)),
        ("via bad port", replace("192.0.2.1:5060", "192.0.2.1:70000"), BadHeader(H::Via)),
        (
            "via empty value",
            replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase", "Via:"),
            BadHeader(H::Via),
        ),
        (
            "unterminated display name",
            replace("To: <sip:bob", "To: \"Bob <sip:bob"),
            UnterminatedQuote,
        ),
        ("to without uri", replace("To: <sip:bob@example.com>", "To: bob"), BadHeader(H::To)),
        (
            "from with junk after uri",
            replace("From: <sip:alice@example.com>;tag=a1", "From: <sip:alice@example.com> junk"),
            BadHeader(H::From),
        ),
        (
            "call-id with space",
            replace("Call-ID: base@192.0.2.1", "Call-ID: base @192.0.2.1"),
            BadHeader(H::CallId),
        ),
        (
            "request-uri with space-less garbage",
            replace("sip:bob@example.com SIP", "sip:bob@exa_mple.com SIP"),
            BadUri,
        ),
        (
            "request-uri with headers",
            replace("sip:bob@example.com SIP", "sip:bob@example.com?Route=%3Csip:x%3E SIP"),
            BadUri,
        ),
        (
            "request-uri without scheme",
            replace("sip:bob@example.com SIP", "bob@example.com SIP"),
            BadUri,
        ),
        (
            "expires overflow",
            replace("Content-Length", "Expires: 4294967296\r\nContent-Length"),
            BadHeader(H::Expires),
        ),
        (
            "route without brackets closing",
            replace("Content-Length", "Route: <sip:p1.example.com;lr\r\nContent-Length"),
            BadHeader(H::Route),
        ),
        (
            "header too long",
            replace("Content-Length", &format!("{long_header}Content-Length")),
            HeaderTooLong,
        ),
        (
            "too many headers",
            replace("Content-Length", &format!("{many_headers}Content-Length")),
            TooManyHeaders,
        ),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, text, want) in &cases {
        let bytes: Vec<u8> = if *name == "not utf-8" {
            BASE.replacen("Call-ID: base", "Call-ID: b\u{0}ase", 1)
                .into_bytes()
                .into_iter()
                .map(|b| if b == 0 { 0xff } else { b })
                .collect()
        } else {
            text.clone().into_bytes()
        };
        match outcome(&bytes, &ParseLimits::default()) {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(e) if e.kind != *want => {
                failures.push(format!("{name}: got {:?} ({e}), want {want:?}", e.kind))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn size_limit_is_a_setting() {
    let small = ParseLimits { max_message_size: 100, ..ParseLimits::default() };
    let e = outcome(BASE.as_bytes(), &small).unwrap_err();
    assert_eq!((e.kind, e.status_code()), (ErrorKind::TooLarge, 513));
    outcome(BASE.as_bytes(), &ParseLimits { max_message_size: BASE.len(), ..small }).unwrap();
}

#[test]
fn errors_say_where() {
    let text = replace("Max-Forwards: 70", "Max-Forwards: 300");
    let e = outcome(text.as_bytes(), &ParseLimits::default()).unwrap_err();
    assert_eq!(&text[e.offset..e.offset + 3], "300");
    assert_eq!(e.to_string(), format!("malformed Max-Forwards header at byte {}", e.offset));
}
