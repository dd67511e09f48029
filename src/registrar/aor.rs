//! Addresses of record in canonical form (RFC 3261 §10.3 step 5): the To
//! URI reduced to `sip:user@host`, scheme and host lowercased, port,
//! parameters and headers dropped, user %-escapes decoded.

use crate::sip::{Scheme, Uri};

/// The canonical AOR of a SIP or SIPS URI; `None` for other schemes or a
/// URI without a host.
pub fn canonical_aor(uri: &Uri<'_>) -> Option<String> {
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) || uri.host_str.is_empty() {
        return None;
    }
    // Built in one buffer without `format!`: `lookup()` runs this for
    // every initial request, registered callee or not.
    let user = uri.user.map(crate::sip::scan::percent_decode);
    let mut aor =
        String::with_capacity(5 + user.as_ref().map_or(0, |u| u.len() + 1) + uri.host_str.len());
    aor.push_str("sip:");
    if let Some(user) = user {
        match std::str::from_utf8(&user) {
            Ok(text) => aor.push_str(text),
            Err(_) => aor.push_str(&String::from_utf8_lossy(&user)),
        }
        aor.push('@');
    }
    let start = aor.len();
    aor.push_str(uri.host_str);
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
}
