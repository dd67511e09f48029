//! The Via header (RFC 3261 §20.42, §18.2.2; RFC 3581 rport).
//!
//! `SIP / 2.0 / UDP host:port ;params`, with LWS allowed around the slashes.
//! The proxy reads the top Via of every request (sent-by, branch, rport) and
//! strips its own from every response, so this view is on the hot path.

use super::error::Malformed;
use super::params::Params;
use super::scan::{is_lws, is_token_byte, trim_lws};
use super::uri::{Host, split_host_port};

/// One Via value.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`, …).
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The `branch` parameter, found while the parameters were parsed:
    /// the proxy asks for it several times per message, and each lookup
    /// would walk the parameters.
    branch: Option<&'a str>,
}

/// Equal when written the same (the branch is one of the parameters).
impl PartialEq for Via<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.transport, self.host, self.port, self.params)
            == (other.transport, other.host, other.port, other.params)
    }
}
impl Eq for Via<'_> {}

/// A parsed [`Via`] as byte ranges of the message head that holds it, so a
/// [`Message`](super::Message) can keep its top Via parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViaSpans {
    transport: (u32, u32),
    host: SpanHost,
    port: Option<u16>,
    params: (u32, u32),
    branch: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanHost {
    Name(u32, u32),
    V4(std::net::Ipv4Addr),
    V6(std::net::Ipv6Addr),
}

impl ViaSpans {
    /// `via` as ranges of `head`; `None` if a part is not a slice of it.
    pub(crate) fn of(via: &Via<'_>, head: &str) -> Option<ViaSpans> {
        let range = |part: &str| super::scan::span_within(head, part);
        Some(ViaSpans {
            transport: range(via.transport)?,
            host: match via.host {
                Host::Name(n) => {
                    let (s, e) = range(n)?;
                    SpanHost::Name(s, e)
                }
                Host::V4(a) => SpanHost::V4(a),
                Host::V6(a) => SpanHost::V6(a),
            },
            port: via.port,
            params: range(via.params.as_str())?,
            branch: match via.branch() {
                Some(b) => Some(range(b)?),
                None => None,
            },
        })
    }

    /// The Via again, borrowing `head` (the text [`ViaSpans::of`] saw).
    pub(crate) fn get<'a>(&self, head: &'a str) -> Via<'a> {
        let text = |(s, e): (u32, u32)| head.get(s as usize..e as usize).unwrap_or("");
        Via {
            transport: text(self.transport),
            host: match self.host {
                SpanHost::Name(s, e) => Host::Name(text((s, e))),
                SpanHost::V4(a) => Host::V4(a),
                SpanHost::V6(a) => Host::V6(a),
            },
            port: self.port,
            params: Params::validated(text(self.params)),
            branch: self.branch.map(text),
        }
    }
}

fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

/// Skips `LWS? "/" LWS?` starting at `i`.
fn expect_slash(b: &[u8], i: usize) -> Result<usize, Malformed> {
    let i = skip_lws(b, i);
    if b.get(i) != Some(&b'/') {
        return Err(Malformed);
    }
    Ok(skip_lws(b, i + 1))
}

/// The default port for a Via transport (RFC 3261 §18.2.2, RFC 7118).
pub fn default_port(transport: &str) -> u16 {
    if transport.eq_ignore_ascii_case("TLS") || transport.eq_ignore_ascii_case("WSS") {
        5061
    } else if transport.eq_ignore_ascii_case("WS") {
        80
    } else {
        5060
    }
}

impl<'a> Via<'a> {
    /// Parses one Via value (already split from its neighbours). Byte-wise
    /// and allocation-free: it runs for every Via of every message.
    pub fn parse(s: &'a str) -> Result<Via<'a>, Malformed> {
        let b = s.as_bytes();
        let mut i = skip_lws(b, 0);
        // "SIP" LWS? "/" LWS? "2.0" LWS? "/" LWS? transport
        if !b.get(i..i + 3).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP")) {
            return Err(Malformed);
        }
        i = expect_slash(b, i + 3)?;
        if b.get(i..i + 3) != Some(b"2.0") {
            return Err(Malformed);
        }
        i = expect_slash(b, i + 3)?;
        let t_start = i;
        while i < b.len() && is_token_byte(b[i]) {
            i += 1;
        }
        if i == t_start || i == b.len() || !is_lws(b[i]) {
            return Err(Malformed);
        }
        let transport = &s[t_start..i];
        i = skip_lws(b, i);
        let hp_start = i;
        while i < b.len() && b[i] != b';' && !is_lws(b[i]) {
            i += 1;
        }
        let (host, port) = split_host_port(&s[hp_start..i])?;
        // The branch is found in the same walk: every Via parsed is asked for it.
        let (params, tail, branch) = Params::parse_finding(&s[i..], None, "branch")?;
        if !trim_lws(tail).is_empty() {
            return Err(Malformed);
        }
        Ok(Via { transport, host, port, params, branch: branch.flatten() })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Does the branch start with the RFC 3261 magic cookie `z9hG4bK`?
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter: `None` absent, `Some(None)` requested
    /// (RFC 3581 §3), `Some(Some(p))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| super::scan::parse_decimal(p, 65_535)).map(|p| p as u16))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| super::scan::parse_decimal(t, 255))
            .map(|t| t as u8)
    }

    /// The port to use: the explicit one or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| default_port(self.transport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn plain_via() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn spans_keep_the_branch_found_while_parsing() {
        let head = "Via: SIP/2.0/UDP h;rport;branch=z9hG4bKa1\r\nVia: SIP/2.0/UDP g;rport\r\n";
        for value in ["SIP/2.0/UDP h;rport;branch=z9hG4bKa1", "SIP/2.0/UDP g;rport"] {
            let at = head.find(value).unwrap();
            let v = Via::parse(&head[at..at + value.len()]).unwrap();
            let again = ViaSpans::of(&v, head).unwrap().get(head);
            assert_eq!(again, v);
            assert_eq!(v.branch(), v.params.get("branch").flatten(), "found while parsing");
            assert_eq!(again.branch(), v.branch(), "kept by the spans");
        }
    }

    #[test]
    fn folded_via_with_lws_everywhere() {
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, Host::Name("spindle.example.com"));
        assert_eq!(v.port_or_default(), 5060);
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn ipv6_received_rport_ttl_maddr() {
        let v = Via::parse("SIP/2.0/TLS [2001:db8::9]:5061;received=2001:db8::1;rport=4050;ttl=16;maddr=224.2.0.1;branch=z9hG4bKx").unwrap();
        assert_eq!(v.host, Host::V6("2001:db8::9".parse().unwrap()));
        assert_eq!(v.received(), Some("2001:db8::1"));
        assert_eq!(v.rport(), Some(Some(4050)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP host",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP host:port",
            "SIP/2.0/UDP host junk",
            "",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?}");
        }
    }
}
