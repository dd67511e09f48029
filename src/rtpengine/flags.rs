//! The flags string of `rtpengine_offer`/`answer`/`delete`/`manage`
//! (Kamailio's syntax): space-separated words, each a flag, a `key=value`
//! option or a member of a prefixed family (`replace-origin`,
//! `codec-strip-PCMU`, `rtcp-mux-demux`, `SDES-off` …), turned into the
//! keys of the ng dictionary the way Kamailio's rtpengine module does.
//!
//! Where Kamailio passes an unknown word on to rtpengine as a flag, which
//! rtpengine then ignores (a typo silently changes nothing), here every
//! word must be one rtpengine documents (its ng protocol reference, "flags"
//! and the other dictionary keys) or one Kamailio's module reads itself
//! (`via-branch=`, `force-answer`, `to-tag` …). The checker parses a
//! constant flags string at check time, so a misspelt flag is a check
//! error with a "did you mean"; a string built at run time is parsed when
//! the builtin runs and an unknown word fails the call.

use super::bencode::{Dict, Value};

/// Bare words rtpengine reads from the `flags` list of an offer, answer
/// or delete.
pub const FLAGS: &[&str] = &[
    "all",
    "allow-no-codec-media",
    "allow-transcoding",
    "always-transcode",
    "asymmetric",
    "asymmetric-codecs",
    "block-short",
    "debug",
    "detect-DTMF",
    "directional",
    "discard-recording",
    "early-media",
    "egress",
    "exclude-recording",
    "fatal",
    "force-encryption",
    "fragment",
    "full-rtcp-attribute",
    "generate-mid",
    "generate-RTCP",
    "inactive",
    "inject-DTMF",
    "loop-protect",
    "media-handover",
    "mirror-RTCP",
    "NAT-wait",
    "new-branch",
    "no-codec-renegotiation",
    "no-jitter-buffer",
    "no-passthrough",
    "no-port-latching",
    "no-rtcp-attribute",
    "original-sendrecv",
    "pad-crypto",
    "passthrough",
    "pierce-NAT",
    "port-latching",
    "record-call",
    "recrypt",
    "reorder-codecs",
    "reset",
    "reuse-codecs",
    "RTCP-mirror",
    "single-codec",
    "SIP-source-address",
    "SIPREC",
    "static-codecs",
    "strict-source",
    "strip-extmap",
    "symmetric",
    "symmetric-codecs",
    "trickle-ICE",
    "trust-address",
    "unidirectional",
];

/// Words Kamailio's module reads itself rather than passing on.
pub const MODULE_WORDS: &[&str] = &[
    // Only rewrite the SDP when rtpengine has the session (an answer after
    // `rtpengine_offer`).
    "force-answer",
    // Put the To tag (a delete's) or the From tag into the request.
    "to-tag",
    "from-tag",
    "call-id",
    // Accepted and ignored by rtpengine (an rtpproxy flag).
    "force",
    "no-redis-update",
    // Shorthands of `direction=internal` / `direction=external`.
    "internal",
    "external",
];

/// Transport protocols towards the recipient of the SDP: bare words for
/// `transport-protocol=…`.
const TRANSPORTS: &[&str] =
    &["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"];

/// Families of words with a fixed prefix, the ng key they fill (a list)
/// and the members rtpengine knows (empty: any non-empty suffix).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "replace-",
        "replace",
        &[
            "origin",
            "origin-full",
            "session-connection",
            "sdp-version",
            "username",
            "session-name",
            "zero-address",
            "force-increment-sdp-version",
        ],
    ),
    ("rtcp-mux-", "rtcp-mux", &["offer", "require", "demux", "accept", "reject"]),
    // Crypto suites and their options are many and grow with rtpengine.
    ("SDES-", "SDES", &[]),
    (
        "T38-",
        "T.38",
        &[
            "decode",
            "force",
            "stop",
            "no-ECM",
            "no-V.17",
            "no-V.27ter",
            "no-V.29",
            "no-V.34",
            "no-IAF",
            "FEC",
        ],
    ),
    (
        "OSRTP-",
        "OSRTP",
        &["offer", "offer-RFC", "offer-legacy", "accept", "accept-RFC", "accept-legacy"],
    ),
];

