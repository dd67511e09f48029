//! Character classes and small scanners shared by the typed header parsers.
//!
//! Header values are kept exactly as received, line folds included, so every
//! scanner here treats CR and LF as linear white space (inside a header value a
//! CR or LF can only be part of a fold: the message splitter guarantees it).
//! Scanners return sub-slices of their input, never copies.

use super::error::Malformed;

/// RFC 3261 §25.1 `token` characters.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        c += 1;
    }
    t
};

/// Is `b` a `token` character?
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Is `s` a non-empty `token`?
#[inline]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space as it can appear in a stored header value.
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s` without leading and trailing LWS.
#[inline]
pub fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_lws(b[start]) {
        start += 1;
    }
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    // LWS bytes are ASCII, so both cuts fall on character boundaries.
    &s[start..end]
}

/// `s` without leading LWS.
#[inline]
pub fn trim_lws_start(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_lws(b)).count();
    &s[n..]
}

/// Where `part`, a slice of `outer`, lies in it, as u32 byte offsets
/// (`None` when it is not a slice of `outer`). Parsed views keep such
/// spans so they can be stored without borrowing the text.
pub fn span_within(outer: &str, part: &str) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= outer.len()).then_some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// Position of byte `c` in `b`. For the short strings of URIs and
/// parameters an inlined loop beats `memchr`'s dispatch; long haystacks
/// (message lines) use `memchr` directly.
#[inline]
pub fn find_byte(c: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == c)
}

/// Finds the end of a quoted string starting at `s[0] == '"'`, honouring
/// `\` escapes. Returns the index one past the closing quote.
pub fn quoted_end(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s.first(), Some(&b'"'));
    let mut i = 1;
    while let Some(j) = memchr::memchr2(b'\\', b'"', &s[i..]) {
        i += j;
        if s[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
        if i >= s.len() {
            return None;
        }
    }
    None
}

/// Finds the first occurrence of `needle` in `s` outside quoted strings and
/// outside `<…>`. Returns `None` when absent; `Err(Malformed)` on an unterminated quote.
pub fn find_unquoted(s: &str, needle: u8) -> Result<Option<usize>, Malformed> {
    let b = s.as_bytes();
    let mut i = 0;
    // Jump between the only bytes that matter (memchr3), instead of a
    // byte-by-byte state machine: values are mostly plain text.
    while let Some(j) = memchr::memchr3(b'"', b'<', needle, &b[i..]) {
        i += j;
        match b[i] {
            b'"' => i += quoted_end(&b[i..]).ok_or(Malformed)?,
            b'<' => match memchr::memchr(b'>', &b[i..]) {
                Some(k) => i += k + 1,
                None => return Ok(None),
            },
            _ => return Ok(Some(i)),
        }
    }
    Ok(None)
}

/// Splits a header value on the commas that separate its values (RFC 3261
/// §7.3.1), skipping commas inside quoted strings and `<…>`. Each item is
/// trimmed of LWS; empty items are yielded so callers can reject them.
#[derive(Debug, Clone)]
pub struct CommaValues<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaValues<'a> {
    pub fn new(value: &'a str) -> Self {
        Self { rest: Some(value) }
    }
}

impl<'a> Iterator for CommaValues<'a> {
    /// A value, or `Err(Malformed)` when a quoted string never closes.
    type Item = Result<&'a str, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        match find_unquoted(rest, b',') {
            Ok(Some(i)) => {
                self.rest = Some(&rest[i + 1..]);
                Some(Ok(trim_lws(&rest[..i])))
            }
            Ok(None) => {
                self.rest = None;
                Some(Ok(trim_lws(rest)))
            }
            Err(Malformed) => {
                self.rest = None;
                Some(Err(Malformed))
            }
        }
    }
}

/// Parses a decimal number of at most `max`, rejecting signs, empty input and
/// overflow (RFC 4475 §3.1.2.4 sends 2^65 in CSeq to catch wrapping parsers).
pub fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (v <= max).then_some(v)
}

/// Decodes `%XX` escapes. Returns the input unchanged (borrowed) when it has
/// none; a `%` not followed by two hex digits is kept literally.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Each byte's value as a hex digit (either case); 0xff for a byte that
/// is not one.
pub(crate) const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut c = 0;
    while c < 256 {
        if let Some(v) = (c as u8 as char).to_digit(16) {
            t[c] = v as u8;
        }
        c += 1;
    }
    t
};

/// The value of one hex digit, either case.
pub(crate) fn hex(b: u8) -> Option<u8> {
    Some(HEX_VALUE[b as usize]).filter(|&v| v < 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_values_respect_quotes_and_angles() {
        let v: Vec<_> =
            CommaValues::new(r#""a,b" <sip:x@y;p=1,2>, <sip:z> ,"#).map(Result::unwrap).collect();
        assert_eq!(v, [r#""a,b" <sip:x@y;p=1,2>"#, "<sip:z>", ""]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(CommaValues::new(r#""abc, d"#).any(|v| v.is_err()));
    }

    #[test]
    fn decimal_rejects_overflow_and_signs() {
        assert_eq!(parse_decimal("0009", 100), Some(9));
        assert_eq!(parse_decimal("36893488147419103232", u64::MAX), None);
        assert_eq!(parse_decimal("-1", 100), None);
        assert_eq!(parse_decimal("", 100), None);
        assert_eq!(parse_decimal("300", 255), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(&*percent_decode("a%40b"), b"a@b");
        assert_eq!(&*percent_decode("%00%00"), &[0, 0]);
        assert_eq!(&*percent_decode("50%"), b"50%");
        assert_eq!(&*percent_decode("%4"), b"%4");
    }
}
