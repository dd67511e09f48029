//! Editing a received message and writing it out again.
//!
//! Edits are recorded, not applied: the received bytes stay untouched and
//! [`EditedMessage::serialize`] writes the result in one pass, copying every
//! unchanged header line verbatim (folds, case and compact names kept). This
//! is Kamailio's "lumps" idea: routing logic can change the Request-URI, add a
//! Via and a Record-Route, drop a Route and rewrite the body at the cost of a
//! few small records, and a message with no edits serializes to exactly the
//! bytes that arrived. Content-Length is recomputed whenever anything changed.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::HeaderName;
use super::message::{Message, StartLine};
use super::scan::CommaValues;

/// A message plus the edits to apply when it is written out.
///
/// The message is shared, never edited in place: a request's
/// `EditedMessage` moves from the receive path into its routing context and
/// its transaction, and each branch starts from a clone of the
/// transaction's. A `Message` (the received bytes' index plus what
/// validation kept) is several hundred bytes and a vector that each move
/// would copy and each clone allocate again; behind an `Arc` a move copies a
/// pointer and a branch's clone bumps a count.
#[derive(Debug, Clone)]
pub struct EditedMessage {
    msg: Arc<Message>,
    request_uri: Option<String>,
    /// Per header index: `None` removed, `Some(v)` value replaced.
    changed: SmallVec<[(usize, Option<String>); 2]>,
    /// `(position, "Name: value")`: written before header `position`
    /// (`headers().len()` means at the end), in the order added.
    inserted: SmallVec<[(usize, String); 3]>,
    body: Option<Bytes>,
}

impl EditedMessage {
    pub fn new(msg: impl Into<Arc<Message>>) -> Self {
        Self {
            msg: msg.into(),
            request_uri: None,
            changed: SmallVec::new(),
            inserted: SmallVec::new(),
            body: None,
        }
    }

    /// The message as received.
    pub fn original(&self) -> &Message {
        &self.msg
    }

    /// Has anything been changed?
    pub fn is_unchanged(&self) -> bool {
        self.request_uri.is_none()
            && self.changed.is_empty()
            && self.inserted.is_empty()
            && self.body.is_none()
    }

    /// Has the first received line of `kind` been changed or removed? (Other
    /// edits, a new Max-Forwards say, leave what validation parsed of it
    /// good to use.)
    pub fn first_line_edited(&self, kind: HeaderName) -> bool {
        let first = self.msg.header_index(kind);
        first.is_some_and(|i| self.changed.iter().any(|(j, _)| *j == i))
    }

    /// Replaces the Request-URI (requests only; ignored for responses).
    pub fn set_request_uri(&mut self, uri: impl Into<String>) {
        self.request_uri = Some(uri.into());
    }

    /// The Request-URI as it will be written.
    pub fn request_uri(&self) -> Option<&str> {
        self.request_uri.as_deref().or(self.msg.request_uri_str())
    }

    /// The Request-URI and the parts validation kept of it, while it is
    /// the received one (not replaced): read without parsing it again.
    pub fn kept_request_uri(&self) -> Option<(&str, &super::UriParts)> {
        if self.request_uri.is_some() {
            return None;
        }
        Some((self.msg.request_uri_str()?, self.msg.kept_request_uri_parts()?))
    }

    /// Adds a header above the first existing header of the same name, or at
    /// the top of the header section when there is none. This is how a proxy
    /// adds its Via (RFC 3261 §16.6 step 8) and Record-Route (step 4).
    pub fn insert_first(&mut self, name: &str, value: &str) {
        let pos = self.msg.indices_named(name).next().unwrap_or(0);
        self.inserted.push((pos, header_line(name, value)));
    }

    /// Adds a header after all the others.
    pub fn append(&mut self, name: &str, value: &str) {
        self.inserted.push((self.msg.headers().len(), header_line(name, value)));
    }

