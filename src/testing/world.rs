//! The world a test starts from: the config's listen addresses (offline)
//! and the long-lived services, in memory, filled from the test's
//! `[world]`: registrations, subscribers, trunk health.

use std::net::SocketAddr;
use std::sync::Arc;

use super::spec::{World, parse_endpoint};
use crate::auth::{NonceKey, Subscriber, SubscriberStore};
use crate::proxy::Transport;
use crate::proxy::services::Services;
use crate::registrar::{Binding, Location};
use crate::sema::ir::{CheckedProgram, Value};
use crate::sip::Uri;

/// The listen addresses of a program (`listen ws` and friends are not
/// served, and the checker refuses them).
pub(super) fn listens(prog: &CheckedProgram) -> Result<Vec<(Transport, SocketAddr)>, String> {
    let mut out = Vec::new();
    for l in &prog.listens {
        let t = Transport::from_name(&l.proto)
            .ok_or_else(|| format!("`listen {}` is not served by `sipc run`", l.proto))?;
        let text = match &l.addr {
            Value::Addr(s) | Value::Str(s) => s.clone(),
            other => return Err(format!("`listen`: not an address: {other:?}")),
        };
        let addr = text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 5060)))
            .map_err(|_| format!("`listen {} {text}`: not an IP address", l.proto))?;
        out.push((t, addr));
    }
    if out.is_empty() {
        return Err("the config has no `listen` item".into());
    }
    Ok(out)
}

/// The services of a test's world, in memory.
pub(super) fn services(prog: &CheckedProgram, world: &World) -> Result<Services, String> {
    use crate::cli::services as cs;
    let mut s = Services::default();
    let now = crate::runtime::registrar::unix_now();
    if cs::uses_location(prog) || !world.location.is_empty() {
        let location = Location::new(cs::registrar_config(prog));
        let mut bindings = Vec::new();
        for (i, b) in world.location.iter().enumerate() {
            let aor = Uri::parse(&b.aor)
                .ok()
                .and_then(|u| crate::registrar::canonical_aor(&u))
                .ok_or_else(|| format!("world.location: `{}` is not a SIP AOR", b.aor))?;
            let received = b.received.as_deref().map(parse_endpoint).transpose()?;
            let binding = Binding {
                contact: b.contact.clone(),
                expires_at: now + b.expires.unwrap_or(3600),
                q: b.q.map(|q| (q.clamp(0.0, 1.0) * 1000.0).round() as u16),
                call_id: format!("world-{i}@sipc.test"),
                cseq: 1,
                path: b.path.clone(),
                received: received.map(|r| r.1),
                transport: received.map_or(Transport::Udp, |r| r.0),
                instance: None,
                reg_id: None,
                methods: None,
                peer: false,
            };
            bindings.push((aor, binding));
        }
        location.restore(bindings);
        s.location = Some(Arc::new(location));
    }
    if cs::uses_auth(prog) || !world.subscriber.is_empty() {
        let subs = SubscriberStore::in_memory();
        for u in &world.subscriber {
            subs.put(&u.user, &u.domain, Subscriber::new(&u.user, &u.domain, &u.password))
                .map_err(|e| format!("world.subscriber `{}`: {e}", u.user))?;
        }
        s.auth = Some(Arc::new(cs::auth_service(prog, subs, NonceKey::random())?));
    }
    for name in &world.trunks_down {
        let t = prog
            .routing
            .trunks
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| format!("world.trunks_down: no trunk `{name}` in the config"))?;
        s.trunks.register(&t.name, &t.uri).set_up(false);
    }
    Ok(s)
}
