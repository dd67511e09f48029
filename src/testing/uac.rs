//! The test's own user agents: the replies a branch's destination gives,
//! the caller's CANCEL, and its request again with digest credentials.

use std::net::SocketAddr;

use bytes::Bytes;

use super::spec::Credentials;
use crate::sip::Message;

/// The reply a UAS at `peer` gives to `req`.
pub(super) fn response_to(
    req: &Message,
    code: u16,
    reason: &str,
    extra: &[String],
    n: usize,
    peer: SocketAddr,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let named = |name: &str, compact: &str| {
        req.headers()
            .iter()
            .filter(|h| {
                let n = req.name_of(h);
                n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)
            })
            .map(|h| req.value_of(h).to_owned())
            .collect::<Vec<_>>()
    };
    for v in named("Via", "v") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for v in named("From", "f") {
        out.push_str(&format!("From: {v}\r\n"));
    }
    for v in named("To", "t") {
        let tagged = v.to_ascii_lowercase().contains(";tag=");
        let tag = if code > 100 && !tagged { format!(";tag=uas-{n}") } else { String::new() };
        out.push_str(&format!("To: {v}{tag}\r\n"));
    }
    for v in named("Call-ID", "i") {
        out.push_str(&format!("Call-ID: {v}\r\n"));
    }
    for v in named("CSeq", "") {
        out.push_str(&format!("CSeq: {v}\r\n"));
    }
    if (101..300).contains(&code) {
        for v in named("Record-Route", "") {
            out.push_str(&format!("Record-Route: {v}\r\n"));
        }
        // A Contact the test gives replaces this default one.
        let given = extra.iter().any(|h| {
            h.split_once(':').is_some_and(|(n, _)| {
                let n = n.trim();
                n.eq_ignore_ascii_case("Contact") || n.eq_ignore_ascii_case("m")
            })
        });
        if !given {
            out.push_str(&format!("Contact: <sip:uas@{peer}>\r\n"));
        }
    }
    for h in extra {
        out.push_str(h.trim_end());
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The CANCEL of the request `text` (RFC 3261 §9.1: its top Via, From,
/// To, Call-ID and CSeq number), and how the step is named.
pub(super) fn cancel_of(text: &str) -> Result<(String, String), String> {
    let msg = Message::parse(Bytes::from(text.to_owned())).map_err(|e| e.to_string())?;
    let ruri = msg.request_uri_str().unwrap_or_default().to_owned();
    let mut out = format!("CANCEL {ruri} SIP/2.0\r\n");
    if let Some(v) = msg.headers_named("Via").next() {
        out.push_str(&format!("Via: {}\r\n", msg.value_of(v)));
    }
    for name in ["From", "To", "Call-ID"] {
        if let Some(h) = msg.headers_named(name).next() {
            out.push_str(&format!("{name}: {}\r\n", msg.value_of(h)));
        }
    }
    let seq = msg.cseq().ok().flatten().map_or(1, |c| c.seq);
    out.push_str(&format!("CSeq: {seq} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
    Ok((out, format!("CANCEL {ruri}")))
}

/// The request `text` again as a new transaction (next CSeq, a fresh
/// branch) with `who`'s digest credentials answering `challenge` (the
/// WWW-Authenticate of a 401 or the Proxy-Authenticate of a 407,
/// RFC 7616; qop=auth when offered), and how the step is named.
pub(super) fn with_credentials(
    text: &str,
    code: u16,
    challenge: &str,
    who: &Credentials,
    n: usize,
) -> Result<(String, String), String> {
    use crate::auth::digest::{self, Algorithm};
    // `Digest k=v, k="v", …`, parsed as the proxy parses credentials.
    let fields = challenge.trim_start().split_once(char::is_whitespace).map_or("", |(_, r)| r);
    let fields = digest::params(fields);
    let param = |name: &str| {
        fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| (*v).to_owned())
    };
    let realm = param("realm").unwrap_or_default();
    let nonce = param("nonce").ok_or("`authenticate`: the challenge has no nonce")?;
    let alg = Algorithm::parse(param("algorithm").as_deref())
        .ok_or("`authenticate`: the challenge names an unknown algorithm")?;
    let qop = param("qop").filter(|q| q.split(',').any(|x| x.trim() == "auth"));
    let msg = Message::parse(Bytes::from(text.to_owned())).map_err(|e| e.to_string())?;
    let method = msg.method_str().unwrap_or("").to_owned();
    let uri = msg.request_uri_str().unwrap_or("").to_owned();
    let c = digest::Credentials {
        username: &who.user,
        realm: &realm,
        nonce: &nonce,
        uri: &uri,
        qop: qop.as_ref().map(|_| "auth"),
        nc: qop.as_ref().map(|_| "00000001"),
        cnonce: qop.as_ref().map(|_| "5170c0ff"),
        ..digest::Credentials::default()
    };
    let ha1 = digest::ha1(alg, &who.user, &realm, &who.password);
    let response = digest::response(alg, &ha1, &c, &method);
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}",
        who.user,
        alg.name()
    );
    if qop.is_some() {
        value.push_str(", qop=auth, nc=00000001, cnonce=\"5170c0ff\"");
    }
    let name = if code == 401 { "Authorization" } else { "Proxy-Authorization" };
    let mut out = String::new();
    let mut via_done = false;
    for line in text.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if !via_done && (lower.starts_with("via:") || lower.starts_with("v:")) {
            via_done = true;
            let (head, params) = line.split_once(';').unwrap_or((line, ""));
            let params: Vec<&str> =
                params.split(';').filter(|p| !p.trim().starts_with("branch=")).collect();
            out.push_str(head);
            out.push_str(&format!(";branch=z9hG4bK-test-{n}-auth"));
            for p in params.iter().filter(|p| !p.is_empty()) {
                out.push(';');
                out.push_str(p);
            }
        } else if lower.starts_with("cseq:") {
            let seq = msg.cseq().ok().flatten().map_or(1, |c| c.seq) + 1;
            out.push_str(&format!("CSeq: {seq} {method}"));
        } else if lower.starts_with("authorization:") || lower.starts_with("proxy-authorization:") {
            continue;
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.push_str(&format!("{name}: {value}\r\n\r\n"));
    out.push_str(text.split_once("\r\n\r\n").map_or("", |(_, b)| b));
    Ok((out, format!("{method} {uri} with credentials of {}", who.user)))
}
