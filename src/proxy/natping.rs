//! The NAT keepalive task: sends the registrar's pings through the proxy's
//! own transports (see [`crate::registrar::natping`] for what is pinged,
//! when, and the failure counting).
//!
//! UDP pings leave from the proxy's listening socket ([`Outbound::send_udp`]
//! picks the first socket of the peer's address family, the one the proxy
//! also answers from): a NAT keeps a mapping per (inside address, outside
//! address) pair, so only packets from the address:port the device
//! registered to keep its mapping open. A socket of its own, as the trunk
//! prober has, would open a second mapping and let the first one expire.
//! Replies to the OPTIONS therefore arrive on the listening socket too;
//! the core hands them to the pinger by their Via branch.
//!
//! TCP and TLS pings are CRLFCRLF on the connection the device opened
//! (RFC 5626 §4.4.1); without one the ping fails: opening a connection
//! towards a NATed device cannot work, and the binding is useless until
//! the device connects again.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::core::Core;
use super::transport::Transport;
use crate::registrar::natping::{self, NatPinger, PingMethod, PingTarget};
use crate::registrar::{Location, natping::TICK};
use crate::runtime::registrar::unix_now;

/// The keepalive of `ping_method = "crlf"` and of TCP and TLS bindings:
/// RFC 5626 §4.4.1's double CRLF (over UDP, a datagram a SIP stack
/// ignores as a keepalive).
const CRLFCRLF: &[u8] = b"\r\n\r\n";

/// Starts pinging when the core's services have a location table and a
/// pinger (`module nathelper { natping_interval }`); the task ends when the
/// core is dropped, or when the returned handle is aborted.
pub fn spawn(core: &Arc<Core>) -> Option<tokio::task::JoinHandle<()>> {
    let services = core.services();
    let pinger = Arc::clone(services.natping.as_ref()?);
    let location = Arc::clone(services.location.as_ref()?);
    let weak = Arc::downgrade(core);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = pinger.config.ticks();
        loop {
            // One interval: the bindings as they are now, spread over it.
            let targets = natping::targets(&location, unix_now(), pinger.config.nated_only);
            pinger.keep_only(&targets);
            for t in 0..ticks {
                tick.tick().await;
                let Some(core) = weak.upgrade() else { return };
                for (aor, contact) in pinger.expire(Instant::now()) {
                    remove(&pinger, &location, &aor, &contact);
                }
                for target in &targets[natping::batch(targets.len(), ticks, t)] {
                    ping(&core, &pinger, &location, target);
                }
            }
        }
    }))
}

fn remove(pinger: &NatPinger, location: &Location, aor: &str, contact: &str) {
    if location.remove_contact(aor, contact) {
        pinger.stats.removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(aor, contact, "natping: binding removed after failed pings");
    }
}

fn ping(core: &Arc<Core>, pinger: &NatPinger, location: &Location, target: &PingTarget) {
    let outbound = core.outbound();
    let failed = match (target.transport, pinger.config.method) {
        (Transport::Udp, PingMethod::Options) => {
            let Some(local) = outbound.local_addr(Transport::Udp, target.addr) else {
                // No UDP socket of the binding's address family: unreachable.
                pinger.stats.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if pinger.failed_now(target) {
                    remove(pinger, location, &target.aor, &target.contact);
                }
                return;
            };
            let local = if local.ip().is_unspecified() {
                std::net::SocketAddr::new(route_ip(target.addr).unwrap_or(local.ip()), local.port())
            } else {
                local
            };
            let branch = pinger.branch();
            let msg =
                natping::options(&target.contact, local, pinger.config.from.as_deref(), &branch);
            // `event_route "tm:local-request"` sees it first, and may stop
            // it: a dropped ping counts neither as sent nor as failed.
            let Some(msg) = core.services().trunks.local_request(msg) else { return };
            match outbound.send_udp(target.addr, msg.as_bytes()) {
                Ok(()) => {
                    let deadline = Instant::now() + pinger.config.reply_timeout();
                    pinger.sent_options(branch, target, deadline);
                    false
                }
                Err(e) => {
                    tracing::debug!(peer = %target.addr, "natping: send failed: {e}");
                    pinger.stats.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    pinger.failed_now(target)
                }
            }
        }
        (Transport::Udp, PingMethod::Crlf) => {
            pinger.sent_blind();
            match outbound.send_udp(target.addr, CRLFCRLF) {
                Ok(()) => false,
                Err(_) => pinger.failed_now(target),
            }
        }
        (stream, _) => {
            pinger.sent_blind();
            match outbound.send_on_open(stream, target.addr, Bytes::from_static(CRLFCRLF)) {
                Ok(()) => false,
                Err(e) => {
                    tracing::debug!(peer = %target.addr, "natping: {e}");
                    pinger.failed_now(target)
                }
            }
        }
    };
    if failed {
        remove(pinger, location, &target.aor, &target.contact);
    }
}

/// The local address the OS routes to `to` from (for a Via when the proxy
/// listens on a wildcard address).
pub(super) fn route_ip(to: std::net::SocketAddr) -> Option<std::net::IpAddr> {
    let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    Some(s.local_addr().ok()?.ip())
}
