//! Digest authentication (RFC 3261 §22, RFC 7616): MD5 and SHA-256 with
//! qop=auth, stateless HMAC nonces, HA1 hashes from the `subscriber` table.
//!
//! [`Auth::check`] answers one question — are these credentials valid for
//! this realm? — with an [`AuthResult`] the route sees as `$auth_result`;
//! [`Auth::challenge`] makes the WWW-/Proxy-Authenticate values. Both are
//! synchronous and touch only memory on the hot path (the subscriber cache,
//! the nonce-count tracker), as route code must (docs/architecture.md).
//!
//! Every failed check except the ordinary steps of a challenge round trip
//! (`no_credentials`, `stale_nonce`) logs one line at warn, in a fixed
//! format for fail2ban (docs/auth.md):
//! `auth failed: user="alice@example.com" ip=192.0.2.1 reason=wrong_password`.

pub mod digest;
pub mod nonce;
pub mod subscriber;

use std::net::IpAddr;

pub use digest::{Algorithm, Credentials};
pub use nonce::{NcTracker, NonceKey, NonceState};
pub use subscriber::{Subscriber, SubscriberStore};

/// The outcome of [`Auth::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Ok,
    /// No credentials for this realm: challenge.
    NoCredentials,
    WrongPassword,
    /// The nonce expired (or its count was replayed): challenge with stale=true.
    StaleNonce,
    UnknownUser,
    /// Valid credentials of another user than From (To for REGISTER).
    UserMismatch,
    /// Malformed credentials, an unknown algorithm or a nonce not ours.
    Invalid,
}

impl AuthResult {
    /// The value of `$auth_result`, and the `reason=` of the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::NoCredentials => "no_credentials",
            AuthResult::WrongPassword => "wrong_password",
            AuthResult::StaleNonce => "stale_nonce",
            AuthResult::UnknownUser => "unknown_user",
            AuthResult::UserMismatch => "user_mismatch",
            AuthResult::Invalid => "invalid",
        }
    }

    /// Whether the failure is logged at warn (see the module docs).
    pub fn is_suspicious(self) -> bool {
        !matches!(self, AuthResult::Ok | AuthResult::NoCredentials | AuthResult::StaleNonce)
    }
}

/// What [`Auth::check`] needs from a request.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    pub method: &'a str,
    /// The Authorization (REGISTER) or Proxy-Authorization values.
    pub credentials: Vec<&'a str>,
    /// The user the credentials must belong to: To user for REGISTER,
    /// From user otherwise.
    pub identity: Option<&'a str>,
    pub source: IpAddr,
}

/// Digest authentication state shared by every request.
#[derive(Debug)]
pub struct Auth {
    pub subscribers: SubscriberStore,
    key: NonceKey,
    nc: NcTracker,
    /// Nonce lifetime in seconds.
    pub nonce_expire: u64,
    /// `module auth { realm }`.
    pub default_realm: Option<String>,
    /// The algorithms challenges offer, in order of preference
    /// (`module auth { algorithms }`).
    pub algorithms: Vec<Algorithm>,
}

