//! A small SDP (RFC 8866) accessor: the connection, media and attribute
//! lines that media handling (NAT rewriting, RTP relaying) needs. It reads;
//! rewriting goes through [`EditedMessage::set_body`](super::EditedMessage::set_body).

use super::error::Malformed;

/// An SDP body, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Sdp<'a> {
    text: &'a str,
}

/// A `c=` line: `IN IP4 192.0.2.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    pub net_type: &'a str,
    pub addr_type: &'a str,
    pub address: &'a str,
}

/// An `m=` section.
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    /// `audio`, `video`, …
    pub kind: &'a str,
    pub port: u16,
    pub proto: &'a str,
    /// Format list as written (`0 8 101`).
    pub formats: &'a str,
    /// The section's lines after `m=`.
    lines: &'a str,
}

impl<'a> Sdp<'a> {
    /// Wraps a body; it must be UTF-8 and start with `v=`.
    pub fn parse(body: &'a [u8]) -> Result<Sdp<'a>, Malformed> {
        let text = std::str::from_utf8(body).map_err(|_| Malformed)?;
        if !text.starts_with("v=") {
            return Err(Malformed);
        }
        Ok(Sdp { text })
    }

    fn session_lines(&self) -> impl Iterator<Item = (u8, &'a str)> {
        lines(self.text).take_while(|(k, _)| *k != b'm')
    }

    /// The session-level `c=` line.
    pub fn connection(&self) -> Option<Connection<'a>> {
        self.session_lines().find(|(k, _)| *k == b'c').and_then(|(_, v)| parse_connection(v))
    }

    /// Session-level `a=` attributes as `(name, value)`.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.session_lines().filter(|(k, _)| *k == b'a').map(|(_, v)| split_attr(v))
    }

    /// The media sections in order.
    pub fn media(&self) -> impl Iterator<Item = Media<'a>> {
        let text = self.text;
        let mut starts: Vec<usize> = Vec::new();
        let mut off = 0;
        for line in text.split_inclusive('\n') {
            if line.starts_with("m=") {
                starts.push(off);
            }
            off += line.len();
        }
        let ends: Vec<usize> = starts.iter().skip(1).copied().chain([text.len()]).collect();
        starts.into_iter().zip(ends).filter_map(move |(s, e)| {
            let section = &text[s..e];
            let (first, rest) = section.split_once('\n').unwrap_or((section, ""));
            let mut f = first.trim_end()[2..].splitn(4, ' ');
            let kind = f.next()?;
            let port = f.next()?.split('/').next()?.parse().ok()?;
            let proto = f.next()?;
            let formats = f.next().unwrap_or("");
            Some(Media { kind, port, proto, formats, lines: rest })
        })
    }
}

impl<'a> Media<'a> {
    /// The media-level `c=` line.
    pub fn connection(&self) -> Option<Connection<'a>> {
        lines(self.lines).find(|(k, _)| *k == b'c').and_then(|(_, v)| parse_connection(v))
    }

    /// Media-level `a=` attributes.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        lines(self.lines).filter(|(k, _)| *k == b'a').map(|(_, v)| split_attr(v))
    }
}

fn lines(text: &str) -> impl Iterator<Item = (u8, &str)> {
    text.lines().filter_map(|l| {
        let b = l.as_bytes();
        (b.len() >= 2 && b[1] == b'=').then(|| (b[0], &l[2..]))
    })
}

fn parse_connection(v: &str) -> Option<Connection<'_>> {
    let mut p = v.split(' ');
    Some(Connection { net_type: p.next()?, addr_type: p.next()?, address: p.next()? })
}

fn split_attr(v: &str) -> (&str, Option<&str>) {
    match v.split_once(':') {
        Some((n, val)) => (n, Some(val)),
        None => (v, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\na=sendrecv\r\nm=audio 49217 RTP/AVP 0 12\r\na=rtpmap:0 PCMU/8000\r\nm=video 3227 RTP/AVP 31\r\nc=IN IP6 2001:db8::2\r\na=rtpmap:31 LPC\r\n";

    #[test]
    fn reads_connection_media_and_attributes() {
        let sdp = Sdp::parse(BODY.as_bytes()).unwrap();
        assert_eq!(sdp.connection().unwrap().address, "192.0.2.4");
        assert_eq!(sdp.attributes().collect::<Vec<_>>(), [("sendrecv", None)]);
        let m: Vec<_> = sdp.media().collect();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].kind, m[0].port, m[0].proto, m[0].formats),
            ("audio", 49217, "RTP/AVP", "0 12")
        );
        assert_eq!(m[0].attributes().next(), Some(("rtpmap", Some("0 PCMU/8000"))));
        assert!(m[0].connection().is_none());
        assert_eq!(m[1].connection().unwrap().address, "2001:db8::2");
        assert!(Sdp::parse(b"not sdp").is_err());
    }
}
