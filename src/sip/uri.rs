//! URIs: `sip:`, `sips:` and `tel:` parsed into parts; any other scheme is
//! kept whole so a proxy can still forward it or answer 416.
//!
//! A [`Uri`] borrows every part from the text it was parsed from. %-escapes
//! are left in place (comparisons per RFC 3261 §19.1.4 decode them; see
//! [`percent_decode`](super::scan::percent_decode)).

use super::error::Malformed;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::params::Params;
use super::scan::find_byte;

/// The URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Some other scheme (`mailto:`, `urn:` …): only [`Uri::raw`] is meaningful.
    Other,
}

impl Scheme {
    /// The scheme a URI's scheme text names (case-insensitive).
    fn named(text: &str) -> Scheme {
        if text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        }
    }
}

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses `hostname`, `IPv4address` or `[IPv6reference]`.
    pub fn parse(s: &'a str) -> Result<Host<'a>, Malformed> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(Malformed)?;
            return inner.parse().map(Host::V6).map_err(|_| Malformed);
        }
        if s.is_empty() || s.len() > 255 {
            return Err(Malformed);
        }
        let b = s.as_bytes();
        if b[0].is_ascii_digit() && b[b.len() - 1].is_ascii_digit() {
            if let Some(v4) = parse_ipv4(b) {
                return Ok(Host::V4(v4));
            }
        }
        let ok = b.iter().all(|&c| HOST_NAME_BYTE[c as usize]) && b[0] != b'.' && b[0] != b'-';
        if ok { Ok(Host::Name(s)) } else { Err(Malformed) }
    }

    /// Appends the host as `Display` writes it (`[…]` around IPv6), without
    /// the formatting machinery.
    pub fn push_to(&self, out: &mut String) {
        match *self {
            Host::Name(n) => out.push_str(n),
            Host::V4(a) => super::write::push_ip(out, a.into()),
            Host::V6(a) => {
                out.push('[');
                super::write::push_ip(out, a.into());
                out.push(']');
            }
        }
    }

    /// The host as `Display` writes it, in a string of its own (see
    /// [`Host::push_to`]).
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(48); // a bracketed IPv6 address fits
        self.push_to(&mut out);
        out
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match *self {
            Host::V4(a) => Some(a.into()),
            Host::V6(a) => Some(a.into()),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Bytes of a host name (RFC 3261 `hostname`: alphanumerics, `-`, `.`).
const HOST_NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

/// Dotted-quad IPv4 (no leading zeros beyond a single `0`, as std's parser),
/// in one pass over the bytes: every Via, Request-URI and Contact of the
/// proxy's traffic carries one.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    match parse_ipv4_until_colon(b)? {
        (a, end) if end == b.len() => Some(a),
        _ => None,
    }
}

/// [`parse_ipv4`] of `b` up to its first `:` (or its end), and where it
/// stopped: a Via's or a URI's `host:port` read in one pass.
fn parse_ipv4_until_colon(b: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    let (mut n, mut v, mut len) = (0, 0u16, 0);
    let mut end = b.len();
    for (i, &c) in b.iter().enumerate() {
        if c == b':' {
            end = i;
            break;
        }
        if c == b'.' {
            if len == 0 || n == 3 {
                return None;
            }
            octets[n] = v as u8;
            (n, v, len) = (n + 1, 0, 0);
            continue;
        }
        let d = c.wrapping_sub(b'0');
        // A fourth digit, or a second one after a leading zero.
        if d > 9 || len == 3 || (len == 1 && v == 0) {
            return None;
        }
        v = v * 10 + u16::from(d);
        len += 1;
        if v > 255 {
            return None;
        }
    }
    if n != 3 || len == 0 {
        return None;
    }
    octets[3] = v as u8;
    Some((Ipv4Addr::from(octets), end))
}

