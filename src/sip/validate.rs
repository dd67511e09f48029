//! The checks a proxy applies before it routes a message (RFC 3261 §8.2,
//! §16.3; RFC 4475 §3.1.2, §3.3): mandatory headers present and single,
//! every typed proxy header parseable, CSeq method matching the request.
//!
//! Parsing ([`Message::parse`]) only locates; this is the step that types the
//! proxy headers, so a message that passes can be routed without any accessor
//! failing later.
//!
//! A response is routed by its Vias alone, so its From and To are not
//! parsed here, as Kamailio forwards a response without parsing them:
//! parsing both name-addrs of every response was a tenth of the proxy's
//! user-space instructions per call (callgrind,
//! `examples/bench/stateful.route`), and scanning them for their tags a
//! further 2.7%, so the tags (the header parameters after the address) are
//! scanned the first time something asks for one. Route code that reads
//! `$fu` or `$tu` of a response with a malformed address gets an empty
//! value, and a malformed tag reads as none. Of a request's From and To,
//! validation checks the structure and keeps the tags without parsing the
//! URIs ([`Message::checked_tags`]): a value with an unterminated display
//! name, an unclosed `<` or junk after its parameters is still refused.

use super::error::{ErrorKind, ParseError};
use super::message::Message;
use super::name_addr::NameAddr;
use super::scan::CommaValues;
use super::typed::{Memo, RouteSpans};
use super::via::{Via, ViaSpans};
use super::{HeaderName, Method};

/// Headers that may appear at most once (RFC 3261 §7.3.1: not list-valued).
const SINGLE: [HeaderName; 6] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentType,
];

/// Headers every request and response must carry (RFC 3261 §8.1.1; Via
/// included since a proxy cannot route a response or request without one).
const REQUIRED: [HeaderName; 5] =
    [HeaderName::Via, HeaderName::From, HeaderName::To, HeaderName::CallId, HeaderName::CSeq];

impl Message {
    /// Checks the message as a proxy needs it; see the module docs. A
    /// valid message keeps what the check parsed that routing reads again
    /// (the top Via, the Request-URI's parts, the tags), so it is parsed
    /// once per message.
    pub fn validate(&mut self) -> Result<(), ParseError> {
        self.memo = Some(self.examine()?);
        Ok(())
    }

    /// The checks of [`Message::validate`], keeping nothing.
    pub fn check(&self) -> Result<(), ParseError> {
        self.examine().map(drop)
    }

    fn examine(&self) -> Result<Memo, ParseError> {
        if !self.version_ok() {
            let at = self.request_uri_str().map_or(0, |u| u.len())
                + self.method_str().map_or(0, str::len)
                + 2;
            return Err(ParseError::new(ErrorKind::UnsupportedVersion, at));
        }
        for name in REQUIRED {
            if self.header(name).is_none() {
                return Err(ParseError::new(ErrorKind::MissingHeader(name), self.head().len()));
            }
        }
        for name in SINGLE {
            if self.header_count(name) > 1 {
                let h =
                    self.headers_named(name.as_str()).nth(1).map_or(0, |h| h.line.start as usize);
                return Err(ParseError::new(ErrorKind::DuplicateHeader(name), h));
            }
        }
        let (top_via, next_via) = self.check_vias()?;
        let tags = if self.is_request() { Some(self.checked_tags()?) } else { None };
        self.call_id()?;
        let cseq =
            self.cseq()?.ok_or(ParseError::new(ErrorKind::MissingHeader(HeaderName::CSeq), 0))?;
        // The method is a slice of the head: its range is always found.
        let cseq_memo =
            (cseq.seq, super::scan::span_within(self.head(), cseq.method).unwrap_or((0, 0)));
        let mut ruri = None;
        let mut first_route = None;
        let max_forwards = self.max_forwards();
        if let Some(method) = self.method_str() {
            if cseq.method != method {
                let at = self.header(HeaderName::CSeq).map_or(0, |h| h.value.start as usize);
                return Err(ParseError::new(ErrorKind::CSeqMethodMismatch, at));
            }
            // RFC 3261 §19.1.5: a Request-URI carries no headers (RFC 4475 §3.1.2.11).
            ruri = self.parse_request_uri_parts()?;
            if ruri.is_some_and(|u| u.has_headers) {
                return Err(ParseError::new(ErrorKind::BadUri, 0));
            }
            max_forwards?;
            self.expires()?;
            for (i, (h, v)) in self.lined_values(HeaderName::Route).enumerate() {
                let route = self.list_value(HeaderName::Route, h, v, NameAddr::parse)?;
                if i == 0 {
                    first_route = v.ok().and_then(|v| RouteSpans::of(self.head(), v, &route));
                }
            }
            if self.method() == Some(Method::Register) {
                for c in self.contacts() {
                    c?;
                }
            }
        }
        Ok(Memo { top_via, next_via, ruri, tags, max_forwards, cseq: cseq_memo, first_route })
    }

