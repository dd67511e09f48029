//! Parse errors: what was wrong, and where.
//!
//! Errors are small `Copy` values so the hot path never allocates for them;
//! the proxy maps them to `400 Bad Request` (or `505`, `513`) with the
//! [`ParseError`]'s text as the reason detail, and logs the offset.

use std::fmt;

use super::HeaderName;

/// What was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No bytes, or only CRLF keep-alives.
    Empty,
    /// The message is larger than the configured limit.
    TooLarge,
    /// More header lines than the configured limit.
    TooManyHeaders,
    /// One header (with its folds) is longer than the configured limit.
    HeaderTooLong,
    /// The start line and headers are not valid UTF-8.
    NotUtf8,
    /// The header section never ends with an empty line.
    Truncated,
    /// The request line is not `Method SP Request-URI SP SIP/2.0`.
    BadRequestLine,
    /// The status line is not `SIP/2.0 SP 3DIGIT SP Reason`.
    BadStatusLine,
    /// A SIP version other than 2.0 (answered with 505).
    UnsupportedVersion,
    /// A header line without a `name:` prefix, or a name with non-token characters.
    BadHeaderLine,
    /// The message starts with a folded (continuation) line.
    FoldWithoutHeader,
    /// A quoted string is never closed.
    UnterminatedQuote,
    /// A URI does not parse.
    BadUri,
    /// A header value does not parse as its type.
    BadHeader(HeaderName),
    /// A required header is absent.
    MissingHeader(HeaderName),
    /// A header that may appear once appears more than once.
    DuplicateHeader(HeaderName),
    /// Content-Length is not a number, or points past the received bytes.
    BadContentLength,
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
}

/// A parse failure with the byte offset (from the start of the message) where
/// it was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// The status code a proxy answers a request with this error.
    pub fn status_code(&self) -> u16 {
        match self.kind {
            ErrorKind::UnsupportedVersion => 505,
            ErrorKind::TooLarge | ErrorKind::HeaderTooLong | ErrorKind::TooManyHeaders => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            Empty => f.write_str("empty message"),
            TooLarge => f.write_str("message too large"),
            TooManyHeaders => f.write_str("too many headers"),
            HeaderTooLong => f.write_str("header too long"),
            NotUtf8 => f.write_str("start line or headers are not valid UTF-8"),
            Truncated => f.write_str("header section not terminated by an empty line"),
            BadRequestLine => f.write_str("malformed request line"),
            BadStatusLine => f.write_str("malformed status line"),
            UnsupportedVersion => f.write_str("unsupported SIP version"),
            BadHeaderLine => f.write_str("malformed header line"),
            FoldWithoutHeader => f.write_str("continuation line without a header"),
            UnterminatedQuote => f.write_str("unterminated quoted string"),
            BadUri => f.write_str("malformed URI"),
            BadHeader(h) => write!(f, "malformed {} header", h.as_str()),
            MissingHeader(h) => write!(f, "missing {} header", h.as_str()),
            DuplicateHeader(h) => write!(f, "more than one {} header", h.as_str()),
            BadContentLength => f.write_str("bad Content-Length"),
            CSeqMethodMismatch => f.write_str("CSeq method does not match the request method"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// The error of the small value parsers (`Uri::parse`, `Via::parse` …): the
/// text is not of that form. [`Message`](super::Message)'s accessors turn it
/// into a [`ParseError`] naming the header and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed value")
    }
}

impl std::error::Error for Malformed {}
