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

use std::sync::Arc;

use crate::proxy::branch::MAGIC_COOKIE;
use crate::sip::Message;

/// The identity of a server transaction, as one shared string: for an RFC
/// 3261 branch `METHOD branch sent-by` (neither has a space), for the RFC
/// 2543 fallback `METHOD` and the fields on lines of their own. One
/// allocation, shared by the transaction and its table entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(Arc<str>);

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
        use crate::sip::Host;
        use crate::sip::write::{push_ip, push_u64};
        let via = req.via().ok().flatten()?;
        // Built in a buffer the thread keeps: the key's one allocation is its Arc.
        thread_local! {
            static TEXT: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(128));
        }
        TEXT.with_borrow_mut(|text| {
            text.clear();
            text.push_str(method);
            match via.branch() {
                Some(b) if b.starts_with(MAGIC_COOKIE) => {
                    text.push(' ');
                    text.push_str(b);
                    text.push(' ');
                    // Written without `fmt`: this runs for every request.
                    match via.host {
                        Host::Name(n) => {
                            let start = text.len();
                            text.push_str(n);
                            text[start..].make_ascii_lowercase();
                        }
                        Host::V4(a) => push_ip(text, a.into()),
                        Host::V6(a) => {
                            text.push('[');
                            push_ip(text, a.into());
                            text.push(']');
                        }
                    }
                    text.push(':');
                    push_u64(text, via.port_or_default().into());
                }
                _ => {
                    use std::fmt::Write as _;
                    let cseq = req.cseq().ok().flatten()?.seq;
                    let _ = write!(
                        text,
                        "\n{}\n{}\n{}\n{}\n{}",
                        req.request_uri_str().unwrap_or(""),
                        req.from_tag().unwrap_or_default(),
                        req.call_id().ok().flatten().unwrap_or(""),
                        cseq,
                        req.header_value(crate::sip::HeaderName::Via).unwrap_or(""),
                    );
                }
            }
            Some(ServerKey(Arc::from(text.as_str())))
        })
    }

    /// The key has an RFC 3261 branch (not the RFC 2543 fallback).
    pub fn is_rfc3261(&self) -> bool {
        !self.0.contains('\n')
    }

    /// The top Via's sent-by, lower-cased, of an RFC 3261 key.
    pub fn sent_by(&self) -> Option<&str> {
        self.is_rfc3261().then(|| self.0.rsplit(' ').next()).flatten()
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
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
        assert_eq!(invite.sent_by(), Some("host.example.com:5060"));
    }

    #[test]
    fn rfc2543_fallback_ignores_branch_less_differences_in_method() {
        let invite = ServerKey::of(&req("INVITE", "old")).unwrap();
        assert!(!invite.is_rfc3261());
        assert_eq!(ServerKey::of(&req("ACK", "old")).unwrap(), invite);
        assert_ne!(ServerKey::of(&req("BYE", "old")).unwrap(), invite);
    }
}