impl Auth {
    pub fn new(subscribers: SubscriberStore, key: NonceKey, nonce_expire: u64) -> Auth {
        Auth {
            subscribers,
            key,
            nc: NcTracker::new(100_000),
            nonce_expire,
            default_realm: None,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }

    /// Verifies the request's credentials for `realm` at `now` (Unix seconds).
    pub fn check(&self, req: &AuthRequest<'_>, realm: &str, now: u64) -> AuthResult {
        let creds =
            req.credentials.iter().filter_map(|v| Credentials::parse(v)).find(|c| c.realm == realm);
        let Some(c) = creds else { return AuthResult::NoCredentials };
        let result = self.verify(req, &c, realm, now);
        if result.is_suspicious() {
            tracing::warn!(
                target: "sipc::auth",
                "auth failed: user=\"{}@{}\" ip={} reason={}",
                c.username.escape_debug(),
                realm.escape_debug(),
                req.source,
                result.as_str()
            );
        } else if result != AuthResult::Ok {
            tracing::debug!(target: "sipc::auth", "auth: {} from {}", result.as_str(), req.source);
        }
        result
    }

    fn verify(
        &self,
        req: &AuthRequest<'_>,
        c: &Credentials<'_>,
        realm: &str,
        now: u64,
    ) -> AuthResult {
        let Some(alg) = Algorithm::parse(c.algorithm) else { return AuthResult::Invalid };
        match self.key.verify(c.nonce, realm, now, self.nonce_expire) {
            NonceState::Valid => {}
            NonceState::Stale => return AuthResult::StaleNonce,
            NonceState::Invalid => return AuthResult::Invalid,
        }
        let Some(sub) = self.subscribers.get(c.username, realm) else {
            return AuthResult::UnknownUser;
        };
        let expected = digest::response(alg, sub.ha1(alg), c, req.method);
        if !constant_time_eq(expected.as_bytes(), c.response.to_ascii_lowercase().as_bytes()) {
            return AuthResult::WrongPassword;
        }
        if let Some(qop) = c.qop {
            if !qop.eq_ignore_ascii_case("auth") {
                return AuthResult::Invalid;
            }
            let Some(nc) = c.nc.and_then(|n| u32::from_str_radix(n, 16).ok()) else {
                return AuthResult::Invalid;
            };
            if !self.nc.advance(c.nonce, nc) {
                return AuthResult::StaleNonce;
            }
        }
        if req.identity.is_some_and(|u| u != c.username) {
            return AuthResult::UserMismatch;
        }
        AuthResult::Ok
    }

    /// The challenge values for `realm`, one per offered algorithm (by
    /// default SHA-256 first, then MD5: RFC 8760 §2.4, most preferred
    /// first), all qop=auth.
    pub fn challenge(&self, realm: &str, stale: bool, now: u64) -> Vec<String> {
        let nonce = self.key.issue(realm, now);
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm={}{stale}",
                    a.name()
                )
            })
            .collect()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let subs = SubscriberStore::in_memory();
        subs.put("alice", "example.com", Subscriber::new("alice", "example.com", "secret"))
            .unwrap();
        Auth::new(subs, NonceKey::new([1; 32]), 30)
    }

    /// What a client answers to `challenge` (its nonce) with `password`.
    fn answer(challenge: &str, alg: Algorithm, user: &str, password: &str, nc: u32) -> String {
        let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let c = Credentials {
            username: user,
            realm: "example.com",
            nonce,
            uri: "sip:example.com",
            qop: Some("auth"),
            nc: Some(&format!("{nc:08x}")),
            cnonce: Some("abc"),
            ..Credentials::default()
        };
        let ha1 = digest::ha1(alg, user, "example.com", password);
        let resp = digest::response(alg, &ha1, &c, "REGISTER");
        format!(
            "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"sip:example.com\", \
             response=\"{resp}\", algorithm={}, qop=auth, nc={nc:08x}, cnonce=\"abc\"",
            alg.name()
        )
    }

    fn req(creds: &str) -> AuthRequest<'_> {
        AuthRequest {
            method: "REGISTER",
            credentials: vec![creds],
            identity: Some("alice"),
            source: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn the_results() {
        let a = auth();
        let ch = a.challenge("example.com", false, 100);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
        // A nonce per algorithm (two challenges).
        let ch = [ch[0].clone(), a.challenge("example.com", false, 100)[1].clone()];
        for (alg, c) in [(Algorithm::Sha256, &ch[0]), (Algorithm::Md5, &ch[1])] {
            let ok = answer(c, alg, "alice", "secret", 1);
            assert_eq!(a.check(&req(&ok), "example.com", 101), AuthResult::Ok, "{alg:?}");
            assert_eq!(a.check(&req(&ok), "example.com", 102), AuthResult::StaleNonce, "replay");
            let next = answer(c, alg, "alice", "secret", 2);
            assert_eq!(a.check(&req(&next), "example.com", 102), AuthResult::Ok);
        }
        let c = &ch[1];
        let wrong = answer(c, Algorithm::Md5, "alice", "guess", 3);
        assert_eq!(a.check(&req(&wrong), "example.com", 101), AuthResult::WrongPassword);
        let nobody = answer(c, Algorithm::Md5, "mallory", "x", 1);
        assert_eq!(a.check(&req(&nobody), "example.com", 101), AuthResult::UnknownUser);
        let late = answer(c, Algorithm::Md5, "alice", "secret", 9);
        assert_eq!(a.check(&req(&late), "example.com", 200), AuthResult::StaleNonce);
        assert_eq!(a.check(&req(&late), "example.org", 101), AuthResult::NoCredentials);
        let mut other = req(&late);
        other.identity = Some("bob");
        assert_eq!(a.check(&other, "example.com", 101), AuthResult::UserMismatch);
        let bad_nonce = late.replace("nonce=\"", "nonce=\"0");
        assert_eq!(a.check(&req(&bad_nonce), "example.com", 101), AuthResult::Invalid);
        assert!(a.challenge("example.com", true, 1)[0].ends_with(", stale=true"));
    }
}
