//! Strings the proxy gives a meaning to: URIs and header names.
//!
//! A string known at check time (a literal, a constant, a constant
//! expression) that is used as a URI is parsed with the proxy's own parser
//! ([`crate::sip::Uri`]), so the checker rejects exactly what the proxy
//! would; one used as a header name is compared with the known SIP headers
//! ([`crate::sip::KNOWN_HEADERS`]). Values built at run time
//! (concatenations with pseudo-variables, pseudo-variables) are not checked.
//! Diagnostics point inside a string literal at the offending part, or at
//! the constant's name with a label where it is defined.

use super::builtins::UriUse;
use super::check::Checker;
use super::ir;
use super::resolve::typo_distance;
use super::types::fold;
use crate::diag::{Code, Diagnostic};
use crate::sip::{HeaderName, Host, KNOWN_HEADERS, Scheme, Uri, split_host_port};
use crate::syntax::ast::{self, ExprKind, StrPart};
use crate::syntax::literal;
use crate::syntax::span::Span;

/// What is wrong with a URI: a sentence for the message, a short label,
/// the byte range of the text it is about, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriProblem {
    pub message: String,
    pub label: String,
    pub start: usize,
    pub end: usize,
    pub help: String,
}

const SIP_URI_SHAPE: &str =
    "a SIP URI is `sip:[user@]host[:port][;params]`, e.g. `sip:alice@10.0.0.1:5060`";

fn problem(
    message: impl Into<String>,
    label: impl Into<String>,
    range: (usize, usize),
    help: impl Into<String>,
) -> Option<UriProblem> {
    Some(UriProblem {
        message: message.into(),
        label: label.into(),
        start: range.0,
        end: range.1,
        help: help.into(),
    })
}

/// Whether `text` has the shape `host:port` (a name or address, a colon,
/// digits), which a missing `sip:` leaves behind.
fn looks_like_host_port(text: &str) -> bool {
    split_host_port(text).is_ok_and(|(_, port)| port.is_some())
}

/// Why `text` is not a URI the proxy accepts for `usage`, or `None` when it
/// is one. [`Uri::parse`] decides; the explanation names the first part
/// that does not fit.
pub fn uri_problem(text: &str, usage: UriUse) -> Option<UriProblem> {
    if text.is_empty() {
        return match usage {
            // `$du = ""` and `relay("")` mean "no destination".
            UriUse::NextHop => None,
            UriUse::Any => problem(
                "an empty string is not a URI",
                "empty",
                (0, 0),
                "write a URI such as `sip:alice@example.com`",
            ),
        };
    }
    match Uri::parse(text) {
        Ok(uri) if usage == UriUse::NextHop && uri.host.is_none() => {
            let scheme = &text[..text.find(':').unwrap_or(0)];
            let help = if looks_like_host_port(text) {
                format!("write `sip:{text}`")
            } else {
                "send to a `sip:` or `sips:` URI, e.g. `sip:10.0.0.1:5060`".to_string()
            };
            problem(
                format!("a request cannot be sent to a `{scheme}:` URI"),
                "the proxy sends requests only to `sip:` and `sips:` URIs",
                (0, scheme.len() + 1),
                help,
            )
        }
        Ok(_) => None,
        Err(_) => Some(explain(text)),
    }
}

/// The reason [`Uri::parse`] rejected `text`, found by walking the same
/// steps it takes.
fn explain(text: &str) -> UriProblem {
    explain_steps(text).unwrap_or_else(|| UriProblem {
        message: format!("`{text}` is not a valid URI"),
        label: "the proxy's URI parser rejects this".into(),
        start: 0,
        end: text.len(),
        help: SIP_URI_SHAPE.into(),
    })
}

