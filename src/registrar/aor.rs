//! Addresses of record in canonical form (RFC 3261 §10.3 step 5): the To
//! URI reduced to `sip:user@host`, scheme and host lowercased, port,
//! parameters and headers dropped, user %-escapes decoded.

use crate::sip::{Scheme, Uri};

/// The canonical AOR of a SIP or SIPS URI; `None` for other schemes or a
/// URI without a host.
pub fn canonical_aor(uri: &Uri<'_>) -> Option<String> {
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return None;
    }
    aor_of(uri.user, uri.host_str)
}

/// [`canonical_aor`] of a URI kept as parts of `text` (a Request-URI
/// validation parsed), without parsing it again.
pub fn canonical_aor_parts(text: &str, parts: &crate::sip::UriParts) -> Option<String> {
    if !matches!(Uri::scheme_of(text), Scheme::Sip | Scheme::Sips) {
        return None;
    }
    let (hs, he) = parts.host();
    let user = parts.user().and_then(|(s, e)| text.get(s..e));
    aor_of(user, text.get(hs..he)?)
}

fn aor_of(user: Option<&str>, host: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    // Built in one buffer without `format!`: `lookup()` runs this for
    // every initial request, registered callee or not.
    let user = user.map(crate::sip::scan::percent_decode);
    let mut aor = String::with_capacity(5 + user.as_ref().map_or(0, |u| u.len() + 1) + host.len());
    aor.push_str("sip:");
    if let Some(user) = user {
        match std::str::from_utf8(&user) {
            Ok(text) => aor.push_str(text),
            Err(_) => aor.push_str(&String::from_utf8_lossy(&user)),
        }
        aor.push('@');
    }
    let start = aor.len();
    aor.push_str(host);
    aor[start..].make_ascii_lowercase();
    Some(aor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let aor = |s: &str| canonical_aor(&Uri::parse(s).unwrap());
        assert_eq!(
            aor("sip:Bob@Example.COM:5070;transport=tcp"),
            Some("sip:Bob@example.com".into())
        );
        assert_eq!(aor("sips:b%6Fb@example.com"), Some("sip:bob@example.com".into()));
        assert_eq!(aor("sip:example.com"), Some("sip:example.com".into()));
        assert_eq!(aor("tel:+123"), None);
    }

    /// The AOR of a Request-URI validation kept as parts is the one the
    /// parsed URI gives.
    #[test]
    fn kept_parts_give_the_canonical_form() {
        for ruri in [
            "sip:Bob@Example.COM:5070;transport=tcp",
            "sips:b%6Fb@example.com",
            "sip:example.com",
            "sip:alice@[2001:DB8::1]:5062",
            "sip:%ff@192.0.2.1",
            "tel:+123",
            "urn:service:sos",
        ] {
            let parsed = Uri::parse(ruri).ok().and_then(|u| canonical_aor(&u));
            let parts = crate::sip::UriParts::of(ruri);
            assert_eq!(parts.and_then(|p| canonical_aor_parts(ruri, &p)), parsed, "{ruri}");
        }
    }
}
