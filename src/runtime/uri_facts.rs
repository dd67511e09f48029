//! What the routes of one message asked about each URI string, parsed once.
//!
//! `$rU`, `$rd`, `$rp` and `is_myself(…)` are typically read several times
//! per message (default.route reads `$rU` four times and asks
//! `is_myself($ru)` twice), and parsing was a quarter of its routing time.
//! Entries are keyed by the text itself, so an edited R-URI is simply
//! another entry; a URI that is a slice of the received message is keyed
//! by its position there, so caching it copies nothing.

use crate::proxy::LocalIdentity;
use crate::sip::scan::span_within;
use crate::sip::{Host, Scheme, Uri};

/// How many URIs one message keeps facts about (more are rare: the R-URI,
/// From and To; the oldest entry makes room).
const SLOTS: usize = 4;

/// Facts about one URI string.
#[derive(Debug, Clone)]
pub struct UriFacts {
    key: Key,
    /// `None`: the text is not a URI.
    pub parsed: Option<UriParts>,
    /// `is_myself(text)`, once asked.
    pub local: Option<bool>,
}

#[derive(Debug, Clone)]
enum Key {
    /// Bytes `start..end` of the received message's head.
    Head(u32, u32),
    Owned(String),
}

/// The parts of a URI the routes read, as byte ranges of its text. Small
/// and aligned (u32 ranges, no address): a message's cache is built and
/// moved with its route context.
#[derive(Debug, Clone, Copy)]
pub struct UriParts {
    user: Option<(u32, u32)>,
    host: (u32, u32),
    pub port: Option<u16>,
    pub sips: bool,
    host_kind: HostKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKind {
    /// A `tel:` URI or another scheme.
    None,
    Name,
    /// An IP address (parsed again from the text when asked: rare enough
    /// not to carry 17 bytes of address in every entry).
    Address,
}

impl UriParts {
    fn of(text: &str) -> Option<UriParts> {
        let range = |part: &str| span_within(text, part);
        let u = Uri::parse(text).ok()?;
        Some(UriParts {
            user: u.user.and_then(range),
            host: range(u.host_str)?,
            port: u.port,
            sips: u.scheme == Scheme::Sips,
            host_kind: match u.host {
                None => HostKind::None,
                Some(Host::Name(_)) => HostKind::Name,
                Some(_) => HostKind::Address,
            },
        })
    }

    /// The user part's byte range, if there is one.
    pub fn user(&self) -> Option<(usize, usize)> {
        self.user.map(|(s, e)| (s as usize, e as usize))
    }

    /// The host's byte range, as written (`[…]` around IPv6).
    pub fn host(&self) -> (usize, usize) {
        (self.host.0 as usize, self.host.1 as usize)
    }

    /// Does the URI (`text`, which these parts describe) name this proxy?
    /// The same answer as [`LocalIdentity::is_local_uri`] without parsing
    /// the whole URI again (only its host, once per URI and message).
    pub fn is_local(&self, text: &str, local: &LocalIdentity) -> bool {
        let port = self.port.unwrap_or(if self.sips { 5061 } else { 5060 });
        let (start, end) = self.host();
        match self.host_kind {
            HostKind::None => false,
            HostKind::Name => local.is_local(&Host::Name(&text[start..end]), port),
            HostKind::Address => {
                Host::parse(&text[start..end]).is_ok_and(|host| local.is_local(&host, port))
            }
        }
    }
}

/// The facts of one message, held inline (no allocation for URIs that are
/// slices of the message).
#[derive(Debug, Default)]
pub struct UriCache {
    slots: [Option<UriFacts>; SLOTS],
    next: usize,
}

impl UriCache {
    /// The facts about `text`, parsed on first use. `head` is the received
    /// message's head, which `text` may be a slice of.
    pub fn get(&mut self, head: &str, text: &str) -> &mut UriFacts {
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

    #[test]
    fn one_parse_per_text_and_edits_are_new_entries() {
        let head = "INVITE sip:bob@example.com SIP/2.0";
        let ruri = &head[7..26];
        let mut c = UriCache::default();
        let f = c.get(head, ruri);
        assert_eq!(f.parsed.unwrap().user(), Some((4, 7)));
        f.local = Some(true);
        // The same text, as a copy, finds the same entry.
        let copy = String::from(ruri);
        assert_eq!(c.get(head, copy.as_str()).local, Some(true));
        let edited = "sip:carol@example.org:5070".to_owned();
        let f = c.get(head, &edited);
        assert_eq!(f.local, None);
        assert_eq!(f.parsed.unwrap().port, Some(5070));
        assert!(c.get(head, "not a uri").parsed.is_none());
        for i in 0..10 {
            let u = format!("sip:u{i}@example.com");
            assert_eq!(
                c.get(head, &u).parsed.unwrap().user(),
                Some((4, 4 + format!("u{i}").len()))
            );
        }
    }
}
