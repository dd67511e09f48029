//! The parsed message: start line, header index and body over one `Bytes`.
//!
//! Parsing is one pass that *locates* things: the start line is checked,
//! every header line is found (folds joined, names classified) and the body is
//! delimited by Content-Length. Nothing is copied: the header section is kept
//! as a [`ByteString`] (validated as UTF-8 once) and every header is a pair of
//! spans into it. Header values are typed on access by the views in this
//! module's siblings ([`Via`](super::Via), [`NameAddr`](super::NameAddr) …),
//! which borrow from the message; a per-name index makes finding the first
//! header of a kind O(1).

use super::error::Malformed;
use bytes::Bytes;
use bytestring::ByteString;

use super::error::{ErrorKind, ParseError};
use super::scan::{CommaValues, is_token_byte, parse_decimal};
use super::{HeaderName, Method};

/// Hard limits applied while parsing; the proxy exposes them as settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted message, header section and body together.
    pub max_message_size: usize,
    /// Most header lines (a folded header counts once).
    pub max_headers: usize,
    /// Longest header, name and folds included.
    pub max_header_len: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_message_size: 65_535, max_headers: 256, max_header_len: 16_384 }
    }
}

/// A byte range into the message's header section ([`Message::head`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        Self { start: start as u32, end: end as u32 }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One header line (with its continuation lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The classified name; [`HeaderName::Other`] for unknown headers.
    pub name: HeaderName,
    pub name_span: Span,
    pub value: Span,
    /// The whole line: from the name to the line end, CRLF included.
    pub line: Span,
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    /// `version_ok` is false for a well-formed request of another SIP
    /// version (`SIP/7.0`): it parses, so the proxy can answer it, and
    /// [`Message::validate`] refuses it with 505.
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
        version_ok: bool,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

const NONE: u16 = u16::MAX;

/// A SIP message, parsed. Cloning is cheap (reference-counted buffers).
#[derive(Debug, Clone)]
pub struct Message {
    raw: Bytes,
    head: ByteString,
    start: StartLine,
    headers: Vec<Header>,
    first: [u16; HeaderName::COUNT],
    count: [u8; HeaderName::COUNT],
    /// What validation parsed and routing reads again: the top Via, the
    /// Request-URI's parts, the To and From tags ([`Message::validate`]).
    pub(super) memo: Option<super::typed::Memo>,
    /// The To and From tags found by scanning, the first time either is
    /// asked for where validation did not keep them (a response, or a
    /// message not validated).
    pub(super) scanned_tags: std::sync::OnceLock<super::typed::Tags>,
}

