//! The test file format (`NAME.test.toml` beside `NAME.route`; see
//! docs/testing.md): the world a config's tests need, the messages they
//! send and what they expect the proxy to do.
//!
//! TOML rather than a `test` item in the route language: tests are data,
//! not routing logic, they hold multi-line SIP text (TOML's `"""` strings
//! keep it readable), every editor already highlights the format, and
//! a config and its tests change independently (a reload never sees them).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::proxy::Transport;

/// One test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The config under test, relative to the test file (default: the
    /// test file's name with `.test.toml` replaced by `.route`).
    pub config: Option<String>,
    /// `-D` switches every test of the file is checked with.
    #[serde(default)]
    pub defines: Vec<String>,
    #[serde(default)]
    pub world: World,
    #[serde(default, rename = "test")]
    pub tests: Vec<Test>,
}

/// What exists before a test's first message: registrations,
/// subscribers, trunk health. Each test starts from this world afresh.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    #[serde(default)]
    pub location: Vec<BindingSpec>,
    #[serde(default)]
    pub subscriber: Vec<SubscriberSpec>,
    /// Trunks (by name) whose health is down.
    #[serde(default)]
    pub trunks_down: Vec<String>,
}

impl World {
    /// This world with `more` added.
    pub fn with(&self, more: &World) -> World {
        let mut w = self.clone();
        w.location.extend(more.location.iter().cloned());
        w.subscriber.extend(more.subscriber.iter().cloned());
        w.trunks_down.extend(more.trunks_down.iter().cloned());
        w
    }
}

/// A registered contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The address of record, e.g. `sip:bob@sip.example.com`.
    pub aor: String,
    pub contact: String,
    /// Seconds left (default 3600).
    pub expires: Option<u64>,
    /// `q` (0.0–1.0).
    pub q: Option<f64>,
    /// Where a NATed device's REGISTER came from: `[transport:]ip:port`.
    pub received: Option<String>,
    /// Path header values (RFC 3327), top first.
    #[serde(default)]
    pub path: Vec<String>,
}

/// A user digest authentication knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberSpec {
    pub user: String,
    /// The realm (the domain of the user's AOR).
    pub domain: String,
    pub password: String,
}

/// One test: a message and its expectations, then follow-ups in the same
/// world (replies of the branches, a timeout, a CANCEL, further requests).
/// (Unknown keys are refused by [`parse`]: serde cannot deny them beside
/// a flattened struct.)
#[derive(Debug, Clone, Deserialize)]
pub struct Test {
    pub name: String,
    /// Extra `-D` switches for this test (added to the file's).
    #[serde(default)]
    pub defines: Vec<String>,
    #[serde(flatten)]
    pub request: RequestSpec,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub then: Vec<FollowUp>,
    /// More world for this test alone (added to the file's).
    #[serde(default)]
    pub world: World,
}

/// A request the test's client sends: SIP text, or built from fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestSpec {
    /// Where it comes from: `[transport:]ip:port` (default
    /// `udp:192.0.2.10:5060`).
    pub source: Option<String>,
    /// The whole request as SIP text (line ends may be plain newlines).
    pub message: Option<String>,
    pub method: Option<String>,
    /// The Request-URI.
    pub ruri: Option<String>,
    /// The From URI (default `sip:alice@<source address>`).
    pub from: Option<String>,
    /// The To URI (default: the Request-URI).
    pub to: Option<String>,
    /// A To tag: the request is in a dialog.
    pub to_tag: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<u32>,
    /// Extra header lines (`Name: value`); one named like a default header
    /// (Via, Max-Forwards, From, To, Call-ID, CSeq, Contact) replaces it.
    #[serde(default)]
    pub headers: Vec<String>,
    pub body: Option<String>,
}