/// Splits `host[:port]`, with `[v6]:port` handled. The port must fit in u16.
pub fn split_host_port(s: &str) -> Result<(Host<'_>, Option<u16>), Malformed> {
    let b = s.as_bytes();
    // An IPv4 address (nearly every Via's sent-by) in one pass to the
    // colon; what `Host::parse` would find in the text before it.
    if b.first().is_some_and(u8::is_ascii_digit)
        && let Some((a, end)) = parse_ipv4_until_colon(b)
    {
        if end == b.len() {
            return Ok((Host::V4(a), None));
        }
        let port = super::scan::parse_decimal(&s[end + 1..], 65_535).ok_or(Malformed)? as u16;
        return Ok((Host::V4(a), Some(port)));
    }
    split_host_port_general(s)
}

/// [`split_host_port`] of any host: a name, an IPv4 or a bracketed IPv6
/// address.
fn split_host_port_general(s: &str) -> Result<(Host<'_>, Option<u16>), Malformed> {
    let b = s.as_bytes();
    let colon = if b.first() == Some(&b'[') {
        let close = find_byte(b']', b).ok_or(Malformed)?;
        match b.get(close + 1) {
            None => None,
            Some(b':') => Some(close + 1),
            Some(_) => return Err(Malformed),
        }
    } else {
        find_byte(b':', b)
    };
    match colon {
        None => Ok((Host::parse(s)?, None)),
        Some(c) => {
            let port = super::scan::parse_decimal(&s[c + 1..], 65_535).ok_or(Malformed)? as u16;
            Ok((Host::parse(&s[..c])?, Some(port)))
        }
    }
}