/// `codec-ACTION-NAME` words: the action names a key of the `codec`
/// dictionary (a list of codec names).
const CODEC_ACTIONS: &[&str] =
    &["strip", "offer", "transcode", "mask", "set", "except", "consume", "accept", "ignore"];

/// What the value of a `key=value` option may be.
#[derive(Debug, Clone, Copy)]
enum Val {
    /// Any non-empty text, sent as a string.
    Text,
    /// A non-negative integer, sent as an integer.
    Int,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// An IP address literal.
    Ip,
}

/// The `key=value` options: the ng key is the option's name.
const OPTIONS: &[(&str, Val)] = &[
    ("ICE", Val::OneOf(&["remove", "force", "default", "force-relay", "optional"])),
    ("ICE-lite", Val::OneOf(&["forward", "backward", "both", "off"])),
    ("DTLS", Val::OneOf(&["off", "no", "disable", "passive", "active"])),
    ("DTLS-reverse", Val::OneOf(&["passive", "active"])),
    ("DTLS-fingerprint", Val::OneOf(&["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"])),
    ("address-family", Val::OneOf(&["IP4", "IP6"])),
    ("media-address", Val::Ip),
    ("xmlrpc-callback", Val::Ip),
    ("label", Val::Text),
    ("set-label", Val::Text),
    ("from-label", Val::Text),
    ("to-label", Val::Text),
    ("metadata", Val::Text),
    ("interface", Val::Text),
    ("from-interface", Val::Text),
    ("to-interface", Val::Text),
    ("output-destination", Val::Text),
    ("record-call", Val::OneOf(&["on", "off", "yes", "no", "start", "stop"])),
    ("media-echo", Val::OneOf(&["blackhole", "forward", "backward", "both", "off"])),
    ("endpoint-learning", Val::OneOf(&["off", "immediate", "delayed", "heuristic"])),
    ("DTMF-log-dest", Val::Text),
    ("dtmf-security", Val::OneOf(&["drop", "silence", "tone", "random", "zero", "DTMF", "off"])),
    ("trigger", Val::Text),
    ("trigger-end", Val::Text),
    ("TOS", Val::Int),
    ("delete-delay", Val::Int),
    ("delay-buffer", Val::Int),
    ("ptime", Val::Int),
    ("ptime-reverse", Val::Int),
    ("repacketize", Val::Int),
    ("frequency", Val::Int),
    ("volume", Val::Int),
    ("media-timeout", Val::Int),
    ("transport-protocol", Val::OneOf(TRANSPORTS)),
];

/// Options Kamailio's module reads itself.
const MODULE_OPTIONS: &[(&str, Val)] = &[
    // Which Via's branch identifies the branch (Kamailio's values).
    (
        "via-branch",
        Val::OneOf(&["1", "2", "auto", "extra", "1.extra", "2.extra", "auto.extra", "next"]),
    ),
    ("direction", Val::Text),
    ("received-from", Val::Ip),
    ("call-id", Val::Text),
    ("from-tag", Val::Text),
    ("to-tag", Val::Text),
];

/// A flags string read into ng keys and the module-side options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Keys to merge into the request dictionary.
    pub dict: Dict,
    /// `force-answer`.
    pub force_answer: bool,
    /// `to-tag`: a delete names the To tag too.
    pub to_tag: bool,
    /// `via-branch=…`, as written.
    pub via_branch: Option<String>,
    /// `received-from=IP`: the media source instead of the SIP sender.
    pub received_from: Option<std::net::IpAddr>,
    /// `call-id=`, `from-tag=`, `to-tag=` overrides.
    pub call_id: Option<String>,
    pub from_tag: Option<String>,
    pub to_tag_value: Option<String>,
}

/// A word the parser refuses: its byte range in the string, what is
/// wrong, and a suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub help: String,
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.help)
    }
}

/// Every complete word the parser accepts as written (families and
/// options as `prefix…`), for suggestions and editor completion.
pub fn vocabulary() -> Vec<String> {
    let mut out: Vec<String> =
        FLAGS.iter().chain(MODULE_WORDS).chain(TRANSPORTS).map(|s| s.to_string()).collect();
    for (prefix, _, members) in FAMILIES {
        out.extend(members.iter().map(|m| format!("{prefix}{m}")));
    }
    for action in CODEC_ACTIONS {
        out.push(format!("codec-{action}-"));
    }
    out.push("transcode-".into());
    for (name, _) in OPTIONS.iter().chain(MODULE_OPTIONS) {
        out.push(format!("{name}="));
    }
    out
}

