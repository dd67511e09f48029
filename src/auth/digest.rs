//! The digest computation (RFC 7616 §3.4.1, as RFC 3261 §22.4 uses it for
//! SIP) and the parsing of a `Digest …` credentials header value.
//!
//! Pure functions over strings, so they are checked against the RFC's own
//! worked examples; everything stateful (nonces, the subscriber table)
//! lives beside this module.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm this server offers and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token; absent means MD5 (RFC 7616 §3.3).
    pub fn parse(token: Option<&str>) -> Option<Algorithm> {
        match token {
            None => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    /// A comma-separated list such as `"SHA-256, MD5"`.
    pub fn parse_list(text: &str) -> Result<Vec<Algorithm>, String> {
        let list: Vec<Algorithm> = text
            .split(',')
            .map(|t| {
                Algorithm::parse(Some(t.trim()))
                    .ok_or_else(|| format!("unknown algorithm `{}`", t.trim()))
            })
            .collect::<Result<_, _>>()?;
        if list.is_empty() { Err("no algorithm".into()) } else { Ok(list) }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lowercase hex of the hash of `parts` joined by `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// HA1 = H(username:realm:password), what the subscriber table stores.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash(&[user, realm, password])
}

/// The expected `response` for these credentials, given the stored HA1.
pub fn response(alg: Algorithm, ha1: &str, c: &Credentials<'_>, method: &str) -> String {
    let ha2 = alg.hash(&[method, c.uri]);
    match c.qop {
        Some(qop) => {
            alg.hash(&[ha1, c.nonce, c.nc.unwrap_or(""), c.cnonce.unwrap_or(""), qop, &ha2])
        }
        None => alg.hash(&[ha1, c.nonce, &ha2]),
    }
}

/// The parameters of a `Digest` credentials value, borrowed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: &'a str,
    pub response: &'a str,
    pub algorithm: Option<&'a str>,
    pub cnonce: Option<&'a str>,
    pub qop: Option<&'a str>,
    pub nc: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    /// Parses `Digest k=v, k="v", …`; `None` for another scheme or when a
    /// required parameter is missing.
    pub fn parse(value: &'a str) -> Option<Credentials<'a>> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_at(value.find(char::is_whitespace)?);
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        let (mut user, mut realm, mut nonce, mut uri, mut resp) = (None, None, None, None, None);
        for (k, v) in params(rest) {
            match k.to_ascii_lowercase().as_str() {
                "username" => user = Some(v),
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "uri" => uri = Some(v),
                "response" => resp = Some(v),
                "algorithm" => c.algorithm = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                _ => {}
            }
        }
        c.username = user?;
        c.realm = realm?;
        c.nonce = nonce?;
        c.uri = uri?;
        c.response = resp?;
        Some(c)
    }
}

/// `k=v` pairs separated by commas; quoted values are unquoted (without
/// unescaping: digest values never contain `\"` in practice).
pub(crate) fn params(mut s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = s.find('=') else { return out };
        let key = s[..eq].trim();
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(rest) = s.strip_prefix('"') {
            let end = rest.find('"').unwrap_or(rest.len());
            value = &rest[..end];
            s = rest.get(end + 1..).unwrap_or("");
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim();
            s = &s[end..];
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the same request, answered with MD5 and SHA-256.
    const EXAMPLE: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=ALG, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="RESP", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    fn check(alg: Algorithm, expected: &str) {
        let text = EXAMPLE.replace("ALG", alg.name()).replace("RESP", expected);
        let c = Credentials::parse(&text).unwrap();
        assert_eq!(Algorithm::parse(c.algorithm), Some(alg));
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.nc, Some("00000001"));
        let h = ha1(alg, c.username, c.realm, "Circle of Life");
        assert_eq!(response(alg, &h, &c, "GET"), c.response);
    }

    #[test]
    fn rfc7616_md5_example() {
        check(Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_example() {
        check(
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        );
    }

    #[test]
    fn rfc2617_style_without_qop() {
        // RFC 2617 §3.5 (no qop: response = H(HA1:nonce:HA2)), from its errata-checked value.
        let c = Credentials {
            username: "Mufasa",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            uri: "/dir/index.html",
            ..Credentials::default()
        };
        let h = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(h, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(response(Algorithm::Md5, &h, &c, "GET").len(), 32);
    }

    #[test]
    fn other_schemes_and_missing_fields_are_refused() {
        assert!(Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").is_none());
        assert!(Credentials::parse(r#"Digest username="a", realm="b""#).is_none());
        assert_eq!(Algorithm::parse(Some("SHA-512-256")), None);
    }
}
