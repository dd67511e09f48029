//! Standard reason phrases of SIP status codes (RFC 3261 §21 and the
//! extensions a proxy meets: RFC 3262, 3265, 3329, 3903, 4412, 5079,
//! 6086, 6665, 8599).
//!
//! A route that answers `reply(404, "Not Found")` names a standard phrase;
//! the runtime answers it with this table's `&'static str`, so a reply
//! carries its reason without a reference count to touch.

/// Every standard code with its phrase.
const PHRASES: &[(u16, &str)] = &[
    (100, "Trying"),
    (180, "Ringing"),
    (181, "Call Is Being Forwarded"),
    (182, "Queued"),
    (183, "Session Progress"),
    (199, "Early Dialog Terminated"),
    (200, "OK"),
    (202, "Accepted"),
    (204, "No Notification"),
    (300, "Multiple Choices"),
    (301, "Moved Permanently"),
    (302, "Moved Temporarily"),
    (305, "Use Proxy"),
    (380, "Alternative Service"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (402, "Payment Required"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (406, "Not Acceptable"),
    (407, "Proxy Authentication Required"),
    (408, "Request Timeout"),
    (410, "Gone"),
    (412, "Conditional Request Failed"),
    (413, "Request Entity Too Large"),
    (414, "Request-URI Too Long"),
    (415, "Unsupported Media Type"),
    (416, "Unsupported URI Scheme"),
    (417, "Unknown Resource-Priority"),
    (420, "Bad Extension"),
    (421, "Extension Required"),
    (423, "Interval Too Brief"),
    (428, "Use Identity Header"),
    (429, "Provide Referrer Identity"),
    (430, "Flow Failed"),
    (433, "Anonymity Disallowed"),
    (436, "Bad Identity-Info"),
    (437, "Unsupported Certificate"),
    (438, "Invalid Identity Header"),
    (439, "First Hop Lacks Outbound Support"),
    (440, "Max-Breadth Exceeded"),
    (469, "Bad Info Package"),
    (470, "Consent Needed"),
    (480, "Temporarily Unavailable"),
    (481, "Call/Transaction Does Not Exist"),
    (482, "Loop Detected"),
    (483, "Too Many Hops"),
    (484, "Address Incomplete"),
    (485, "Ambiguous"),
    (486, "Busy Here"),
    (487, "Request Terminated"),
    (488, "Not Acceptable Here"),
    (489, "Bad Event"),
    (491, "Request Pending"),
    (493, "Undecipherable"),
    (494, "Security Agreement Required"),
    (500, "Server Internal Error"),
    (501, "Not Implemented"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Server Time-out"),
    (505, "Version Not Supported"),
    (513, "Message Too Large"),
    (555, "Push Notification Service Not Supported"),
    (580, "Precondition Failure"),
    (600, "Busy Everywhere"),
    (603, "Decline"),
    (604, "Does Not Exist Anywhere"),
    (606, "Not Acceptable"),
    (607, "Unwanted"),
    (608, "Rejected"),
];

/// The table's own copy of `text` when it is a standard phrase (of any
/// code; compared exactly, as the phrase goes on the wire as written).
pub fn standard_phrase(text: &str) -> Option<&'static str> {
    PHRASES.iter().find(|&&(_, p)| p == text).map(|&(_, p)| p)
}

/// The standard phrase of `code` ("Unknown" for a code without one).
pub fn phrase_of(code: u16) -> &'static str {
    PHRASES.iter().find(|&&(c, _)| c == code).map_or("Unknown", |&(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::standard_phrase;

    #[test]
    fn lookups() {
        assert_eq!(standard_phrase("Busy Here"), Some("Busy Here"));
        assert_eq!(standard_phrase("busy here"), None);
        assert_eq!(standard_phrase("Not Here"), None);
    }
}