/// A parsed URI view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    pub scheme: Scheme,
    /// User part (sip/sips), or the subscriber number (tel).
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host (sip/sips only; `tel:` and other schemes have none).
    pub host: Option<Host<'a>>,
    /// The host text as written (sip/sips), e.g. `[::1]` or `example.com`.
    pub host_str: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The `?h=v&…` part without the `?`.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI. Embedded white space is an error (RFC 4475
    /// §3.1.2.8); an unknown scheme is not.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, Malformed> {
        if let Some(uri) = Self::parse_plain_sip(s) {
            return Ok(uri);
        }
        Self::parse_general(s)
    }

    /// The scheme of URI text that [`Uri::parse`] accepts (validation has
    /// parsed the Request-URI already; the proxy then only asks this).
    pub fn scheme_of(s: &str) -> Scheme {
        Scheme::named(s.split_once(':').map_or("", |(scheme, _)| scheme))
    }

    /// The common shape, `sip[s]:[user@]host[:port][;params][?headers]`
    /// with a plain user part and a host name or IPv4 address, in one pass.
    /// `None` means "not this shape", never "malformed":
    /// [`Uri::parse_general`] then decides, so both give the same answer on
    /// every input (tested against each other). Request-URIs, Contacts and
    /// Route entries are nearly always this shape, and the proxy reads the
    /// R-URI several times per request.
    fn parse_plain_sip(s: &'a str) -> Option<Uri<'a>> {
        let b = s.as_bytes();
        let (scheme, start) = if b.starts_with(b"sip:") {
            (Scheme::Sip, 4)
        } else if b.starts_with(b"sips:") {
            (Scheme::Sips, 5)
        } else {
            return None;
        };
        let at = find_byte(b'@', &b[start..]).map(|i| start + i);
        let (user, host_start) = match at {
            Some(at) => {
                // Printable ASCII other than ':' (a password takes the
                // general path); `@` cannot occur before the first `@`.
                let plain = b[start..at].iter().all(|&c| (0x21..0x7f).contains(&c) && c != b':');
                if at == start || !plain {
                    return None;
                }
                (Some(&s[start..at]), at + 1)
            }
            None => (None, start),
        };
        let mut i = host_start;
        let mut dotted_digits = true;
        while i < b.len() && HOST_NAME_BYTE[b[i] as usize] {
            dotted_digits &= b[i].is_ascii_digit() || b[i] == b'.';
            i += 1;
        }
        let host_str = &s[host_start..i];
        let hb = host_str.as_bytes();
        if hb.is_empty() || hb.len() > 255 || hb[0] == b'.' || hb[0] == b'-' {
            return None;
        }
        let host =
            match dotted_digits && hb[0].is_ascii_digit() && hb[hb.len() - 1].is_ascii_digit() {
                true => Host::V4(parse_ipv4(hb)?),
                false => Host::Name(host_str),
            };
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let digits = i + 1;
            i = digits + b[digits..].iter().take_while(|c| c.is_ascii_digit()).count();
            port = Some(super::scan::parse_decimal(&s[digits..i], 65_535)? as u16);
        }
        let tail = &s[i..];
        let (params, headers) = match tail.as_bytes().first() {
            None => (Params::default(), None),
            Some(b';' | b'?') => {
                if tail.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return None;
                }
                let (params, rest) = Params::parse(tail, Some(b'?')).ok()?;
                match rest.strip_prefix('?') {
                    Some(h) => (params, Some(h)),
                    None if rest.is_empty() => (params, None),
                    None => return None,
                }
            }
            Some(_) => return None,
        };
        Some(Uri {
            raw: s,
            scheme,
            user,
            password: None,
            host: Some(host),
            host_str,
            port,
            params,
            headers,
        })
    }

    /// Every URI [`Uri::parse`] accepts, scheme by scheme. Public (hidden)
    /// only so the `sip_parse` fuzz target can hold the one-pass path to
    /// it.
    #[doc(hidden)]
    pub fn parse_general(s: &'a str) -> Result<Uri<'a>, Malformed> {
        let colon = find_byte(b':', s.as_bytes()).ok_or(Malformed)?;
        let scheme_text = &s[..colon];
        let sb = scheme_text.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(Malformed);
        }
        // Branch-free, so the compiler vectorises it: URIs are short and
        // almost never hold a control byte.
        if s.bytes().fold(false, |bad, b| bad | (b <= b' ') | (b == 0x7f)) {
            return Err(Malformed);
        }
        debug_assert!(colon < s.len());
        let rest = &s[colon + 1..];
        let scheme = Scheme::named(scheme_text);
        let mut uri = Uri {
            raw: s,
            scheme,
            user: None,
            password: None,
            host: None,
            host_str: "",
            port: None,
            params: Params::default(),
            headers: None,
        };
        match scheme {
            Scheme::Other => {
                if rest.is_empty() {
                    return Err(Malformed);
                }
            }
            Scheme::Tel => {
                let end = find_byte(b';', rest.as_bytes()).unwrap_or(rest.len());
                if end == 0 {
                    return Err(Malformed);
                }
                uri.user = Some(&rest[..end]);
                let (params, tail) = Params::parse(&rest[end..], None)?;
                if !tail.is_empty() {
                    return Err(Malformed);
                }
                uri.params = params;
            }
            Scheme::Sip | Scheme::Sips => {
                let rb = rest.as_bytes();
                // '@' is allowed unescaped only as the userinfo separator (the
                // user part may hold '?', ';' and ',': RFC 4475 §3.1.1.2).
                let host_start = match find_byte(b'@', rb) {
                    Some(at) => {
                        let userinfo = &rest[..at];
                        let (user, password) = match find_byte(b':', userinfo.as_bytes()) {
                            Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                            None => (userinfo, None),
                        };
                        if user.is_empty() {
                            return Err(Malformed);
                        }
                        uri.user = Some(user);
                        uri.password = password;
                        at + 1
                    }
                    None => 0,
                };
                let hp_end = rb[host_start..]
                    .iter()
                    .position(|&b| b == b';' || b == b'?')
                    .map_or(rb.len(), |i| host_start + i);
                let hostport = &rest[host_start..hp_end];
                let (host, port) = split_host_port(hostport)?;
                uri.host = Some(host);
                uri.host_str = match port {
                    // The port's digits and its ':' are the tail of `hostport`.
                    Some(_) => &hostport[..hostport.bytes().rposition(|b| b == b':').unwrap_or(0)],
                    None => hostport,
                };
                uri.port = port;
                let (params, tail) = Params::parse(&rest[hp_end..], Some(b'?'))?;
                uri.params = params;
                match tail.strip_prefix('?') {
                    Some(h) => uri.headers = Some(h),
                    None if tail.is_empty() => {}
                    None => return Err(Malformed),
                }
            }
        }
        Ok(uri)
    }

    /// The URI as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The `transport` parameter, if any.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// Has the `lr` (loose routing) parameter (RFC 3261 §19.1.1)?
    pub fn is_loose_router(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `maddr` parameter, if any.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
}