impl Message {
    /// Parses one message from a datagram with default limits; see [`Message::parse_with`].
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_with(buf, &ParseLimits::default())
    }

    /// Parses one message. Leading CRLFs are skipped (RFC 3261 §7.5). With a
    /// Content-Length the body is exactly that long and bytes after it are
    /// ignored (RFC 4475 §3.1.1.8); a Content-Length past the end of `buf` is
    /// an error (§18.3). Without one, the body is the rest of `buf`: on a
    /// stream transport, frame with [`frame_stream`](super::frame_stream) first.
    pub fn parse_with(buf: Bytes, limits: &ParseLimits) -> Result<Message, ParseError> {
        let lead = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        let data = &buf[lead..];
        if data.is_empty() {
            return Err(ParseError::new(ErrorKind::Empty, 0));
        }
        if data.len() > limits.max_message_size {
            return Err(ParseError::new(ErrorKind::TooLarge, limits.max_message_size));
        }
        let err = |kind, at: usize| ParseError::new(kind, at);

        let first_eol = memchr::memchr(b'\n', data).ok_or(err(ErrorKind::Truncated, data.len()))?;
        let mut headers: Vec<Header> = Vec::with_capacity(24);
        // The index is built as the lines are found, and each value trimmed
        // as its line is pushed (a folded header again when a fold joins it).
        let mut first = [NONE; HeaderName::COUNT];
        let mut count = [0u8; HeaderName::COUNT];
        let mut pos = first_eol + 1;
        let head_len = loop {
            let eol = memchr::memchr(b'\n', &data[pos..])
                .map(|i| pos + i)
                .ok_or(err(ErrorKind::Truncated, data.len()))?;
            let line_end = if eol > pos && data[eol - 1] == b'\r' { eol - 1 } else { eol };
            if line_end == pos {
                break eol + 1;
            }
            let c = data[pos];
            if c == b' ' || c == b'\t' {
                let h = headers.last_mut().ok_or(err(ErrorKind::FoldWithoutHeader, pos))?;
                // The value runs from after the colon (white space and
                // earlier folds included) to this line's end, then trimmed.
                let mut colon = h.name_span.end as usize;
                while data[colon] != b':' {
                    colon += 1;
                }
                h.value = trim_span(data, Span::new(colon + 1, line_end));
                h.line.end = (eol + 1) as u32;
                if h.line.end - h.line.start > limits.max_header_len as u32 {
                    return Err(err(ErrorKind::HeaderTooLong, h.line.start as usize));
                }
            } else {
                if headers.len() == limits.max_headers {
                    return Err(err(ErrorKind::TooManyHeaders, pos));
                }
                if line_end - pos > limits.max_header_len {
                    return Err(err(ErrorKind::HeaderTooLong, pos));
                }
                let (name, name_end, colon) = match HeaderName::line_prefix(&data[pos..]) {
                    Some((name, len)) => (name, pos + len, pos + len),
                    None => {
                        // The name: token bytes, optional white space, then ':'.
                        let line = &data[pos..line_end];
                        let name_end = pos
                            + line.iter().position(|&b| !is_token_byte(b)).unwrap_or(line.len());
                        let mut colon = name_end;
                        while colon < line_end && matches!(data[colon], b' ' | b'\t') {
                            colon += 1;
                        }
                        if name_end == pos || colon == line_end || data[colon] != b':' {
                            return Err(err(ErrorKind::BadHeaderLine, pos));
                        }
                        (HeaderName::classify_bytes(&data[pos..name_end]), name_end, colon)
                    }
                };
                let k = name as usize;
                if first[k] == NONE {
                    first[k] = headers.len() as u16;
                }
                count[k] = count[k].saturating_add(1);
                headers.push(Header {
                    name,
                    name_span: Span::new(pos, name_end),
                    value: trim_span(data, Span::new(colon + 1, line_end)),
                    line: Span::new(pos, eol + 1),
                });
            }
            pos = eol + 1;
        };

        let head = ByteString::try_from(buf.slice(lead..lead + head_len))
            .map_err(|_| err(ErrorKind::NotUtf8, 0))?;
        let text: &str = &head;
        let start = parse_start_line(text, first_eol)?;

        let avail = data.len() - head_len;
        let body_len = match first[HeaderName::ContentLength as usize] {
            NONE => avail,
            i => {
                if count[HeaderName::ContentLength as usize] > 1 {
                    return Err(err(
                        ErrorKind::DuplicateHeader(HeaderName::ContentLength),
                        headers[usize::from(i)].line.start as usize,
                    ));
                }
                let h = headers[usize::from(i)];
                let n = parse_decimal(&text[h.value.range()], u64::from(u32::MAX))
                    .ok_or(err(ErrorKind::BadContentLength, h.value.start as usize))?;
                let n = n as usize;
                if n > avail {
                    return Err(err(ErrorKind::BadContentLength, h.value.start as usize));
                }
                n
            }
        };
        let raw = buf.slice(lead..lead + head_len + body_len);
        Ok(Message {
            raw,
            head,
            start,
            headers,
            first,
            count,
            memo: None,
            scanned_tags: std::sync::OnceLock::new(),
        })
    }

    /// The message exactly as received (leading CRLFs and trailing extra bytes excluded).
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The start line and headers, up to and including the empty line.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The body (possibly empty), as received.
    pub fn body(&self) -> Bytes {
        self.raw.slice(self.head.len()..)
    }

    /// The body length in bytes.
    pub fn body_len(&self) -> usize {
        self.raw.len() - self.head.len()
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Is this SIP/2.0? (Only a request can be otherwise, see [`StartLine`].)
    pub fn version_ok(&self) -> bool {
        !matches!(self.start, StartLine::Request { version_ok: false, .. })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request method as written (extension methods included).
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_span, .. } => Some(self.text(method_span)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text, or `None` for a response.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase, or `None` for a request.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header line in message order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// A header's name as written on the wire.
    pub fn name_of(&self, h: &Header) -> &str {
        self.text(h.name_span)
    }

    /// A header's value as written, folds included, outer white space trimmed.
    pub fn value_of(&self, h: &Header) -> &str {
        self.text(h.value)
    }

    /// The first header line of a known kind.
    pub fn header(&self, name: HeaderName) -> Option<&Header> {
        match self.first[name as usize] {
            NONE => None,
            i => Some(&self.headers[usize::from(i)]),
        }
    }

    /// The value of the first header line of a known kind.
    pub fn header_value(&self, name: HeaderName) -> Option<&str> {
        self.header(name).map(|h| self.value_of(h))
    }

    /// How many header lines of a known kind the message has (saturates at 255).
    pub fn header_count(&self, name: HeaderName) -> usize {
        usize::from(self.count[name as usize])
    }

    /// All header lines with the given name, compact forms and case folded:
    /// `"v"`, `"VIA"` and `"Via"` find the same lines; unknown names compare
    /// case-insensitively.
    pub fn headers_named<'m>(&'m self, name: &'m str) -> impl Iterator<Item = &'m Header> + 'm {
        self.indices_named(name).map(|i| &self.headers[i])
    }

    /// The indices into [`Message::headers`] of the lines [`Message::headers_named`] finds.
    pub fn indices_named<'m>(&'m self, name: &'m str) -> impl Iterator<Item = usize> + 'm {
        let kind = HeaderName::classify(name);
        let from = match kind {
            HeaderName::Other => 0,
            k => usize::from(self.first[k as usize]).min(self.headers.len()),
        };
        (from..self.headers.len()).filter(move |&i| {
            let h = &self.headers[i];
            h.name == kind
                && (kind != HeaderName::Other || self.name_of(h).eq_ignore_ascii_case(name))
        })
    }

    /// The indices of the lines of a known kind (not [`HeaderName::Other`]),
    /// found from the parser's index without comparing names.
    pub fn indices_of(&self, kind: HeaderName) -> impl Iterator<Item = usize> + '_ {
        debug_assert_ne!(kind, HeaderName::Other);
        let from = usize::from(self.first[kind as usize]).min(self.headers.len());
        (from..self.headers.len()).filter(move |&i| self.headers[i].name == kind)
    }

    /// The value lines of every header of a known kind, in order.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.indices_of(name).map(|i| self.value_of(&self.headers[i]))
    }

    /// The comma-separated values of every header of a list kind (Via, Route,
    /// Contact …) across all its lines, in order. `Err` marks a value with an
    /// unterminated quoted string.
    pub fn list_values(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<&str, Malformed>> + '_ {
        self.header_values(name).flat_map(CommaValues::new)
    }

    pub(crate) fn text(&self, span: Span) -> &str {
        &self.head[span.range()]
    }

    pub(crate) fn header_index(&self, name: HeaderName) -> Option<usize> {
        match self.first[name as usize] {
            NONE => None,
            i => Some(usize::from(i)),
        }
    }
}

