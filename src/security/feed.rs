//! Blocklists fetched over HTTPS: `blocklist NAME from "https://…" refresh
//! 5m key "…";` (APIBAN and the like).
//!
//! One task fetches every feed the serving program declares, each when its
//! `refresh` comes round, with ureq (blocking, on the runtime's blocking
//! pool, 10 s timeout) and rustls on the `ring` provider. The CA roots are
//! the web's (webpki-roots), or `module security { feed_ca }` when set
//! (a private feed; the tests' local server). The key goes in an
//! `Authorization: Bearer` header and in place of `{key}` in the URL.
//!
//! The body is either lines in the address-file format (one address or
//! network a line, `#` comments, a CSV's first column) or JSON, from which
//! every string that is an address or network is taken (APIBAN answers
//! `{"ipaddress": ["192.0.2.1", …], "ID": "…"}`). Entries behave like
//! bans: dropped before parsing, IPv4 ones in the kernel. A fetch that
//! fails keeps the last list and is tried again within 30 s; a list that
//! went away is replaced by the new one as a whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::acl::{Acl, Feed, parse_net};
use crate::proxy::services::Services;

/// How soon a failed fetch is tried again (at most).
const RETRY: Duration = Duration::from_secs(30);
/// How often the task looks for a feed that is due.
const TICK: Duration = Duration::from_millis(250);

/// The networks in a feed's body (lines or JSON); and how many entries
/// were not addresses.
pub fn parse_body(body: &str) -> (Vec<(IpAddr, u8)>, usize) {
    let mut nets = Vec::new();
    let mut bad = 0;
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(v) => collect_json(&v, &mut nets),
            Err(_) => bad += 1,
        }
        return (nets, bad);
    }
    for line in body.lines() {
        let first = line.split([',', '#']).next().unwrap_or("").trim();
        if first.is_empty() {
            continue;
        }
        match parse_net(first) {
            Some(n) => nets.push(n),
            None => bad += 1,
        }
    }
    (nets, bad)
}

fn collect_json(v: &serde_json::Value, out: &mut Vec<(IpAddr, u8)>) {
    match v {
        serde_json::Value::String(s) => out.extend(parse_net(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_json(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_json(x, out)),
        _ => {}
    }
}

/// The HTTPS client feeds are fetched with.
fn agent(ca: Option<&[u8]>) -> Result<ureq::Agent, String> {
    let b = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).https_only(true);
    let Some(pem) = ca else { return Ok(b.build()) };
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem) {
        roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(b.tls_config(Arc::new(config)).build())
}

/// Fetches one feed: its networks, or why not.
pub fn fetch(agent: &ureq::Agent, feed: &Feed) -> Result<Vec<(IpAddr, u8)>, String> {
    let key = feed.key.as_deref().unwrap_or("");
    let url = feed.url.replace("{key}", key);
    let mut req = agent.get(&url);
    if !key.is_empty() {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let body = req
        .call()
        .map_err(|e| e.to_string().replace(key, "…"))?
        .into_string()
        .map_err(|e| e.to_string())?;
    let (nets, bad) = parse_body(&body);
    if bad > 0 {
        tracing::warn!(url = %feed.url, "blocklist feed: {bad} entries are not addresses");
    }
    Ok(nets)
}

/// Fetches the serving program's feeds as they come due, until the
/// services are dropped or the task is aborted. `ca`: `module security {
/// feed_ca }`'s PEM, read at start.
pub fn spawn(services: Weak<Services>, ca: Option<PathBuf>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ca = match ca.as_deref().map(std::fs::read).transpose() {
            Ok(pem) => pem,
            Err(e) => {
                tracing::error!("blocklist feeds: cannot read `feed_ca`: {e}");
                return;
            }
        };
        let agent = match agent(ca.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("blocklist feeds: `feed_ca`: {e}");
                return;
            }
        };
        let mut next: HashMap<(String, Feed), Instant> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let Some(s) = services.upgrade() else { return };
            let wanted = s.bans.feeds_wanted();
            drop(s);
            next.retain(|k, _| wanted.contains(k));
            for (name, feed) in wanted {
                let key = (name.clone(), feed.clone());
                if next.get(&key).is_some_and(|at| Instant::now() < *at) {
                    continue;
                }
                let (a, f) = (agent.clone(), feed.clone());
                let got = tokio::task::spawn_blocking(move || fetch(&a, &f)).await;
                let refresh = Duration::from_millis(feed.refresh_ms.max(1000));
                let Some(s) = services.upgrade() else { return };
                let wait = match got {
                    Ok(Ok(nets)) => {
                        let mut acl = Acl::new(&name, &nets);
                        acl.block = true;
                        tracing::info!(blocklist = %name, entries = nets.len(), "blocklist feed fetched");
                        s.bans.set_feed(&name, acl);
                        refresh
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(blocklist = %name, "blocklist feed not fetched, the last list stays: {e}");
                        refresh.min(RETRY)
                    }
                    Err(_) => refresh.min(RETRY),
                };
                next.insert(key, Instant::now() + wait);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_lines_or_json() {
        let (nets, bad) = parse_body("# APIBAN\n192.0.2.1\n198.51.100.0/24, spam\nnonsense\n\n");
        assert_eq!(nets.len(), 2);
        assert_eq!(bad, 1);
        let (nets, bad) =
            parse_body(r#"{"ipaddress": ["192.0.2.7", "2001:db8::1"], "ID": "1234"}"#);
        assert_eq!(nets.len(), 2, "{nets:?}");
        assert_eq!(bad, 0);
    }
}
