//! NAT traversal helpers, sans-I/O: which addresses are private, the
//! Contact rewrites of Kamailio's nathelper (`fix_nated_contact`,
//! `set_contact_alias`, `add_rcv_param`) as text edits of one header value,
//! and the `;alias=ip~port~proto` URI parameter that carries a NATed UA's
//! source address through a dialog (read back by `handle_ruri_alias`).
//!
//! The route builtins over these live in `src/runtime/nat.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::sip::{NameAddr, Params, Uri};

use super::Transport;

/// Whether `ip` is an address a UA behind NAT has and the Internet does not
/// route: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared address
/// space (100.64/10), RFC 6333 DS-Lite (192.0.0.0/29), loopback (127/8,
/// ::1), link-local (169.254/16, fe80::/10) and IPv6 unique local addresses
/// (fc00::/7). The set Kamailio's nathelper tests, plus the IPv6 ones.
///
/// Loopback counts: a Contact of 127.0.0.1 sent from another host cannot be
/// reached there. A check that compares with the source address tells a
/// loopback test setup (everything on 127.0.0.1) from a NATed device.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] < 8)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s0 = v6.segments()[0];
            v6.is_loopback() || (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfe80
        }
    }
}

/// The protocol numbers of Kamailio's alias parameter (`ip~port~proto`):
/// 1 UDP, 2 TCP, 3 TLS, 5 WS, 6 WSS (4 SCTP is not served here).
pub fn proto_number(t: Transport) -> u8 {
    match t {
        Transport::Udp => 1,
        Transport::Tcp => 2,
        Transport::Tls => 3,
        Transport::Ws => 5,
        Transport::Wss => 6,
    }
}

/// The transport of an alias protocol number; `None` for the ones this
/// proxy does not serve.
pub fn proto_of_number(n: u8) -> Option<Transport> {
    match n {
        1 => Some(Transport::Udp),
        2 => Some(Transport::Tcp),
        3 => Some(Transport::Tls),
        5 => Some(Transport::Ws),
        6 => Some(Transport::Wss),
        _ => None,
    }
}

/// `ip~port~proto`, the value of the `alias` parameter (an IPv6 address in
/// brackets, as Kamailio writes it).
pub fn encode_alias(source: SocketAddr, t: Transport) -> String {
    match source.ip() {
        IpAddr::V4(ip) => format!("{ip}~{}~{}", source.port(), proto_number(t)),
        IpAddr::V6(ip) => format!("[{ip}]~{}~{}", source.port(), proto_number(t)),
    }
}

/// Reads an `alias` parameter value back.
pub fn decode_alias(value: &str) -> Option<(SocketAddr, Transport)> {
    let mut parts = value.split('~');
    let (ip, port, proto) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
    let ip: IpAddr = ip.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    let t = proto_of_number(proto.parse().ok()?)?;
    Some((SocketAddr::new(ip, port), t))
}

/// A SIP URI reaching `addr` over `t` (`sip:203.0.113.7:40000`,
/// `;transport=tcp` for stream transports): a `$du`.
pub fn next_hop_uri(addr: SocketAddr, t: Transport) -> String {
    match t {
        Transport::Udp => format!("sip:{addr}"),
        t => format!("sip:{addr};transport={}", t.name()),
    }
}

/// Byte offset of `part` (a slice of `whole`) in `whole`.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// The byte range of `host[:port]` in a URI's text.
fn host_port_range(raw: &str, u: &Uri<'_>) -> (usize, usize) {
    let start = offset(raw, u.host_str);
    let mut end = start + u.host_str.len();
    if u.port.is_some() && raw[end..].starts_with(':') {
        end += 1 + raw[end + 1..].bytes().take_while(u8::is_ascii_digit).count();
    }
    (start, end)
}

/// Where parameters are appended to a URI: before its `?headers`, if any.
fn params_end(raw: &str, u: &Uri<'_>) -> usize {
    match u.headers {
        Some(h) => offset(raw, h).saturating_sub(1),
        None => raw.len(),
    }
}