/// The reference of the flags string, for docs/builtins.md.
pub fn markdown() -> String {
    let code = |w: &[&str]| w.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    let mut out = String::from(
        "\n## rtpengine flags\n\nThe `flags` of `rtpengine_offer`, `rtpengine_answer`, `rtpengine_delete` and `rtpengine_manage`: Kamailio's syntax, words separated by spaces. A constant string is checked when the configuration is (E0313, with the nearest word); one built at run time is read when the builtin runs, and a word not listed here makes the call return false (`$rtpengine_result` = `bad_flags`). Flags compare ignoring case; everything else as written.\n\n",
    );
    out.push_str(&format!("- rtpengine flags (the ng `flags` list): {}\n", code(FLAGS)));
    out.push_str(&format!(
        "- read by the proxy: {} (`force-answer`: accepted; `to-tag`: a delete names the To tag; `internal`/`external`: `direction=`; the transport names: `transport-protocol`)\n",
        code(&[MODULE_WORDS, TRANSPORTS].concat())
    ));
    for (prefix, key, members) in FAMILIES {
        let what = if members.is_empty() { "any suffix".to_owned() } else { code(members) };
        out.push_str(&format!("- `{prefix}…` (ng `{key}` list): {what}\n"));
    }
    out.push_str(&format!(
        "- `codec-ACTION-NAME` (ng `codec` dictionary), ACTION one of {}; `transcode-NAME` is `codec-transcode-NAME`\n",
        code(CODEC_ACTIONS)
    ));
    let describe = |v: Val| match v {
        Val::Text => "text".to_owned(),
        Val::Int => "a non-negative integer".to_owned(),
        Val::Ip => "an IP address".to_owned(),
        Val::OneOf(w) => code(w),
    };
    for (name, v) in OPTIONS {
        out.push_str(&format!("- `{name}=`: {}\n", describe(*v)));
    }
    for (name, v) in MODULE_OPTIONS {
        out.push_str(&format!("- `{name}=` (read by the proxy): {}\n", describe(*v)));
    }
    out
}

