//! Finding message boundaries in a byte stream (TCP, TLS): RFC 3261 §18.3.
//!
//! On a stream, Content-Length is mandatory and says where the next message
//! starts. This scanner looks only at as much of the buffer as it needs and
//! never allocates, so a connection task can call it after every read.

use super::error::{ErrorKind, ParseError};
use super::message::ParseLimits;
use super::scan::parse_decimal;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message of this many bytes (head and body).
    Message(usize),
    /// CR/LF bytes before any message: RFC 5626 keep-alives (`CRLFCRLF` is
    /// a ping to answer with `CRLF`). Consume this many bytes.
    KeepAlive(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// The stream cannot be framed; close the connection.
    Invalid(ParseError),
}

/// Frames the next message at the front of `buf`.
pub fn frame_stream(buf: &[u8], limits: &ParseLimits) -> Frame {
    let lead = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if lead > 0 {
        return Frame::KeepAlive(lead);
    }
    let Some(head_len) = find_head_end(buf) else {
        return if buf.len() > limits.max_message_size {
            Frame::Invalid(ParseError::new(ErrorKind::TooLarge, limits.max_message_size))
        } else {
            Frame::Incomplete
        };
    };
    let mut cl = None;
    for line in buf[..head_len].split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let bad = Frame::Invalid(ParseError::new(ErrorKind::BadContentLength, 0));
            if cl.is_some() {
                return bad;
            }
            let Ok(v) = std::str::from_utf8(trim(&line[colon + 1..])) else { return bad };
            match parse_decimal(v, limits.max_message_size as u64) {
                Some(n) => cl = Some(n as usize),
                None => return bad,
            }
        }
    }
    let Some(cl) = cl else {
        return Frame::Invalid(ParseError::new(ErrorKind::BadContentLength, 0));
    };
    let total = head_len + cl;
    if total > limits.max_message_size {
        Frame::Invalid(ParseError::new(ErrorKind::TooLarge, limits.max_message_size))
    } else if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    }
}

/// Index one past the empty line ending the header section (CRLFCRLF or LFLF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + i;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        from = nl + 1;
    }
    None
}

fn trim(s: &[u8]) -> &[u8] {
    let s = &s[s.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    &s[..s.len() - s.iter().rev().take_while(|b| b.is_ascii_whitespace()).count()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn frames_by_content_length_and_waits_for_more() {
        let lim = ParseLimits::default();
        assert_eq!(frame_stream(MSG, &lim), Frame::Message(MSG.len()));
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame_stream(&two, &lim), Frame::Message(MSG.len()));
        for cut in 0..MSG.len() {
            assert_eq!(frame_stream(&MSG[..cut], &lim), Frame::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn keepalives_and_bad_framing() {
        let lim = ParseLimits::default();
        assert_eq!(frame_stream(b"\r\n\r\nOPTIONS", &lim), Frame::KeepAlive(4));
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert!(matches!(frame_stream(no_cl, &lim), Frame::Invalid(_)));
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(frame_stream(neg, &lim), Frame::Invalid(_)));
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert!(matches!(frame_stream(two, &lim), Frame::Invalid(_)));
        let huge = vec![b'a'; lim.max_message_size + 1];
        assert!(matches!(frame_stream(&huge, &lim), Frame::Invalid(_)));
    }
}
