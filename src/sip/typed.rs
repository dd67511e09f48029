//! Typed access to the headers a proxy reads on every message.
//!
//! Each accessor finds its header through the message's per-name index and
//! parses only that value, borrowing from the message; a malformed value is a
//! [`ParseError`] naming the header and its offset, so the proxy can answer
//! 400 with a precise reason.

use super::error::Malformed;
use super::error::{ErrorKind, ParseError};
use super::message::{Header, Message};
use super::name_addr::NameAddr;
use super::params::Params;
use super::scan::{CommaValues, parse_decimal, trim_lws};
use super::uri::{Uri, UriParts};
use super::via::{Via, ViaSpans};
use super::{HeaderName, Method};

/// What [`Message::validate`] parsed that routing reads again, as byte
/// ranges of the head: plain data, so a message stays cheap to clone. A
/// message not validated has none, and its accessors parse.
#[derive(Debug, Clone, Copy)]
pub(super) struct Memo {
    pub(super) top_via: Option<ViaSpans>,
    /// The Via below the top one: where a response goes next.
    pub(super) next_via: Option<ViaSpans>,
    /// `None` for a response.
    pub(super) ruri: Option<UriParts>,
    /// A request's, from the full parse of its From and To; `None` for a
    /// response, whose tags are scanned when first read
    /// ([`Message::to_tag`]): routing a response seldom reads them.
    pub(super) tags: Option<Tags>,
    /// Checked only for requests; kept for any message, as found.
    pub(super) max_forwards: Result<Option<u8>, ParseError>,
    /// The CSeq number and the byte range of its method in the head: the
    /// transaction layer, the dialog hash and the branch read it several
    /// times per message.
    pub(super) cseq: (u32, (u32, u32)),
    /// A request's first Route value: every in-dialog request through a
    /// record-routing proxy carries its own entry on top, which route
    /// preprocessing reads and removes (RFC 3261 §16.4).
    pub(super) first_route: Option<RouteSpans>,
}

/// The first Route value as validation parsed it, as byte ranges of the
/// head: the whole value and its URI, and the URI's parts (ranges of the URI
/// text, its parameters included).
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteSpans {
    value: (u32, u32),
    uri: (u32, u32),
    parts: UriParts,
}

impl RouteSpans {
    /// `value` and `na` (its parse) are slices of `head`; `None` otherwise.
    pub(super) fn of(head: &str, value: &str, na: &NameAddr<'_>) -> Option<RouteSpans> {
        let span = |part: &str| super::scan::span_within(head, part);
        Some(RouteSpans {
            value: span(value)?,
            uri: span(na.uri.raw())?,
            parts: UriParts::from_uri(na.uri.raw(), &na.uri)?,
        })
    }
}

/// The To and From tags of a message, as byte ranges of its head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tags {
    to: Option<(u32, u32)>,
    from: Option<(u32, u32)>,
}

impl Tags {
    fn of(head: &str, to: Option<&str>, from: Option<&str>) -> Tags {
        let span = |t: &str| super::scan::span_within(head, t);
        Tags { to: to.and_then(span), from: from.and_then(span) }
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    /// The method as written.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`; the number must be below 2^31 (RFC 3261 §8.1.1.5).
    pub fn parse(s: &'a str) -> Result<CSeq<'a>, Malformed> {
        let s = trim_lws(s);
        let split = s.bytes().position(|b| b.is_ascii_whitespace()).ok_or(Malformed)?;
        let seq = parse_decimal(&s[..split], (1 << 31) - 1).ok_or(Malformed)? as u32;
        let method = trim_lws(&s[split..]);
        if !super::scan::is_token(method) {
            return Err(Malformed);
        }
        Ok(CSeq { seq, method })
    }

    /// The method, classified.
    pub fn method_kind(&self) -> Method {
        Method::from_token(self.method)
    }
}

/// One Contact value: `*` or an address with its `expires` and `q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(s: &'a str) -> Result<Contact<'a>, Malformed> {
        if trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        let na = NameAddr::parse(s)?;
        let c = Contact::Addr(na);
        // Validate the typed parameters up front so callers can trust them.
        if na.params.contains("expires") {
            c.expires().ok_or(Malformed)?;
        }
        if na.params.contains("q") {
            c.q().ok_or(Malformed)?;
        }
        Ok(c)
    }

