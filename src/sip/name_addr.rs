//! `name-addr` and `addr-spec` (RFC 3261 §20.10, §25.1): the value shape of
//! From, To, Contact, Route, Record-Route, Path, Refer-To.
//!
//! In the `<…>` form URI parameters stay with the URI and the ones after `>`
//! are header parameters; in the bare addr-spec form everything after the first
//! `;` is a header parameter (RFC 4475 §3.3.12 vs §3.3.13).

use super::error::Malformed;
use super::params::Params;
use super::scan::{find_byte, is_token_byte, quoted_end, trim_lws};
use super::uri::Uri;

/// A parsed `[display-name] <uri> ;params` or `uri ;params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quotes and escapes kept), if any.
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q` …).
    pub params: Params<'a>,
    /// Whether the URI was written inside `<…>`.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses one value (already split from its comma-separated neighbours).
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, Malformed> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let (display, after_display) = if b.first() == Some(&b'"') {
            let end = quoted_end(b).ok_or(Malformed)?;
            (Some(&s[..end]), &s[end..])
        } else {
            match find_byte(b'<', b) {
                Some(lt) => {
                    let d = trim_lws(&s[..lt]);
                    if !d.bytes().all(|c| is_token_byte(c) || super::scan::is_lws(c)) {
                        return Err(Malformed);
                    }
                    ((!d.is_empty()).then_some(d), &s[lt..])
                }
                None => (None, s),
            }
        };
        let rest = trim_lws(after_display);
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = find_byte(b'>', inner.as_bytes()).ok_or(Malformed)?;
            let uri = Uri::parse(trim_lws(&inner[..gt]))?;
            let (params, tail) = Params::parse(&inner[gt + 1..], None)?;
            if !trim_lws(tail).is_empty() {
                return Err(Malformed);
            }
            Ok(NameAddr { display, uri, params, bracketed: true })
        } else {
            if display.is_some() {
                return Err(Malformed);
            }
            let end = find_byte(b';', rest.as_bytes()).unwrap_or(rest.len());
            let uri_text = trim_lws(&rest[..end]);
            if uri_text.contains(['?', ',']) {
                // RFC 3261 §20: a URI with headers or commas must be in <>.
                return Err(Malformed);
            }
            let uri = Uri::parse(uri_text)?;
            let (params, tail) = Params::parse(&rest[end..], None)?;
            if !trim_lws(tail).is_empty() {
                return Err(Malformed);
            }
            Ok(NameAddr { display: None, uri, params, bracketed: false })
        }
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The URI text, whether it was written inside `<…>`, the header
    /// parameters (those after `>`, or after the first `;` of a bare URI)
    /// and what `get(name)` gives of them ([`Params::parse_finding`]; an
    /// empty `name` finds nothing), without parsing the URI: what a From
    /// or To tag needs on every message, at a fraction of the cost of
    /// [`NameAddr::parse`]. The structure is checked as there; the URI is
    /// not ([`NameAddr::check_address`] checks its shape).
    #[inline]
    #[allow(clippy::type_complexity)]
    pub fn address_and_params(
        s: &'a str,
        name: &str,
    ) -> Result<(&'a str, bool, Params<'a>, Option<Option<&'a str>>), Malformed> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let after_display =
            if b.first() == Some(&b'"') { &s[quoted_end(b).ok_or(Malformed)?..] } else { s };
        let rest = trim_lws(after_display);
        let (uri, bracketed, tail) = match find_byte(b'<', rest.as_bytes()) {
            Some(lt) => {
                let inner = &rest[lt + 1..];
                let gt = memchr::memchr(b'>', inner.as_bytes()).ok_or(Malformed)?;
                (&inner[..gt], true, &inner[gt + 1..])
            }
            None => {
                let (uri, tail) =
                    rest.split_at(find_byte(b';', rest.as_bytes()).unwrap_or(rest.len()));
                (uri, false, tail)
            }
        };
        let (params, tail, found) = Params::parse_finding(tail, None, name)?;
        if !trim_lws(tail).is_empty() {
            return Err(Malformed);
        }
        Ok((trim_lws(uri), bracketed, params, found))
    }

    /// The URI text [`NameAddr::address_and_params`] found has the shape
    /// of one: a scheme and something after its colon, and, not written
    /// inside `<…>`, no `?` or `,` (RFC 3261 §20). The rest of it is not
    /// parsed: what validation asks of From and To.
    pub fn check_address(uri: &str, bracketed: bool) -> Result<(), Malformed> {
        let colon = find_byte(b':', uri.as_bytes()).ok_or(Malformed)?;
        let scheme = &uri.as_bytes()[..colon];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !scheme_ok || colon + 1 == uri.len() || (!bracketed && uri.contains(['?', ','])) {
            return Err(Malformed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_needs_a_scheme_and_a_bare_one_no_headers() {
        for (uri, bracketed, ok) in [
            ("sip:bob@example.com", false, true),
            ("tel:+1-201-555-0123", false, true),
            ("isbn:2983792873", true, true),
            ("sip:bob@example.com?Subject=x", true, true),
            ("sip:bob@example.com?Subject=x", false, false),
            ("sip:a@b,sip:c@d", false, false),
            ("bob", false, false),
            ("sip:", true, false),
            (":bob", true, false),
            ("1sip:bob", true, false),
            ("s i p:bob", true, false),
        ] {
            assert_eq!(NameAddr::check_address(uri, bracketed).is_ok(), ok, "{uri} {bracketed}");
        }
    }

    #[test]
    fn header_params_agree_with_the_full_parse() {
        for v in [
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#,
            "Bob <sip:bob@example.com;transport=tcp>;tag=a;x=y",
            "sip:bob@example.com;tag=z",
            "<sip:bob@example.com>",
            "\"a<b>\" <sip:c@d>; TAG = q",
        ] {
            let full = NameAddr::parse(v).unwrap();
            let (uri, bracketed, params, _) = NameAddr::address_and_params(v, "").unwrap();
            assert_eq!(params, full.params, "{v}");
            assert_eq!((uri, bracketed, params), (full.uri.raw(), full.bracketed, full.params));
            assert!(NameAddr::check_address(uri, bracketed).is_ok(), "{v}");
        }
        assert!(NameAddr::address_and_params("<sip:x@y", "").is_err());
        assert!(NameAddr::address_and_params("<sip:x@y> junk", "").is_err());
        assert!(NameAddr::parse("<sip:x@y> junk").is_err());
    }

    #[test]
    fn quoted_display_with_escapes() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display, Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.uri.user, Some("jdrosen"));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert!(n.bracketed);
    }

    #[test]
    fn token_display_and_no_lws_before_angle() {
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        assert_eq!(n.tag(), Some("323"));
        let n = NameAddr::parse("Bob Smith <sip:bob@example.com>").unwrap();
        assert_eq!(n.display, Some("Bob Smith"));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let n = NameAddr::parse("sip:user@host.example.com;expires=3600").unwrap();
        assert!(!n.bracketed);
        assert!(n.uri.params.is_empty());
        assert_eq!(n.params.get("expires"), Some(Some("3600")));
        let n = NameAddr::parse("<sip:user@host.example.com;expires=3600>").unwrap();
        assert_eq!(n.uri.params.get("expires"), Some(Some("3600")));
        assert!(n.params.is_empty());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            r#""unterminated <sip:a@b>"#,
            "<sip:a@b",
            "Bob, Jr <sip:a@b>",
            "sip:a@b?Route=x",
            "<sip:a@b> junk",
            "",
            "\"x\" sip:a@b",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad:?}");
        }
    }
}