/// Rewrites the URI of one Contact value (a name-addr or addr-spec) with
/// `edit`, which gets the URI's text and its parse and returns the new URI
/// text. An addr-spec gains angle brackets, so that parameters added to the
/// URI are not read as header parameters (RFC 3261 §20.10). `None` when
/// the value is not a SIP URI contact (`*` among them).
fn rewrite_contact(
    value: &str,
    edit: impl FnOnce(&str, &Uri<'_>) -> Option<String>,
) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    na.uri.host?;
    let raw = na.uri.raw();
    let new_uri = edit(raw, &na.uri)?;
    let start = offset(value, raw);
    let end = start + raw.len();
    Some(if na.bracketed {
        format!("{}{new_uri}{}", &value[..start], &value[end..])
    } else {
        format!("{}<{new_uri}>{}", &value[..start], &value[end..])
    })
}

/// `fix_nated_contact`: the Contact URI's `host:port` becomes the source
/// address; over TCP or TLS a URI without a `transport` parameter gains the
/// one it arrived over, so the rewritten URI leads back over it. `None`
/// when nothing changes (already the source) or the value is no SIP URI.
pub fn fix_contact(value: &str, source: SocketAddr, t: Transport) -> Option<String> {
    if let Some(c) = plain_contact(value) {
        if fix_unneeded(&c.params, Some(c.here()), c.port.is_some(), source, t) {
            return None;
        }
    }
    rewrite_contact(value, |raw, u| {
        let here =
            u.host.and_then(|h| h.ip()).map(|ip| SocketAddr::new(ip, u.port.unwrap_or(5060)));
        let needs_transport = t != Transport::Udp && u.transport().is_none();
        if fix_unneeded(&u.params, here, u.port.is_some(), source, t) {
            return None;
        }
        let (start, end) = host_port_range(raw, u);
        let pe = params_end(raw, u);
        let transport =
            if needs_transport { format!(";transport={}", t.name()) } else { String::new() };
        let out = format!("{}{source}{}{transport}{}", &raw[..start], &raw[end..pe], &raw[pe..]);
        Some(out)
    })
}

/// The address of a Contact value in the shape nearly every UA writes:
/// `<sip:[user@]a.b.c.d[:port][;uri-params]>`, or `sip:[user@]a.b.c.d[:port]`
/// bare, with nothing before or after and a user part of letters, digits
/// and `-_.+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainContact<'a> {
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    /// The URI's parameters.
    pub params: Params<'a>,
}

impl PlainContact<'_> {
    /// Where the URI leads: its address and port (5060 when none is written).
    fn here(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), self.port.unwrap_or(5060))
    }
}

/// The IP address of a Contact value's host (`None` for a host name or a
/// value that is no SIP URI): read in one pass when it has the common
/// shape ([`plain_contact`]), else by the full parse.
pub fn contact_ip(value: &str) -> Option<IpAddr> {
    match plain_contact(value) {
        Some(plain) => Some(IpAddr::V4(plain.ip)),
        None => NameAddr::parse(value).ok()?.uri.host?.ip(),
    }
}

/// A Contact value of that shape read in one pass, without
/// [`NameAddr::parse`]; `None` for any other shape, which the full parse
/// then reads. Where it answers, its address is the one the full parse
/// finds (a property test holds them together). The NAT checks run on
/// nearly every message of a call (`nat_uac_test`'s Contact check, and
/// whether `set_contact_alias` or `fix_nated_contact` has anything to do)
/// and nearly always find the Contact as it should be: they read it this
/// way and parse it fully only to rewrite it (a call through
/// `examples/nat-rtpengine.route` makes ten such reads; callgrind counts
/// 7,150 instructions fewer per call, about half of what the full parses
/// cost).
pub fn plain_contact(value: &str) -> Option<PlainContact<'_>> {
    let (bracketed, uri) = match value.strip_prefix('<') {
        Some(rest) => (true, rest.strip_suffix('>')?),
        None => (false, value),
    };
    let rest = uri.strip_prefix("sip:")?;
    let b = rest.as_bytes();
    // Another `>` would end the URI earlier for the full parse.
    if bracketed && memchr::memchr(b'>', b).is_some() {
        return None;
    }
    let host_start = match memchr::memchr(b'@', b) {
        Some(at) => {
            let user = &b[..at];
            let plain = user
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'+'));
            if at == 0 || !plain {
                return None;
            }
            at + 1
        }
        None => 0,
    };
    let mut i = host_start;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i < b.len() && !matches!(b[i], b':' | b';') {
        return None; // a host name, or more than the shape
    }
    let ip: Ipv4Addr = rest[host_start..i].parse().ok()?;
    let mut port = None;
    if b.get(i) == Some(&b':') {
        let digits = i + 1;
        i = digits + b[digits..].iter().take_while(|c| c.is_ascii_digit()).count();
        port = Some(crate::sip::scan::parse_decimal(&rest[digits..i], 65_535)? as u16);
    }
    let tail = &rest[i..];
    let params = match tail.as_bytes().first() {
        None => Params::default(),
        // Bare, a `;` starts the header's parameters: the full parse's.
        Some(b';') if bracketed => {
            if tail.bytes().any(|c| c <= b' ' || c == 0x7f) {
                return None;
            }
            match Params::parse(tail, Some(b'?')).ok()? {
                (params, "") => params,
                _ => return None,
            }
        }
        Some(_) => return None,
    };
    Some(PlainContact { ip, port, params })
}