fn explain_steps(text: &str) -> Option<UriProblem> {
    if let Some(i) = text.bytes().position(|b| b <= b' ' || b == 0x7f) {
        return problem(
            "a URI cannot contain white space or control characters",
            "not allowed in a URI",
            (i, i + 1),
            "leave it out, or escape it (a space is `%20`)",
        );
    }
    let Some(colon) = text.find(':') else {
        return problem(
            format!("`{text}` has no scheme"),
            "a URI starts with its scheme, like `sip:`",
            (0, text.len()),
            format!("write `sip:{text}`"),
        );
    };
    let scheme = &text[..colon];
    let sb = scheme.as_bytes();
    let scheme_ok = sb.first().is_some_and(u8::is_ascii_alphabetic)
        && sb.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !scheme_ok {
        if looks_like_host_port(text) {
            return problem(
                format!("`{text}` has no scheme"),
                "a URI starts with its scheme, like `sip:`",
                (0, text.len()),
                format!("write `sip:{text}`"),
            );
        }
        return problem(
            format!("`{scheme}` is not a URI scheme"),
            "not a scheme",
            (0, colon),
            "a SIP URI starts with `sip:` or `sips:`",
        );
    }
    let rest = &text[colon + 1..];
    let rest_at = colon + 1;
    match Uri::scheme_of(text) {
        Scheme::Sip | Scheme::Sips => explain_sip(scheme, rest, rest_at),
        Scheme::Tel if rest.is_empty() || rest.starts_with(';') => problem(
            "no number after `tel:`",
            "a number is expected here",
            (0, rest_at),
            "write the number, e.g. `tel:+4930123456`",
        ),
        Scheme::Tel => problem(
            "malformed parameters in a `tel:` URI",
            "malformed",
            (rest.find(';').map_or(rest_at, |i| rest_at + i), text.len()),
            "parameters are `;name` or `;name=value`",
        ),
        Scheme::Other => {
            problem(format!("nothing after `{scheme}:`"), "empty URI", (0, rest_at), SIP_URI_SHAPE)
        }
    }
}

fn explain_sip(scheme: &str, rest: &str, at: usize) -> Option<UriProblem> {
    if let Some(after) = rest.strip_prefix("//") {
        return problem(
            format!("`{scheme}://` is not how a SIP URI is written"),
            "a SIP URI has no `//`",
            (at, at + 2),
            format!("write `{scheme}:{after}`"),
        );
    }
    let (host_start, user) = match rest.find('@') {
        Some(i) => (i + 1, Some(&rest[..i])),
        None => (0, None),
    };
    if user.is_some_and(|u| u.split(':').next().unwrap_or("").is_empty()) {
        return problem(
            "the user part before `@` is empty",
            "expected a user name before `@`",
            (at, at + host_start),
            format!("write the user, e.g. `{scheme}:alice@example.com`, or leave out the `@`"),
        );
    }
    let hp_end = rest[host_start..].find([';', '?']).map_or(rest.len(), |i| host_start + i);
    let hostport = &rest[host_start..hp_end];
    let hp_at = at + host_start;
    if hostport.is_empty() {
        return problem(
            match user {
                Some(_) => "no host after `@`".to_string(),
                None => format!("no host after `{scheme}:`"),
            },
            "a host is expected here",
            (0, hp_at),
            format!(
                "write the host, e.g. `{scheme}:10.0.0.1:5060` or `{scheme}:alice@example.com`"
            ),
        );
    }
    if split_host_port(hostport).is_err() {
        let port_colon = if hostport.starts_with('[') {
            hostport.find("]:").map(|i| i + 1)
        } else {
            hostport.find(':')
        };
        let host = &hostport[..port_colon.unwrap_or(hostport.len())];
        if host.is_empty() || Host::parse(host).is_err() {
            return problem(
                format!("`{host}` is not a host name or IP address"),
                "not a host",
                (hp_at, hp_at + host.len().max(1)),
                "a host is a name of letters, digits, `-` and `.`, an IPv4 address or an `[IPv6]` address",
            );
        }
        if let Some(c) = port_colon {
            let port = &hostport[c + 1..];
            return problem(
                if port.is_empty() {
                    "`:` without a port number".to_string()
                } else {
                    format!("`{port}` is not a port number")
                },
                "expected a port, 0..=65535",
                (hp_at + c, hp_at + hostport.len()),
                format!("write the port in digits, e.g. `{scheme}:{host}:5060`, or leave it out"),
            );
        }
        return None;
    }
    if hp_end == rest.len() {
        return None;
    }
    problem(
        "malformed parameters or headers after the host",
        "malformed",
        (at + hp_end, at + rest.len()),
        "parameters are `;name` or `;name=value`, headers `?name=value&name=value`",
    )
}

