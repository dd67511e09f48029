//! Locating SIP servers (RFC 3263 §4): from a next hop to transports and
//! addresses, through NAPTR, SRV and A/AAAA records.
//!
//! The algorithm is written against the small [`Dns`] trait so it can be
//! tested with fixed records; [`SystemDns`] answers it with hickory's
//! resolver (system configuration, `/etc/hosts`, and its TTL-bounded cache).
//!
//! - an IP literal host is used as is (port: given or the transport's default);
//! - a port given: A/AAAA of the host, on the given (or default) transport;
//! - a transport given but no port: SRV for that transport, else A/AAAA;
//! - neither: NAPTR (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`) in order/preference,
//!   then SRV for each supported transport, then A/AAAA on UDP (TLS for sips).
//!
//! SRV targets are ordered by priority, then by weight (heaviest first: a
//! deterministic stand-in for RFC 2782's weighted random choice); every
//! address found is returned in order, for failover.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use super::NextHop;
use super::transport::Transport;

/// A boxed future, so [`Dns`] can be used as a trait object.
pub type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A NAPTR record (RFC 3403), as far as RFC 3263 uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub service: String,
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The DNS queries RFC 3263 needs. Failures and empty answers are both empty.
pub trait Dns: Send + Sync {
    fn naptr<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Naptr>>;
    fn srv<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Srv>>;
    fn ips<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>>;
}

/// Where to send: a transport and an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

fn default_port(t: Transport) -> u16 {
    match t {
        Transport::Tls => 5061,
        // RFC 7118 §5.2: WebSocket URIs default to the HTTP ports.
        Transport::Ws => 80,
        Transport::Wss => 443,
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// The SRV name prefix of a transport (RFC 3263); WebSocket has none (RFC
/// 7118 §5.2), and a name that finds none falls back to address records.
fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "_sip._udp",
        Transport::Tcp | Transport::Ws => "_sip._tcp",
        Transport::Tls | Transport::Wss => "_sips._tcp",
    }
}

/// Resolves a next hop to an ordered list of targets (empty: unresolvable).
pub async fn resolve(dns: &dyn Dns, hop: &NextHop) -> Vec<Target> {
    let given = Transport::from_name(&hop.transport);
    let sips = (hop.transport == "tls" || hop.transport == "wss") && hop.explicit_transport;
    if let Some(addr) = hop.socket_addr() {
        return given.map(|transport| vec![Target { transport, addr }]).unwrap_or_default();
    }
    let host = hop.host.trim_end_matches('.');
    if let Some(port) = hop.port {
        let Some(transport) = given else { return Vec::new() };
        return with_port(dns.ips(host).await, port, transport);
    }
    if hop.explicit_transport {
        let Some(transport) = given else { return Vec::new() };
        if !transport.is_websocket() {
            let found = via_srv(dns, &format!("{}.{host}", srv_prefix(transport)), transport).await;
            if !found.is_empty() {
                return found;
            }
        }
        return with_port(dns.ips(host).await, default_port(transport), transport);
    }
    let mut naptrs: Vec<(Naptr, Transport)> = dns
        .naptr(host)
        .await
        .into_iter()
        .filter(|n| n.flags.eq_ignore_ascii_case("s"))
        .filter_map(|n| {
            let t = match n.service.to_ascii_uppercase().as_str() {
                "SIP+D2U" => Transport::Udp,
                "SIP+D2T" => Transport::Tcp,
                "SIPS+D2T" => Transport::Tls,
                _ => return None,
            };
            (!sips || t == Transport::Tls).then_some((n, t))
        })
        .collect();
    naptrs.sort_by_key(|(n, _)| (n.order, n.preference));
    for (n, t) in &naptrs {
        let found = via_srv(dns, n.replacement.trim_end_matches('.'), *t).await;
        if !found.is_empty() {
            return found;
        }
    }
    let transports: &[Transport] =
        if sips { &[Transport::Tls] } else { &[Transport::Udp, Transport::Tcp, Transport::Tls] };
    for &t in transports {
        let found = via_srv(dns, &format!("{}.{host}", srv_prefix(t)), t).await;
        if !found.is_empty() {
            return found;
        }
    }
    let t = if sips { Transport::Tls } else { Transport::Udp };
    with_port(dns.ips(host).await, default_port(t), t)
}

async fn via_srv(dns: &dyn Dns, name: &str, transport: Transport) -> Vec<Target> {
    let mut srvs = dns.srv(name).await;
    srvs.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    let mut out = Vec::new();
    for s in srvs {
        let target = s.target.trim_end_matches('.');
        if target.is_empty() {
            continue; // "." : the service is decidedly not available here
        }
        let ips = match target.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => dns.ips(target).await,
        };
        out.extend(with_port(ips, s.port, transport));
    }
    out
}

fn with_port(ips: Vec<IpAddr>, port: u16, transport: Transport) -> Vec<Target> {
    ips.into_iter().map(|ip| Target { transport, addr: SocketAddr::new(ip, port) }).collect()
}

/// [`Dns`] answered by hickory's resolver with the system configuration.
pub struct SystemDns {
    resolver: hickory_resolver::TokioResolver,
}

impl std::fmt::Debug for SystemDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemDns")
    }
}

impl SystemDns {
    /// A resolver reading /etc/resolv.conf and /etc/hosts; needs a tokio runtime.
    pub fn from_system() -> std::io::Result<SystemDns> {
        let resolver = hickory_resolver::TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(|e| std::io::Error::other(format!("DNS resolver: {e}")))?;
        Ok(SystemDns { resolver })
    }
}

