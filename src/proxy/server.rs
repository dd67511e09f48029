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
use super::dispatch::Dispatcher;
use super::resolve::{Dns, SystemDns};
use super::router::Router;
use super::stateful::TxnConfig;
use super::tls::{self, TlsMaterial};
use super::transport::{Inbound, Outbound, Transport, bind_tcp, bind_udp};
use crate::sip::ParseLimits;

/// One `listen` line.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// What the server needs from the configuration.
#[derive(Clone)]
pub struct ServerConfig {
    pub listens: Vec<ListenSpec>,
    /// Domains and aliases this proxy is responsible for (`domain`, `alias`).
    pub names: Vec<String>,
    pub limits: ParseLimits,
    /// Routing workers (0: one per core).
    pub workers: usize,
    /// Messages each worker may have queued before the proxy answers 503.
    pub queue_depth: usize,
    /// Open TCP connections at most; more are refused.
    pub max_tcp_connections: usize,
    /// Bytes one TCP connection may buffer towards an incomplete message.
    pub tcp_buffer: usize,
    /// Certificates for `listen tls` and outgoing TLS.
    pub tls: Option<TlsMaterial>,
    /// Name resolution for next hops that are host names (RFC 3263);
    /// `None`: the system resolver.
    pub dns: Option<Arc<dyn Dns>>,
    /// Transaction timers and the transaction table's size limit.
    pub txn: TxnConfig,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listens", &self.listens)
            .field("names", &self.names)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// A configuration with the default limits for these listens.
    pub fn new(listens: Vec<ListenSpec>) -> Self {
        Self {
            listens,
            names: Vec::new(),
            limits: ParseLimits::default(),
            workers: 0,
            queue_depth: 1024,
            max_tcp_connections: 4096,
            tcp_buffer: 128 * 1024,
            tls: None,
            dns: None,
            txn: TxnConfig::default(),
        }
    }
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

    /// Stops receiving, then lets the routing workers finish what is queued
    /// (for at most `grace`) before ending them.
    pub async fn stop(self, grace: std::time::Duration) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
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
            stream => {
                let s = bind_tcp(l.addr)?;
                bound.push((stream, s.local_addr()?));
                tcp.push((stream, s));
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
    let acceptor = match (&config.tls, tcp.iter().any(|(t, _)| *t == Transport::Tls)) {
        (Some(m), true) => Some(tls::acceptor(m)?),
        (None, true) => {
            return Err(io::Error::other("`listen tls` needs a TLS certificate and key"));
        }
        (_, false) => None,
    };
    let connector = config.tls.as_ref().map(tls::connector).transpose()?.flatten();
    let stream_addrs = bound.iter().filter(|(t, _)| t.is_stream()).copied().collect();
    let outbound = Arc::new(
        Outbound::new(udp.clone(), stream_addrs)
            .with_limits(
                config.max_tcp_connections,
                config.tcp_buffer.max(config.limits.max_message_size),
            )
            .with_tls_connector(connector),
    );
    let core = Arc::new(Core::new(local, config.limits, router, Arc::clone(&outbound), config.txn));
    let (shutdown, watch_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (dispatcher, queues) = Dispatcher::new(workers, config.queue_depth);
    core.set_dispatcher(dispatcher);
    tasks.push(core.start_timers(watch_rx.clone()));
    match config.dns.clone() {
        Some(dns) => core.set_dns(dns),
        None => match SystemDns::from_system() {
            Ok(dns) => core.set_dns(Arc::new(dns)),
            Err(e) => tracing::warn!("no DNS: host-name next hops will get 503 ({e})"),
        },
    }
    for mut queue in queues {
        let core = Arc::clone(&core);
        tasks.push(tokio::spawn(async move {
            while let Some((data, inbound)) = queue.recv().await {
                core.handle(data, inbound).await;
            }
        }));
    }
    let sink = core.message_sink();
    for sock in udp {
        let (sock, sink, mut stop) = (Arc::clone(&sock), Arc::clone(&sink), watch_rx.clone());
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
                sink(Bytes::copy_from_slice(&buf[..n]), inbound);
            }
        }));
    }
    for (transport, listener) in tcp {
        let (core, outbound, mut stop) =
            (Arc::clone(&core), Arc::clone(&outbound), watch_rx.clone());
        let acceptor = acceptor.clone();
        tasks.push(tokio::spawn(async move {
            let sink = core.message_sink();
            loop {
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("tcp accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop.changed() => break,
                };
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let (outbound, sink, limits) =
                    (Arc::clone(&outbound), Arc::clone(&sink), core.limits);
                match (transport, &acceptor) {
                    (Transport::Tls, Some(acceptor)) => {
                        // The handshake runs on its own task so a slow peer
                        // cannot hold up the accept loop.
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let hs = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            );
                            match hs.await {
                                Ok(Ok(tls)) => {
                                    if let Err(e) = outbound.adopt(
                                        tls,
                                        Transport::Tls,
                                        local,
                                        peer,
                                        sink,
                                        limits,
                                    ) {
                                        tracing::debug!("tls adopt: {e}");
                                    }
                                }
                                _ => tracing::debug!(%peer, "TLS handshake failed"),
                            }
                        });
                    }
                    _ => {
                        if let Err(e) =
                            outbound.adopt(stream, Transport::Tcp, local, peer, sink, limits)
                        {
                            tracing::debug!("tcp adopt: {e}");
                        }
                    }
                }
            }
        }));
    }
    Ok(ServerHandle { core, bound, shutdown, tasks })
}