/// Whether a Contact URI at `here` with these parameters already reaches
/// `source` over `t`, or carries an alias: `set_contact_alias` has nothing
/// to add.
fn alias_unneeded(
    params: &Params<'_>,
    here: Option<SocketAddr>,
    source: SocketAddr,
    t: Transport,
) -> bool {
    if params.contains("alias") {
        return true;
    }
    let same_transport = match params.get("transport").flatten() {
        Some(name) => name.eq_ignore_ascii_case(t.name()),
        None => t == Transport::Udp,
    };
    here == Some(source) && same_transport
}

/// Whether `fix_nated_contact` leaves a Contact URI at `here` as it is: it
/// names the source with an explicit port, and over TCP or TLS carries a
/// `transport`.
fn fix_unneeded(
    params: &Params<'_>,
    here: Option<SocketAddr>,
    has_port: bool,
    source: SocketAddr,
    t: Transport,
) -> bool {
    let needs_transport = t != Transport::Udp && params.get("transport").flatten().is_none();
    here == Some(source) && has_port && !needs_transport
}

/// `set_contact_alias`: the Contact URI gains `;alias=ip~port~proto` with
/// the source address. `None` when the URI already reaches the source over
/// that transport (nothing to record), already has an alias, or the value
/// is no SIP URI.
pub fn alias_contact(value: &str, source: SocketAddr, t: Transport) -> Option<String> {
    if let Some(c) = plain_contact(value) {
        if alias_unneeded(&c.params, Some(c.here()), source, t) {
            return None;
        }
    }
    rewrite_contact(value, |raw, u| {
        let here =
            u.host.and_then(|h| h.ip()).map(|ip| SocketAddr::new(ip, u.port.unwrap_or(5060)));
        if alias_unneeded(&u.params, here, source, t) {
            return None;
        }
        let at = params_end(raw, u);
        Some(format!("{};alias={}{}", &raw[..at], encode_alias(source, t), &raw[at..]))
    })
}

/// `add_rcv_param`: the Contact gains the header parameter
/// `received="sip:ip:port"` (`;transport=…` inside the quotes for stream
/// transports), as Kamailio's nathelper writes it. `None` when the value is
/// no SIP URI or already has one.
pub fn rcv_param_contact(value: &str, source: SocketAddr, t: Transport) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    na.uri.host?;
    if na.params.contains("received") {
        return None;
    }
    let param = format!(";received=\"{}\"", next_hop_uri(source, t));
    if na.bracketed {
        Some(format!("{}{param}", value.trim_end()))
    } else {
        // Wrap the addr-spec so its URI parameters stay the URI's.
        let raw = na.uri.raw();
        let start = offset(value, raw);
        let end = start + raw.len();
        Some(format!("{}<{raw}>{}{param}", &value[..start], value[end..].trim_end()))
    }
}

/// The source a `received` Contact header parameter names
/// (`received="sip:203.0.113.7:40000"`, what `add_rcv_param` adds).
pub fn received_param(value: &str) -> Option<(SocketAddr, Transport)> {
    let na = NameAddr::parse(value).ok()?;
    let v = na.params.get("received")??;
    crate::registrar::Binding::parse_received(v.trim_matches('"'))
}

/// `handle_ruri_alias`: the address an `alias` parameter of `uri` names,
/// and the URI without that parameter.
pub fn take_alias(uri: &str) -> Option<(SocketAddr, Transport, String)> {
    let u = Uri::parse(uri).ok()?;
    let value = u.params.get("alias")??;
    let (addr, t) = decode_alias(value)?;
    // Remove `;alias=VALUE` (the parameter name as written, any case).
    let vstart = offset(uri, value);
    let pstart = uri[..vstart].rfind(';')?;
    let out = format!("{}{}", &uri[..pstart], &uri[vstart + value.len()..]);
    Some((addr, t, out))
}