    /// The `expires` parameter in seconds (at most 2^32-1).
    pub fn expires(&self) -> Option<u32> {
        match self {
            Contact::Addr(na) => na
                .params
                .get("expires")
                .flatten()
                .and_then(|v| parse_decimal(v, u64::from(u32::MAX)))
                .map(|v| v as u32),
            Contact::Star => None,
        }
    }

    /// The `q` parameter in thousandths (`q=0.5` is 500), 0..=1000.
    pub fn q(&self) -> Option<u16> {
        let Contact::Addr(na) = self else { return None };
        parse_qvalue(na.params.get("q").flatten()?)
    }
}

/// The `tag` of a From or To value, its structure checked without parsing
/// the URI ([`NameAddr::address_and_params`]); with `address`, the URI's
/// shape too ([`NameAddr::check_address`]), as validation asks of requests.
fn tag_of_value(v: &str, address: bool) -> Result<Option<&str>, Malformed> {
    let (uri, bracketed, _, tag) = NameAddr::address_and_params(v, "tag")?;
    if address {
        NameAddr::check_address(uri, bracketed)?;
    }
    Ok(tag.flatten())
}

/// Parses a `qvalue` (RFC 3261 §20.10) into thousandths.
pub fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v = match int {
        "0" => 0u16,
        "1" => 1000,
        _ => return None,
    };
    let mut scale = 100;
    for b in frac.bytes() {
        v += u16::from(b - b'0') * scale;
        scale /= 10;
    }
    (v <= 1000).then_some(v)
}

impl Message {
    pub(super) fn bad(&self, name: HeaderName, h: &Header) -> ParseError {
        ParseError::new(ErrorKind::BadHeader(name), h.value.start as usize)
    }