/// Reads a flags string.
pub fn parse(text: &str) -> Result<Flags, FlagError> {
    let mut out = Flags::default();
    let mut flags: Vec<Value> = Vec::new();
    let mut lists: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut codec: Vec<(String, Vec<Value>)> = Vec::new();
    let mut directions: Vec<Value> = Vec::new();
    let push =
        |lists: &mut Vec<(&'static str, Vec<Value>)>, key: &'static str, v: Value| match lists
            .iter_mut()
            .find(|(k, _)| *k == key)
        {
            Some((_, l)) => l.push(v),
            None => lists.push((key, vec![v])),
        };
    for (start, word) in words(text) {
        let end = start + word.len();
        let fail = |message: String, help: String| FlagError { start, end, message, help };
        if let Some(f) = FLAGS.iter().find(|f| f.eq_ignore_ascii_case(word)) {
            flags.push(Value::from(*f));
            continue;
        }
        if TRANSPORTS.contains(&word) {
            out.dict.insert("transport-protocol", word);
            continue;
        }
        if MODULE_WORDS.contains(&word) {
            match word {
                "force-answer" => out.force_answer = true,
                "to-tag" => out.to_tag = true,
                "internal" | "external" => directions.push(word.into()),
                // `from-tag`, `call-id`: the module's defaults; `force`,
                // `no-redis-update`: nothing to do here.
                _ => {}
            }
            continue;
        }
        if let Some((key, value)) = word.split_once('=') {
            let Some((name, val)) = OPTIONS.iter().chain(MODULE_OPTIONS).find(|(n, _)| *n == key)
            else {
                let names: Vec<&str> =
                    OPTIONS.iter().chain(MODULE_OPTIONS).map(|(n, _)| *n).collect();
                return Err(fail(
                    format!("`{key}=` is not an rtpengine option"),
                    did_you_mean(key, &names, "=")
                        .unwrap_or_else(|| "the options are ICE=, DTLS=, address-family=, direction=, label=, via-branch=, … (docs/builtins.md)".into()),
                ));
            };
            let v = value_of(name, *val, value)
                .map_err(|h| fail(format!("`{value}` is not a value of `{name}=`"), h))?;
            match *name {
                "via-branch" => out.via_branch = Some(value.to_owned()),
                "direction" => directions.push(v),
                "received-from" => out.received_from = value.parse().ok(),
                "call-id" => out.call_id = Some(value.to_owned()),
                "from-tag" => out.from_tag = Some(value.to_owned()),
                "to-tag" => out.to_tag_value = Some(value.to_owned()),
                _ => {
                    out.dict.insert(name, v);
                }
            }
            continue;
        }
        if let Some(rest) = word.strip_prefix("codec-") {
            let Some((action, name)) =
                rest.split_once('-').filter(|(a, n)| CODEC_ACTIONS.contains(a) && !n.is_empty())
            else {
                let (hint, name) = rest.split_once('-').unwrap_or((rest, "NAME"));
                let help = nearest(hint, CODEC_ACTIONS).map_or_else(
                    || {
                        format!(
                            "write `codec-ACTION-NAME` with ACTION one of {}",
                            CODEC_ACTIONS.join(", ")
                        )
                    },
                    |a| format!("did you mean `codec-{a}-{name}`?"),
                );
                return Err(fail(format!("`{word}` is not a codec option"), help));
            };
            push_codec(&mut codec, action, name);
            continue;
        }
        if let Some(name) = word.strip_prefix("transcode-").filter(|n| !n.is_empty()) {
            push_codec(&mut codec, "transcode", name);
            continue;
        }
        let mut family = None;
        for (prefix, key, members) in FAMILIES {
            if let Some(rest) = word.strip_prefix(prefix) {
                family = Some((prefix, key, members, rest));
                break;
            }
        }
        if let Some((prefix, key, members, rest)) = family {
            if rest.is_empty() || (!members.is_empty() && !members.contains(&rest)) {
                let help = nearest(rest, members)
                    .map(|s| format!("did you mean `{prefix}{s}`?"))
                    .unwrap_or_else(|| {
                        format!("after `{prefix}` rtpengine takes {}", members.join(", "))
                    });
                return Err(fail(format!("`{word}` is not an rtpengine `{key}` option"), help));
            }
            push(&mut lists, key, Value::from(rest));
            continue;
        }
        let vocab = vocabulary();
        let help = did_you_mean(word, &vocab.iter().map(String::as_str).collect::<Vec<_>>(), "")
            .unwrap_or_else(|| {
                "rtpengine ignores flags it does not know, so sipc refuses them: see the ng flags in docs/builtins.md".into()
            });
        return Err(fail(format!("`{word}` is not an rtpengine flag"), help));
    }
    if !flags.is_empty() {
        out.dict.insert("flags", flags);
    }
    for (key, list) in lists {
        out.dict.insert(key, list);
    }
    if !codec.is_empty() {
        let d: Dict = codec.into_iter().map(|(k, v)| (k.into_bytes(), Value::List(v))).collect();
        out.dict.insert("codec", d);
    }
    if !directions.is_empty() {
        out.dict.insert("direction", directions);
    }
    Ok(out)
}

fn push_codec(codec: &mut Vec<(String, Vec<Value>)>, action: &str, name: &str) {
    match codec.iter_mut().find(|(a, _)| a == action) {
        Some((_, l)) => l.push(name.into()),
        None => codec.push((action.to_owned(), vec![name.into()])),
    }
}

fn value_of(name: &str, val: Val, value: &str) -> Result<Value, String> {
    match val {
        Val::Text if !value.is_empty() => Ok(value.into()),
        Val::Text => Err(format!("give `{name}=` a value")),
        Val::Int => value
            .parse::<u32>()
            .map(|n| Value::Int(n.into()))
            .map_err(|_| format!("`{name}=` takes a non-negative integer")),
        Val::Ip => value
            .parse::<std::net::IpAddr>()
            .map(|_| value.into())
            .map_err(|_| format!("`{name}=` takes an IP address")),
        Val::OneOf(words) => match words.iter().find(|w| w.eq_ignore_ascii_case(value)) {
            Some(w) => Ok((*w).into()),
            None => Err(did_you_mean(value, words, "")
                .unwrap_or_else(|| format!("`{name}=` takes {}", words.join(", ")))),
        },
    }
}

/// "did you mean `X`?" for the nearest candidate, if any is near.
fn did_you_mean(word: &str, candidates: &[&str], suffix: &str) -> Option<String> {
    nearest(word, candidates).map(|c| format!("did you mean `{c}{suffix}`?"))
}

/// The candidate nearest to `word` ignoring case, if any is near.
fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    let lowered: Vec<String> = candidates.iter().map(|c| c.to_ascii_lowercase()).collect();
    if let Some(i) = lowered.iter().position(|c| *c == lower) {
        return Some(candidates[i]);
    }
    let best = crate::sema::resolve::suggest(&lower, lowered.iter().map(String::as_str))?;
    let i = lowered.iter().position(|c| c == best)?;
    Some(candidates[i])
}

