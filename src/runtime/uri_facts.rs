//! What the routes of one message asked about each URI string, parsed once.
//!
//! `$rU`, `$rd`, `$rp` and `is_myself(…)` are typically read several times
//! per message (default.route reads `$rU` four times and asks
//! `is_myself($ru)` twice), and parsing was a quarter of its routing time.
//! The received Request-URI's parts are the message's own: validation
//! parsed it before any route ran ([`Message::request_uri_parts`]). Other
//! URIs are keyed by the text itself, so an edited R-URI is simply another
//! entry; a URI that is a slice of the received message is keyed by its
//! position there, so caching it copies nothing.

use crate::proxy::LocalIdentity;
use crate::sip::scan::span_within;
use crate::sip::{Host, HostKind, Message, UriParts};

/// How many URIs one message keeps facts about besides its Request-URI
/// (more are rare: From and To; the oldest entry makes room).
const SLOTS: usize = 4;

/// Facts about one URI string.
#[derive(Debug, Clone)]
struct UriFacts {
    key: Key,
    /// `None`: the text is not a URI.
    parsed: Option<UriParts>,
    /// `is_myself(text)`, once asked.
    local: Option<bool>,
}

#[derive(Debug, Clone)]
enum Key {
    /// Bytes `start..end` of the received message's head.
    Head(u32, u32),
    Owned(String),
}

/// Does the URI `text`, which `parts` describe, name this proxy? The same
/// answer as [`LocalIdentity::is_local_uri`] without parsing the whole URI
/// again (only its host, once per URI and message).
fn is_local(parts: &UriParts, text: &str, local: &LocalIdentity) -> bool {
    let port = parts.port_or_default();
    let (start, end) = parts.host();
    match parts.host_kind {
        HostKind::None => false,
        HostKind::Name => local.is_local(&Host::Name(&text[start..end]), port),
        HostKind::Address => {
            Host::parse(&text[start..end]).is_ok_and(|host| local.is_local(&host, port))
        }
    }
}

/// The parts validation kept when `text` is the received Request-URI
/// itself (not a copy or an edit): a validated message's own
/// ([`Message::kept_request_uri_parts`]), found before any route ran.
fn kept_request_uri<'m>(msg: &'m Message, text: &str) -> Option<&'m UriParts> {
    msg.kept_request_uri_parts()
        .filter(|_| msg.request_uri_str().is_some_and(|r| std::ptr::eq(r, text)))
}

/// The facts of one message, held inline (no allocation for URIs that are
/// slices of the message).
#[derive(Debug, Default)]
pub struct UriCache {
    /// `is_myself` of the received Request-URI, once asked.
    ruri_local: Option<bool>,
    slots: [Option<UriFacts>; SLOTS],
    next: usize,
}

impl UriCache {
    /// The parts of the URI `text` (`None`: not a URI). `msg` is the
    /// received message, which `text` may be a slice of.
    pub fn parts<'a>(&'a mut self, msg: &'a Message, text: &str) -> Option<&'a UriParts> {
        if let Some(parts) = kept_request_uri(msg, text) {
            return Some(parts);
        }
        self.facts(msg.head(), text).parsed.as_ref()
    }

    /// `is_myself(text)`: does the URI `text` name this proxy?
    pub fn is_local(&mut self, msg: &Message, text: &str, local: &LocalIdentity) -> bool {
        if let Some(parts) = kept_request_uri(msg, text) {
            if let Some(known) = self.ruri_local {
                return known;
            }
            let mine = is_local(parts, text, local);
            self.ruri_local = Some(mine);
            return mine;
        }
        let f = self.facts(msg.head(), text);
        if let Some(known) = f.local {
            return known;
        }
        let mine = f.parsed.as_ref().is_some_and(|p| is_local(p, text, local));
        f.local = Some(mine);
        mine
    }

    /// The facts about `text`, parsed on first use. `head` is the received
    /// message's head, which `text` may be a slice of.
    fn facts(&mut self, head: &str, text: &str) -> &mut UriFacts {
        let in_head = span_within(head, text);
        let found = self.slots.iter().position(|f| {
            f.as_ref().is_some_and(|f| match &f.key {
                Key::Head(s, e) => {
                    in_head == Some((*s, *e)) || head.get(*s as usize..*e as usize) == Some(text)
                }
                Key::Owned(t) => t == text,
            })
        });
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next = (self.next + 1) % SLOTS;
                let key = match in_head {
                    Some((s, e)) => Key::Head(s, e),
                    None => Key::Owned(text.to_owned()),
                };
                self.slots[i] = Some(UriFacts { key, parsed: UriParts::of(text), local: None });
                i
            }
        };
        self.slots[i].as_mut().expect("filled above")
    }
}

#[cfg(test)]
mod tests {
    use super::UriCache;
    use crate::proxy::LocalIdentity;
    use crate::sip::Message;

    fn invite() -> Message {
        let text = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                    To: <sip:bob@example.com>\r\nFrom: <sip:a@example.org>;tag=1\r\nCall-ID: c\r\n\
                    CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let mut msg = Message::parse(bytes::Bytes::from_static(text.as_bytes())).unwrap();
        msg.validate().unwrap();
        msg
    }

    #[test]
    fn the_request_uri_is_the_messages_and_other_texts_are_parsed_once() {
        let msg = invite();
        let mut local = LocalIdentity::new();
        local.add_name("example.com", 5060);
        let mut c = UriCache::default();
        let ruri = msg.request_uri_str().unwrap();
        assert_eq!(c.parts(&msg, ruri).unwrap().user(), Some((4, 7)));
        assert!(c.is_local(&msg, ruri, &local));
        assert_eq!(c.ruri_local, Some(true));
        // A copy of the same text is another entry, with the same answer.
        let copy = String::from(ruri);
        assert!(c.is_local(&msg, &copy, &local));
        assert_eq!(c.slots.iter().flatten().count(), 1);
        let edited = "sip:carol@example.org:5070".to_owned();
        assert_eq!(c.parts(&msg, &edited).unwrap().port, Some(5070));
        assert!(!c.is_local(&msg, &edited, &local));
        assert!(c.parts(&msg, "not a uri").is_none());
        assert!(!c.is_local(&msg, "not a uri", &local));
        // The oldest entries make room; the answers stay right.
        for i in 0..10 {
            let u = format!("sip:u{i}@example.com");
            assert_eq!(c.parts(&msg, &u).unwrap().user(), Some((4, 4 + format!("u{i}").len())));
            assert!(c.is_local(&msg, &u, &local));
        }
        assert!(c.is_local(&msg, ruri, &local));
    }
}