impl Dns for SystemDns {
    fn naptr<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Naptr>> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        Box::pin(async move {
            let Ok(l) = self.resolver.lookup(name, RecordType::NAPTR).await else {
                return Vec::new();
            };
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::NAPTR(n) => Some(Naptr {
                        order: n.order,
                        preference: n.preference,
                        flags: String::from_utf8_lossy(&n.flags).into_owned(),
                        service: String::from_utf8_lossy(&n.services).into_owned(),
                        replacement: n.replacement.to_string(),
                    }),
                    _ => None,
                })
                .collect()
        })
    }

    fn srv<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Srv>> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        Box::pin(async move {
            let Ok(l) = self.resolver.lookup(name, RecordType::SRV).await else {
                return Vec::new();
            };
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(s) => Some(Srv {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: s.target.to_string(),
                    }),
                    _ => None,
                })
                .collect()
        })
    }

    fn ips<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            match self.resolver.lookup_ip(name).await {
                Ok(l) => l.iter().collect(),
                Err(_) => Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Fixed records.
    #[derive(Default)]
    struct Zone {
        naptr: HashMap<String, Vec<Naptr>>,
        srv: HashMap<String, Vec<Srv>>,
        ips: HashMap<String, Vec<IpAddr>>,
    }

    impl Dns for Zone {
        fn naptr<'a>(&'a self, n: &'a str) -> DnsFuture<'a, Vec<Naptr>> {
            Box::pin(async move { self.naptr.get(n).cloned().unwrap_or_default() })
        }
        fn srv<'a>(&'a self, n: &'a str) -> DnsFuture<'a, Vec<Srv>> {
            Box::pin(async move { self.srv.get(n).cloned().unwrap_or_default() })
        }
        fn ips<'a>(&'a self, n: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
            Box::pin(async move { self.ips.get(n).cloned().unwrap_or_default() })
        }
    }

    fn hop(uri: &str) -> NextHop {
        NextHop::from_uri(&crate::sip::Uri::parse(uri).unwrap()).unwrap()
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv { priority, weight, port, target: target.into() }
    }

    fn zone() -> Zone {
        let mut z = Zone::default();
        z.naptr.insert(
            "example.com".into(),
            vec![
                Naptr {
                    order: 50,
                    preference: 50,
                    flags: "s".into(),
                    service: "SIP+D2U".into(),
                    replacement: "_sip._udp.example.com.".into(),
                },
                Naptr {
                    order: 10,
                    preference: 50,
                    flags: "S".into(),
                    service: "SIP+D2T".into(),
                    replacement: "_sip._tcp.example.com.".into(),
                },
                Naptr {
                    order: 5,
                    preference: 50,
                    flags: "s".into(),
                    service: "SIP+D2X".into(),
                    replacement: "_sip._x.example.com.".into(),
                },
            ],
        );
        z.srv.insert(
            "_sip._tcp.example.com".into(),
            vec![srv(20, 0, 5070, "b.example.com."), srv(10, 5, 5060, "a.example.com.")],
        );
        z.srv.insert("_sip._udp.srvonly.test".into(), vec![srv(1, 1, 5080, "a.example.com")]);
        z.srv.insert("_sips._tcp.example.com".into(), vec![srv(1, 1, 5061, "a.example.com")]);
        z.ips.insert("a.example.com".into(), vec!["192.0.2.1".parse().unwrap()]);
        z.ips.insert(
            "b.example.com".into(),
            vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()],
        );
        z.ips.insert("plain.test".into(), vec!["192.0.2.9".parse().unwrap()]);
        z
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn t(transport: Transport, addr: &str) -> Target {
        Target { transport, addr: addr.parse().unwrap() }
    }

    #[test]
    fn naptr_then_srv_then_addresses() {
        let z = zone();
        let got = run(resolve(&z, &hop("sip:alice@example.com")));
        assert_eq!(
            got,
            [
                t(Transport::Tcp, "192.0.2.1:5060"),
                t(Transport::Tcp, "192.0.2.2:5070"),
                t(Transport::Tcp, "[2001:db8::2]:5070")
            ],
            "lowest NAPTR order with a supported service, SRV by priority"
        );
    }

    #[test]
    fn srv_without_naptr_and_plain_addresses() {
        let z = zone();
        assert_eq!(
            run(resolve(&z, &hop("sip:srvonly.test"))),
            [t(Transport::Udp, "192.0.2.1:5080")]
        );
        assert_eq!(run(resolve(&z, &hop("sip:plain.test"))), [t(Transport::Udp, "192.0.2.9:5060")]);
        assert!(run(resolve(&z, &hop("sip:nowhere.test"))).is_empty());
    }

    #[test]
    fn explicit_port_transport_and_sips() {
        let z = zone();
        assert_eq!(
            run(resolve(&z, &hop("sip:plain.test:5090;transport=tcp"))),
            [t(Transport::Tcp, "192.0.2.9:5090")]
        );
        assert_eq!(
            run(resolve(&z, &hop("sip:example.com;transport=tcp"))).len(),
            3,
            "SRV for the given transport"
        );
        assert_eq!(
            run(resolve(&z, &hop("sips:example.com"))),
            [t(Transport::Tls, "192.0.2.1:5061")]
        );
        assert_eq!(run(resolve(&z, &hop("sip:192.0.2.7"))), [t(Transport::Udp, "192.0.2.7:5060")]);
        assert_eq!(
            run(resolve(&z, &hop("sip:[2001:db8::7]:5070;transport=tls"))),
            [t(Transport::Tls, "[2001:db8::7]:5070")]
        );
    }

    #[test]
    fn system_resolver_reads_the_hosts_file() {
        let ips = run(async { SystemDns::from_system().unwrap().ips("localhost").await });
        assert!(ips.iter().any(|ip| ip.is_loopback()), "{ips:?}");
    }
}
