//! Addresses of record in canonical form (RFC 3261 §10.3 step 5): the To
//! URI reduced to `sip:user@host`, scheme and host lowercased, port,
//! parameters and headers dropped, user %-escapes decoded.

use crate::sip::{Scheme, Uri};

/// The canonical AOR of a SIP or SIPS URI; `None` for other schemes or a
/// URI without a host.
pub fn canonical_aor(uri: &Uri<'_>) -> Option<String> {
    let scheme = match uri.scheme {
        Scheme::Sip | Scheme::Sips => "sip",
        _ => return None,
    };
    let host = uri.host_str.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match uri.user {
        Some(user) => {
            let user =
                String::from_utf8_lossy(&crate::sip::scan::percent_decode(user)).into_owned();
            format!("{scheme}:{user}@{host}")
        }
        None => format!("{scheme}:{host}"),
    })
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