    /// Parses every Via value, in one walk over the Via lines, and keeps
    /// the top one and the one below it (where a response goes next): the
    /// values [`Message::parse_top_via`] and [`Message::vias_below_top`]
    /// give, with the same errors in the same order. Runs for every message.
    fn check_vias(&self) -> Result<(Option<ViaSpans>, Option<ViaSpans>), ParseError> {
        let (mut top, mut next) = (None, None);
        let mut seen = 0;
        for i in self.indices_of(HeaderName::Via) {
            let h = &self.headers()[i];
            for v in CommaValues::new(self.value_of(h)) {
                let via = self.list_value(HeaderName::Via, h, v, Via::parse)?;
                // A value is always a slice of the head; `None` cannot happen.
                match seen {
                    0 => top = ViaSpans::of(&via, self.head()),
                    1 => next = ViaSpans::of(&via, self.head()),
                    _ => {}
                }
                seen += 1;
            }
        }
        Ok((top, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(start: &str, from: &str) -> Message {
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: {from}\r\n\
             To: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    /// Validation accepts exactly the messages whose every Via parses, and
    /// keeps the second value as the next Via.
    #[test]
    fn vias_below_the_top_are_checked_and_the_next_kept() {
        for vias in [
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/TCP h.example.com:5070\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1\r\nVia: SIP/2.0/UDP 192.0.2.2, SIP/2.0/UDP 192.0.2.3\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1\r\nVia: SIP/2.0/UDP bad host\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1, \r\n",
            "Via: SIP/2.0/UDP 192.0.2.1\r\nVia: SIP/2.0/UDP 192.0.2.2;x=\"open\r\n",
            "Via: SIP/2.0/UDP 192.0.2.1\r\nVia: SIP/2.0/UDP 192.0.2.2\r\nVia: x\r\n",
        ] {
            let text = format!(
                "SIP/2.0 200 OK\r\n{vias}From: <sip:a@example.com>;tag=1\r\n\
                 To: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let plain = Message::parse(Bytes::from(text)).unwrap();
            let mut checked = plain.clone();
            let all_parse = plain.vias().all(|v| v.is_ok());
            assert_eq!(checked.validate().is_ok(), all_parse, "{vias}");
            if all_parse {
                assert_eq!(
                    checked.next_via().transpose().unwrap(),
                    plain.vias_below_top().next().transpose().unwrap(),
                    "{vias}"
                );
            }
        }
    }

    /// A validated message answers `cseq()` from what validation kept,
    /// with what parsing the header again gives.
    #[test]
    fn the_kept_cseq_is_the_parsed_one() {
        for (start, cseq) in [
            ("INVITE sip:b@example.com SIP/2.0", "CSeq: 1 INVITE"),
            ("INVITE sip:b@example.com SIP/2.0", "CSeq:   2147483647 \t INVITE  "),
            ("SIP/2.0 200 OK", "CSeq: 7 BYE"),
            ("SIP/2.0 180 Ringing", "cseq:9 INVITE"),
        ] {
            let text = format!(
                "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
                 {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            let plain = Message::parse(Bytes::from(text)).unwrap();
            let mut checked = plain.clone();
            checked.validate().unwrap();
            let (a, b) = (plain.cseq().unwrap().unwrap(), checked.cseq().unwrap().unwrap());
            assert_eq!((a.seq, a.method), (b.seq, b.method), "{cseq}");
        }
    }

    /// The first Route value validation kept answers for that value (the
    /// same place in the head) with what parsing it gives, and for no other.
    #[test]
    fn the_kept_first_route_is_the_parsed_one_and_only_for_itself() {
        for routes in [
            "Route: <sip:127.0.0.1:5060;lr;received=sip:10.0.0.1%3A5062>\r\n",
            "Route: <sip:127.0.0.1:5060>\r\n",
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
            "Route: \"P\" <sips:[2001:db8::1]:5061;lr;ftag=a>\r\nRoute: <sip:x.example.com>\r\n",
        ] {
            let text = format!(
                "BYE sip:b@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                 {routes}From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
                 Call-ID: c\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            let mut msg = Message::parse(Bytes::from(text)).unwrap();
            msg.validate().unwrap();
            let values: Vec<&str> =
                msg.list_values(HeaderName::Route).map(Result::unwrap).collect();
            let parsed = NameAddr::parse(values[0]).unwrap();
            let (uri, parts, params) = msg.kept_first_route(values[0]).unwrap();
            assert_eq!(uri, parsed.uri.raw(), "{routes}");
            assert_eq!(params, parsed.uri.params, "{routes}");
            assert_eq!(Some(*parts), crate::sip::UriParts::of(parsed.uri.raw()), "{routes}");
            let copy = values[0].to_owned();
            assert!(msg.kept_first_route(&copy).is_none(), "text elsewhere is not the kept value");
            assert!(msg.kept_first_route(values[1..].first().copied().unwrap_or("")).is_none());
        }
    }

    #[test]
    fn from_and_to_are_checked_for_shape_and_tags_not_parsed_whole() {
        // Neither URI is parsed: a space in the host passes, in a request
        // as in a response, and the tags are kept.
        let odd = "<sip:a@exa mple.com>;tag=1";
        for start in ["INVITE sip:b@example.com SIP/2.0", "SIP/2.0 200 OK"] {
            let mut m = message(start, odd);
            m.validate().unwrap();
            assert_eq!((m.from_tag(), m.to_tag()), (Some("1"), Some("2")), "{start}");
        }
        // A request's From must have the shape of an address.
        for bad in [
            "bob;tag=1",
            "<>;tag=1",
            "\"Bob <sip:a@example.com>;tag=1",
            "<sip:a@example.com;tag=1",
            "<sip:a@example.com> junk",
            "sip:a@example.com?x=y;tag=1",
        ] {
            let mut req = message("INVITE sip:b@example.com SIP/2.0", bad);
            assert!(req.validate().is_err(), "{bad}");
        }
        let mut good = message("SIP/2.0 200 OK", "<sip:a@example.com>;tag=1");
        good.validate().unwrap();
        assert_eq!((good.from_tag(), good.to_tag()), (Some("1"), Some("2")));
    }
}
