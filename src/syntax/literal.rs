//! Literal values: string escapes and `$pv` interpolation, durations, addresses.
//!
//! The lexer validates literals with these functions (reporting problems)
//! and the grammar's actions convert them with the same functions (ignoring
//! problems, which were already reported), so both agree by construction.

use super::ast::{Pv, StrLit, StrPart};
use super::span::{FileId, Span};
use crate::diag::{Code, Diagnostic};

/// Milliseconds in a duration literal such as `500ms`, `30s`, `2m`, `1h`.
pub fn duration_ms(text: &str) -> Option<u64> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..digits_end].parse().ok()?;
    let mul = match &text[digits_end..] {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// Checks `a.b.c.d`, `a.b.c.d:port` or `a.b.c.d/prefix`.
pub fn check_address(text: &str) -> Result<(), String> {
    let (ip, rest) = match text.find([':', '/']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    for octet in ip.split('.') {
        match octet.parse::<u32>() {
            Ok(v) if v <= 255 => {}
            _ => return Err(format!("`{octet}` is not an octet (0..=255)")),
        }
    }
    match rest {
        Some(p) if p.starts_with(':') => match p[1..].parse::<u32>() {
            Ok(v) if (1..=65535).contains(&v) => Ok(()),
            _ => Err(format!("`{}` is not a port (1..=65535)", &p[1..])),
        },
        Some(p) => match p[1..].parse::<u32>() {
            Ok(v) if v <= 32 => Ok(()),
            _ => Err(format!("`{}` is not a prefix length (0..=32)", &p[1..])),
        },
        None => Ok(()),
    }
}

/// Splits a pseudo-variable token `$name(arg)` into name and argument.
pub fn split_pv(text: &str) -> (&str, Option<&str>) {
    let body = text.strip_prefix('$').unwrap_or(text);
    match body.find('(') {
        Some(i) => (&body[..i], Some(body[i + 1..].trim_end_matches(')'))),
        None => (body, None),
    }
}

pub fn make_pv(text: &str, span: Span) -> Pv {
    let (name, arg) = split_pv(text);
    Pv { name: name.to_string(), arg: arg.map(|a| a.trim().to_string()), span }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Length of a `$name` or `$name(arg)` at the start of `s` (which starts with `$`).
fn pv_len(s: &[u8]) -> Option<usize> {
    if s.len() < 2 || !is_ident_start(s[1]) {
        return None;
    }
    let mut i = 2;
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    if i < s.len() && s[i] == b'(' {
        let close = s[i..].iter().position(|&c| c == b')')?;
        if s[i + 1..i + close].iter().any(|&c| c == b'(' || c == b'"') {
            return None;
        }
        i += close + 1;
    }
    Some(i)
}

/// Scans a string token (with quotes). Returns the cooked value without
/// interpolation (used for regexes and constants), the interpolated parts,
/// and problems found.
fn scan(file: FileId, start: usize, text: &str) -> (String, Vec<StrPart>, Vec<Diagnostic>) {
    let inner = &text[1..text.len().saturating_sub(1).max(1)];
    let base = start + 1;
    let bytes = inner.as_bytes();
    let mut value = String::new();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut diags = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() {
            let next = inner[i + 1..].chars().next().unwrap_or('\\');
            let cooked: Option<char> = match next {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                '0' => Some('\0'),
                '\\' => Some('\\'),
                '"' => Some('"'),
                '$' => Some('$'),
                _ => None,
            };
            match cooked {
                Some(ch) => {
                    value.push(ch);
                    lit.push(ch);
                }
                None => {
                    // Unknown escapes are kept verbatim so regexes read naturally.
                    value.push('\\');
                    value.push(next);
                    lit.push('\\');
                    lit.push(next);
                }
            }
            i += 1 + next.len_utf8();
        } else if c == b'$' {
            match pv_len(&bytes[i..]) {
                Some(n) => {
                    let pv_text = &inner[i..i + n];
                    value.push_str(pv_text);
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(StrPart::Pv(make_pv(
                        pv_text,
                        Span::new(file, base + i, base + i + n),
                    )));
                    i += n;
                }
                None => {
                    // A `$` not followed by a name (end of a regex, `$ 5`) is literal;
                    // `$(` or `$"` style mistakes are reported.
                    if bytes.get(i + 1).is_some_and(|&b| b == b'(' || b == b'{') {
                        diags.push(
                            Diagnostic::new(
                                Code::InvalidInterpolation,
                                "`$` in a string does not start a pseudo-variable",
                            )
                            .at(Span::new(file, base + i, base + i + 2), "expected `$name`")
                            .with_help("write `\\$` for a literal dollar sign"),
                        );
                    }
                    value.push('$');
                    lit.push('$');
                    i += 1;
                }
            }
        } else {
            let ch = inner[i..].chars().next().unwrap_or('?');
            value.push(ch);
            lit.push(ch);
            i += ch.len_utf8();
        }
    }
    if !lit.is_empty() || parts.is_empty() {
        parts.push(StrPart::Lit(lit));
    }
    (value, parts, diags)
}

/// Lexer-side validation of a string token.
pub fn check_string(file: FileId, start: usize, text: &str, diags: &mut Vec<Diagnostic>) {
    diags.extend(scan(file, start, text).2);
}

/// Grammar-side conversion of a string token.
pub fn make_str(file: FileId, start: usize, end: usize, text: &str) -> StrLit {
    let (value, parts, _) = scan(file, start, text);
    StrLit { value, parts, span: Span::new(file, start, end) }
}

/// Maps an offset into a string's cooked (escape-processed) value back to a
/// source byte offset, so errors inside regexes point at the right character.
pub fn source_offset(src_token: &str, token_start: u32, cooked_offset: usize) -> u32 {
    let inner = &src_token[1..src_token.len().saturating_sub(1).max(1)];
    let mut cooked = 0usize;
    let mut i = 0usize;
    while i < inner.len() && cooked < cooked_offset {
        let ch = inner[i..].chars().next().unwrap_or('?');
        if ch == '\\' && i + 1 < inner.len() {
            let next = inner[i + 1..].chars().next().unwrap_or('\\');
            let known = matches!(next, 'n' | 't' | 'r' | '0' | '\\' | '"' | '$');
            cooked += if known { 1 } else { 1 + next.len_utf8() };
            i += 1 + next.len_utf8();
        } else {
            cooked += ch.len_utf8();
            i += ch.len_utf8();
        }
    }
    token_start + 1 + i as u32
}
