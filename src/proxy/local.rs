//! "Is this URI me?": the proxy's own addresses and names.
//!
//! Route processing (RFC 3261 §16.4), loop detection (§16.3) and response
//! routing (§16.7) all ask it. A URI names this proxy when its host is one
//! of the listening addresses, an advertised address or a configured
//! domain/alias, and its port (or the scheme's default) is a listening port.

use std::net::{IpAddr, SocketAddr};

use crate::sip::{Host, Scheme, Uri, Via};

/// The addresses and names this proxy answers to.
#[derive(Debug, Clone, Default)]
pub struct LocalIdentity {
    sockets: Vec<SocketAddr>,
    names: Vec<(String, u16)>,
    /// The names that are IP literals, parsed once here rather than on
    /// every lookup.
    named_addresses: Vec<SocketAddr>,
}

impl LocalIdentity {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listening socket. An unspecified address (`0.0.0.0`, `::`)
    /// stands for the loopback address of its family; real interface
    /// addresses must be given as names or advertised addresses.
    pub fn add_socket(&mut self, addr: SocketAddr) {
        let addr = match addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V6(v6) if v6.is_unspecified() => {
                SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            _ => addr,
        };
        if !self.sockets.contains(&addr) {
            self.sockets.push(addr);
        }
    }

    /// Adds a host name (domain, alias, advertised name) served on `port`.
    pub fn add_name(&mut self, name: &str, port: u16) {
        self.names.push((name.to_ascii_lowercase(), port));
        if let Ok(ip) = name.parse::<IpAddr>() {
            self.named_addresses.push(SocketAddr::new(ip, port));
        }
    }

    /// Every listening socket.
    pub fn sockets(&self) -> &[SocketAddr] {
        &self.sockets
    }

    /// Does `host:port` name this proxy?
    pub fn is_local(&self, host: &Host<'_>, port: u16) -> bool {
        match host {
            Host::Name(n) => {
                // Names are stored lower-case and nearly always arrive so:
                // an exact comparison first (memcmp) skips the byte-wise
                // case folding.
                self.names
                    .iter()
                    .any(|(name, p)| *p == port && (name == n || name.eq_ignore_ascii_case(n)))
            }
            Host::V4(a) => self.has_socket(IpAddr::V4(*a), port),
            Host::V6(a) => self.has_socket(IpAddr::V6(*a), port),
        }
    }

    fn has_socket(&self, ip: IpAddr, port: u16) -> bool {
        // By address and port only: a bound IPv6 socket may carry a scope id.
        self.sockets.iter().chain(&self.named_addresses).any(|s| s.ip() == ip && s.port() == port)
    }

    /// Does this SIP URI name this proxy? (`tel:` and other schemes never do.)
    pub fn is_local_uri(&self, uri: &Uri<'_>) -> bool {
        let Some(host) = uri.host else { return false };
        let default = if uri.scheme == Scheme::Sips { 5061 } else { 5060 };
        self.is_local(&host, uri.port.unwrap_or(default))
    }

    /// [`LocalIdentity::is_local_uri`] for a URI validation kept as parts
    /// of `text` (an unedited Request-URI), without parsing it again.
    pub fn is_local_uri_parts(&self, text: &str, parts: &crate::sip::UriParts) -> bool {
        if parts.host_kind == crate::sip::HostKind::None {
            return false;
        }
        let (start, end) = parts.host();
        let Some(Ok(host)) = text.get(start..end).map(Host::parse) else { return false };
        self.is_local(&host, parts.port_or_default())
    }

    /// Did this proxy write this Via (its sent-by is ours)?
    pub fn is_local_via(&self, via: &Via<'_>) -> bool {
        self.is_local(&via.host, via.port_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_default_ports() {
        let mut l = LocalIdentity::new();
        l.add_socket("127.0.0.1:5060".parse().unwrap());
        l.add_socket("[::]:5070".parse().unwrap());
        l.add_name("proxy.example.com", 5060);
        let yes =
            ["sip:127.0.0.1", "sip:127.0.0.1:5060;lr", "sip:[::1]:5070", "sip:PROXY.example.com"];
        for u in yes {
            assert!(l.is_local_uri(&Uri::parse(u).unwrap()), "{u}");
        }
        let no = [
            "sip:127.0.0.1:5080",
            "sip:127.0.0.2",
            "sip:other.example.com",
            "tel:+123",
            "sips:127.0.0.1",
        ];
        for u in no {
            assert!(!l.is_local_uri(&Uri::parse(u).unwrap()), "{u}");
        }
        for u in yes.iter().chain(&no).chain(&["sip:u@127.0.0.1:5060", "sips:PROXY.example.com"]) {
            let parts = crate::sip::UriParts::of(u).unwrap();
            assert_eq!(
                l.is_local_uri_parts(u, &parts),
                l.is_local_uri(&Uri::parse(u).unwrap()),
                "{u}"
            );
        }
    }
}