/// The words of the string and their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(d: &Dict, key: &str) -> Vec<String> {
        d.get_list(key)
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn kamailios_usual_flags_become_ng_keys() {
        let f = parse(
            "replace-origin replace-session-connection ICE=remove RTP/AVP trust-address \
             direction=internal direction=external codec-strip-all codec-offer-PCMU \
             transcode-G722 rtcp-mux-demux SDES-off via-branch=1 force-answer TOS=184",
        )
        .unwrap();
        assert_eq!(list(&f.dict, "replace"), ["origin", "session-connection"]);
        assert_eq!(f.dict.get_str("ICE"), Some("remove"));
        assert_eq!(f.dict.get_str("transport-protocol"), Some("RTP/AVP"));
        assert_eq!(list(&f.dict, "flags"), ["trust-address"]);
        assert_eq!(list(&f.dict, "direction"), ["internal", "external"]);
        let codec = f.dict.get_dict("codec").unwrap();
        assert_eq!(list(codec, "strip"), ["all"]);
        assert_eq!(list(codec, "offer"), ["PCMU"]);
        assert_eq!(list(codec, "transcode"), ["G722"]);
        assert_eq!(list(&f.dict, "rtcp-mux"), ["demux"]);
        assert_eq!(list(&f.dict, "SDES"), ["off"]);
        assert_eq!(f.dict.get_int("TOS"), Some(184));
        assert_eq!(f.via_branch.as_deref(), Some("1"));
        assert!(f.force_answer);
        assert!(!f.dict.contains_key("via-branch"), "the module reads it");
    }

    #[test]
    fn an_empty_string_is_no_flags() {
        assert_eq!(parse("  ").unwrap(), Flags::default());
    }

    #[test]
    fn misspelt_words_are_refused_with_a_suggestion_and_their_place() {
        let text = "replace-origin trust-adress ICE=remove";
        let e = parse(text).unwrap_err();
        assert_eq!(&text[e.start..e.end], "trust-adress");
        assert_eq!(e.help, "did you mean `trust-address`?");

        let e = parse("replace-orign").unwrap_err();
        assert_eq!(e.help, "did you mean `replace-origin`?");
        let e = parse("ICE=remov").unwrap_err();
        assert_eq!(e.message, "`remov` is not a value of `ICE=`");
        assert_eq!(e.help, "did you mean `remove`?");
        let e = parse("ice=remove").unwrap_err();
        assert_eq!(e.help, "did you mean `ICE=`?");
        let e = parse("codec-strp-PCMA").unwrap_err();
        assert_eq!(e.help, "did you mean `codec-strip-PCMA`?");
        let e = parse("TOS=high").unwrap_err();
        assert!(e.help.contains("integer"));
        let e = parse("media-address=example.com").unwrap_err();
        assert!(e.help.contains("IP address"));
        let e = parse("frobnicate").unwrap_err();
        assert!(e.help.contains("docs/builtins.md"), "{}", e.help);
    }

    #[test]
    fn flags_compare_ignoring_case_as_rtpengine_does() {
        let f = parse("sip-source-address").unwrap();
        assert_eq!(list(&f.dict, "flags"), ["SIP-source-address"]);
    }
}