/// The known header one edit away from `name` (letters swapped count as
/// one), when `name` is not itself a known header. Names shorter than three
/// characters (compact forms, `To`) and `X-` names are never questioned.
pub fn misspelled_header(name: &str) -> Option<&'static str> {
    let x_prefix = name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"));
    if name.len() < 3 || x_prefix || HeaderName::is_known(name) {
        return None;
    }
    KNOWN_HEADERS.iter().copied().find(|k| typo_distance(name, k) == 1)
}

/// Where a string known at check time came from.
enum Origin<'a> {
    /// A string literal, so positions inside it can be shown.
    Literal(&'a ast::StrLit),
    /// A constant's name: the use and the definition.
    Const { name: &'a ast::Ident, defined: Span },
    /// Some other constant expression (`"sip:" + HOST`).
    Folded(Span),
}

impl Checker<'_> {
    /// The value of `a` (lowered to `e`) when it is known at check time.
    fn known_str<'a>(&self, a: &'a ast::Expr, e: &ir::Expr) -> Option<(String, Origin<'a>)> {
        let Some(ir::Value::Str(value)) = fold(e) else { return None };
        let origin = match &a.kind {
            ExprKind::Str(lit) => Origin::Literal(lit),
            ExprKind::Name(id) => match self.consts.get(&id.name) {
                Some(c) if self.lookup_local(&id.name).is_none() => {
                    Origin::Const { name: id, defined: c.span }
                }
                _ => Origin::Folded(a.span),
            },
            _ => Origin::Folded(a.span),
        };
        Some((value, origin))
    }

    /// The source span of bytes `start..end` of the string value, and a
    /// label pointing at the constant's definition when it is one.
    fn place(
        &self,
        origin: &Origin<'_>,
        start: usize,
        end: usize,
    ) -> (Span, Option<(Span, String)>) {
        match origin {
            Origin::Literal(lit) => (self.inside(lit, start, end), None),
            Origin::Const { name, defined } => {
                (name.span, Some((*defined, format!("`{}` is defined here", name.name))))
            }
            Origin::Folded(span) => (*span, None),
        }
    }

    /// Bytes `start..end` of a literal's value, as a span of its source.
    fn inside(&self, lit: &ast::StrLit, start: usize, end: usize) -> Span {
        let token = self.map.snippet(lit.span);
        let a = literal::source_offset(token, lit.span.start, start);
        let b = literal::source_offset(token, lit.span.start, end);
        let last = lit.span.end.saturating_sub(1).max(lit.span.start);
        let a = a.min(last);
        Span { file: lit.span.file, start: a, end: b.max(a + 1).min(lit.span.end) }
    }

    /// Checks a value used as a URI (assigned to a URI pseudo-variable or
    /// passed for a URI parameter).
    pub fn uri_value(&mut self, a: &ast::Expr, e: &ir::Expr, usage: UriUse) {
        let Some((text, origin)) = self.known_str(a, e) else { return };
        let Some(p) = uri_problem(&text, usage) else { return };
        let (span, defined) = match &origin {
            // The whole literal when the problem has no extent (an empty string).
            Origin::Literal(lit) if p.start == p.end => (lit.span, None),
            _ => self.place(&origin, p.start, p.end),
        };
        let label = match &origin {
            Origin::Literal(_) => p.label,
            _ => format!("{}: in `{text}`", p.label),
        };
        let mut d = Diagnostic::new(Code::InvalidUri, format!("invalid URI: {}", p.message))
            .at(span, label)
            .with_help(p.help);
        if let Some((at, what)) = defined {
            d = d.with_label(at, what);
        }
        self.error(d);
    }

    /// Checks a constant rtpengine flags string word by word.
    pub fn ng_flags_value(&mut self, a: &ast::Expr, e: &ir::Expr) {
        let Some((text, origin)) = self.known_str(a, e) else { return };
        let Err(p) = crate::rtpengine::flags::parse(&text) else { return };
        let (span, defined) = self.place(&origin, p.start, p.end);
        let label = match &origin {
            Origin::Literal(_) => "rtpengine does not know this".to_owned(),
            _ => format!("in `{text}`"),
        };
        let mut d =
            Diagnostic::new(Code::InvalidNgFlag, p.message).at(span, label).with_help(p.help);
        if let Some((at, what)) = defined {
            d = d.with_label(at, what);
        }
        self.error(d);
    }

    /// Warns about a header name that looks like a misspelt known header.
    fn header_name_at(&mut self, name: &str, span: Span, defined: Option<(Span, String)>) {
        let Some(known) = misspelled_header(name) else { return };
        let mut d = Diagnostic::new(
            Code::MisspelledHeader,
            format!("`{name}` is not a known SIP header"),
        )
        .at(span, format!("did you mean `{known}`?"))
        .with_help(format!(
            "write `{known}` (header names are compared ignoring case); a header of your own is best named with an `X-` prefix, which is never questioned"
        ));
        if let Some((at, what)) = defined {
            d = d.with_label(at, what);
        }
        self.diags.push(d);
    }

    /// Checks a value used as a header name (`remove_hf("Name")`).
    pub fn header_name_value(&mut self, a: &ast::Expr, e: &ir::Expr) {
        let Some((text, origin)) = self.known_str(a, e) else { return };
        let name = text.trim();
        let offset = text.find(name).unwrap_or(0);
        let (span, defined) = self.place(&origin, offset, offset + name.len());
        self.header_name_at(name, span, defined);
    }

    /// Checks the names of header lines (`append_hf("Name: value\r\n")`):
    /// in a literal, every name written out before the first `$pv` of its
    /// line; in a constant, every name.
    pub fn header_lines_value(&mut self, a: &ast::Expr, e: &ir::Expr) {
        if let Some((text, origin)) = self.known_str(a, e) {
            for (start, end) in header_line_names(&text, &[]) {
                let (span, defined) = self.place(&origin, start, end);
                self.header_name_at(&text[start..end], span, defined);
            }
            return;
        }
        let ExprKind::Str(lit) = &a.kind else { return };
        // The value holds each `$pv` as written; names that overlap one are
        // built at run time.
        let mut pvs = Vec::new();
        let mut at = 0;
        for part in &lit.parts {
            match part {
                StrPart::Lit(s) => at += s.len(),
                StrPart::Pv(pv) => {
                    let len = pv.span.len();
                    pvs.push((at, at + len));
                    at += len;
                }
            }
        }
        for (start, end) in header_line_names(&lit.value, &pvs) {
            let span = self.inside(lit, start, end);
            self.header_name_at(&lit.value[start..end], span, None);
        }
    }

    /// Checks the header name of `$hdr(Name)`.
    pub fn header_pv(&mut self, pv: &ast::Pv) {
        let Some(name) = pv.arg.as_deref() else { return };
        let text = self.map.snippet(pv.span);
        let span =
            match text.find('(').and_then(|open| Some(open + 1 + text[open + 1..].find(name)?)) {
                Some(i) => Span {
                    file: pv.span.file,
                    start: pv.span.start + i as u32,
                    end: pv.span.start + (i + name.len()) as u32,
                },
                None => pv.span,
            };
        self.header_name_at(name, span, None);
    }
}

