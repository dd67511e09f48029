//! `;name=value` parameter lists, as they follow URIs, name-addrs and Via.
//!
//! A [`Params`] is a validated slice of the original text; lookups walk it
//! (parameter lists are short, so a walk beats building a map per message).
//! Names compare case-insensitively; values are returned as written, with
//! quotes, for the caller to interpret.

use super::error::Malformed;
use super::scan::{is_lws, is_token_byte, quoted_end, trim_lws};

/// Bytes that end or complicate a parameter value.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b';' as usize] = true;
    t[b',' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'?' as usize] = true;
    t
};

/// A validated parameter list: empty, or text starting with `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    /// A list [`Params::parse`] accepted before (its text, kept as a span).
    pub(crate) fn validated(s: &'a str) -> Params<'a> {
        Params(s)
    }

    /// Validates `s` (empty, or `;`-led) as a parameter list: every name is a
    /// non-empty token, every value a token, host-ish text or a quoted string.
    /// `stop` ends the list early at an unquoted byte (`?` for URI headers).
    /// Returns the list and the unconsumed rest.
    pub fn parse(s: &'a str, stop: Option<u8>) -> Result<(Params<'a>, &'a str), Malformed> {
        Self::parse_finding(s, stop, "").map(|(params, rest, _)| (params, rest))
    }

    /// [`Params::parse`], and what [`Params::get`] would give for `name`,
    /// found in the same walk (an empty `name` finds nothing): a Via's
    /// branch and a From or To tag are read from every message, and a
    /// second walk for them was 2% of the proxy's instructions per call.
    #[inline]
    pub fn parse_finding(
        s: &'a str,
        stop: Option<u8>,
        name: &str,
    ) -> Result<(Params<'a>, &'a str, Option<Option<&'a str>>), Malformed> {
        if let Some(lone) = Self::lone_plain(s, name) {
            return Ok(lone);
        }
        match Self::plain(s, name) {
            Some(plain) => Ok(plain),
            None => Self::walk_finding(s, stop, name),
        }
    }

    /// The general reading of [`Params::parse_finding`]: white space,
    /// quoted values, URI headers and the stop byte.
    fn walk_finding(
        s: &'a str,
        stop: Option<u8>,
        name: &str,
    ) -> Result<(Params<'a>, &'a str, Option<Option<&'a str>>), Malformed> {
        let b = s.as_bytes();
        let stop = stop.unwrap_or(b';');
        let mut i = 0;
        let mut found = None;
        loop {
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            if i == b.len() || b[i] != b';' {
                break;
            }
            let semi = i;
            i += 1;
            // The name: optional LWS, then at least one token byte.
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            let name_start = i;
            i += b[i..].iter().position(|&c| !is_token_byte(c)).unwrap_or(b.len() - i);
            if i == name_start {
                return Err(Malformed);
            }
            let name_end = i;
            // The rest of the segment: `= value`, quoted strings skipped whole.
            let mut quoted = false;
            loop {
                let Some(j) = b[i..].iter().position(|&c| SPECIAL[c as usize]) else {
                    i = b.len();
                    break;
                };
                i += j;
                match b[i] {
                    b'"' => {
                        quoted = true;
                        i += quoted_end(&b[i..]).ok_or(Malformed)?;
                    }
                    b',' | b'<' | b'>' => return Err(Malformed),
                    b'?' if stop != b'?' => i += 1,
                    _ => break, // ';' or the stop byte
                }
            }
            // The walk `get` does names a parameter by the text before its
            // first `=`: a name asked for is a token, so only a parameter
            // whose token is that name can be the one. Written plainly
            // (`name` alone, or `name=` and a value without quotes) the
            // value is the rest of the segment; any other shape is read by
            // the walk's own step.
            if found.is_none()
                && !name.is_empty()
                && name_end - name_start == name.len()
                && b[name_start..name_end].eq_ignore_ascii_case(name.as_bytes())
            {
                if name_end == i {
                    found = Some(None);
                } else if b[name_end] == b'=' && !quoted {
                    found = Some(Some(trim_lws(&s[name_end + 1..i])));
                } else if let Some((n, v)) = (ParamIter { rest: &s[semi..i] }).next()
                    && n.eq_ignore_ascii_case(name)
                {
                    found = Some(v);
                }
            }
        }
        Ok((Params(&s[..i]), &s[i..], found))
    }

    /// [`Params::parse_finding`] of a list that is `;name=value` alone, the
    /// value token bytes to the end: what nearly every Via's parameters
    /// are (`;branch=z9hG4bK…`), read in one pass over the value, cheaper
    /// still than [`Params::plain`]'s steps. Any other list is `None`.
    fn lone_plain(
        s: &'a str,
        name: &str,
    ) -> Option<(Params<'a>, &'a str, Option<Option<&'a str>>)> {
        let rest = s.as_bytes().strip_prefix(b";")?;
        let after = rest.get(name.len()..)?;
        if name.is_empty()
            || !rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            || after.first() != Some(&b'=')
            || after.len() == 1
            || !after[1..].iter().all(|&c| is_token_byte(c))
        {
            return None;
        }
        Some((Params(s), "", Some(Some(&s[name.len() + 2..]))))
    }

    /// [`Params::parse_finding`] of a list written plainly to its end:
    /// every parameter `;name` or `;name=value`, name and value non-empty
    /// runs of token bytes (`;branch=z9hG4bK…;received=192.0.2.1;rport=5060`,
    /// `;lr`, `;tag=…`), read in one pass instead of the walk's steps
    /// (the walk was three fifths of a multi-parameter Via's parse). Token
    /// bytes are none of the bytes the walk stops at or skips, so it finds
    /// the same values and the same end; any other list is `None`, and
    /// walked.
    fn plain(s: &'a str, name: &str) -> Option<(Params<'a>, &'a str, Option<Option<&'a str>>)> {
        let b = s.as_bytes();
        if b.first() != Some(&b';') {
            return None;
        }
        let run = |mut j: usize| {
            while j < b.len() && is_token_byte(b[j]) {
                j += 1;
            }
            j
        };
        let mut found = None;
        let mut i = 0;
        while i < b.len() {
            // Here `b[i]` is a `;`.
            let name_start = i + 1;
            let name_end = run(name_start);
            if name_end == name_start {
                return None;
            }
            let (value, end) = if b.get(name_end) == Some(&b'=') {
                let end = run(name_end + 1);
                if end == name_end + 1 {
                    return None;
                }
                (Some(&s[name_end + 1..end]), end)
            } else {
                (None, name_end)
            };
            if end < b.len() && b[end] != b';' {
                return None;
            }
            if found.is_none()
                && !name.is_empty()
                && b[name_start..name_end].eq_ignore_ascii_case(name.as_bytes())
            {
                found = Some(value);
            }
            i = end;
        }
        Some((Params(s), "", found))
    }

    /// The list as written, leading `;` included.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates `(name, value)` pairs; `value` is `None` for a bare flag.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.0 }
    }

    /// The value of the first parameter named `name` (case-insensitive):
    /// `None` when absent, `Some(None)` for a flag without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        if let Some(found) = self.leading(name) {
            return Some(found);
        }
        if !mentions(self.0.as_bytes(), name.as_bytes()) {
            return None;
        }
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The first parameter, when it is `name` written plainly (`;name`, or
    /// `;name=value` with no quote in the value), as the walk would give it;
    /// `None` for any other list, which is then walked. The parameters read
    /// on every message are usually first: a Via's branch, a From or To
    /// tag, a Route's `lr`. Lookups were a sixteenth of the proxy's
    /// instructions per call (callgrind, `examples/bench/stateful.route`).
    fn leading(&self, name: &str) -> Option<Option<&'a str>> {
        let rest = self.0.strip_prefix(';')?;
        let b = rest.as_bytes();
        if !b.get(..name.len())?.eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        match b.get(name.len()) {
            None | Some(b';') => Some(None),
            Some(b'=') => {
                let value = &rest[name.len() + 1..];
                let end = memchr::memchr2(b';', b'"', value.as_bytes()).unwrap_or(value.len());
                match value.as_bytes().get(end) {
                    Some(b'"') => None,
                    _ => Some(Some(trim_lws(&value[..end]))),
                }
            }
            _ => None,
        }
    }

    /// Is a parameter named `name` present (with or without a value)?
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Does `name` occur anywhere in `list`, ignoring ASCII case? The walk
/// finds a parameter only where its name is written as asked (names are
/// compared as written, case aside), so where `name` does not occur there
/// is nothing to walk for. Most lookups are of parameters a message does
/// not carry (`rport`, `maddr`, `received` of a Via, `transport` of a
/// URI): a search for the name's first byte answers those for a fraction
/// of the walk.
fn mentions(list: &[u8], name: &[u8]) -> bool {
    let Some(&first) = name.first() else { return true };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = 0;
    while let Some(i) = memchr::memchr2(lower, upper, &list[at..]) {
        let start = at + i;
        if list.get(start..start + name.len()).is_some_and(|w| w.eq_ignore_ascii_case(name)) {
            return true;
        }
        at = start + 1;
    }
    false
}

