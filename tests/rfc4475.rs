//! The RFC 4475 torture messages, checked at the message layer: the
//! well-formed ones must parse and validate, the ones a proxy must reject must
//! fail (with 505 for the unknown version), and none may panic. The
//! proxy-level outcomes of the manifest (forwarding, 416, 420, 483) are
//! asserted by the proxy's scenario tests.
//!
//! The corpus is kept in tests/data/rfc4475; when the shared copy
//! (../shared/testdata/rfc4475) is present it is checked to be the same.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sipc::sip::{ErrorKind, Message};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

/// `(file, accept, lenient)` from manifest.json, read without a JSON crate:
/// the manifest is generated with one key per line.
fn manifest() -> Vec<(String, Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(corpus().join("manifest.json")).unwrap();
    let mut out = Vec::new();
    let mut file = None;
    let mut accept = None;
    let mut lines = text.lines().map(str::trim).peekable();
    let strings = |first: &str, lines: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        let mut items = Vec::new();
        let mut line = first.to_owned();
        loop {
            for part in line.split('"').skip(1).step_by(2) {
                items.push(part.to_owned());
            }
            if line.contains(']') {
                break;
            }
            line = lines.next().unwrap().to_owned();
        }
        items
    };
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("\"file\": ") {
            file = Some(rest.trim_matches([',', '"']).to_owned());
        } else if let Some(rest) = line.strip_prefix("\"accept\": ") {
            accept = Some(strings(rest, &mut lines));
        } else if let Some(rest) = line.strip_prefix("\"lenient\": ") {
            let lenient = strings(rest, &mut lines);
            out.push((file.take().unwrap(), accept.take().unwrap(), lenient));
        }
    }
    out
}

fn outcome(bytes: &[u8]) -> Result<Message, sipc::sip::ParseError> {
    let mut msg = Message::parse(Bytes::copy_from_slice(bytes))?;
    msg.validate()?;
    Ok(msg)
}

#[test]
fn every_torture_message_meets_its_manifest() {
    let cases = manifest();
    assert_eq!(cases.len(), 50, "manifest lists 50 messages");
    let mut failures = Vec::new();
    for (file, accept, lenient) in &cases {
        let bytes = std::fs::read(corpus().join(file)).unwrap();
        let result = outcome(&bytes);
        let must_reject = lenient.is_empty()
            && accept.iter().any(|a| matches!(a.as_str(), "400" | "505"))
            && accept.iter().all(|a| matches!(a.as_str(), "400" | "505" | "501" | "none"));
        let must_accept =
            accept.iter().any(|a| matches!(a.as_str(), "fwd" | "416" | "420" | "483"))
                && !accept.iter().any(|a| a == "400");
        match (&result, must_accept, must_reject) {
            (Err(e), true, _) => {
                failures.push(format!("{file}: rejected ({e}) but must be accepted"))
            }
            (Ok(_), _, true) => failures.push(format!("{file}: accepted but must be rejected")),
            (Err(e), _, true) if accept.iter().any(|a| a == "505") && e.status_code() != 505 => {
                failures.push(format!("{file}: rejected with {} instead of 505", e.status_code()))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn specific_torture_details() {
    let read = |f: &str| std::fs::read(corpus().join(f)).unwrap();
    // §3.1.1.8: only the REGISTER is processed; the INVITE after it is ignored.
    let msg = outcome(&read("dblreq.dat")).unwrap();
    assert_eq!(msg.method_str(), Some("REGISTER"));
    assert!(!msg.as_bytes().windows(6).any(|w| w == b"INVITE"));
    // §3.1.1.5: RE%47IST%45R is not REGISTER.
    let msg = outcome(&read("esc02.dat")).unwrap();
    assert_eq!(msg.method(), Some(sipc::sip::Method::Extension));
    // §3.1.1.1: folded, oddly spaced headers type correctly.
    let msg = outcome(&read("wsinv.dat")).unwrap();
    assert_eq!(msg.cseq().unwrap().unwrap().seq, 9);
    assert_eq!(msg.max_forwards().unwrap(), Some(68));
    assert_eq!(msg.to().unwrap().unwrap().tag(), Some("1918181833n"));
    assert_eq!(msg.vias().count(), 3);
    assert_eq!(msg.body_len(), 150);
    // §3.1.1.4: escaped NULs survive.
    let msg = outcome(&read("escnull.dat")).unwrap();
    assert_eq!(msg.contacts().count(), 2);
    // §3.1.2.19: the code must not wrap.
    assert_eq!(
        Message::parse(Bytes::from(read("bigcode.dat"))).unwrap_err().kind,
        ErrorKind::BadStatusLine
    );
    // §3.1.2.2: a Content-Length past the datagram is an error.
    assert_eq!(
        Message::parse(Bytes::from(read("clerr.dat"))).unwrap_err().kind,
        ErrorKind::BadContentLength
    );
    // §3.1.2.16: SIP/7.0 is answered with 505.
    assert_eq!(outcome(&read("badvers.dat")).unwrap_err().status_code(), 505);
}

#[test]
fn shared_corpus_matches_the_repository_copy() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475");
    if !shared.is_dir() {
        eprintln!("no shared corpus at {}; checked the repository copy only", shared.display());
        return;
    }
    for (file, ..) in manifest() {
        assert_eq!(
            std::fs::read(shared.join(&file)).unwrap(),
            std::fs::read(corpus().join(&file)).unwrap(),
            "{file} differs from the shared copy"
        );
    }
}