    /// Removes every header line with this name (compact forms included).
    /// Returns how many lines were removed.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let idx: SmallVec<[usize; 4]> = self.msg.indices_named(name).collect();
        let n = idx.iter().filter(|&&i| self.current(i).is_some()).count();
        for i in idx {
            self.set_line(i, None);
        }
        self.inserted.retain(|(_, line)| !line_has_name(line, name));
        n
    }

    /// Removes every received line with this name, keeping the lines added
    /// by [`insert_first`](Self::insert_first) and [`append`](Self::append):
    /// a forwarded copy keeps only this proxy's own Via and Record-Route
    /// (topology hiding). Returns how many lines were removed.
    pub fn remove_received(&mut self, name: &str) -> usize {
        let idx: SmallVec<[usize; 4]> = self.msg.indices_named(name).collect();
        let n = idx.iter().filter(|&&i| self.current(i).is_some()).count();
        for i in idx {
            self.set_line(i, None);
        }
        n
    }

    /// Sets a header to a single value: the first line is replaced, any
    /// others removed; appended when absent.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let idx: SmallVec<[usize; 4]> = self.msg.indices_named(name).collect();
        match idx.split_first() {
            None => self.append(name, value),
            Some((&first, rest)) => {
                self.set_line(first, Some(value.to_owned()));
                for &i in rest {
                    self.set_line(i, None);
                }
            }
        }
    }

    /// Removes the topmost value of a list header (the proxy's own Via on a
    /// response, a Route naming this proxy), even when it shares a line with
    /// others. Returns the removed value.
    pub fn remove_first_value(&mut self, name: &str) -> Option<String> {
        let (i, first, rest) = self.msg.indices_named(name).find_map(|i| self.split_top(i))?;
        let first = first.to_owned();
        self.set_line(i, rest);
        Some(first)
    }

    /// [`remove_first_value`](Self::remove_first_value) for a known kind,
    /// without copying the value out: runs on every relayed response (our
    /// Via comes off) and for every Route naming this proxy. Returns whether
    /// there was one.
    pub fn remove_top(&mut self, kind: HeaderName) -> bool {
        let Some((i, _, rest)) = self.msg.indices_of(kind).find_map(|i| self.split_top(i)) else {
            return false;
        };
        self.set_line(i, rest);
        true
    }

    /// Line `i`'s first value and what the line becomes without it (`None`:
    /// nothing is left): the other values, empty ones dropped.
    fn split_top(&self, i: usize) -> Option<(usize, &str, Option<String>)> {
        use super::scan::trim_lws;
        let current = self.current(i)?;
        // The usual line holds one value (every Via this proxy adds, the
        // Route entry `loose_route` removes): with no comma and no quoted
        // string it is the whole (trimmed) line, nothing to split or join.
        if memchr::memchr2(b',', b'"', current.as_bytes()).is_none() {
            return Some((i, trim_lws(current), None));
        }
        let mut values = CommaValues::new(current);
        let Some(Ok(first)) = values.next() else { return None };
        let mut rest = String::with_capacity(current.len());
        for v in values.filter_map(Result::ok).filter(|v| !v.is_empty()) {
            if !rest.is_empty() {
                rest.push_str(", ");
            }
            rest.push_str(v);
        }
        Some((i, first, (!rest.is_empty()).then_some(rest)))
    }

    /// Replaces the topmost value of a list header in place (the received
    /// Via gaining `received`/`rport`, RFC 3581 §4). Returns false when the
    /// header is absent.
    pub fn replace_first_value(&mut self, name: &str, value: &str) -> bool {
        let idx: SmallVec<[usize; 4]> = self.msg.indices_named(name).collect();
        for i in idx {
            let Some(current) = self.current(i) else { continue };
            let mut values = CommaValues::new(current);
            let Some(Ok(_)) = values.next() else { continue };
            let mut line = value.to_owned();
            for v in values.filter_map(Result::ok).filter(|v| !v.is_empty()) {
                line.push_str(", ");
                line.push_str(v);
            }
            self.set_line(i, Some(line));
            return true;
        }
        false
    }

    /// The current value of every received line with this name (removed
    /// lines skipped, inserted lines not included), in order.
    pub fn current_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.msg.indices_named(name).filter_map(|i| self.current(i))
    }

    /// The current value of the first received line of a known kind (what
    /// `current_values(name).next()` gives, without classifying a name).
    pub fn first_current(&self, kind: super::HeaderName) -> Option<&str> {
        self.msg.indices_of(kind).find_map(|i| self.current(i))
    }

    /// The topmost value of a list header of a known kind as it will be
    /// written, borrowed ([`EditedMessage::first_value`] without the copy).
    pub fn first_value_str(&self, kind: super::HeaderName) -> Option<&str> {
        self.msg.indices_of(kind).find_map(|i| self.top_value(i))
    }

    /// The first value of line `i` as it will be written.
    fn top_value(&self, i: usize) -> Option<&str> {
        CommaValues::new(self.current(i)?).next()?.ok()
    }

    /// The topmost value of a list header as it will be written.
    pub fn first_value(&self, name: &str) -> Option<String> {
        self.msg.indices_named(name).find_map(|i| self.top_value(i)).map(str::to_owned)
    }

    /// Replaces the body; `content_type` sets Content-Type (removed when the
    /// new body is empty and no type is given).
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) {
        match content_type {
            Some(ct) => self.set_header("Content-Type", ct),
            None if body.is_empty() => {
                self.remove_all("Content-Type");
            }
            None => {}
        }
        self.body = Some(body);
    }

    /// The body as it will be written.
    pub fn body(&self) -> Bytes {
        self.body.clone().unwrap_or_else(|| self.msg.body())
    }

    /// The value of header `i` with edits applied (`None` when removed).
    fn current(&self, i: usize) -> Option<&str> {
        match self.changed.iter().rev().find(|(j, _)| *j == i) {
            Some((_, v)) => v.as_deref(),
            None => Some(self.msg.value_of(&self.msg.headers()[i])),
        }
    }

    fn set_line(&mut self, i: usize, v: Option<String>) {
        match self.changed.iter_mut().find(|(j, _)| *j == i) {
            Some(slot) => slot.1 = v,
            None => self.changed.push((i, v)),
        }
    }

    /// Writes the message with every edit applied. With no edits this is the
    /// received bytes themselves (no copy). The work is per edit, not per
    /// header: the lines where something other than a copy happens (an
    /// edited line, the Content-Length, a place where lines are inserted)
    /// are visited in order, and the unchanged lines between two of them
    /// are copied as one run, into a buffer sized for the result. A
    /// forwarded request has three or four such places among its dozen
    /// lines, a relayed response two (its Via and its Content-Length).
    pub fn serialize(&self) -> Bytes {
        if self.is_unchanged() {
            return self.msg.as_bytes().clone();
        }
        let msg = &self.msg;
        let head = msg.head().as_bytes();
        let headers = msg.headers();
        let body = self.body();
        let added: usize = self.inserted.iter().map(|(_, l)| l.len() + 2).sum::<usize>()
            + self
                .changed
                .iter()
                .map(|(_, v)| v.as_ref().map_or(0, |v| v.len() + 32))
                .sum::<usize>()
            + self.request_uri.as_ref().map_or(0, String::len)
            + 40;
        let mut out = BytesMut::with_capacity(msg.as_bytes().len() + added + body.len());

        let first_eol = memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1);
        match (msg.start_line(), &self.request_uri) {
            (StartLine::Request { .. }, Some(uri)) => {
                out.put_slice(msg.method_str().unwrap_or_default().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri.as_bytes());
                out.put_slice(b" SIP/2.0\r\n");
            }
            _ => out.put_slice(&head[..first_eol]),
        }
        // Header lines are contiguous, from the start line to the empty line.
        let end = headers.last().map_or(first_eol, |h| h.line.end as usize);

        // Content-Length: rewrite the first live one, drop the rest, or add one.
        let mut digits = [0; 20];
        let body_len = super::write::decimal(body.len() as u64, &mut digits);
        let mut cl_written = false;
        let mut marks: SmallVec<[usize; 8]> = self.changed.iter().map(|(i, _)| *i).collect();
        marks.extend(msg.indices_of(HeaderName::ContentLength));
        marks.extend(self.inserted.iter().map(|(pos, _)| (*pos).min(headers.len())));
        marks.sort_unstable();
        marks.dedup();
        // Usually a Via and a Record-Route or two: sorted inline, stably
        // (lines inserted at one place keep the order they were added in).
        let mut inserted: SmallVec<[&(usize, String); 4]> = self.inserted.iter().collect();
        inserted.sort_by_key(|(pos, _)| *pos);
        let mut ins = inserted.into_iter().peekable();
        // Head bytes before this are written (or left out).
        let mut copied = first_eol;
        for i in marks {
            let line = headers.get(i).map_or(end..end, |h| h.line.range());
            out.put_slice(&head[copied..line.start]);
            copied = line.start;
            while let Some((_, added)) = ins.next_if(|(pos, _)| *pos <= i) {
                write_line(&mut out, added);
            }
            let Some(h) = headers.get(i) else { break };
            // The line's edit, if it has one (`Some(None)`: removed).
            let edit = self.changed.iter().find(|(j, _)| *j == i).map(|(_, v)| v.as_deref());
            if edit.is_none() && h.name != HeaderName::ContentLength {
                continue; // only a place to insert at: the line goes with the next run
            }
            copied = line.end;
            let Some(value) = edit.unwrap_or_else(|| Some(msg.value_of(h))) else { continue };
            if h.name == HeaderName::ContentLength {
                if cl_written {
                    continue;
                }
                cl_written = true;
                if value != body_len {
                    write_header(&mut out, msg.name_of(h), body_len);
                    continue;
                }
            }
            match edit {
                Some(_) => write_header(&mut out, msg.name_of(h), value),
                None => out.put_slice(&head[line]),
            }
        }
        out.put_slice(&head[copied..end]);
        for (_, line) in ins {
            write_line(&mut out, line);
        }
        if !cl_written {
            write_header(&mut out, "Content-Length", body_len);
        }
        out.put_slice(b"\r\n");
        out.put_slice(&body);
        out.freeze()
    }
}