/// A later event in the same test.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FollowUp {
    /// The branch answers with this status.
    pub reply: Option<u16>,
    /// The reason phrase of `reply` (default: the standard one).
    pub reason: Option<String>,
    /// Which request the proxy sent answers or times out: its index among
    /// every request the proxy sent in this test, from 0 (default: the
    /// latest one still without a final reply).
    pub branch: Option<usize>,
    /// The branch never answers: its transaction timer fires.
    #[serde(default)]
    pub timeout: bool,
    /// The caller cancels the test's first request.
    #[serde(default)]
    pub cancel: bool,
    /// The caller sends its last request again with credentials answering
    /// the last 401/407 challenge it got (digest, RFC 7616).
    pub authenticate: Option<Credentials>,
    /// A new request (`message`, or `method` and fields), or the headers of
    /// `reply`.
    #[serde(flatten)]
    pub request: RequestSpec,
    #[serde(default)]
    pub expect: Expect,
}

/// A user's name and password, for `authenticate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// What a step must lead to; every field is optional and only the given
/// ones are compared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status of the reply the proxy sends (to the client, or passed
    /// upstream).
    pub reply: Option<u16>,
    pub reason: Option<String>,
    /// Where the proxy sends requests, in order: `[transport:]ip:port`
    /// each (a string for one).
    pub relay: Option<OneOrMany>,
    /// The Request-URI of the first request sent.
    pub ruri: Option<String>,
    /// Header values of the first message sent (the reply, or the first
    /// request): the first value of each named header, exactly.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header values of that message that must match a regular
    /// expression (for values with random parts: nonces, tags).
    #[serde(default)]
    pub matches: BTreeMap<String, String>,
    /// Headers the first message sent must not have.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Nothing is sent at all.
    pub drop: Option<bool>,
    /// The request was handled statefully (`relay()`, or a final reply
    /// after `t_newtran()`: a transaction) rather than statelessly
    /// (`forward()`, a reply without a transaction).
    pub stateful: Option<bool>,
    /// The routes armed after the last route of the step ran (`""`: none).
    pub failure_route: Option<String>,
    pub onreply_route: Option<String>,
    pub branch_route: Option<String>,
    /// Every flag set after the step's last route, by name.
    pub flags: Option<Vec<String>>,
    /// `$avp` values kept with the transaction.
    #[serde(default)]
    pub avps: BTreeMap<String, String>,
    /// The routes that ran in the step, in order (`request_route`,
    /// `failure_route NAME` … by name).
    pub routes: Option<Vec<String>>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

const REQUEST_KEYS: &[&str] = &[
    "source", "message", "method", "ruri", "from", "to", "to_tag", "call_id", "cseq", "headers",
    "body",
];
const TEST_KEYS: &[&str] = &["name", "defines", "expect", "then", "world"];
const FOLLOW_UP_KEYS: &[&str] =
    &["reply", "reason", "branch", "timeout", "cancel", "authenticate", "expect"];

/// Parses a test file, refusing keys it does not know (a misspelt
/// expectation must not pass silently).
pub fn parse(text: &str) -> Result<TestFile, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let unknown = |t: &toml::Table, allowed: &[&[&str]], what: &str| -> Result<(), String> {
        for k in t.keys() {
            if !allowed.iter().any(|a| a.contains(&k.as_str())) {
                return Err(format!("unknown key `{k}` in {what}"));
            }
        }
        Ok(())
    };
    if let Some(toml::Value::Array(tests)) = table.get("test") {
        for (i, t) in tests.iter().enumerate() {
            let Some(t) = t.as_table() else { continue };
            let name = t.get("name").and_then(|n| n.as_str()).unwrap_or("?").to_owned();
            unknown(t, &[TEST_KEYS, REQUEST_KEYS], &format!("test {} `{name}`", i + 1))?;
            if let Some(toml::Value::Array(then)) = t.get("then") {
                for (j, f) in then.iter().enumerate() {
                    if let Some(f) = f.as_table() {
                        let what = format!("step {} of test `{name}`", j + 2);
                        unknown(f, &[FOLLOW_UP_KEYS, REQUEST_KEYS], &what)?;
                    }
                }
            }
        }
    }
    table.try_into().map_err(|e: toml::de::Error| e.to_string())
}

/// The default source of a test's requests (TEST-NET-1, RFC 5737).
pub const DEFAULT_SOURCE: &str = "udp:192.0.2.10:5060";