/// Shrinks a value span to exclude leading and trailing LWS (folds included).
fn trim_span(b: &[u8], span: Span) -> Span {
    let (mut s, mut e) = (span.start as usize, span.end as usize);
    while s < e && super::scan::is_lws(b[s]) {
        s += 1;
    }
    while e > s && super::scan::is_lws(b[e - 1]) {
        e -= 1;
    }
    Span::new(s, e)
}

/// Checks the start line strictly: single spaces between the elements and no
/// trailing white space (RFC 4475 §3.1.2.9, §3.1.2.10), SIP/2.0 only. Byte
/// by byte, as it runs for every message.
fn parse_start_line(text: &str, eol: usize) -> Result<StartLine, ParseError> {
    let b = text.as_bytes();
    let line_end = if eol > 0 && b[eol - 1] == b'\r' { eol - 1 } else { eol };
    let line = &b[..line_end];
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        let bad = ParseError::new(ErrorKind::BadStatusLine, 0);
        let sp = rest.iter().position(|&c| c == b' ').ok_or(bad)?;
        if &rest[..sp] != b"2.0" {
            return Err(ParseError::new(ErrorKind::UnsupportedVersion, 4));
        }
        let rest = &rest[sp + 1..];
        // The code: exactly three digits, then a space and the reason or the end.
        let code = match rest {
            [a, b, c] | [a, b, c, b' ', ..]
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::new(ErrorKind::BadStatusLine, 8)),
        };
        if !(100..=699).contains(&code) {
            return Err(ParseError::new(ErrorKind::BadStatusLine, 8));
        }
        let reason = rest.get(4..).unwrap_or_default();
        if reason.iter().any(|&c| c.is_ascii_control() && c != b'\t') {
            return Err(ParseError::new(ErrorKind::BadStatusLine, 12));
        }
        let rs = line_end - reason.len();
        return Ok(StartLine::Response { code, reason: Span::new(rs, line_end) });
    }
    let bad = |at| ParseError::new(ErrorKind::BadRequestLine, at);
    let sp1 = line.iter().position(|&c| !is_token_byte(c)).unwrap_or(line.len());
    if sp1 == 0 || line.get(sp1) != Some(&b' ') {
        return Err(bad(0));
    }
    /// The bytes that end a Request-URI: white space, controls, DEL, `<`, `>`.
    const URI_END: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = c <= b' ' as usize || c == 0x7f || c == b'<' as usize || c == b'>' as usize;
            c += 1;
        }
        t
    };
    let uri_len =
        line[sp1 + 1..].iter().position(|&c| URI_END[c as usize]).unwrap_or(line.len() - sp1 - 1);
    let sp2 = sp1 + 1 + uri_len;
    if uri_len == 0 || line.get(sp2) != Some(&b' ') {
        // An empty URI, no second space, or a character a URI cannot hold.
        return Err(bad(sp1 + 1));
    }
    let version = &line[sp2 + 1..];
    let version_ok = version.eq_ignore_ascii_case(b"SIP/2.0");
    if !version_ok {
        let other_version = version.len() > 4
            && version[..4].eq_ignore_ascii_case(b"SIP/")
            && version[4..].iter().all(|b| b.is_ascii_digit() || *b == b'.');
        if !other_version {
            return Err(ParseError::new(ErrorKind::BadRequestLine, sp2 + 1));
        }
    }
    Ok(StartLine::Request {
        method: Method::from_token(&text[..sp1]),
        method_span: Span::new(0, sp1),
        uri: Span::new(sp1 + 1, sp2),
        version_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values are trimmed as their lines are found and again when a fold
    /// joins them; the index counts what the lines name, prefix-matched
    /// names and the general way's alike.
    #[test]
    fn values_are_trimmed_and_indexed_as_lines_are_found() {
        let text = "OPTIONS sip:a@example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
            v : SIP/2.0/UDP 192.0.2.2\r\n\
            VIA:SIP/2.0/UDP 192.0.2.3  \r\n\
            Subject:\r\n  folded value \r\n\
            X-Long: a\r\n b\r\n\tc  \r\n\
            Empty:\r\n\
            From: <sip:a@example.com>;tag=1\r\nTo:\t<sip:b@example.com>\r\n\
            Call-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(Bytes::from(text)).unwrap();
        let values: Vec<(HeaderName, &str)> =
            m.headers().iter().map(|h| (h.name, m.value_of(h))).collect();
        assert_eq!(
            values,
            [
                (HeaderName::Via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
                (HeaderName::Via, "SIP/2.0/UDP 192.0.2.2"),
                (HeaderName::Via, "SIP/2.0/UDP 192.0.2.3"),
                (HeaderName::Subject, "folded value"),
                (HeaderName::Other, "a\r\n b\r\n\tc"),
                (HeaderName::Other, ""),
                (HeaderName::From, "<sip:a@example.com>;tag=1"),
                (HeaderName::To, "<sip:b@example.com>"),
                (HeaderName::CallId, "c"),
                (HeaderName::CSeq, "1 OPTIONS"),
                (HeaderName::MaxForwards, "70"),
                (HeaderName::ContentLength, "0"),
            ]
        );
        assert_eq!(m.header_count(HeaderName::Via), 3);
        assert_eq!(m.header(HeaderName::Via).map(|h| h.line.start), Some(35));
        assert_eq!(m.header(HeaderName::Subject).map(|h| m.value_of(h)), Some("folded value"));
        assert_eq!(m.header_count(HeaderName::Other), 2);
    }
}
