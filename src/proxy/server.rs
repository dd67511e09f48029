//! Starting the proxy: bind every listen socket, build the [`Core`], spawn
//! the receive loops. Runs inside a tokio runtime; `sipc run` creates it.
//!
//! UDP: a group of `SO_REUSEPORT` sockets per listen, each with a blocking
//! receive thread that routes inline ([`super::udp`]). TCP and TLS: one task
//! per connection, owned by the [`Outbound`] connection table, handing
//! messages to the routing workers through the [`Dispatcher`]'s bounded
//! queues.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LocalIdentity;
use super::core::Core;
use super::dispatch::Dispatcher;
use super::resolve::{Dns, SystemDns};
use super::router::Router;
use super::services::Services;
use super::stateful::TxnConfig;
use super::tls::{self, TlsMaterial};
use super::transport::{Outbound, Transport, bind_tcp, bind_udp_group};
use super::udp::Receivers;
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
    /// Routing workers (0: one per core): UDP sockets per listen, each with
    /// its receive thread, and tasks routing TCP and TLS messages.
    pub workers: usize,
    /// Messages each stream routing worker may have queued before the proxy
    /// answers 503.
    pub queue_depth: usize,
    /// How long a UDP request may wait in its socket's queue before the
    /// proxy answers 503 instead of routing it.
    pub udp_max_wait: std::time::Duration,
    /// Open TCP connections at most; more are refused.
    pub max_tcp_connections: usize,
    /// Open connections from one source address at most.
    pub max_connections_per_source: usize,
    /// Bytes one TCP connection may buffer towards an incomplete message.
    pub tcp_buffer: usize,
    /// Certificates for `listen tls` and outgoing TLS.
    pub tls: Option<TlsMaterial>,
    /// Name resolution for next hops that are host names (RFC 3263);
    /// `None`: the system resolver.
    pub dns: Option<Arc<dyn Dns>>,
    /// Transaction timers and the transaction table's size limit.
    pub txn: TxnConfig,
    /// The location table and other state that outlives configs.
    pub services: Arc<Services>,
    /// `listen ws`/`listen wss`: origins, keepalives (`module websocket`).
    pub ws: Arc<super::ws::WsConfig>,
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
            udp_max_wait: std::time::Duration::from_millis(200),
            max_tcp_connections: 4096,
            max_connections_per_source: 256,
            tcp_buffer: 128 * 1024,
            tls: None,
            dns: None,
            txn: TxnConfig::default(),
            services: Arc::new(Services::default()),
            ws: Arc::new(super::ws::WsConfig::default()),
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
    udp: Receivers,
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
        self.udp.stop(deadline).await;
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
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let mut udp = Vec::new();
    let mut udp_groups = Vec::new();
    let mut tcp = Vec::new();
    let mut bound = Vec::new();
    for l in &config.listens {
        match l.transport {
            Transport::Udp => {
                let group: Vec<_> =
                    bind_udp_group(l.addr, workers)?.into_iter().map(Arc::new).collect();
                bound.push((Transport::Udp, group[0].local_addr()?));
                // Sends leave from the group's first socket: any member has
                // the same address.
                udp.push(Arc::clone(&group[0]));
                udp_groups.extend(group);
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
    let acceptor = match (&config.tls, tcp.iter().any(|(t, _)| t.is_secure())) {
        (Some(m), true) => Some(tls::acceptor(m)?),
        (None, true) => {
            return Err(io::Error::other(
                "`listen tls` and `listen wss` need a TLS certificate and key",
            ));
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
            .with_source_limit(config.max_connections_per_source)
            .with_tls_connector(connector),
    );
    let core = Arc::new(
        Core::new(local, config.limits, router, Arc::clone(&outbound), config.txn)
            .with_services(Arc::clone(&config.services)),
    );
    let (shutdown, watch_rx) = watch::channel(false);
    let mut tasks = Vec::new();
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
        let (core, mut stop) = (Arc::clone(&core), watch_rx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let job = tokio::select! {
                    job = queue.recv() => job,
                    // Stopping: route what is already queued, then end.
                    _ = stop.changed() => {
                        queue.close();
                        queue.recv().await
                    }
                };
                let Some((data, inbound)) = job else { break };
                core.handle(data, inbound).await;
            }
        }));
    }
    let udp = Receivers::start(
        &core,
        &udp_groups,
        tokio::runtime::Handle::current(),
        config.udp_max_wait,
    )?;
    let location = core.services().location.clone();
    let keep_bindings = config.ws.keep_bindings;
    let ws_server = Arc::new(super::ws::WsServer {
        cfg: super::ws::WsConfig {
            max_message_size: config.limits.max_message_size,
            ..(*config.ws).clone()
        },
        stats: Arc::clone(&outbound.ws_stats),
        on_close: Box::new(move |transport, peer| {
            if let Some(loc) = location.as_ref().filter(|_| !keep_bindings) {
                let n = loc.remove_flow(transport, peer);
                if n > 0 {
                    tracing::debug!(%peer, "websocket closed: {n} binding(s) removed");
                }
            }
        }),
    });
    for (transport, listener) in tcp {
        let (core, outbound, mut stop) =
            (Arc::clone(&core), Arc::clone(&outbound), watch_rx.clone());
        let acceptor = acceptor.clone();
        let ws_server = Arc::clone(&ws_server);
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
                if core.services().bans.drops(peer.ip()) {
                    drop(stream); // closed before the TLS handshake or any read
                    continue;
                }
                // Held by the connection's task until it ends.
                let Some(slot) = outbound.source_slot(peer.ip()) else {
                    tracing::debug!(%peer, "too many connections from this source; closed");
                    drop(stream);
                    continue;
                };
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let (outbound, sink, limits) =
                    (Arc::clone(&outbound), Arc::clone(&sink), core.limits);
                match (transport, &acceptor) {
                    (Transport::Ws, _) => {
                        let inbound = super::Inbound { transport, local, peer };
                        tokio::spawn(super::ws::serve(
                            stream,
                            inbound,
                            outbound,
                            sink,
                            Arc::clone(&ws_server),
                            Some(slot),
                        ));
                    }
                    (Transport::Wss, Some(acceptor)) => {
                        // The TLS handshake on a task of its own, which ends
                        // with it: the connection's task, spawned after it,
                        // is not allocated at the size of the handshake's
                        // future for as long as the connection lives.
                        let (acceptor, server) = (acceptor.clone(), Arc::clone(&ws_server));
                        tokio::spawn(async move {
                            let hs = tokio::time::timeout(
                                super::ws::HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            );
                            match hs.await {
                                Ok(Ok(tls)) => {
                                    let inbound = super::Inbound { transport, local, peer };
                                    tokio::spawn(super::ws::serve(
                                        tls,
                                        inbound,
                                        outbound,
                                        sink,
                                        server,
                                        Some(slot),
                                    ));
                                }
                                _ => {
                                    outbound
                                        .ws_stats
                                        .refused
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    tracing::debug!(%peer, "TLS handshake failed (wss)");
                                }
                            }
                        });
                    }
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
                                        Some(slot),
                                    ) {
                                        tracing::debug!("tls adopt: {e}");
                                    }
                                }
                                _ => tracing::debug!(%peer, "TLS handshake failed"),
                            }
                        });
                    }
                    _ => {
                        let tcp = Transport::Tcp;
                        if let Err(e) =
                            outbound.adopt(stream, tcp, local, peer, sink, limits, Some(slot))
                        {
                            tracing::debug!("tcp adopt: {e}");
                        }
                    }
                }
            }
        }));
    }
    Ok(ServerHandle { core, bound, shutdown, tasks, udp })
}