/// What kind of host a URI names, without the host itself ([`UriParts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A `tel:` URI or another scheme.
    None,
    Name,
    /// An IP address (parsed again from the text when asked: rare enough
    /// not to carry 17 bytes of address in every [`UriParts`]).
    Address,
}

/// The parts of a URI that routing reads, as byte ranges of its text.
///
/// Small and plain (u32 ranges, no borrow), so a message can keep the
/// parts of its Request-URI from validation to routing
/// ([`Message::request_uri_parts`](super::Message::request_uri_parts)) and
/// a route context can keep those of other URIs it looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParts {
    user: Option<(u32, u32)>,
    host: (u32, u32),
    pub port: Option<u16>,
    pub sips: bool,
    pub host_kind: HostKind,
    /// The URI has a `?headers` part (never allowed in a Request-URI).
    pub has_headers: bool,
    /// The URI parameters' range (`;…`, empty when there are none).
    params: (u32, u32),
}

impl UriParts {
    /// Parses `text`; `None` when it is not a URI.
    pub fn of(text: &str) -> Option<UriParts> {
        Self::from_uri(text, &Uri::parse(text).ok()?)
    }

    /// The parts of `uri`, which was parsed from `text`.
    pub fn from_uri(text: &str, uri: &Uri<'_>) -> Option<UriParts> {
        let range = |part: &str| super::scan::span_within(text, part);
        Some(UriParts {
            user: uri.user.and_then(range),
            // `tel:` and other schemes have no host (an empty, unplaced text).
            host: if uri.host_str.is_empty() { (0, 0) } else { range(uri.host_str)? },
            port: uri.port,
            sips: uri.scheme == Scheme::Sips,
            host_kind: match uri.host {
                None => HostKind::None,
                Some(Host::Name(_)) => HostKind::Name,
                Some(_) => HostKind::Address,
            },
            has_headers: uri.headers.is_some(),
            params: if uri.params.is_empty() { (0, 0) } else { range(uri.params.as_str())? },
        })
    }

