//! Matching requests to server transactions (RFC 3261 §17.2.3).
//!
//! A request carrying an RFC 3261 branch (magic cookie) belongs to the
//! transaction named by that branch, the sent-by of its top Via and its
//! method, where ACK stands for INVITE (the ACK of a non-2xx final response
//! carries the INVITE's branch). CANCEL is a transaction of its own; the
//! INVITE it cancels is found with [`ServerKey::cancelled_invite`]. Requests
//! from RFC 2543 elements fall back to the Request-URI, From tag, Call-ID,
//! CSeq number and top Via (the To tag is left out: an ACK carries the tag
//! of the response, which the INVITE did not have).

use crate::proxy::branch::MAGIC_COOKIE;
use crate::sip::Message;

/// The identity of a server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    Rfc3261 { branch: String, sent_by: String, method: String },
    Rfc2543 { fields: String, method: String },
}

impl ServerKey {
    /// The transaction `req` belongs to; `None` when it has no usable top Via
    /// or CSeq (such requests were refused by validation before).
    pub fn of(req: &Message) -> Option<ServerKey> {
        let method = match req.method_str()? {
            "ACK" => "INVITE",
            m => m,
        };
        Self::with_method(req, method)
    }

    /// The INVITE transaction a CANCEL request cancels (§9.2).
    pub fn cancelled_invite(cancel: &Message) -> Option<ServerKey> {
        Self::with_method(cancel, "INVITE")
    }

    fn with_method(req: &Message, method: &str) -> Option<ServerKey> {
        let via = req.via().ok().flatten()?;
        match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => Some(ServerKey::Rfc3261 {
                branch: b.to_owned(),
                sent_by: format!(
                    "{}:{}",
                    via.host.to_string().to_ascii_lowercase(),
                    via.port_or_default()
                ),
                method: method.to_owned(),
            }),
            _ => {
                let from_tag = req.from_tag().map(str::to_owned);
                let cseq = req.cseq().ok().flatten()?.seq;
                let fields = format!(
                    "{}\n{}\n{}\n{}\n{}",
                    req.request_uri_str().unwrap_or(""),
                    from_tag.unwrap_or_default(),
                    req.call_id().ok().flatten().unwrap_or(""),
                    cseq,
                    req.header_value(crate::sip::HeaderName::Via).unwrap_or(""),
                );
                Some(ServerKey::Rfc2543 { fields, method: method.to_owned() })
            }
        }
    }

    /// A 64-bit hash, for picking a table shard.
    pub fn shard_hash(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(method: &str, branch: &str) -> Message {
        let text = format!(
            "{method} sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP Host.example.com;branch={branch}\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn ack_matches_invite_and_cancel_finds_it() {
        let invite = ServerKey::of(&req("INVITE", "z9hG4bK1")).unwrap();
        assert_eq!(ServerKey::of(&req("ACK", "z9hG4bK1")).unwrap(), invite);
        let cancel = req("CANCEL", "z9hG4bK1");
        assert_ne!(ServerKey::of(&cancel).unwrap(), invite);
        assert_eq!(ServerKey::cancelled_invite(&cancel).unwrap(), invite);
        assert_ne!(ServerKey::of(&req("INVITE", "z9hG4bK2")).unwrap(), invite);
        assert!(
            matches!(invite, ServerKey::Rfc3261 { ref sent_by, .. } if sent_by == "host.example.com:5060")
        );
    }

    #[test]
    fn rfc2543_fallback_ignores_branch_less_differences_in_method() {
        let invite = ServerKey::of(&req("INVITE", "old")).unwrap();
        assert!(matches!(invite, ServerKey::Rfc2543 { .. }));
        assert_eq!(ServerKey::of(&req("ACK", "old")).unwrap(), invite);
        assert_ne!(ServerKey::of(&req("BYE", "old")).unwrap(), invite);
    }
}
