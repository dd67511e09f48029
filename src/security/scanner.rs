//! Recognising SIP scanners by what they call themselves.
//!
//! The tools that sweep the internet for SIP servers (SIPVicious and its
//! copies, sipcli, the scripts that brute-force extensions) mostly keep
//! their default User-Agent. [`SCANNER_USER_AGENTS`] is the list sipc
//! ships, compared case-insensitively as substrings of the User-Agent
//! (and, as some tools put their name there, of the From display name);
//! `module security { scanner_user_agents = "a|b"; }` adds to it. A route
//! that answers a scanner tells it a server is here, so the example drops
//! them silently and bans the source (`examples/sbc.route`).

/// User-Agent fragments of known scanners, lower case. Taken from the
/// tools' sources and the lists operators share (Kamailio's default
/// configuration, APIBAN reports); a legitimate phone never sends these.
pub const SCANNER_USER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "vaxsipuseragent",
    "pplsip",
    "sundayddr",
    "iwar",
    "smap",
    "sipsak-scan",
    "sipbomber",
    "siparmyknife",
    "voip-scanner",
    "sip auditor",
    "nmap",
    "masscan",
];

/// The scanner list a program uses: the built-in one and the config's.
#[derive(Debug, Clone, Default)]
pub struct Scanners {
    extra: Vec<String>,
}

impl Scanners {
    /// The built-in list plus `extra`, `|`-separated fragments.
    pub fn new(extra: &str) -> Self {
        Scanners {
            extra: extra
                .split('|')
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
        }
    }

    /// Whether `text` (a User-Agent, a display name) names a scanner.
    pub fn matches(&self, text: &str) -> bool {
        if text.is_empty() {
            return false;
        }
        let lower = text.to_ascii_lowercase();
        SCANNER_USER_AGENTS.iter().any(|w| lower.contains(w))
            || self.extra.iter().any(|w| lower.contains(w.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scanners_and_the_configs_additions() {
        let s = Scanners::new("evil-probe | ");
        assert!(s.matches("friendly-scanner"));
        assert!(s.matches("SIPVicious/0.3.4"));
        assert!(s.matches("sipcli/v1.8"));
        assert!(s.matches("Evil-Probe 2.0"));
        assert!(!s.matches("Linphone/5.2.0 (belle-sip/5.2.0)"));
        assert!(!s.matches("Yealink SIP-T46S 66.86.0.15"));
        assert!(!s.matches("baresip v3.10.1 (x86_64/linux)"));
        assert!(!s.matches(""));
    }
}