fn line_has_name(line: &str, name: &str) -> bool {
    line.split_once(':').is_some_and(|(n, _)| {
        let (a, b) = (HeaderName::classify(n), HeaderName::classify(name));
        a == b && (a != HeaderName::Other || n.eq_ignore_ascii_case(name))
    })
}

fn write_line(out: &mut BytesMut, line: &str) {
    out.put_slice(line.as_bytes());
    out.put_slice(b"\r\n");
}

fn write_header(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// `Name: value`, without the formatting machinery (a Via and often a
/// Record-Route are added to every forwarded request).
fn header_line(name: &str, value: &str) -> String {
    let mut line = String::with_capacity(name.len() + 2 + value.len());
    line.push_str(name);
    line.push_str(": ");
    line.push_str(value);
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What [`EditedMessage::serialize`] must write, header by header: each
    /// line in turn, the lines inserted before it first; an edited line
    /// written as `Name: value` or left out; the first live Content-Length
    /// given the body's length and any other dropped, one added if none.
    fn reference(e: &EditedMessage) -> Vec<u8> {
        let msg = &e.msg;
        let head = msg.head().as_bytes();
        let mut out = Vec::new();
        let first_eol = memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1);
        match (msg.start_line(), &e.request_uri) {
            (StartLine::Request { .. }, Some(uri)) => {
                out.extend_from_slice(
                    format!("{} {uri} SIP/2.0\r\n", msg.method_str().unwrap()).as_bytes(),
                );
            }
            _ => out.extend_from_slice(&head[..first_eol]),
        }
        let body = e.body();
        let body_len = body.len().to_string();
        let mut inserted: Vec<&(usize, String)> = e.inserted.iter().collect();
        inserted.sort_by_key(|(pos, _)| *pos);
        let mut ins = inserted.into_iter().peekable();
        let mut cl_written = false;
        for (i, h) in msg.headers().iter().enumerate() {
            while let Some((_, line)) = ins.next_if(|(pos, _)| *pos <= i) {
                out.extend_from_slice(format!("{line}\r\n").as_bytes());
            }
            let changed = e.changed.iter().any(|(j, _)| *j == i);
            let Some(value) = e.current(i) else { continue };
            let value = if h.name == HeaderName::ContentLength {
                if cl_written {
                    continue;
                }
                cl_written = true;
                body_len.as_str()
            } else {
                value
            };
            if changed || value != msg.value_of(h) {
                out.extend_from_slice(format!("{}: {value}\r\n", msg.name_of(h)).as_bytes());
            } else {
                out.extend_from_slice(&head[h.line.range()]);
            }
        }
        for (_, line) in ins {
            out.extend_from_slice(format!("{line}\r\n").as_bytes());
        }
        if !cl_written {
            out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }

    const MESSAGES: [&str; 4] = [
        "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
         Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb, SIP/2.0/UDP 192.0.2.3\r\n\
         Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nMax-Forwards: 70\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
         CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
        "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp\r\n\
         Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\nf: <sip:a@example.com>;tag=1\r\n\
         t: <sip:b@example.com>;tag=2\r\ni: c\r\nCSeq: 1 INVITE\r\nl:   0\r\n\r\n",
        "BYE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
         X-Long: a,\r\n  b\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
         Call-ID: c\r\nCSeq: 3 OPTIONS\r\n\r\nbody without a length",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Uri,
        InsertFirst(&'static str),
        Append(&'static str),
        RemoveAll(&'static str),
        Set(&'static str),
        RemoveTop(HeaderName),
        ReplaceFirst(&'static str),
        Body(usize),
    }

    const NAMES: [&str; 8] = [
        "Via",
        "Route",
        "Record-Route",
        "Max-Forwards",
        "Content-Length",
        "X-Long",
        "To",
        "Call-ID",
    ];

    fn edit() -> impl Strategy<Value = Edit> {
        let name = proptest::sample::select(&NAMES[..]);
        prop_oneof![
            Just(Edit::Uri),
            name.clone().prop_map(Edit::InsertFirst),
            name.clone().prop_map(Edit::Append),
            name.clone().prop_map(Edit::RemoveAll),
            name.clone().prop_map(Edit::Set),
            proptest::sample::select(vec![HeaderName::Via, HeaderName::Route])
                .prop_map(Edit::RemoveTop),
            name.prop_map(Edit::ReplaceFirst),
            (0usize..3).prop_map(Edit::Body),
        ]
    }

    fn apply(e: &mut EditedMessage, edit: &Edit) {
        match *edit {
            Edit::Uri => e.set_request_uri("sip:new@example.net"),
            Edit::InsertFirst(n) => e.insert_first(n, "inserted"),
            Edit::Append(n) => e.append(n, "appended"),
            Edit::RemoveAll(n) => drop(e.remove_all(n)),
            Edit::Set(n) => e.set_header(n, "set"),
            Edit::RemoveTop(k) => drop(e.remove_top(k)),
            Edit::ReplaceFirst(n) => drop(e.replace_first_value(n, "replaced")),
            Edit::Body(n) => e.set_body(Bytes::from("x".repeat(n * 7)), None),
        }
    }

    proptest! {
        /// Any sequence of edits on any of the sample messages writes what
        /// the line-by-line reference writes.
        #[test]
        fn serialize_writes_what_the_reference_writes(
            which in 0..MESSAGES.len(),
            edits in proptest::collection::vec(edit(), 0..7),
        ) {
            let msg = Message::parse(Bytes::from(MESSAGES[which])).unwrap();
            let mut e = EditedMessage::new(msg);
            for ed in &edits {
                apply(&mut e, ed);
            }
            let out = e.serialize();
            if e.is_unchanged() {
                prop_assert_eq!(&out, e.original().as_bytes());
            } else {
                let expected = reference(&e);
                prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected));
            }
        }
    }
}