    fn single(&self, name: HeaderName) -> Result<Option<(&Header, &str)>, ParseError> {
        match self.header(name) {
            None => Ok(None),
            Some(h) => Ok(Some((h, self.value_of(h)))),
        }
    }

    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> Result<Option<Uri<'_>>, ParseError> {
        match self.request_uri_str() {
            None => Ok(None),
            Some(s) => Uri::parse(s).map(Some).map_err(|_| ParseError::new(ErrorKind::BadUri, 0)),
        }
    }

    /// The first Route value's URI text, parts (ranges of that text) and
    /// parameters, as validation parsed them, when `value` is that value
    /// (the same bytes at the same place in the head: an edited Route set
    /// gives text of its own, which is then parsed by the caller).
    pub fn kept_first_route(&self, value: &str) -> Option<(&str, &UriParts, Params<'_>)> {
        let r = self.memo.as_ref()?.first_route.as_ref()?;
        if super::scan::span_within(self.head(), value) != Some(r.value) {
            return None;
        }
        let uri = self.head().get(r.uri.0 as usize..r.uri.1 as usize)?;
        Some((uri, &r.parts, r.parts.params(uri)))
    }

    /// The parts of the Request-URI routing reads, as ranges of
    /// [`Message::request_uri_str`]. A validated message answers from what
    /// validation parsed; otherwise the URI is parsed now.
    pub fn request_uri_parts(&self) -> Result<Option<UriParts>, ParseError> {
        match &self.memo {
            Some(m) => Ok(m.ruri),
            None => self.parse_request_uri_parts(),
        }
    }

    /// The Request-URI parts validation kept, by reference; `None` for a
    /// response or a message not validated ([`Message::request_uri_parts`]
    /// answers for those).
    pub fn kept_request_uri_parts(&self) -> Option<&UriParts> {
        self.memo.as_ref()?.ruri.as_ref()
    }

    pub(super) fn parse_request_uri_parts(&self) -> Result<Option<UriParts>, ParseError> {
        match self.request_uri_str() {
            None => Ok(None),
            Some(s) => UriParts::of(s).map(Some).ok_or(ParseError::new(ErrorKind::BadUri, 0)),
        }
    }

    /// The topmost Via value. A validated message answers from what
    /// validation parsed; otherwise it is parsed now.
    pub fn via(&self) -> Result<Option<Via<'_>>, ParseError> {
        let spans = match &self.memo {
            Some(m) => m.top_via,
            None => self.parse_top_via()?,
        };
        match spans {
            Some(s) => Ok(Some(s.get(self.head()))),
            None => Ok(None),
        }
    }

    /// The first value of the first Via line, as [`Message::vias`] gives
    /// it first, for a message not validated (validation keeps it).
    pub(super) fn parse_top_via(&self) -> Result<Option<ViaSpans>, ParseError> {
        let Some(h) = self.header(HeaderName::Via) else { return Ok(None) };
        // The first split is always a value (`None` cannot happen).
        let Some(v) = CommaValues::new(self.value_of(h)).next() else { return Ok(None) };
        let via = self.list_value(HeaderName::Via, h, v, Via::parse)?;
        // A value is always a slice of the head; `None` cannot happen.
        Ok(ViaSpans::of(&via, self.head()))
    }

    /// The Via value below the top one: where a response goes after this
    /// proxy. A validated message answers from what validation parsed.
    pub fn next_via(&self) -> Option<Result<Via<'_>, ParseError>> {
        if let Some(m) = &self.memo {
            return m.next_via.map(|s| Ok(s.get(self.head())));
        }
        self.vias_below_top().next()
    }

    /// Every Via value below the top one, parsed (the top one is not).
    pub fn vias_below_top(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.list_of_from(HeaderName::Via, Via::parse, 1)
    }

    /// Every Via value, top first, across all Via lines.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.list_of(HeaderName::Via, Via::parse)
    }

    /// Every Route value, top first.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_of(HeaderName::Route, NameAddr::parse)
    }

    /// Every Record-Route value, top first.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_of(HeaderName::RecordRoute, NameAddr::parse)
    }

    /// Every Path value (RFC 3327), top first.
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_of(HeaderName::Path, NameAddr::parse)
    }

    /// Every Contact value, in order.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> + '_ {
        self.list_of(HeaderName::Contact, Contact::parse)
    }

    fn list_of<'m, T: 'm>(
        &'m self,
        name: HeaderName,
        parse: fn(&'m str) -> Result<T, Malformed>,
    ) -> impl Iterator<Item = Result<T, ParseError>> + 'm {
        self.list_of_from(name, parse, 0)
    }

    /// [`Message::list_of`] without the first `skip` values, which are
    /// passed over unparsed.
    fn list_of_from<'m, T: 'm>(
        &'m self,
        name: HeaderName,
        parse: fn(&'m str) -> Result<T, Malformed>,
        skip: usize,
    ) -> impl Iterator<Item = Result<T, ParseError>> + 'm {
        self.lined_values(name).skip(skip).map(move |(h, v)| self.list_value(name, h, v, parse))
    }

    /// Every value of the `name` lines, unparsed, with its line, top first.
    pub(super) fn lined_values(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = (&Header, Result<&str, Malformed>)> + '_ {
        let from = self.header_index(name).unwrap_or(self.headers().len());
        self.headers()[from..]
            .iter()
            .filter(move |h| h.name == name)
            .flat_map(move |h| CommaValues::new(self.value_of(h)).map(move |v| (h, v)))
    }

    /// One value of a list header line `h` as [`CommaValues`] split it,
    /// parsed: an empty value is malformed, and an unterminated quote is
    /// reported at the line's value.
    pub(super) fn list_value<'m, T>(
        &self,
        name: HeaderName,
        h: &Header,
        v: Result<&'m str, Malformed>,
        parse: fn(&'m str) -> Result<T, Malformed>,
    ) -> Result<T, ParseError> {
        match v {
            Ok(v) if !v.is_empty() => parse(v).map_err(|_| self.bad(name, h)),
            Ok(_) => Err(self.bad(name, h)),
            Err(Malformed) => {
                Err(ParseError::new(ErrorKind::UnterminatedQuote, h.value.start as usize))
            }
        }
    }

    fn name_addr(&self, name: HeaderName) -> Result<Option<NameAddr<'_>>, ParseError> {
        match self.single(name)? {
            None => Ok(None),
            Some((h, v)) => NameAddr::parse(v).map(Some).map_err(|_| self.bad_name_addr(name, h)),
        }
    }

    /// The error of a From, To or Contact value that does not parse: an
    /// unterminated display name says so (RFC 4475 §3.1.2.6).
    fn bad_name_addr(&self, name: HeaderName, h: &Header) -> ParseError {
        let v = self.value_of(h);
        if v.contains('"') && super::scan::find_unquoted(v, b'>').is_err() {
            ParseError::new(ErrorKind::UnterminatedQuote, h.value.start as usize)
        } else {
            self.bad(name, h)
        }
    }

    /// The From header.
    pub fn from(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// The To tag, without parsing the To URI (see
    /// [`NameAddr::address_and_params`]); `None` when there is no To header, no
    /// tag or the value is malformed.
    pub fn to_tag(&self) -> Option<&str> {
        self.tag_of(HeaderName::To)
    }

    /// The From tag, as [`Message::to_tag`] finds the To tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.tag_of(HeaderName::From)
    }

    fn tag_of(&self, name: HeaderName) -> Option<&str> {
        let tags = match self.memo.as_ref().and_then(|m| m.tags) {
            Some(tags) => tags,
            None => *self.scanned_tags.get_or_init(|| self.scan_tags()),
        };
        let (start, end) = if name == HeaderName::To { tags.to? } else { tags.from? };
        self.head().get(start as usize..end as usize)
    }

    /// The From and To tags of a request, for validation: each value's
    /// structure is checked (quoted display name, `<…>`, header
    /// parameters) and its URI's shape (a scheme, a colon, something after
    /// it; see [`NameAddr::check_address`]); the URI itself is not parsed.
    /// A proxy uses the tags and never the addresses (RFC 3261 §16.3 asks
    /// only that what it uses be well-formed; Kamailio's `sanity_check`
    /// leaves From and To URIs alone by default), and parsing both URIs of
    /// every request was about 4% of a stateful call's instructions. Route
    /// code that reads `$fu` or `$tu` of a malformed address gets an empty
    /// value, as for a response.
    pub(super) fn checked_tags(&self) -> Result<Tags, ParseError> {
        let tag = |name| -> Result<Option<&str>, ParseError> {
            match self.single(name)? {
                None => Ok(None),
                Some((h, v)) => tag_of_value(v, true).map_err(|_| self.bad_name_addr(name, h)),
            }
        };
        let from = tag(HeaderName::From)?;
        Ok(Tags::of(self.head(), tag(HeaderName::To)?, from))
    }

    /// The tags, found by scanning only the header parameters of To and From.
    pub(super) fn scan_tags(&self) -> Tags {
        let find = |name| tag_of_value(self.single(name).ok()??.1, false).ok()?;
        Tags::of(self.head(), find(HeaderName::To), find(HeaderName::From))
    }

    /// The Call-ID (`word [@ word]`, no white space).
    pub fn call_id(&self) -> Result<Option<&str>, ParseError> {
        match self.single(HeaderName::CallId)? {
            None => Ok(None),
            Some((h, v)) if v.is_empty() || v.bytes().any(|b| b <= b' ') => {
                Err(self.bad(HeaderName::CallId, h))
            }
            Some((_, v)) => Ok(Some(v)),
        }
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<Option<CSeq<'_>>, ParseError> {
        if let Some(m) = &self.memo {
            let (seq, (s, e)) = m.cseq;
            let method = self.head().get(s as usize..e as usize).unwrap_or_default();
            return Ok(Some(CSeq { seq, method }));
        }
        match self.single(HeaderName::CSeq)? {
            None => Ok(None),
            Some((h, v)) => CSeq::parse(v).map(Some).map_err(|_| self.bad(HeaderName::CSeq, h)),
        }
    }

    /// Max-Forwards, 0..=255 (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        if let Some(m) = &self.memo {
            return m.max_forwards;
        }
        self.number(HeaderName::MaxForwards, 255).map(|v| v.map(|v| v as u8))
    }

    /// The Expires header in seconds (at most 2^32-1).
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.number(HeaderName::Expires, u64::from(u32::MAX)).map(|v| v.map(|v| v as u32))
    }

    /// The Content-Length header (already checked against the body by the parser).
    pub fn content_length(&self) -> Option<u32> {
        self.number(HeaderName::ContentLength, u64::from(u32::MAX)).ok().flatten().map(|v| v as u32)
    }

    /// The media type of Content-Type, without parameters (`application/sdp`).
    pub fn content_type(&self) -> Option<&str> {
        let v = self.header_value(HeaderName::ContentType)?;
        Some(trim_lws(v.split(';').next().unwrap_or(v)))
    }

    fn number(&self, name: HeaderName, max: u64) -> Result<Option<u64>, ParseError> {
        match self.single(name)? {
            None => Ok(None),
            Some((h, v)) => parse_decimal(v, max).map(Some).ok_or_else(|| self.bad(name, h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept top Via is the one `vias()` parses, host kinds and errors
    /// included, and `vias_below_top` is the rest.
    #[test]
    fn the_kept_top_via_is_the_parsed_one() {
        for vias in [
            "Via: SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bKa;rport\r\nVia: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKb, SIP/2.0/UDP [2001:db8::9]:5070;received=192.0.2.7\r\n",
            "Via: SIP/2.0/TLS 192.0.2.1\r\n",
            "Via: SIP/2.0/UDP [::1];branch=z9hG4bKc\r\n",
            "Via: SIP/2.0/UDP bad host\r\n",
            "Via: , SIP/2.0/UDP 192.0.2.1\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1;x=\"open\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1,\r\nVia: SIP/2.0/UDP 192.0.2.3\r\n",
        ] {
            let text = format!(
                "OPTIONS sip:x@example.com SIP/2.0\r\n{vias}To: <sip:x@example.com>\r\n\
                 From: <sip:y@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let m = Message::parse(bytes::Bytes::from(text)).unwrap();
            let all: Vec<_> = m.vias().collect();
            for _ in 0..2 {
                assert_eq!(m.via(), all[0].map(Some), "{vias}");
            }
            assert_eq!(m.vias_below_top().collect::<Vec<_>>(), all[1..], "{vias}");
        }
    }

    #[test]
    fn cseq_forms() {
        assert_eq!(CSeq::parse("0009\r\n  INVITE").unwrap(), CSeq { seq: 9, method: "INVITE" });
        assert!(CSeq::parse("36893488147419103232 OPTIONS").is_err());
        assert!(CSeq::parse("2147483648 OPTIONS").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("x INVITE").is_err());
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("0.33"), Some(330));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("2"), None);
    }

    #[test]
    fn contacts() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        let c = Contact::parse("<sip:a@b>;expires=60;q=0.7").unwrap();
        assert_eq!(c.expires(), Some(60));
        assert_eq!(c.q(), Some(700));
        assert!(Contact::parse("<sip:a@b>;expires=280297596632815").is_err());
        assert!(Contact::parse("<sip:a@b>;q=7").is_err());
    }
}