    /// The URI parameters of `text` (the URI these parts were made from).
    pub fn params<'t>(&self, text: &'t str) -> Params<'t> {
        let (s, e) = self.params;
        Params::validated(text.get(s as usize..e as usize).unwrap_or_default())
    }

    /// The user part's byte range, if there is one.
    pub fn user(&self) -> Option<(usize, usize)> {
        self.user.map(|(s, e)| (s as usize, e as usize))
    }

    /// The host's byte range, as written (`[…]` around IPv6).
    pub fn host(&self) -> (usize, usize) {
        (self.host.0 as usize, self.host.1 as usize)
    }

    /// The port, or the scheme's default (5061 for `sips:`, else 5060).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.sips { 5061 } else { 5060 })
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sip_uri() {
        let u = Uri::parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi&X=1")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Some(Host::V6("2001:db8::1".parse().unwrap())));
        assert_eq!(u.host_str, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.headers, Some("Subject=hi&X=1"));
    }

    #[test]
    fn user_with_semicolons_and_escapes() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        assert!(u.params.is_empty());
    }

    #[test]
    fn ipv4_host_and_port() {
        let u = Uri::parse("sip:10.0.0.1:5080").unwrap();
        assert_eq!(u.user, None);
        assert_eq!(u.host, Some(Host::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(u.host_str, "10.0.0.1");
        assert_eq!(u.port, Some(5080));
    }

    #[test]
    fn tel_and_other_schemes() {
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        assert_eq!(t.params.get("phone-context"), Some(Some("example.com")));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme, Scheme::Other);
        assert_eq!(o.raw(), "soap.beep://192.0.2.103:3002");
    }

    #[test]
    fn ipv4_parser_agrees_with_std() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.4.",
            "1234.1.1.1",
            "1.2.3.04",
            "0.0.0.00",
            ".1.2.3",
            "",
        ] {
            assert_eq!(parse_ipv4(s.as_bytes()), s.parse().ok(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv4_parser_agrees_with_std_on_digits_and_dots(s in "[0-9.]{0,17}") {
            proptest::prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse().ok());
        }
    }

    /// The one-pass path and the general parser agree wherever the fast one
    /// answers, on generated text made of the bytes URIs turn on.
    #[test]
    fn plain_sip_path_agrees_with_the_general_parser() {
        const PIECES: &[&str] = &[
            "sip:",
            "sips:",
            "SIP:",
            "tel:",
            "a",
            "bob",
            "Z9",
            "@",
            "@",
            ".",
            "-",
            ":",
            ":",
            "5060",
            "99999",
            "0",
            "1",
            "192.0.2.1",
            "256",
            "[::1]",
            ";",
            ";lr",
            ";transport=tcp",
            "?",
            "=",
            "h=v",
            "%41",
            "_",
            " ",
            "\t",
            "\x7f",
            ",",
            "<",
            "\"",
            "é",
            "example.com",
            "10.0.0",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut answered = 0;
        for _ in 0..200_000 {
            let mut s = String::from(if next() % 2 == 0 { "sip:" } else { "sips:" });
            for _ in 0..next() % 7 {
                s.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if let Some(fast) = Uri::parse_plain_sip(&s) {
                answered += 1;
                assert_eq!(Ok(fast), Uri::parse_general(&s), "{s:?}");
            }
        }
        assert!(answered > 10_000, "the generator rarely reaches the fast path: {answered}");
    }

    proptest::proptest! {
        /// The one-pass reading of an IPv4 `host:port` gives what the
        /// general split gives, errors included.
        #[test]
        fn ipv4_host_ports_split_as_the_general_way(
            s in "(([0-9]{1,3}\\.){2,4}[0-9]{0,4}(:[0-9]{0,7})?(:|x)?)|[0-9.:a-z]{0,24}",
        ) {
            proptest::prop_assert_eq!(split_host_port(&s), split_host_port_general(&s));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sip:",
            "nocolon",
            "sip:user@",
            "sip:a b@c",
            "sip:host:99999",
            "sip:host:5x",
            "sip:[::1",
            "sip:@host",
            "sip:host;;lr",
            "1sip:host",
            "sip:ho_st",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn parts_are_ranges_of_the_text() {
        let text = "sips:alice@[2001:db8::1]:5071;transport=tcp?subject=x";
        let p = UriParts::of(text).unwrap();
        assert_eq!(p.user().map(|(s, e)| &text[s..e]), Some("alice"));
        let (s, e) = p.host();
        assert_eq!(&text[s..e], "[2001:db8::1]");
        assert_eq!((p.port, p.port_or_default(), p.sips), (Some(5071), 5071, true));
        assert_eq!((p.host_kind, p.has_headers), (HostKind::Address, true));
        let p = UriParts::of("sip:example.com").unwrap();
        assert_eq!((p.user(), p.host_kind, p.port_or_default()), (None, HostKind::Name, 5060));
        // No host: the number is the user part.
        let text = "tel:+1-201-555-0123;phone-context=example.com";
        let p = UriParts::of(text).unwrap();
        assert_eq!(p.user().map(|(s, e)| &text[s..e]), Some("+1-201-555-0123"));
        assert_eq!((p.host(), p.host_kind), ((0, 0), HostKind::None));
        assert_eq!(UriParts::of("urn:service:sos").unwrap().host_kind, HostKind::None);
        assert_eq!(UriParts::of("not a uri"), None);
    }
}
