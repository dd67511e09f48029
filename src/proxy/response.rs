//! Responses: building one to a request (RFC 3261 §8.2.6) and finding where
//! a response goes next (§16.7 step 3, §18.2.2, RFC 3581 §4).

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;

use super::LocalIdentity;
use super::request::NextHop;
use crate::sip::{EditedMessage, HeaderName, Message, Via};

/// Builds the response `code reason` to `req` as edited so far (so the top
/// Via carries the `received`/`rport` added on arrival). Via, From, To,
/// Call-ID and CSeq are copied; a To tag is added to non-100 responses that
/// lack one, derived from the request so a retransmission gets the same tag
/// (§8.2.6.2). `extra` headers follow; the body is empty.
pub fn build_response(
    req: &EditedMessage,
    code: u16,
    reason: &str,
    extra: &[(&str, &str)],
) -> Bytes {
    let msg = req.original();
    let mut out = String::with_capacity(512);
    // Pushed piece by piece rather than through `write!`: a stateful proxy
    // builds a 100 Trying for every INVITE.
    let line = |out: &mut String, name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    out.push_str("SIP/2.0 ");
    crate::sip::write::push_u64(&mut out, code.into());
    out.push(' ');
    out.extend(reason.chars().filter(|c| !c.is_control()));
    out.push_str("\r\n");
    for v in req.current_values("Via") {
        line(&mut out, "Via", v);
    }
    // The Call-ID as it arrived: a hidden dialog's request is rewritten to
    // the other side's before routing (`topology`).
    for name in ["From", "Call-ID", "CSeq"] {
        let value = match name {
            "Call-ID" => msg.header_value(HeaderName::CallId),
            _ => req.current_values(name).next(),
        };
        if let Some(v) = value {
            line(&mut out, name, v);
        }
    }
    if let Some(to) = req.current_values("To").next() {
        let has_tag = msg.to_tag().is_some();
        if code > 100 && !has_tag {
            let _ = write!(out, "To: {to};tag={}\r\n", stateless_to_tag(msg));
        } else {
            line(&mut out, "To", to);
        }
    }
    for (name, value) in extra {
        line(&mut out, name, value);
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}

/// A To tag that is the same for every retransmission of a request.
pub fn stateless_to_tag(req: &Message) -> String {
    let mut h = super::branch::stable_hasher();
    req.call_id().ok().flatten().hash(&mut h);
    req.from_tag().hash(&mut h);
    req.via().ok().flatten().and_then(|v| v.branch()).hash(&mut h);
    req.cseq().ok().flatten().map(|c| c.seq).hash(&mut h);
    format!("sc{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Where a response goes after this proxy: its top Via must be ours (else it
/// is stray and dropped: `None`); the next Via says where, using `received`,
/// `rport` and `maddr` as RFC 3261 §18.2.2 and RFC 3581 §4 direct. A next
/// Via naming a broadcast address is refused (RFC 4475 §3.3.10).
pub fn next_hop_for_response(resp: &Message, local: &LocalIdentity) -> Option<NextHop> {
    let top = resp.via().ok()??;
    if !local.is_local_via(&top) {
        return None;
    }
    let next = resp.next_via()?.ok()?;
    let hop = response_target(&next);
    if hop.host == "255.255.255.255" {
        return None;
    }
    Some(hop)
}

/// The address a response is sent to for this Via.
pub fn response_target(via: &Via<'_>) -> NextHop {
    let (host, ip) = match via.maddr().or(via.received()) {
        // `received` holds an IPv6 address without brackets (RFC 3261 §25.1).
        Some(h) => {
            let ip = h.parse().ok().or_else(|| crate::sip::Host::parse(h).ok()?.ip());
            (h.to_owned(), ip)
        }
        None => (via.host.text(), via.host.ip()),
    };
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port_or_default(),
    };
    NextHop {
        host,
        port: Some(port),
        transport: super::request::transport_name(via.transport),
        explicit_transport: true,
        ip,
    }
}

/// Strips this proxy's Via from a response before relaying it (§16.7 step 3).
pub fn strip_own_via(resp: impl Into<Arc<Message>>) -> EditedMessage {
    let mut e = EditedMessage::new(resp);
    e.remove_top(HeaderName::Via);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::from(s.replace('\n', "\r\n"))).unwrap()
    }

    const REQ: &str = "INVITE sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa;rport\n\
Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKb\n\
To: Bob <sip:b@example.com>\n\
From: <sip:a@example.com>;tag=1\n\
Call-ID: c1\n\
CSeq: 5 INVITE\n\
Content-Length: 0\n\n";

    #[test]
    fn response_copies_the_dialog_headers_and_tags_to() {
        let mut req = EditedMessage::new(parse(REQ));
        req.replace_first_value(
            "Via",
            "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa;rport=5062;received=198.51.100.1",
        );
        let r = Message::parse(build_response(&req, 404, "Not\r\nHere", &[("Server", "sipc")]))
            .unwrap();
        r.check().unwrap();
        assert_eq!((r.status(), r.reason()), (Some(404), Some("NotHere")));
        let vias: Vec<_> = r.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].received(), Some("198.51.100.1"));
        let tag = r.to().unwrap().unwrap().tag().unwrap().to_owned();
        let again = Message::parse(build_response(&req, 404, "Not Here", &[])).unwrap();
        assert_eq!(
            again.to().unwrap().unwrap().tag(),
            Some(tag.as_str()),
            "same tag for retransmissions"
        );
        let trying = Message::parse(build_response(&req, 100, "Trying", &[])).unwrap();
        assert_eq!(trying.to().unwrap().unwrap().tag(), None, "no tag on 100");
        assert_eq!(r.cseq().unwrap().unwrap().seq, 5);
        assert_eq!(r.header_value(HeaderName::Server), Some("sipc"));
    }

    #[test]
    fn responses_follow_received_rport_and_maddr() {
        let mut local = LocalIdentity::new();
        local.add_socket("127.0.0.1:5060".parse().unwrap());
        let resp = parse(
            "SIP/2.0 200 OK\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport=40000;received=198.51.100.1\n\
To: <sip:b@example.com>;tag=2\nFrom: <sip:a@example.com>;tag=1\nCall-ID: c1\nCSeq: 5 INVITE\nContent-Length: 0\n\n",
        );
        let hop = next_hop_for_response(&resp, &local).unwrap();
        assert_eq!(
            (hop.host.as_str(), hop.port, &*hop.transport),
            ("198.51.100.1", Some(40000), "udp")
        );
        let stripped = Message::parse(strip_own_via(resp).serialize()).unwrap();
        assert_eq!(stripped.vias().count(), 1);

        let stray = parse(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKz\nVia: SIP/2.0/UDP 192.0.2.1\n\
To: <sip:b@example.com>;tag=2\nFrom: <sip:a@example.com>;tag=1\nCall-ID: c1\nCSeq: 5 INVITE\nContent-Length: 0\n\n",
        );
        assert!(next_hop_for_response(&stray, &local).is_none());
        let bcast = parse(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKz\nVia: SIP/2.0/UDP 255.255.255.255\n\
To: <sip:b@example.com>;tag=2\nFrom: <sip:a@example.com>;tag=1\nCall-ID: c1\nCSeq: 5 INVITE\nContent-Length: 0\n\n",
        );
        assert!(next_hop_for_response(&bcast, &local).is_none());
        let maddr =
            Via::parse("SIP/2.0/TCP host.example.com;maddr=192.0.2.200;branch=z9hG4bKm").unwrap();
        let hop = response_target(&maddr);
        assert_eq!((hop.host.as_str(), hop.port), ("192.0.2.200", Some(5060)));
        assert_eq!(hop.socket_addr(), Some("192.0.2.200:5060".parse().unwrap()));
        // `received` writes IPv6 without brackets; it is an address all the same.
        let v6 = Via::parse("SIP/2.0/UDP [2001:db8::1];received=2001:db8::9;rport=7000").unwrap();
        assert_eq!(response_target(&v6).socket_addr(), Some("[2001:db8::9]:7000".parse().unwrap()));
        let named = Via::parse("SIP/2.0/UDP host.example.com;branch=z9hG4bKn").unwrap();
        assert_eq!(response_target(&named).socket_addr(), None, "a name is resolved");
    }
}
