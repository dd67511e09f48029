//! Messages the transaction layer builds or rewrites itself: ACK and
//! CANCEL on a branch, reply targets, status rewrites.

use super::*;

/// Several steps as one.
pub(super) fn batch(mut steps: Vec<Step>) -> Option<Step> {
    match steps.len() {
        0 => None,
        1 => steps.pop(),
        _ => Some(Step::Batch(steps)),
    }
}

/// Appends `more` to `steps`, taking its buffer when `steps` is still
/// empty (usually only one part of a step has anything to send): no second
/// allocation and no copy.
pub(super) fn append(steps: &mut Vec<Step>, more: Vec<Step>) {
    if steps.is_empty() {
        *steps = more;
    } else {
        steps.extend(more);
    }
}

pub(super) fn send(to: (Transport, SocketAddr), data: Bytes) -> Step {
    Step::Send(Outgoing::new(to.0, to.1, data))
}

/// A reply to the caller of transaction `t`.
pub(super) fn reply(t: &Txn, data: Bytes) -> Step {
    let (transport, peer) = t.reply_to;
    Step::Send(Outgoing { no_connect: t.reply_no_connect, ..Outgoing::new(transport, peer, data) })
}

/// Where replies to this request go (RFC 3261 §18.2.2, RFC 3581 §4);
/// `force_rport`: as if the top Via had `rport` (`force_rport()`).
pub(super) fn reply_target(
    req: &EditedMessage,
    inbound: Inbound,
    force_rport: bool,
) -> (Transport, SocketAddr) {
    if inbound.transport != Transport::Udp || force_rport {
        return (inbound.transport, inbound.peer);
    }
    let via = req.original().via().ok().flatten();
    match via {
        Some(v) if v.rport().is_none() && v.maddr().is_none() => {
            (Transport::Udp, SocketAddr::new(inbound.peer.ip(), v.port_or_default()))
        }
        _ => (Transport::Udp, inbound.peer),
    }
}

/// A reason phrase for statuses this proxy makes up.
pub(super) fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        408 => "Request Timeout",
        416 => "Unsupported URI Scheme",
        487 => "Request Terminated",
        500 | 503 => "Server Internal Error",
        _ => "Error",
    }
}

/// `data` with its status line replaced.
pub(super) fn with_status(data: &Bytes, code: u16, reason: &str) -> Bytes {
    let Some(end) = data.iter().position(|&b| b == b'\n') else { return data.clone() };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n").into_bytes();
    out.extend_from_slice(&data[end + 1..]);
    Bytes::from(out)
}

/// The ACK of a non-2xx final reply, sent hop-by-hop on the branch
/// (§17.1.1.3): the request's Request-URI, top Via, Route set, From,
/// Call-ID and CSeq number, and the reply's To. Kept for 64·T1, so it is
/// sized exactly.
pub(super) fn ack_for(request: &Bytes, resp: &Message) -> Option<Bytes> {
    let req = Message::parse(request.clone()).ok()?;
    let to = resp.header_value(HeaderName::To)?;
    hop_request(&req, "ACK", to)
}

/// The CANCEL of a branch (§9.1).
pub(super) fn cancel_for(request: &Bytes) -> Option<Bytes> {
    let req = Message::parse(request.clone()).ok()?;
    let to = req.header_value(HeaderName::To)?;
    hop_request(&req, "CANCEL", to)
}

pub(super) fn hop_request(req: &Message, method: &str, to: &str) -> Option<Bytes> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(512);
    let _ = write!(out, "{method} {} SIP/2.0\r\n", req.request_uri_str()?);
    // Our Via is the first header line of a request we forwarded.
    let _ = write!(out, "Via: {}\r\n", req.header_value(HeaderName::Via)?);
    for r in req.header_values(HeaderName::Route) {
        let _ = write!(out, "Route: {r}\r\n");
    }
    let _ = write!(out, "From: {}\r\n", req.header_value(HeaderName::From)?);
    let _ = write!(out, "To: {to}\r\n");
    let _ = write!(out, "Call-ID: {}\r\n", req.header_value(HeaderName::CallId)?);
    let _ = write!(out, "CSeq: {} {method}\r\n", req.cseq().ok()??.seq);
    out.push_str("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    Some(Bytes::copy_from_slice(out.as_bytes()))
}

/// Tells trunk health and counters (`routing/health.rs`) the first final
/// outcome of branch `i`.
pub(super) fn report_final(t: &Txn, i: usize, code: u16) {
    let b = &t.branches[i];
    let Some(live) = t.live.as_deref() else { return };
    if code >= 200 && b.code == 0 && !(code < 300 && t.answered) {
        let call_id = live.request.original().call_id().ok().flatten().unwrap_or("");
        crate::routing::health::on_branch_final(
            &live.services,
            b.target.1,
            t.invite,
            code,
            call_id,
        );
    }
}
