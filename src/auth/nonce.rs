//! Stateless nonces: `<issue time, 16 hex digits><salt, 16 hex digits>
//! <HMAC-SHA256(key, time ‖ salt ‖ realm), first 16 bytes, 32 hex digits>`.
//! The salt is a counter starting at a random value, so two challenges
//! never share a nonce (and so never share its nonce-counts).
//!
//! The server keeps no per-nonce state to accept a nonce: the MAC proves it
//! issued it, the time says whether it expired (then the next challenge
//! says `stale=true`, RFC 7616 §3.3, and the client retries without asking
//! its user). The key is 32 random bytes, kept in the database when there
//! is one (so a restart does not invalidate the nonces clients hold), else
//! per process.
//!
//! Replay within the lifetime is limited by [`NcTracker`]: the highest
//! nonce-count seen per nonce, in two bounded generations (a full current
//! generation becomes the previous one and the old previous one is
//! dropped). A nonce forgotten that way is accepted again with any count —
//! the bound trades a small replay window for memory that does not grow
//! with the number of clients.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::digest::hex;

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    Valid,
    /// Issued by us, but older than the lifetime.
    Stale,
    /// Not one of ours (or from before a key change).
    Invalid,
}

/// Issues and verifies nonces with one secret key.
pub struct NonceKey {
    key: [u8; 32],
    salt: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(…)")
    }
}

impl NonceKey {
    pub fn new(key: [u8; 32]) -> NonceKey {
        let mut start = [0u8; 8];
        getrandom::fill(&mut start).expect("the OS random source works");
        NonceKey { key, salt: u64::from_le_bytes(start).into() }
    }

    /// A key from the operating system's random source.
    pub fn random() -> NonceKey {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source works");
        NonceKey::new(key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn mac(&self, time: u64, salt: u64, realm: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(&time.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(realm.as_bytes());
        mac
    }

    /// A new nonce for `realm` at `now` (Unix seconds).
    pub fn issue(&self, realm: &str, now: u64) -> String {
        let salt = self.salt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = self.mac(now, salt, realm).finalize().into_bytes();
        format!("{now:016x}{salt:016x}{}", hex(&tag[..16]))
    }

    /// Checks a nonce for `realm` at `now` against a `lifetime` in seconds.
    pub fn verify(&self, nonce: &str, realm: &str, now: u64, lifetime: u64) -> NonceState {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return NonceState::Invalid;
        }
        let Ok(time) = u64::from_str_radix(&nonce[..16], 16) else { return NonceState::Invalid };
        let Ok(salt) = u64::from_str_radix(&nonce[16..32], 16) else { return NonceState::Invalid };
        let Some(tag) = unhex(&nonce[32..]) else { return NonceState::Invalid };
        if self.mac(time, salt, realm).verify_truncated_left(&tag).is_err() {
            return NonceState::Invalid;
        }
        if time > now + 5 {
            NonceState::Invalid // from the future: not issued by this clock
        } else if now - time.min(now) > lifetime {
            NonceState::Stale
        } else {
            NonceState::Valid
        }
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The highest nonce-count seen per nonce, bounded (see the module docs).
#[derive(Debug)]
pub struct NcTracker {
    generations: Mutex<(HashMap<String, u32>, HashMap<String, u32>)>,
    per_generation: usize,
}

impl NcTracker {
    pub fn new(per_generation: usize) -> NcTracker {
        NcTracker { generations: Mutex::new((HashMap::new(), HashMap::new())), per_generation }
    }

    /// Records `nc` for `nonce`; false when it is not above the highest
    /// count already seen (a replay).
    pub fn advance(&self, nonce: &str, nc: u32) -> bool {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (current, previous) = &mut *g;
        let seen = current.get(nonce).or_else(|| previous.get(nonce)).copied();
        if seen.is_some_and(|s| nc <= s) {
            return false;
        }
        if current.len() >= self.per_generation && !current.contains_key(nonce) {
            *previous = std::mem::take(current);
        }
        current.insert(nonce.to_owned(), nc);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_nonces_verify_until_they_expire() {
        let k = NonceKey::new([7; 32]);
        let n = k.issue("example.com", 1_000);
        assert_eq!(n.len(), 64);
        assert_ne!(n, k.issue("example.com", 1_000), "unique per challenge");
        assert_eq!(k.verify(&n, "example.com", 1_010, 30), NonceState::Valid);
        assert_eq!(k.verify(&n, "example.com", 1_031, 30), NonceState::Stale);
        assert_eq!(k.verify(&n, "example.org", 1_010, 30), NonceState::Invalid, "bound to realm");
        assert_eq!(
            NonceKey::new([8; 32]).verify(&n, "example.com", 1_010, 30),
            NonceState::Invalid
        );
        let mut forged = n.clone();
        forged.replace_range(0..16, &format!("{:016x}", 1_020));
        assert_eq!(k.verify(&forged, "example.com", 1_021, 30), NonceState::Invalid);
        assert_eq!(k.verify("zz", "example.com", 1_010, 30), NonceState::Invalid);
    }

    #[test]
    fn nonce_counts_must_grow_and_memory_is_bounded() {
        let t = NcTracker::new(2);
        assert!(t.advance("a", 1));
        assert!(!t.advance("a", 1), "replay");
        assert!(t.advance("a", 2));
        assert!(t.advance("b", 1));
        assert!(t.advance("c", 1)); // "a" and "b" move to the previous generation
        assert!(!t.advance("b", 1), "still remembered");
        assert!(t.advance("d", 1));
        assert!(t.advance("e", 1)); // the generation holding "a" is dropped
        assert!(t.advance("a", 1), "forgotten: accepted again");
        let g = t.generations.lock().unwrap();
        assert!(g.0.len() + g.1.len() <= 4);
    }
}
