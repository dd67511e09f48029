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
    /// white space). Runs for every header of every message, so it dispatches
    /// on length first and compares case-insensitively without allocating.
    pub fn classify(name: &str) -> HeaderName {
        use HeaderName::*;
        let b = name.as_bytes();
        if b.len() == 1 {
            return match b[0].to_ascii_lowercase() {
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
        let candidates: &[HeaderName] = match b.len() {
            2 => &[To],
            3 => &[Via],
            4 => &[From, CSeq, Path, Date],
            5 => &[Route, Allow, Event],
            6 => &[Accept, Server],
            7 => &[CallId, Contact, Expires, Require, Subject],
            8 => &[ReferTo],
            9 => &[Supported, Timestamp],
            10 => &[UserAgent],
            11 => &[MinExpires, Unsupported, ReferredBy],
            12 => &[MaxForwards, RecordRoute, ContentType, AllowEvents],
            13 => &[ProxyRequire, Authorization],
            14 => &[ContentLength],
            15 => &[SessionExpires],
            16 => &[ContentEncoding, WwwAuthenticate],
            18 => &[ProxyAuthenticate],
            19 => &[ProxyAuthorization],
            _ => &[],
        };
        for &c in candidates {
            if c.as_str().eq_ignore_ascii_case(name) {
                return c;
            }
        }
        Other
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
        for i in 0..HeaderName::COUNT - 1 {
            let names = [
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
            ];
            let n = names[i];
            assert_eq!(n as usize, i);
            assert_eq!(HeaderName::classify(n.as_str()), n);
            assert_eq!(HeaderName::classify(&n.as_str().to_ascii_lowercase()), n);
        }
        assert_eq!(HeaderName::classify("X-Custom"), Other);
        assert_eq!(HeaderName::classify("NewFangledHeader"), Other);
    }
}