/// The IP address of a `c=` line of an SDP body (session or media level)
/// that is private; used by the `private_sdp` NAT check.
pub fn sdp_has_private_address(body: &[u8]) -> bool {
    let Ok(sdp) = crate::sip::Sdp::parse(body) else { return false };
    let private = |c: Option<crate::sip::Connection<'_>>| {
        c.and_then(|c| c.address.parse::<IpAddr>().ok()).is_some_and(is_private)
    };
    private(sdp.connection()) || sdp.media().any(|m| private(m.connection()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_contacts_are_read_in_one_pass() {
        let c = plain_contact("<sip:127.0.0.1:5080;transport=UDP>").unwrap();
        assert_eq!((c.ip, c.port), (Ipv4Addr::LOCALHOST, Some(5080)));
        assert_eq!(c.params.get("transport"), Some(Some("UDP")));
        let c = plain_contact("sip:sipp@192.0.2.1:5070").unwrap();
        assert_eq!(
            (c.ip, c.port, c.params),
            (Ipv4Addr::new(192, 0, 2, 1), Some(5070), Params::default())
        );
        for other in [
            "\"A\" <sip:1.2.3.4>",
            "<sip:a@example.com>",
            "sip:1.2.3.4;expires=60",
            "<sip:1.2.3.4>;expires=60",
            "<sips:1.2.3.4>",
            "*",
        ] {
            assert_eq!(plain_contact(other), None, "{other}");
        }
    }

    proptest::proptest! {
        /// Where the one-pass read answers, the full parse finds the same
        /// host, port and URI parameters, and no header parameters.
        #[test]
        fn a_plain_contact_is_what_the_full_parse_finds(
            open in proptest::sample::select(vec!["", "<", " <", "\"A\" <"]),
            scheme in proptest::sample::select(vec!["sip:", "SIP:", "sips:", "tel:"]),
            user in proptest::sample::select(vec!["", "alice@", "1001@", "a;b@", "a%40@", "@", "a:b@", "x-y.z_+@", "a@b@"]),
            host in proptest::sample::select(vec!["192.0.2.1", "127.0.0.1", "10.0.0.01", "1.2.3", "1.2.3.4.5", "256.1.1.1", "example.com", "1.2.3.4a", "1.2.3.4-", ""]),
            port in proptest::sample::select(vec!["", ":5060", ":0", ":05060", ":65536", ":", ":5x"]),
            params in proptest::sample::select(vec!["", ";transport=tcp", ";alias=1.2.3.4~5060~1", ";lr", "; lr", ";a=b@c", ";x=\"q\"", "?h=v", ";a?b=c", ";a>b", ";"]),
            close in proptest::sample::select(vec!["", ">", "> ", ">;expires=60", ">>", " >"]),
        ) {
            let value = format!("{open}{scheme}{user}{host}{port}{params}{close}");
            let common = open == "<"
                && scheme == "sip:"
                && ["", "alice@", "1001@", "x-y.z_+@"].contains(&user)
                && ["192.0.2.1", "127.0.0.1"].contains(&host)
                && ["", ":5060", ":0"].contains(&port)
                && ["", ";transport=tcp", ";alias=1.2.3.4~5060~1", ";lr"].contains(&params)
                && close == ">";
            proptest::prop_assert!(!common || plain_contact(&value).is_some(), "{}", value);
            if let Some(plain) = plain_contact(&value) {
                let na = NameAddr::parse(&value);
                proptest::prop_assert!(na.is_ok(), "{value}");
                let na = na.unwrap();
                proptest::prop_assert_eq!(na.uri.host.and_then(|h| h.ip()), Some(IpAddr::V4(plain.ip)), "{}", value);
                proptest::prop_assert_eq!(na.uri.port, plain.port, "{}", value);
                proptest::prop_assert_eq!(na.uri.params, plain.params, "{}", value);
                proptest::prop_assert_eq!(na.params, Params::default(), "{}", value);
            }
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in
            ["203.0.113.7", "172.32.0.1", "100.128.0.1", "8.8.8.8", "192.0.0.8", "2001:db8::1"]
        {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn alias_round_trips() {
        for (a, t) in [
            (sa("203.0.113.7:40000"), Transport::Udp),
            (sa("198.51.100.1:5061"), Transport::Tls),
            (sa("[2001:db8::7]:5060"), Transport::Tcp),
        ] {
            assert_eq!(decode_alias(&encode_alias(a, t)), Some((a, t)));
        }
        assert_eq!(encode_alias(sa("203.0.113.7:40000"), Transport::Udp), "203.0.113.7~40000~1");
        assert_eq!(decode_alias("203.0.113.7~40000"), None);
        assert_eq!(decode_alias("203.0.113.7~40000~9"), None);
        assert_eq!(decode_alias("host~1~1"), None);
    }

    #[test]
    fn fixing_a_contact() {
        let src = sa("203.0.113.7:40000");
        assert_eq!(
            fix_contact("<sip:alice@192.168.1.20:5060;ob>;expires=60", src, Transport::Udp)
                .as_deref(),
            Some("<sip:alice@203.0.113.7:40000;ob>;expires=60")
        );
        assert_eq!(
            fix_contact("\"A\" <sip:alice@192.168.1.20>", src, Transport::Udp).as_deref(),
            Some("\"A\" <sip:alice@203.0.113.7:40000>")
        );
        assert_eq!(
            fix_contact("sip:alice@192.168.1.20:5060", src, Transport::Tcp).as_deref(),
            Some("<sip:alice@203.0.113.7:40000;transport=tcp>")
        );
        assert_eq!(
            fix_contact("<sip:alice@192.168.1.20:5060?X=1>", src, Transport::Tcp).as_deref(),
            Some("<sip:alice@203.0.113.7:40000;transport=tcp?X=1>")
        );
        assert_eq!(fix_contact("<sip:alice@203.0.113.7:40000>", src, Transport::Udp), None);
        assert_eq!(fix_contact("*", src, Transport::Udp), None);
    }

    #[test]
    fn aliasing_a_contact_and_taking_it_back() {
        let src = sa("203.0.113.7:40000");
        let c = alias_contact(
            "<sip:bob@192.168.1.30:5060;transport=udp>;+sip.instance=\"x\"",
            src,
            Transport::Udp,
        )
        .unwrap();
        assert_eq!(
            c,
            "<sip:bob@192.168.1.30:5060;transport=udp;alias=203.0.113.7~40000~1>;+sip.instance=\"x\""
        );
        assert_eq!(alias_contact(&c, src, Transport::Udp), None, "one alias");
        assert_eq!(alias_contact("<sip:bob@203.0.113.7:40000>", src, Transport::Udp), None);
        assert_eq!(
            alias_contact("sip:bob@192.168.1.30", src, Transport::Tcp).as_deref(),
            Some("<sip:bob@192.168.1.30;alias=203.0.113.7~40000~2>")
        );
        let (addr, t, rest) =
            take_alias("sip:bob@192.168.1.30:5060;transport=udp;alias=203.0.113.7~40000~1;lr")
                .unwrap();
        assert_eq!((addr, t), (src, Transport::Udp));
        assert_eq!(rest, "sip:bob@192.168.1.30:5060;transport=udp;lr");
        assert_eq!(take_alias("sip:bob@192.168.1.30"), None);
    }

    #[test]
    fn the_received_parameter() {
        let src = sa("203.0.113.7:40000");
        let c = rcv_param_contact("<sip:a@192.168.1.20>;expires=60", src, Transport::Udp).unwrap();
        assert_eq!(c, "<sip:a@192.168.1.20>;expires=60;received=\"sip:203.0.113.7:40000\"");
        assert_eq!(received_param(&c), Some((src, Transport::Udp)));
        assert_eq!(rcv_param_contact(&c, src, Transport::Udp), None);
        let t = rcv_param_contact("sip:a@192.168.1.20;ob", src, Transport::Tcp).unwrap();
        // An addr-spec's parameters are header parameters (RFC 3261 §20.10).
        assert_eq!(t, "<sip:a@192.168.1.20>;ob;received=\"sip:203.0.113.7:40000;transport=tcp\"");
        assert_eq!(received_param(&t), Some((src, Transport::Tcp)));
    }

    #[test]
    fn private_sdp() {
        let body = b"v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(sdp_has_private_address(body));
        let public = b"v=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(!sdp_has_private_address(public));
    }
}