/// Byte ranges of the header names in header lines (`Name: value`, lines
/// split at `\n` as the runtime's `append_hf` does), leaving out names that
/// overlap one of the `dynamic` ranges.
fn header_line_names(text: &str, dynamic: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split('\n') {
        if let Some(colon) = line.find(':') {
            let raw = &line[..colon];
            let name = raw.trim();
            let start = line_start + raw.find(name).unwrap_or(0);
            let end = start + name.len();
            let built = dynamic.iter().any(|&(a, b)| a < line_start + colon && b > line_start);
            if !name.is_empty() && !built {
                out.push((start, end));
            }
        }
        line_start += line.len() + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str, usage: UriUse) -> Option<String> {
        uri_problem(text, usage).map(|p| p.message)
    }

    #[test]
    fn valid_uris_pass() {
        for u in [
            "sip:10.0.0.1",
            "sip:10.0.0.1:5060",
            "sips:alice@example.com;transport=tls",
            "sip:alice:secret@[::1]:5070;lr?subject=x",
            "sip:host",
        ] {
            assert_eq!(uri_problem(u, UriUse::NextHop), None, "{u}");
            assert_eq!(uri_problem(u, UriUse::Any), None, "{u}");
        }
        assert_eq!(uri_problem("tel:+4930123", UriUse::Any), None);
        assert_eq!(uri_problem("", UriUse::NextHop), None);
    }

    #[test]
    fn invalid_uris_are_named() {
        let cases = [
            ("sip://host:5060", "`sip://` is not how a SIP URI is written"),
            ("sip:", "no host after `sip:`"),
            ("sip:host:port", "`port` is not a port number"),
            ("sip:host:", "`:` without a port number"),
            ("sip:host:70000", "`70000` is not a port number"),
            ("sip:@host", "the user part before `@` is empty"),
            ("sip:alice@", "no host after `@`"),
            ("sip:my_host", "`my_host` is not a host name or IP address"),
            ("sip:[::1", "`[::1` is not a host name or IP address"),
            ("sip:a b", "a URI cannot contain white space or control characters"),
            ("10.0.0.1:5060", "`10.0.0.1:5060` has no scheme"),
            ("example.com", "`example.com` has no scheme"),
            ("1x:y", "`1x` is not a URI scheme"),
            ("urn:", "nothing after `urn:`"),
            ("tel:", "no number after `tel:`"),
            ("sip:host;=x", "malformed parameters or headers after the host"),
        ];
        for (text, want) in cases {
            assert!(Uri::parse(text).is_err(), "{text} parses");
            assert_eq!(msg(text, UriUse::Any).as_deref(), Some(want), "{text}");
        }
        assert_eq!(msg("", UriUse::Any).as_deref(), Some("an empty string is not a URI"));
    }

    #[test]
    fn a_next_hop_is_a_sip_uri() {
        assert_eq!(
            msg("host:5060", UriUse::NextHop).as_deref(),
            Some("a request cannot be sent to a `host:` URI")
        );
        assert_eq!(
            uri_problem("host:5060", UriUse::NextHop).unwrap().help,
            "write `sip:host:5060`"
        );
        assert!(uri_problem("tel:+4930123", UriUse::NextHop).is_some());
        assert_eq!(uri_problem("host:5060", UriUse::Any), None, "another scheme is a URI");
    }

    #[test]
    fn problem_ranges_are_inside_the_text() {
        for text in ["sip://host:5060", "sip:", "sip:host:port", "sip:a b", "urn:", "sip:@h"] {
            let p = uri_problem(text, UriUse::Any).unwrap();
            assert!(p.start <= p.end && p.end <= text.len(), "{text}: {p:?}");
        }
    }

    #[test]
    fn header_names_one_edit_away_are_questioned() {
        assert_eq!(misspelled_header("Evnt"), Some("Event"));
        assert_eq!(misspelled_header("Contcat"), Some("Contact"));
        assert_eq!(misspelled_header("P-Asserted-Identiy"), Some("P-Asserted-Identity"));
        assert_eq!(misspelled_header("user-agnet"), Some("User-Agent"));
        for ok in ["Event", "event", "CONTACT", "v", "y", "To", "X-Evnt", "x-contcat", "P-Hint"] {
            assert_eq!(misspelled_header(ok), None, "{ok}");
        }
        for custom in ["X-Account", "My-Header", "Tenant", "Customer-ID"] {
            assert_eq!(misspelled_header(custom), None, "{custom}");
        }
    }

    #[test]
    fn header_line_names_skip_run_time_names() {
        let text = "Evnt: x\r\nX-A: $ru\r\n$var(h): y\r\n";
        let pv_start = text.find("$var(h)").unwrap();
        let names = header_line_names(text, &[(pv_start, pv_start + 7)]);
        let names: Vec<&str> = names.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(names, ["Evnt", "X-A"]);
    }

    #[test]
    fn typo_distance_counts_a_swap_as_one_edit() {
        assert_eq!(typo_distance("Contcat", "Contact"), 1);
        assert_eq!(typo_distance("Evnt", "Event"), 1);
        assert_eq!(typo_distance("abc", "abc"), 0);
        assert_eq!(typo_distance("ab", "ba"), 1);
        assert_eq!(typo_distance("", "abc"), 3);
    }
}
