//! Starting the proxy: bind every listen socket, build the [`Core`], spawn
//! the receive loops. Runs inside a tokio runtime; `sipc run` creates it.
//!
//! UDP: several tasks receive on each socket (tokio lets tasks share one
//! socket), each handling its datagram inline, so all cores work on UDP
//! traffic without a queue in between. TCP: one task per connection, owned
//! by the [`Outbound`] connection table.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LocalIdentity;
use super::core::Core;
use super::router::Router;
use super::transport::{Inbound, Outbound, Transport, bind_tcp, bind_udp};
use crate::sip::ParseLimits;

/// One `listen` line.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// What the server needs from the configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listens: Vec<ListenSpec>,
    /// Domains and aliases this proxy is responsible for (`domain`, `alias`).
    pub names: Vec<String>,
    pub limits: ParseLimits,
    /// Receive tasks per UDP socket.
    pub udp_workers: usize,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    pub core: Arc<Core>,
    /// The bound addresses (port 0 in the config becomes the real port here).
    pub bound: Vec<(Transport, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The first bound address of a transport.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.bound.iter().find(|(t, _)| *t == transport).map(|(_, a)| *a)
    }

    /// Stops receiving and waits for the receive loops to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds and starts serving.
pub async fn start(config: ServerConfig, router: Arc<dyn Router>) -> io::Result<ServerHandle> {
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut bound = Vec::new();
    for l in &config.listens {
        match l.transport {
            Transport::Udp => {
                let s = Arc::new(bind_udp(l.addr)?);
                bound.push((Transport::Udp, s.local_addr()?));
                udp.push(s);
            }
            Transport::Tcp => {
                let s = bind_tcp(l.addr)?;
                bound.push((Transport::Tcp, s.local_addr()?));
                tcp.push(s);
            }
        }
    }
    let mut local = LocalIdentity::new();
    for (_, addr) in &bound {
        local.add_socket(*addr);
    }
    for name in &config.names {
        for (_, addr) in &bound {
            local.add_name(name, addr.port());
        }
    }
    let tcp_addrs = bound.iter().filter(|(t, _)| *t == Transport::Tcp).map(|(_, a)| *a).collect();
    let outbound = Arc::new(Outbound::new(udp.clone(), tcp_addrs));
    let core = Arc::new(Core::new(local, config.limits, router, Arc::clone(&outbound)));
    let (shutdown, watch_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for sock in udp {
        for _ in 0..config.udp_workers.max(1) {
            let (sock, core, mut stop) = (Arc::clone(&sock), Arc::clone(&core), watch_rx.clone());
            tasks.push(tokio::spawn(async move {
                let local = sock.local_addr().expect("bound socket has an address");
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, peer) = tokio::select! {
                        r = sock.recv_from(&mut buf) => match r {
                            Ok(x) => x,
                            Err(e) => {
                                // ICMP errors from earlier sends surface here; keep serving.
                                tracing::trace!("udp recv: {e}");
                                continue;
                            }
                        },
                        _ = stop.changed() => break,
                    };
                    let inbound = Inbound { transport: Transport::Udp, local, peer };
                    core.handle(Bytes::copy_from_slice(&buf[..n]), inbound).await;
                }
            }));
        }
    }
    for listener in tcp {
        let (core, outbound, mut stop) =
            (Arc::clone(&core), Arc::clone(&outbound), watch_rx.clone());
        tasks.push(tokio::spawn(async move {
            let sink = core.message_sink();
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!("tcp accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop.changed() => break,
                };
                if let Err(e) = outbound.adopt(stream, Arc::clone(&sink), core.limits) {
                    tracing::debug!("tcp adopt: {e}");
                }
            }
        }));
    }
    Ok(ServerHandle { core, bound, shutdown, tasks })
}