/// Parses `[transport:]ip:port` (IPv6 as `[addr]:port`).
pub fn parse_endpoint(text: &str) -> Result<(Transport, SocketAddr), String> {
    let (transport, addr) = match text.split_once(':') {
        Some((t, rest)) if Transport::from_name(&t.to_ascii_lowercase()).is_some() => {
            (Transport::from_name(&t.to_ascii_lowercase()).unwrap_or(Transport::Udp), rest)
        }
        _ => (Transport::Udp, text),
    };
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{text}`: expected `[udp|tcp|tls:]IP:PORT`"))?;
    Ok((transport, addr))
}

/// How an endpoint is shown: `udp:127.0.0.1:5080`.
pub fn show_endpoint(transport: Transport, addr: SocketAddr) -> String {
    format!("{}:{addr}", transport.via_token().to_ascii_lowercase())
}

/// SIP text as written in a test file, with CRLF line ends and the blank
/// line that ends the header section.
pub fn normalize_message(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let text = text.trim_start_matches('\n');
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, Some(b)),
        None => (text.trim_end_matches('\n'), None),
    };
    let mut out = head.replace('\n', "\r\n");
    out.push_str("\r\n\r\n");
    if let Some(b) = body {
        out.push_str(b);
    }
    out
}

impl RequestSpec {
    /// Does this spec give a request at all?
    pub fn is_given(&self) -> bool {
        self.message.is_some() || self.method.is_some()
    }

    /// The request's bytes, `n` making Call-ID, tags and branch unique.
    pub fn build(
        &self,
        source: SocketAddr,
        transport: Transport,
        n: usize,
    ) -> Result<String, String> {
        if let Some(m) = &self.message {
            if self.method.is_some() || self.ruri.is_some() {
                return Err("give either `message` or `method`/`ruri`, not both".into());
            }
            return Ok(normalize_message(m));
        }
        let method = self.method.as_deref().ok_or("a request needs `message` or `method`")?;
        let ruri = self.ruri.as_deref().ok_or("a request built from fields needs `ruri`")?;
        let host = match source {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let from = self.from.clone().unwrap_or_else(|| format!("sip:alice@{host}"));
        let to = self.to.clone().unwrap_or_else(|| ruri.to_owned());
        let to_tag = self.to_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
        let call_id = self.call_id.clone().unwrap_or_else(|| format!("test-{n}@sipc.test"));
        let cseq = self.cseq.unwrap_or(1);
        let body = self.body.as_deref().unwrap_or("");
        let port = source.port();
        let defaults = [
            (
                "Via",
                format!(
                    "SIP/2.0/{} {host}:{port};branch=z9hG4bK-test-{n};rport",
                    transport.via_token()
                ),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", format!("<{from}>;tag=from-{n}")),
            ("To", format!("<{to}>{to_tag}")),
            ("Call-ID", call_id),
            ("CSeq", format!("{cseq} {method}")),
            ("Contact", format!("<sip:alice@{host}:{port}>")),
        ];
        // A header the test gives replaces the default of that name.
        let given = |name: &str| {
            self.headers.iter().any(|h| {
                h.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
        };
        let mut out = format!("{method} {ruri} SIP/2.0\r\n");
        for (name, value) in defaults {
            if !given(name) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for h in &self.headers {
            out.push_str(h.trim_end());
            out.push_str("\r\n");
        }
        if !given("Content-Length") {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        out.push_str(body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_transport() {
        let (t, a) = parse_endpoint("tcp:127.0.0.1:5080").unwrap();
        assert_eq!((t, a.port()), (Transport::Tcp, 5080));
        let (t, a) = parse_endpoint("[::1]:5060").unwrap();
        assert_eq!((t, a.is_ipv6()), (Transport::Udp, true));
        assert!(parse_endpoint("sip:127.0.0.1").is_err());
    }

    #[test]
    fn messages_get_crlf_and_the_blank_line() {
        let m = normalize_message("OPTIONS sip:a SIP/2.0\nVia: x\n");
        assert_eq!(m, "OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        let m = normalize_message("MESSAGE sip:a SIP/2.0\nContent-Length: 2\n\nhi");
        assert!(m.ends_with("\r\n\r\nhi"));
    }
}
