//! Header names: the ones a proxy acts on get a variant, everything else is
//! [`HeaderName::Other`] and is compared by its text.
//!
//! Names are case-insensitive and most common ones have a one-letter compact
//! form (RFC 3261 §7.3.3 and later RFCs); both map to the same variant so the
//! rest of the proxy never sees the difference.

/// A header name, classified once when the message is split into headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Route,
    RecordRoute,
    Contact,
    ContentLength,
    ContentType,
    ContentEncoding,
    Expires,
    MinExpires,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Subject,
    Event,
    AllowEvents,
    ReferTo,
    ReferredBy,
    SessionExpires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    UserAgent,
    Server,
    Path,
    Accept,
    Date,
    Timestamp,
    Other,
}

impl HeaderName {
    /// Number of variants, for per-name lookup arrays.
    pub const COUNT: usize = HeaderName::Other as usize + 1;

    /// Every variant, in discriminant order (a test checks the order).
    pub const ALL: [HeaderName; HeaderName::COUNT] = {
        use HeaderName::*;
        [
            Via,
            From,
            To,
            CallId,
            CSeq,
            MaxForwards,
            Route,
            RecordRoute,
            Contact,
            ContentLength,
            ContentType,
            ContentEncoding,
            Expires,
            MinExpires,
            Allow,
            Supported,
            Require,
            ProxyRequire,
            Unsupported,
            Subject,
            Event,
            AllowEvents,
            ReferTo,
            ReferredBy,
            SessionExpires,
            Authorization,
            ProxyAuthorization,
            WwwAuthenticate,
            ProxyAuthenticate,
            UserAgent,
            Server,
            Path,
            Accept,
            Date,
            Timestamp,
            Other,
        ]
    };

    /// The canonical spelling, used when sipc writes a header of its own.
    pub fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            MaxForwards => "Max-Forwards",
            Route => "Route",
            RecordRoute => "Record-Route",
            Contact => "Contact",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            ContentEncoding => "Content-Encoding",
            Expires => "Expires",
            MinExpires => "Min-Expires",
            Allow => "Allow",
            Supported => "Supported",
            Require => "Require",
            ProxyRequire => "Proxy-Require",
            Unsupported => "Unsupported",
            Subject => "Subject",
            Event => "Event",
            AllowEvents => "Allow-Events",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            SessionExpires => "Session-Expires",
            Authorization => "Authorization",
            ProxyAuthorization => "Proxy-Authorization",
            WwwAuthenticate => "WWW-Authenticate",
            ProxyAuthenticate => "Proxy-Authenticate",
            UserAgent => "User-Agent",
            Server => "Server",
            Path => "Path",
            Accept => "Accept",
            Date => "Date",
            Timestamp => "Timestamp",
            Other => "",
        }
    }

    /// Classifies a header name as it appears on the wire (no surrounding
    /// white space); see [`HeaderName::classify_bytes`].
    pub fn classify(name: &str) -> HeaderName {
        Self::classify_bytes(name.as_bytes())
    }

    /// Classifies a header name. Runs for every header of every message, so
    /// it picks the one candidate by length and first letter and confirms it
    /// with a single case-insensitive comparison, without allocating.
    pub fn classify_bytes(b: &[u8]) -> HeaderName {
        use HeaderName::*;
        let Some(&first) = b.first() else { return Other };
        let first = first | 0x20;
        let candidate = match (b.len(), first) {
            (1, _) => {
                return match first {
                    b'v' => Via,
                    b'f' => From,
                    b't' => To,
                    b'i' => CallId,
                    b'm' => Contact,
                    b'l' => ContentLength,
                    b'c' => ContentType,
                    b'e' => ContentEncoding,
                    b'k' => Supported,
                    b's' => Subject,
                    b'o' => Event,
                    b'u' => AllowEvents,
                    b'r' => ReferTo,
                    b'b' => ReferredBy,
                    b'x' => SessionExpires,
                    _ => Other,
                };
            }
            (2, b't') => To,
            (3, b'v') => Via,
            (4, b'f') => From,
            (4, b'c') => CSeq,
            (4, b'p') => Path,
            (4, b'd') => Date,
            (5, b'r') => Route,
            (5, b'a') => Allow,
            (5, b'e') => Event,
            (6, b'a') => Accept,
            (6, b's') => Server,
            (7, b'c') if b[1] | 0x20 == b'a' => CallId,
            (7, b'c') => Contact,
            (7, b'e') => Expires,
            (7, b'r') => Require,
            (7, b's') => Subject,
            (8, b'r') => ReferTo,
            (9, b's') => Supported,
            (9, b't') => Timestamp,
            (10, b'u') => UserAgent,
            (11, b'm') => MinExpires,
            (11, b'u') => Unsupported,
            (11, b'r') => ReferredBy,
            (12, b'm') => MaxForwards,
            (12, b'r') => RecordRoute,
            (12, b'c') => ContentType,
            (12, b'a') => AllowEvents,
            (13, b'p') => ProxyRequire,
            (13, b'a') => Authorization,
            (14, b'c') => ContentLength,
            (15, b's') => SessionExpires,
            (16, b'c') => ContentEncoding,
            (16, b'w') => WwwAuthenticate,
            (18, b'p') => ProxyAuthenticate,
            (19, b'p') => ProxyAuthorization,
            _ => return Other,
        };
        // Callers pass token bytes only, and the canonical names hold only
        // letters and '-', so folding bit 0x20 on both sides compares exactly.
        let canon = candidate.as_str().as_bytes();
        if canon.len() == b.len() && canon.iter().zip(b).all(|(c, x)| c | 0x20 == x | 0x20) {
            candidate
        } else {
            Other
        }
    }

    /// Headers whose value is a comma-separated list (RFC 3261 §7.3.1), so
    /// several lines may be combined and one line may carry several values.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Route
                | RecordRoute
                | Contact
                | Allow
                | Supported
                | Require
                | ProxyRequire
                | Unsupported
                | AllowEvents
                | Path
                | Accept
                | ContentEncoding
        )
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName::{self, *};

    #[test]
    fn long_and_compact_forms_agree() {
        for (long, short) in [
            ("Via", "v"),
            ("From", "f"),
            ("To", "t"),
            ("Call-ID", "i"),
            ("Contact", "m"),
            ("Content-Length", "l"),
            ("Content-Type", "c"),
            ("Content-Encoding", "e"),
            ("Supported", "k"),
            ("Subject", "s"),
            ("Event", "o"),
            ("Allow-Events", "u"),
            ("Refer-To", "r"),
            ("Referred-By", "b"),
            ("Session-Expires", "x"),
        ] {
            let l = HeaderName::classify(long);
            assert_ne!(l, Other, "{long}");
            assert_eq!(l, HeaderName::classify(short), "{short}");
            assert_eq!(l, HeaderName::classify(&long.to_ascii_uppercase()));
            assert_eq!(l.as_str(), long);
        }
    }

    #[test]
    fn every_variant_round_trips_through_its_name() {
        for (i, &n) in HeaderName::ALL.iter().enumerate() {
            assert_eq!(n as usize, i);
            if n != Other {
                assert_eq!(HeaderName::classify(n.as_str()), n);
                assert_eq!(HeaderName::classify(&n.as_str().to_ascii_lowercase()), n);
            }
        }
        assert_eq!(HeaderName::classify("X-Custom"), Other);
        assert_eq!(HeaderName::classify("NewFangledHeader"), Other);
    }
}
