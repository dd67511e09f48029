//! OPTIONS health probing, on its own tokio task with its own UDP socket.
//!
//! The prober does not go through the proxy's transports: a probe is a
//! hop-by-hop request of the proxy itself, its reply must not reach the
//! routes, and a socket of its own (an ephemeral port) keeps the server's
//! receive path unchanged. One task per [`Trunks`] registry, started when a
//! program with probed groups is first used; it holds a weak reference and
//! ends when the server's `Services` is dropped. Every 50 ms it sends the
//! probes that are due (each trunk's interval with ±15 % jitter, so probes
//! of many trunks do not go out in bursts), takes replies (by Via branch)
//! and fails probes unanswered after half an interval (at most 2 s).
//! Trunks whose URI host is a name are resolved for every probe.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::health::{TrunkState, Trunks, TrunksInner};
use crate::proxy::RequestContext;

/// Starts the prober for `trunks` once, when a tokio runtime is running.
pub fn ensure_started(trunks: &Trunks) {
    if trunks.probed().is_empty() || trunks.prober.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        trunks.prober.store(false, Ordering::SeqCst);
        return;
    };
    handle.spawn(run(trunks.downgrade()));
}

/// Per-request bookkeeping before the routes run: attaches the program's
/// trunks to the server's registry (which starts probing) and ends the
/// `active` count of a call whose BYE this is.
pub fn note_request(rt: &crate::runtime::routing::RoutingRt, req: &RequestContext) {
    if rt.is_empty() {
        return;
    }
    let services = req.services.as_deref();
    rt.states(services.map(|s| &s.trunks));
    if let Some(s) = services
        && req.msg.original().method_str() == Some("BYE")
        && let Ok(Some(call_id)) = req.msg.original().call_id()
    {
        s.trunks.call_ended(call_id);
    }
}

struct Pending {
    trunk: Arc<TrunkState>,
    deadline: Instant,
}

fn jitter(seed: &mut u64, ms: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let spread = ms * 3 / 10;
    let off = if spread == 0 { 0 } else { *seed % (spread + 1) };
    Duration::from_millis(ms - ms * 15 / 100 + off)
}

/// The local address the OS would use to reach `to`.
fn local_ip(to: SocketAddr) -> std::net::IpAddr {
    let any: SocketAddr =
        if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    std::net::UdpSocket::bind(any)
        .and_then(|s| s.connect(to).and_then(|()| s.local_addr()))
        .map_or(any.ip(), |a| a.ip())
}

/// The OPTIONS request of one probe.
pub fn options(trunk: &str, uri: &str, via_host: SocketAddr, branch: &str, cseq: u64) -> String {
    format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via_host};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:sipc@{host}>;tag=probe\r\nTo: <{uri}>\r\n\
         Call-ID: {branch}@sipc\r\nCSeq: {cseq} OPTIONS\r\nUser-Agent: sipc probe ({trunk})\r\n\
         Content-Length: 0\r\n\r\n",
        host = via_host.ip(),
    )
}

async fn resolve(trunk: &TrunkState) -> Option<SocketAddr> {
    if trunk.addr.is_some() {
        return trunk.addr;
    }
    let u = crate::sip::Uri::parse(&trunk.uri).ok()?;
    let host = format!("{}:{}", u.host_str, u.port.unwrap_or(5060));
    tokio::net::lookup_host(host).await.ok()?.next()
}

async fn run(weak: Weak<TrunksInner>) {
    let Ok(v4) = tokio::net::UdpSocket::bind("0.0.0.0:0").await else {
        tracing::error!("trunk prober: cannot bind a UDP socket; probing is off");
        return;
    };
    let port = v4.local_addr().map_or(0, |a| a.port());
    let mut due: HashMap<usize, Instant> = HashMap::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(port);
    let mut cseq = 0u64;
    let mut buf = vec![0u8; 8192];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = v4.recv_from(&mut buf) => {
                if let Ok((n, _)) = r {
                    on_reply(&buf[..n], &mut pending);
                }
                continue;
            }
        }
        let Some(trunks) = weak.upgrade() else { return };
        let now = Instant::now();
        pending.retain(|_, p| {
            if p.deadline > now {
                return true;
            }
            tracing::debug!(trunk = %p.trunk.name, "probe timed out");
            p.trunk.dead();
            false
        });
        for (state, cfg) in trunks.probed() {
            let key = Arc::as_ptr(&state) as usize;
            let when = *due.entry(key).or_insert(now);
            if when > now {
                continue;
            }
            due.insert(key, now + jitter(&mut seed, cfg.interval_ms));
            let Some(to) = resolve(&state).await else {
                state.dead();
                continue;
            };
            cseq += 1;
            let branch = format!("z9hG4bK-sipc-probe-{port}-{cseq}");
            let via = SocketAddr::new(local_ip(to), port);
            let msg = options(&state.name, &state.uri, via, &branch, cseq);
            // `event_route "tm:local-request"` sees it first, and may stop it.
            let Some(msg) = trunks.local_request(msg) else { continue };
            state.probes_sent.fetch_add(1, Ordering::Relaxed);
            let wait = Duration::from_millis((cfg.interval_ms / 2).clamp(50, 2000));
            if v4.send_to(msg.as_bytes(), to).await.is_err() {
                state.dead();
                continue;
            }
            pending.insert(branch, Pending { trunk: Arc::clone(&state), deadline: now + wait });
        }
    }
}

fn on_reply(data: &[u8], pending: &mut HashMap<String, Pending>) {
    let Ok(msg) = crate::sip::Message::parse(bytes::Bytes::copy_from_slice(data)) else { return };
    let Some(code) = msg.status() else { return };
    let Some(branch) = msg.via().ok().flatten().and_then(|v| v.branch().map(str::to_owned)) else {
        return;
    };
    if code < 200 {
        return;
    }
    let Some(p) = pending.remove(&branch) else { return };
    match p.trunk.probe() {
        Some(cfg) if cfg.alive.is_match(&code.to_string()) => p.trunk.alive(),
        _ => p.trunk.dead(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_parses_as_sip() {
        let m = super::options(
            "fs1",
            "sip:127.0.0.1:5081",
            "127.0.0.1:4000".parse().unwrap(),
            "z9hG4bK-x",
            1,
        );
        let msg = crate::sip::Message::parse(bytes::Bytes::from(m)).unwrap();
        assert_eq!(msg.method_str(), Some("OPTIONS"));
    }
}
