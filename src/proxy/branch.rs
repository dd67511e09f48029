//! Via branches for requests this proxy forwards, and loop detection
//! (RFC 3261 §16.6 step 8, §16.11, §16.3 step 4).
//!
//! A branch is `z9hG4bK` + a transaction part + `.` + a loop part, in hex:
//!
//! - the **transaction part** hashes what identifies the incoming request's
//!   transaction (its top Via branch, or for RFC 2543 requests the fields that
//!   stand in for it) and the outgoing Request-URI. A retransmission, and the
//!   CANCEL or non-2xx ACK of an INVITE, therefore get the same branch as the
//!   original, as a stateless proxy must give them (§16.11);
//! - the **loop part** hashes everything that affects routing of the request
//!   as received except the Via headers (Request-URI, tags, Call-ID, CSeq
//!   number, Route, Proxy-Require, Proxy-Authorization). When a request comes
//!   back carrying one of our Vias whose loop part equals the request's own,
//!   nothing changed on the way round: a loop (482). A different loop part is a
//!   legitimate spiral.

use std::hash::{Hash, Hasher};

use super::LocalIdentity;
use crate::sip::{HeaderName, Message};

/// The hasher of branches, stateless To tags and the dispatcher: fast and
/// the same in every process (a fixed seed), so a retransmission gets the
/// same branch even after a restart. Not keyed: nothing here must resist a
/// peer that crafts collisions (a colliding branch only makes a next hop
/// treat two requests as one transaction, which their own branches already
/// could).
pub type StableHasher = foldhash::fast::FoldHasher<'static>;

/// A fresh [`StableHasher`].
pub fn stable_hasher() -> StableHasher {
    use std::hash::BuildHasher;
    static STATE: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5195_c0de);
    STATE.build_hasher()
}

/// The RFC 3261 magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Appends the branch for forwarding `req` with Request-URI `outgoing_uri`
/// to `out` (the Via value being built).
pub fn push_stateless_branch(out: &mut String, req: &Message, outgoing_uri: &str) {
    let mut h = stable_hasher();
    match req.via().ok().flatten() {
        Some(v) if v.has_rfc3261_branch() => {
            v.branch().hash(&mut h);
            v.host.hash(&mut h);
            v.port.hash(&mut h);
        }
        _ => {
            // RFC 2543 peers: the fields §17.2.3 falls back to.
            req.header_value(HeaderName::Via).hash(&mut h);
            req.request_uri_str().hash(&mut h);
            hash_dialog(req, &mut h);
        }
    }
    outgoing_uri.hash(&mut h);
    out.push_str(MAGIC_COOKIE);
    push_hex16(out, h.finish());
    out.push('.');
    push_hex16(out, loop_hash(req));
}

/// Appends `v` as 16 lowercase hex digits (`{:016x}`, without the
/// formatting machinery: this runs for every forwarded request).
pub fn push_hex16(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Into a buffer, then one append: a `push` per digit checks capacity
    // and encodes a char each time.
    let mut hex = [0u8; 16];
    for (i, d) in hex.iter_mut().enumerate() {
        *d = DIGITS[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
}

/// The loop part of a branch (see the module docs).
pub fn loop_hash(req: &Message) -> u64 {
    let mut h = stable_hasher();
    req.request_uri_str().hash(&mut h);
    hash_dialog(req, &mut h);
    for name in [HeaderName::Route, HeaderName::ProxyRequire, HeaderName::ProxyAuthorization] {
        for v in req.header_values(name) {
            v.hash(&mut h);
        }
    }
    h.finish()
}

fn hash_dialog(req: &Message, h: &mut StableHasher) {
    req.from_tag().hash(h);
    req.to_tag().hash(h);
    req.call_id().ok().flatten().hash(h);
    req.cseq().ok().flatten().map(|c| c.seq).hash(h);
}

/// Is `req` looping through this proxy (§16.3 step 4)?
pub fn is_loop(req: &Message, local: &LocalIdentity) -> bool {
    // The hash is computed only when one of our Vias is present: most
    // requests have none, and forwarding computes it again for the branch.
    let mut want: Option<String> = None;
    req.vias_below_top().filter_map(Result::ok).any(|v| {
        local.is_local_via(&v)
            && v.branch()
                .and_then(|b| b.strip_prefix(MAGIC_COOKIE))
                .and_then(|b| b.split_once('.'))
                .is_some_and(|(_, loop_part)| {
                    loop_part == want.get_or_insert_with(|| format!("{:016x}", loop_hash(req)))
                })
    })
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn push_hex16_is_016x() {
        for v in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut s = String::new();
            super::push_hex16(&mut s, v);
            assert_eq!(s, format!("{v:016x}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stateless_branch(req: &Message, outgoing_uri: &str) -> String {
        let mut out = String::new();
        push_stateless_branch(&mut out, req, outgoing_uri);
        out
    }
    use bytes::Bytes;

    fn req(method: &str, branch: &str, ruri: &str) -> Message {
        let text = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch={branch}\r\n\
             To: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn retransmissions_and_cancel_share_the_branch() {
        let invite = req("INVITE", "z9hG4bKa", "sip:b@example.com");
        let again = req("INVITE", "z9hG4bKa", "sip:b@example.com");
        let cancel = req("CANCEL", "z9hG4bKa", "sip:b@example.com");
        let b = stateless_branch(&invite, "sip:b@192.0.2.9");
        assert!(b.starts_with(MAGIC_COOKIE));
        assert_eq!(b, stateless_branch(&again, "sip:b@192.0.2.9"));
        assert_eq!(b, stateless_branch(&cancel, "sip:b@192.0.2.9"));
        assert_ne!(
            b,
            stateless_branch(&req("INVITE", "z9hG4bKb", "sip:b@example.com"), "sip:b@192.0.2.9")
        );
        assert_ne!(b, stateless_branch(&invite, "sip:b@192.0.2.10"), "forks differ");
    }

    #[test]
    fn loop_versus_spiral() {
        let mut local = LocalIdentity::new();
        local.add_socket("127.0.0.1:5060".parse().unwrap());
        let first = req("OPTIONS", "z9hG4bKa", "sip:b@example.com");
        let ours = stateless_branch(&first, "sip:b@example.com");
        let back = |ruri: &str| {
            let text = format!(
                "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5060;branch={ours}\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
                 To: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c1\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            Message::parse(Bytes::from(text)).unwrap()
        };
        assert!(is_loop(&back("sip:b@example.com"), &local), "unchanged request came back");
        assert!(!is_loop(&back("sip:b@elsewhere.example.com"), &local), "spiral");
        assert!(!is_loop(&first, &local));
    }
}
