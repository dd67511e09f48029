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
        if eq_folded(candidate.as_str().as_bytes(), b) { candidate } else { Other }
    }

    /// Whether `name` is a header name of [`KNOWN_HEADERS`] or a compact form
    /// of [`COMPACT_HEADERS`], compared ASCII case-insensitively.
    pub fn is_known(name: &str) -> bool {
        if HeaderName::classify(name) != HeaderName::Other {
            return true;
        }
        match name.as_bytes() {
            [c] => COMPACT_HEADERS.iter().any(|(f, _)| f.eq_ignore_ascii_case(&(*c as char))),
            _ => KNOWN_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(name)),
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

/// Header names in their canonical spelling: RFC 3261 §20, the header
/// fields of the IANA SIP parameters registry (RFC 3262, 3313, 3323, 3325,
/// 3326, 3327, 3329, 3515, 3608, 3841, 3891, 3892, 3903, 3911, 4028, 4412,
/// 4457, 4488, 4538, 4964, 5002, 5009, 5318, 5360, 5373, 5393, 5502, 5503,
/// 5626, 5806, 5839, 6050, 6086, 6442, 6665, 6794, 6809, 7044, 7315, 7316,
/// 7433, 7614, 7913, 7989, 8224, 8262, 8496, including the deprecated ones
/// of RFC 2543) and `Remote-Party-ID`, in wide use without an RFC. Every
/// [`HeaderName`] variant's name is here (a test checks). `sipc check`
/// compares the header names a route file uses with these: a name one edit
/// away from one of them is likely misspelled.
pub const KNOWN_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Answer-Mode",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Cellular-Network-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-ID",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Encryption",
    "Error-Info",
    "Event",
    "Expires",
    "Feature-Caps",
    "Flow-Timer",
    "From",
    "Geolocation",
    "Geolocation-Error",
    "Geolocation-Routing",
    "Hide",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Info-Package",
    "Join",
    "Max-Breadth",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Access-Network-Info",
    "P-Answer-State",
    "P-Asserted-Identity",
    "P-Asserted-Service",
    "P-Associated-URI",
    "P-Called-Party-ID",
    "P-Charge-Info",
    "P-Charging-Function-Addresses",
    "P-Charging-Vector",
    "P-DCS-Billing-Info",
    "P-DCS-LAES",
    "P-DCS-OSPS",
    "P-DCS-Redirect",
    "P-DCS-Trace-Party-ID",
    "P-Early-Media",
    "P-Media-Authorization",
    "P-Preferred-Identity",
    "P-Preferred-Service",
    "P-Private-Network-Indication",
    "P-Profile-Key",
    "P-Refused-URI-List",
    "P-Served-User",
    "P-User-Database",
    "P-Visited-Network-ID",
    "Path",
    "Permission-Missing",
    "Policy-Contact",
    "Policy-ID",
    "Priority",
    "Priv-Answer-Mode",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Recv-Info",
    "Refer-Events-At",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Response-Key",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Session-ID",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Suppress-If-Match",
    "Target-Dialog",
    "Timestamp",
    "To",
    "Trigger-Consent",
    "Unsupported",
    "User-Agent",
    "User-to-User",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// One-letter compact forms (RFC 3261 §7.3.3 and the IANA registry) and
/// the names they stand for.
pub const COMPACT_HEADERS: &[(char, &str)] = &[
    ('a', "Accept-Contact"),
    ('b', "Referred-By"),
    ('c', "Content-Type"),
    ('d', "Request-Disposition"),
    ('e', "Content-Encoding"),
    ('f', "From"),
    ('i', "Call-ID"),
    ('j', "Reject-Contact"),
    ('k', "Supported"),
    ('l', "Content-Length"),
    ('m', "Contact"),
    ('n', "Identity-Info"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('s', "Subject"),
    ('t', "To"),
    ('u', "Allow-Events"),
    ('v', "Via"),
    ('x', "Session-Expires"),
    ('y', "Identity"),
];

/// `text[from..to]` (at most eight bytes) as a little-endian word, and the
/// bit 0x20 of each of its lowercase letters.
const fn packed(text: &[u8], from: usize, to: usize) -> (u64, u64) {
    let (mut word, mut fold) = (0, 0);
    let mut i = from;
    while i < to {
        let shift = 8 * (i - from);
        word |= (text[i] as u64) << shift;
        if text[i].is_ascii_lowercase() {
            fold |= 0x20 << shift;
        }
        i += 1;
    }
    (word, fold)
}

/// A header name and its colon as it starts a line, for
/// [`HeaderName::line_prefix`]: the text (lowercase letters, `-`, `:`) as up
/// to two little-endian words, the bits a letter's case may flip, and which
/// bytes of the first word count. The second word, for a text longer than
/// eight bytes, is its last eight bytes (overlapping the first).
struct LinePrefix {
    name: HeaderName,
    len: usize,
    word: [u64; 2],
    fold: [u64; 2],
    keep: u64,
}

impl LinePrefix {
    const fn new(name: HeaderName, text: &[u8]) -> LinePrefix {
        let len = text.len();
        assert!(len >= 2 && len <= 16 && text[len - 1] == b':');
        let first = if len < 8 { len } else { 8 };
        let (w0, f0) = packed(text, 0, first);
        let (w1, f1) = if len > 8 { packed(text, len - 8, len) } else { (0, 0) };
        let keep = if first == 8 { u64::MAX } else { (1 << (8 * first)) - 1 };
        LinePrefix { name, len, word: [w0, w1], fold: [f0, f1], keep }
    }

    /// Does `rest` (at least 16 bytes) start with this name and its colon,
    /// the letters in either case? Folding bit 0x20 only where the text has
    /// a letter keeps the comparison exact: a letter is the only byte that
    /// folds onto a lowercase letter, and `-` and `:` are compared as they are.
    #[inline]
    fn matches(&self, w0: u64, rest: &[u8]) -> bool {
        if (w0 | self.fold[0]) & self.keep != self.word[0] {
            return false;
        }
        self.len <= 8 || (word_at(rest, self.len - 8) | self.fold[1]) == self.word[1]
    }
}

/// The eight bytes of `s` at `i` as a little-endian word (zero past the end).
fn word_at(s: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(s.get(i..i + 8).and_then(|w| w.try_into().ok()).unwrap_or([0; 8]))
}

static V: [LinePrefix; 1] = [LinePrefix::new(HeaderName::Via, b"via:")];
static F: [LinePrefix; 1] = [LinePrefix::new(HeaderName::From, b"from:")];
static T: [LinePrefix; 1] = [LinePrefix::new(HeaderName::To, b"to:")];
static C: [LinePrefix; 5] = [
    LinePrefix::new(HeaderName::CallId, b"call-id:"),
    LinePrefix::new(HeaderName::CSeq, b"cseq:"),
    LinePrefix::new(HeaderName::Contact, b"contact:"),
    LinePrefix::new(HeaderName::ContentType, b"content-type:"),
    LinePrefix::new(HeaderName::ContentLength, b"content-length:"),
];
static M: [LinePrefix; 1] = [LinePrefix::new(HeaderName::MaxForwards, b"max-forwards:")];
static R: [LinePrefix; 2] = [
    LinePrefix::new(HeaderName::Route, b"route:"),
    LinePrefix::new(HeaderName::RecordRoute, b"record-route:"),
];
static S: [LinePrefix; 3] = [
    LinePrefix::new(HeaderName::Subject, b"subject:"),
    LinePrefix::new(HeaderName::Supported, b"supported:"),
    LinePrefix::new(HeaderName::Server, b"server:"),
];
static U: [LinePrefix; 1] = [LinePrefix::new(HeaderName::UserAgent, b"user-agent:")];
static A: [LinePrefix; 1] = [LinePrefix::new(HeaderName::Allow, b"allow:")];
static E: [LinePrefix; 1] = [LinePrefix::new(HeaderName::Expires, b"expires:")];

impl HeaderName {
    /// The header a line starts with when its name is one the proxy sees in
    /// nearly every message, written with the colon right after it (`Via:`,
    /// `Call-ID:`, `content-length:` …), and the name's length: what the
    /// parser's token scan, colon check and [`HeaderName::classify_bytes`]
    /// give for such a line, in a word comparison or two (those three steps
    /// were a fifth of a message's parse). `None` for any other line,
    /// which is parsed the general way; `rest` shorter than 16 bytes too.
    #[inline]
    pub fn line_prefix(rest: &[u8]) -> Option<(HeaderName, usize)> {
        if rest.len() < 16 {
            return None;
        }
        let w0 = word_at(rest, 0);
        let candidates: &[LinePrefix] = match rest[0] | 0x20 {
            b'v' => &V,
            b'f' => &F,
            b't' => &T,
            b'c' => &C,
            b'm' => &M,
            b'r' => &R,
            b's' => &S,
            b'u' => &U,
            b'a' => &A,
            b'e' => &E,
            _ => return None,
        };
        candidates.iter().find(|p| p.matches(w0, rest)).map(|p| (p.name, p.len - 1))
    }
}

/// `a == b` with bit 0x20 folded on both sides, a word at a time (the
/// byte-wise comparison was half of classifying a header name, which runs
/// for every header line of every message). Words overlap at the end
/// instead of finishing byte by byte.
fn eq_folded(a: &[u8], b: &[u8]) -> bool {
    const FOLD64: u64 = 0x2020_2020_2020_2020;
    const FOLD32: u32 = 0x2020_2020;
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w32 = |s: &[u8], i: usize| {
        u32::from_le_bytes(s.get(i..i + 4).and_then(|w| w.try_into().ok()).unwrap_or([0; 4]))
    };
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if word_at(a, i) | FOLD64 != word_at(b, i) | FOLD64 {
                return false;
            }
            i += 8;
        }
        i == n || word_at(a, n - 8) | FOLD64 == word_at(b, n - 8) | FOLD64
    } else if n >= 4 {
        w32(a, 0) | FOLD32 == w32(b, 0) | FOLD32 && w32(a, n - 4) | FOLD32 == w32(b, n - 4) | FOLD32
    } else {
        a.iter().zip(b).all(|(x, y)| x | 0x20 == y | 0x20)
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName::{self, *};

    proptest::proptest! {
        /// The word-wise comparison is the byte-wise one, at every length
        /// and wherever the two differ.
        #[test]
        fn folded_words_compare_as_bytes(a in "[a-zA-Z.!%*_+`'~0-9-]{0,24}", flip in 0usize..24, to in 0u8..128) {
            let mut b = a.clone().into_bytes();
            if let Some(c) = b.get_mut(flip) {
                *c = to;
            }
            let bytewise = a.len() == b.len() && a.bytes().zip(&b).all(|(x, y)| x | 0x20 == y | 0x20);
            proptest::prop_assert_eq!(super::eq_folded(a.as_bytes(), &b), bytewise);
        }
    }

    /// What the parser finds the general way: the name's token bytes, the
    /// colon right after them, and the classified name.
    fn general(line: &[u8]) -> Option<(HeaderName, usize)> {
        let n = line.iter().position(|&b| !crate::sip::scan::is_token_byte(b))?;
        (n > 0 && line[n] == b':').then(|| (HeaderName::classify_bytes(&line[..n]), n))
    }

    /// Lines the prefix comparison names are named alike the general way,
    /// whatever their case, and look-alikes are left to it.
    #[test]
    fn a_line_prefix_names_what_the_general_way_names() {
        let tail = ": SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n";
        let mut named = 0;
        for name in [
            "Via",
            "VIA",
            "via",
            "From",
            "fROM",
            "To",
            "Call-ID",
            "call-id",
            "CALL-id",
            "CSeq",
            "Contact",
            "Content-Type",
            "Content-Length",
            "content-length",
            "Max-Forwards",
            "Route",
            "Record-Route",
            "Subject",
            "Supported",
            "Server",
            "User-Agent",
            "Allow",
            "Expires",
            "Contact-X",
            "Viax",
            "Vi",
            "T",
            "v",
            "Call\rID",
            "Call\x0dID",
            "Content\x0dLength",
            "X-Via",
            "Routes",
            "Max-Forward",
            "Record_Route",
        ] {
            for sep in ["", " ", "\t"] {
                let line = format!("{name}{sep}{tail}");
                let fast = HeaderName::line_prefix(line.as_bytes());
                if let Some(found) = fast {
                    named += 1;
                    assert_eq!(Some(found), general(line.as_bytes()), "{line:?}");
                    assert!(sep.is_empty(), "{line:?}");
                } else if sep.is_empty() {
                    let g = general(line.as_bytes());
                    assert!(
                        g.is_none_or(|(n, _)| !matches!(
                            n,
                            Via | From | To | CallId | CSeq | Contact | ContentType | ContentLength
                        ) || name.len() == 1),
                        "{line:?} is left to the general way, which names it {g:?}"
                    );
                }
            }
        }
        assert_eq!(named, 23);
        // Too short to compare a word: the general way.
        assert_eq!(HeaderName::line_prefix(b"Via: x\r\n"), None);
    }

    proptest::proptest! {
        /// Over lines made of the names' letters in either case, `-`, `:`,
        /// white space and the bytes that fold onto `-` and `:` (CR, 0x1a).
        #[test]
        fn line_prefixes_agree_with_the_general_way(
            line in "[vViIaAfFrRoOmMtTcCsSeEqQlLnNgGhHdDuUpPbBxX:\r\x1a -]{0,18}",
        ) {
            let padded = format!("{line}{}", " ".repeat(16));
            if let Some(found) = HeaderName::line_prefix(padded.as_bytes()) {
                proptest::prop_assert_eq!(Some(found), general(padded.as_bytes()));
            }
        }
    }

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

    #[test]
    fn known_names_cover_every_variant_and_compact_form() {
        use super::{COMPACT_HEADERS, KNOWN_HEADERS};
        for n in HeaderName::ALL.iter().filter(|n| **n != Other) {
            assert!(KNOWN_HEADERS.contains(&n.as_str()), "{}", n.as_str());
        }
        for (c, long) in COMPACT_HEADERS {
            assert!(KNOWN_HEADERS.contains(long), "{long}");
            assert!(HeaderName::is_known(&c.to_string()), "{c}");
            let classified = HeaderName::classify(&c.to_string());
            assert!(classified == Other || classified.as_str() == *long, "{c}");
        }
        for name in ["p-asserted-identity", "MIN-SE", "Rseq", "v", "Y", "Call-Id"] {
            assert!(HeaderName::is_known(name), "{name}");
        }
        for name in ["X-Custom", "Evnt", "g", "Contcat"] {
            assert!(!HeaderName::is_known(name), "{name}");
        }
        let mut sorted = KNOWN_HEADERS.to_vec();
        sorted.sort_by_key(|n| n.to_ascii_lowercase());
        sorted.dedup_by_key(|n| n.to_ascii_lowercase());
        assert_eq!(sorted, KNOWN_HEADERS, "sorted case-insensitively, without duplicates");
    }
}