/// Iterator over a [`Params`] list.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = super::scan::trim_lws_start(self.rest);
        let s = s.strip_prefix(';')?;
        let b = s.as_bytes();
        let mut i = 0;
        // The first `=` is found in the same pass, no second search of the
        // segment (in a well-formed list it comes before any quote). The
        // bytes in between are skipped with memchr: a Via branch or a tag
        // is a long run of plain bytes, and this iterator runs for every
        // parameter lookup of every message.
        let mut eq = None;
        loop {
            let found = match eq {
                None => memchr::memchr3(b';', b'"', b'=', &b[i..]),
                Some(_) => memchr::memchr2(b';', b'"', &b[i..]),
            };
            let Some(j) = found else {
                i = b.len();
                break;
            };
            i += j;
            match b[i] {
                b';' => break,
                b'"' => {
                    let end = i + quoted_end(&b[i..]).unwrap_or(b.len() - i);
                    if eq.is_none() {
                        eq = b[i..end].iter().position(|&c| c == b'=').map(|p| i + p);
                    }
                    i = end;
                }
                _ => {
                    eq = Some(i);
                    i += 1;
                }
            }
        }
        self.rest = &s[i..];
        Some(match eq {
            Some(e) => (trim_lws(&s[..e]), Some(trim_lws(&s[e + 1..i]))),
            None => (trim_lws(&s[..i]), None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_and_lws() {
        let (p, rest) =
            Params::parse(";lr;transport=tcp ; tag   = 1918 ;\r\n q=0.33", None).unwrap();
        assert_eq!(rest, "");
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(p.get("tag"), Some(Some("1918")));
        assert_eq!(p.get("q"), Some(Some("0.33")));
        assert_eq!(p.get("maddr"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// The value found in the parsing walk is what `get` gives on the
        /// list parsed, for lists of every shape (quotes, white space, a
        /// name twice, a name that only starts like the one asked for).
        #[test]
        fn the_value_found_while_parsing_is_what_get_gives(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    ";", "tag", "TAG", "tagx", "branch", "=", "\"", "\"a;b\"", " ", "x", "1",
                    "?", ",", "\r\n ", ";tag=1", ";TAG = 2", ";tag", ";branch=z9hG4bKa",
                    ";tagx=3", ";x=\"tag=4\"", ";tag=5 ", ";tag= 6\r\n ", ";tag=\"7\"",
                    ";lr", ";received=127.0.0.1", ";rport",
                ]),
                0..12,
            ),
            name in proptest::sample::select(vec!["tag", "branch", "x", ""]),
            stop in proptest::sample::select(vec![None, Some(b'?')]),
        ) {
            let list = parts.concat();
            // The one-pass reading of plain lists gives what the walk gives.
            proptest::prop_assert_eq!(
                Params::parse_finding(&list, stop, name),
                Params::walk_finding(&list, stop, name)
            );
            match Params::walk_finding(&list, stop, "").map(|(p, r, _)| (p, r)) {
                Ok((params, rest)) => {
                    let expected = if name.is_empty() { None } else { params.get(name) };
                    proptest::prop_assert_eq!(
                        Params::parse_finding(&list, stop, name),
                        Ok((params, rest, expected))
                    );
                }
                Err(e) => proptest::prop_assert_eq!(Params::parse_finding(&list, stop, name), Err(e)),
            }
        }
    }

    /// The one-pass reading of a plain list gives what the walk gives,
    /// and lists of any other shape are left to the walk.
    #[test]
    fn a_plain_list_is_what_the_walk_finds() {
        for (list, plain) in [
            (";branch=z9hG4bK-16739-1-0", true),
            (";BRANCH=z9hG4bK.a_b~c'd", true),
            (";branch=z9hG4bK-1;received=127.0.0.1;rport=5070", true),
            (";rport;branch=z9hG4bKa", true),
            (";lr", true),
            (";lr;branch", true),
            (";x=1;branch=2;branch=3", true),
            (";branch=", false),
            (";branch=a b", false),
            (";branch=a;", false),
            (";branch=a;;b", false),
            (";branch=a\r\n ", false),
            (";branch=\"a\"", false),
            (";branch=a=b", false),
            (";received=[::1];branch=a", false),
            (";branchx=1", true),
            ("; branch=1", false),
            (";branch", true),
            ("", false),
        ] {
            assert_eq!(Params::plain(list, "branch").is_some(), plain, "{list}");
            for stop in [None, Some(b'?')] {
                for name in ["branch", ""] {
                    assert_eq!(
                        Params::parse_finding(list, stop, name),
                        Params::walk_finding(list, stop, name),
                        "{list}"
                    );
                }
            }
        }
        assert_eq!(Params::plain(";x=1", "").unwrap().2, None);
        assert!(Params::lone_plain(";x=1", "").is_none());
        for list in [";branch=z9hG4bK-1", ";BRANCH=a.b", ";branch=", ";branch=a;b", ";branch"] {
            if let Some(lone) = Params::lone_plain(list, "branch") {
                assert_eq!(Ok(lone), Params::walk_finding(list, None, "branch"), "{list}");
            }
        }
    }

    #[test]
    fn empty_parameters_are_rejected() {
        assert!(Params::parse(";;a", None).is_err());
        assert!(Params::parse(";a;", None).is_err());
        assert!(Params::parse("; =1", None).is_err());
    }

    #[test]
    fn stops_at_uri_headers_and_keeps_quoted_semicolons() {
        let (p, rest) = Params::parse(";a=\"x;y\";b?h=1", Some(b'?')).unwrap();
        assert_eq!(rest, "?h=1");
        assert_eq!(p.get("a"), Some(Some("\"x;y\"")));
        assert_eq!(p.get("b"), Some(None));
    }

    /// The iterator as first written: cut each segment at its first `=`.
    fn reference(list: &str) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        let mut rest = list;
        while let Some(s) = crate::sip::scan::trim_lws_start(rest).strip_prefix(';') {
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() && b[i] != b';' {
                i += if b[i] == b'"' { quoted_end(&b[i..]).unwrap_or(b.len() - i) } else { 1 };
            }
            rest = &s[i..];
            out.push(match s[..i].split_once('=') {
                Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
                None => (trim_lws(&s[..i]), None),
            });
        }
        out
    }

    #[test]
    fn one_pass_iteration_cuts_where_the_first_equals_sign_is() {
        for list in [";a=1;b;c = \"x=y;z\" ;d=e=f", ";x\"y=z\";w", ";q=\"open", ""] {
            assert_eq!(Params(list).iter().collect::<Vec<_>>(), reference(list), "{list:?}");
        }
    }

    #[test]
    fn a_leading_parameter_is_what_the_walk_finds() {
        for (list, name) in [
            (";branch=z9hG4bKa1", "branch"),
            (";BRANCH=z9hG4bKa1;rport", "branch"),
            (";branch=z9hG4bK a1 ;x", "branch"),
            (";branch=\"a;b\"", "branch"),
            (";branch=", "branch"),
            (";lr", "lr"),
            (";lr;transport=tcp", "lr"),
            (";lrx;lr", "lr"),
            (";lr ;x", "lr"),
            (";tagx=1;tag=2", "tag"),
            (";rport;branch=z9hG4bKb", "branch"),
            ("", "tag"),
        ] {
            let walked =
                Params(list).iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            assert_eq!(Params(list).get(name), walked, "{list:?} {name}");
        }
    }

    proptest::proptest! {
        #[test]
        fn lookups_agree_with_the_walk(list in "(;(tag|TAG|t)[= a;\\\"z]{0,8}){0,3}") {
            let walked = Params(&list).iter().find(|(n, _)| n.eq_ignore_ascii_case("tag")).map(|(_, v)| v);
            proptest::prop_assert_eq!(Params(&list).get("tag"), walked);
        }

        #[test]
        fn absent_names_agree_with_the_walk(
            list in "(;(rport|RPort|maddr|received|rpor|r|m)[= a;\\\"z0-9]{0,8}){0,4}",
            name in "(rport|maddr|received|RPORT|r)",
        ) {
            let walked = Params(&list).iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| v);
            proptest::prop_assert_eq!(Params(&list).get(&name), walked);
        }

        #[test]
        fn one_pass_iteration_agrees_with_the_reference(list in "(;[a-z\\\\\" =]{0,6}){0,4}") {
            proptest::prop_assert_eq!(Params(&list).iter().collect::<Vec<_>>(), reference(&list));
        }
    }
}
