//! Transports: UDP sockets, TCP listeners and the table of TCP connections.
//!
//! A received message reaches [`Core::handle`](super::core::Core::handle)
//! with the [`Inbound`] it arrived on; everything sent goes through
//! [`Outbound::send`], which picks the UDP socket of the right address
//! family or the TCP connection to the peer (reusing an open one, in either
//! direction, as RFC 3261 §18 asks, and opening one otherwise).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::sip::{Frame, ParseLimits, frame_stream};

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), and over secure WebSocket.
    Ws,
    Wss,
}

impl Transport {
    /// Every transport `sipc run` serves; `sipc check` refuses a `listen`
    /// on any other.
    pub const ALL: [Transport; 5] =
        [Transport::Udp, Transport::Tcp, Transport::Tls, Transport::Ws, Transport::Wss];

    /// The lowercase name a `listen` item uses (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The token used in Via headers.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Is this WebSocket (a connection only the client can open)?
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// Is it carried over TLS (`sips:` may use it)?
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// Is this a stream transport (framed by Content-Length)?
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }

    /// Parses a lowercase transport name (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The served transports' names, for messages: `udp, tcp and tls`.
    pub fn served_list() -> String {
        let names = Transport::ALL.map(Transport::name);
        match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// The socket a message arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Inbound {
    pub transport: Transport,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

/// How long an idle TCP connection stays open.
pub const TCP_IDLE: Duration = Duration::from_secs(120);

/// Everything that sends: the UDP sockets and the TCP connection table.
#[derive(Default)]
pub struct Outbound {
    /// Each UDP socket with its bound address (read once: `local_addr` is a syscall).
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    stream_listen: Vec<(Transport, SocketAddr)>,
    connections: Mutex<HashMap<(Transport, SocketAddr), mpsc::Sender<Bytes>>>,
    tls_connector: Option<TlsConnector>,
    max_connections: usize,
    tcp_buffer: usize,
    /// Upgrades refused and connections closed by `listen ws`/`wss`.
    pub ws_stats: Arc<super::ws::WsStats>,
    /// Accepted connections open per source address, and the most allowed.
    per_source: Mutex<HashMap<IpAddr, usize>>,
    max_per_source: usize,
}

/// One accepted connection's place in its source's count, given back
/// when the connection's task ends (drops it).
#[derive(Debug)]
pub struct SourceSlot {
    outbound: Arc<Outbound>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.outbound.per_source.lock().unwrap();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("udp", &self.udp)
            .field("stream_listen", &self.stream_listen)
            .field("tls_out", &self.tls_connector.is_some())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(udp: Vec<Arc<UdpSocket>>, stream_listen: Vec<(Transport, SocketAddr)>) -> Self {
        Self {
            udp: udp.into_iter().filter_map(|s| Some((s.local_addr().ok()?, s))).collect(),
            stream_listen,
            connections: Mutex::new(HashMap::new()),
            tls_connector: None,
            max_connections: 4096,
            tcp_buffer: 128 * 1024,
            ws_stats: Arc::default(),
            per_source: Mutex::new(HashMap::new()),
            max_per_source: usize::MAX,
        }
    }

    /// An outbound side without sockets, for running the core on messages
    /// without a network (`sipc test`): `listens` give the addresses Vias
    /// and Record-Routes name; nothing can be sent.
    pub fn offline(listens: Vec<(Transport, SocketAddr)>) -> Self {
        Self { stream_listen: listens, ..Self::default() }
    }

    /// Enables outgoing TLS.
    pub fn with_tls_connector(mut self, connector: Option<TlsConnector>) -> Self {
        self.tls_connector = connector;
        self
    }

    /// Sets the most connections one source address may have open.
    pub fn with_source_limit(mut self, max: usize) -> Self {
        self.max_per_source = max;
        self
    }

    /// A place for one more accepted connection from `ip`, or `None` when
    /// that source has its most already (counted as a refusal).
    pub fn source_slot(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut map = self.per_source.lock().unwrap();
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_source {
            drop(map);
            self.ws_stats.refused_source.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(SourceSlot { outbound: Arc::clone(self), ip })
    }

    /// Sets the most open TCP connections and the bytes each may buffer.
    pub fn with_limits(mut self, max_connections: usize, tcp_buffer: usize) -> Self {
        self.max_connections = max_connections;
        self.tcp_buffer = tcp_buffer;
        self
    }

    /// The local address messages to `peer` leave from on `transport`, as it
    /// goes in a Via sent-by or a Record-Route.
    pub fn local_addr(&self, transport: Transport, peer: SocketAddr) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.udp_for(peer).map(|(a, _)| *a).or_else(|| {
                // Only an offline outbound lists UDP addresses here.
                self.stream_listen
                    .iter()
                    .find(|(t, a)| *t == Transport::Udp && a.is_ipv4() == peer.is_ipv4())
                    .map(|(_, a)| *a)
            }),
            stream => self
                .stream_listen
                .iter()
                .find(|(t, a)| *t == stream && a.is_ipv4() == peer.is_ipv4())
                .map(|(_, a)| *a),
        }
    }

    fn udp_for(&self, peer: SocketAddr) -> Option<&(SocketAddr, Arc<UdpSocket>)> {
        self.udp.iter().find(|(a, _)| a.is_ipv4() == peer.is_ipv4())
    }

    /// Sends one datagram from the socket of `peer`'s address family.
    ///
    /// UDP sockets are blocking (their receive threads sleep in `recv`), so
    /// this is a plain `sendto`: it returns at once unless the socket's send
    /// buffer is full, which on a 4 MiB buffer means the host itself is
    /// congested, and then waiting briefly is the right back-pressure.
    pub fn send_udp(&self, peer: SocketAddr, data: &[u8]) -> io::Result<()> {
        let (_, sock) = self.udp_for(peer).ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "no UDP socket for that family")
        })?;
        sock.send_to(data, peer).map(|_| ())
    }

    /// Sends several datagrams, each from the socket of its peer's address
    /// family, and tells `failed` the index and error of each that could
    /// not be sent. Datagrams that share a socket go out in one `sendmmsg`;
    /// where the kernel stops early (at the first that fails), the rest are
    /// sent one by one so that each failure comes with its own error.
    pub fn send_udp_many(
        &self,
        datagrams: &[(SocketAddr, &[u8])],
        mut failed: impl FnMut(usize, io::Error),
    ) {
        let sent = match datagrams {
            [(first, _), more @ ..] if !more.is_empty() => {
                let family = first.is_ipv4();
                match self.udp_for(*first) {
                    Some((_, sock)) if more.iter().all(|(p, _)| p.is_ipv4() == family) => {
                        send_many(sock, datagrams)
                    }
                    _ => 0,
                }
            }
            _ => 0,
        };
        for (i, (peer, data)) in datagrams.iter().enumerate().skip(sent) {
            if let Err(e) = self.send_udp(*peer, data) {
                failed(i, e);
            }
        }
    }

    /// Queues `data` on the open `transport` connection to `peer` without
    /// waiting; never opens one. Fails when there is none, or when its
    /// queue is full (a connection that far behind is as good as gone).
    pub fn send_on_open(
        &self,
        transport: Transport,
        peer: SocketAddr,
        data: Bytes,
    ) -> io::Result<()> {
        let tx =
            self.connections.lock().unwrap().get(&(transport, peer)).cloned().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "no open connection to the peer")
            })?;
        tx.try_send(data).map_err(|_| io::Error::other("connection closed or its queue full"))
    }

    /// Sends `data` to `peer`. Over TCP or TLS an open connection to the
    /// peer is reused; without one, a connection is opened only when
    /// `connect` is true (else the send fails with `NotConnected`).
    pub async fn send(
        self: &Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
        data: Bytes,
        connect: bool,
        on_message: &Arc<dyn Fn(Bytes, Inbound) + Send + Sync>,
        limits: ParseLimits,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => self.send_udp(peer, &data),
            stream => {
                let existing = self.connections.lock().unwrap().get(&(stream, peer)).cloned();
                if let Some(tx) = existing {
                    if tx.send(data.clone()).await.is_ok() {
                        return Ok(());
                    }
                }
                if !connect {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "no open connection to the peer, and opening one is not allowed",
                    ));
                }
                if stream.is_websocket() {
                    // Only a browser opens its WebSocket connection.
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "no open WebSocket connection to the peer (the proxy cannot open one)",
                    ));
                }
                let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(peer))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                let _ = tcp.set_nodelay(true);
                let local = tcp.local_addr()?;
                let tx = if stream == Transport::Tls {
                    let connector = self.tls_connector.as_ref().ok_or_else(|| {
                        io::Error::other("outgoing TLS needs CA certificates configured")
                    })?;
                    let name = rustls_pki_types::ServerName::IpAddress(peer.ip().into());
                    let tls =
                        tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
                            .await
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                            })??;
                    self.adopt(tls, Transport::Tls, local, peer, on_message.clone(), limits, None)?
                } else {
                    self.adopt(tcp, Transport::Tcp, local, peer, on_message.clone(), limits, None)?
                };
                tx.send(data).await.map_err(|_| io::Error::other("connection closed"))
            }
        }
    }

    /// Registers a stream connection (TCP or TLS, accepted or opened) and
    /// starts its reader and writer tasks. Returns the sender that writes to it.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt<S>(
        self: &Arc<Self>,
        stream: S,
        transport: Transport,
        local: SocketAddr,
        peer: SocketAddr,
        on_message: Arc<dyn Fn(Bytes, Inbound) + Send + Sync>,
        limits: ParseLimits,
        slot: Option<SourceSlot>,
    ) -> io::Result<mpsc::Sender<Bytes>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let max_buffer = self.tcp_buffer;
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        self.register(transport, peer, tx.clone())?;
        let (mut rd, mut wr) = tokio::io::split(stream);
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if wr.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let table = Arc::clone(self);
        let pong = tx.clone();
        tokio::spawn(async move {
            let inbound = Inbound { transport, local, peer };
            // Every idle connection holds this buffer: 4 KiB holds the
            // usual SIP message whole (2–3 of them per read), and it grows
            // for a larger one (it is reclaimed once the messages split
            // off it are dropped).
            let mut buf = BytesMut::with_capacity(4096);
            'conn: loop {
                match tokio::time::timeout(TCP_IDLE, rd.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
                loop {
                    match frame_stream(&buf, &limits) {
                        Frame::Message(len) => on_message(buf.split_to(len).freeze(), inbound),
                        Frame::KeepAlive(len) => {
                            // RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong.
                            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                                let _ = pong.try_send(Bytes::from_static(b"\r\n"));
                            }
                            let _ = buf.split_to(len);
                        }
                        Frame::Incomplete if buf.len() < max_buffer => break,
                        Frame::Incomplete | Frame::Invalid(_) => {
                            tracing::debug!(%peer, "closing stream connection: bad framing");
                            break 'conn;
                        }
                    }
                }
            }
            table.unregister(transport, peer, &pong);
            drop(slot);
        });
        Ok(tx)
    }

    /// Puts a connection's sender in the table, where sends to `peer` over
    /// `transport` find it; refused past the connection limit.
    pub fn register(
        &self,
        transport: Transport,
        peer: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    ) -> io::Result<()> {
        let mut conns = self.connections.lock().unwrap();
        if conns.len() >= self.max_connections {
            return Err(io::Error::other("too many connections"));
        }
        conns.insert((transport, peer), tx);
        Ok(())
    }

    /// Takes a closed connection out of the table (unless another one to
    /// the same peer has replaced it).
    pub fn unregister(&self, transport: Transport, peer: SocketAddr, tx: &mpsc::Sender<Bytes>) {
        let mut conns = self.connections.lock().unwrap();
        if conns.get(&(transport, peer)).is_some_and(|t| t.same_channel(tx)) {
            conns.remove(&(transport, peer));
        }
    }

    /// Number of open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }
}

/// Binds `count` blocking UDP sockets to one address with `SO_REUSEPORT`,
/// one per receive thread (see [`super::udp`]).
///
/// The kernel spreads datagrams over the group by a hash of the sender's
/// address and port, so everything one peer sends lands on one socket and
/// is handled in order by one thread (a 180 never overtakes its 200), while
/// different peers spread over the cores. Port 0 binds the first socket to
/// an ephemeral port and the rest to that same port.
///
/// A fixed port someone already holds is refused, even when the holder's
/// sockets would let this group join theirs: two proxies in one
/// `SO_REUSEPORT` group would split the datagrams between two separate
/// transaction and location tables. (A probe bound without either reuse
/// option fails on any socket bound there.)
pub fn bind_udp_group(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    if addr.port() != 0 {
        probe_udp(addr)?;
    }
    let first = bind_udp(addr, count > 1)?;
    let addr = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind_udp(addr, true)?);
    }
    Ok(group)
}

/// Fails with `AddrInUse`, naming the holder when it can be found, when a
/// socket is bound to `addr` (or to its port on the wildcard address).
fn probe_udp(addr: SocketAddr) -> io::Result<()> {
    let domain = socket2::Domain::for_address(addr);
    let probe = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let holder = super::holder::udp_holder(addr)
                .map(|(pid, cmd)| format!(" by process {pid} ({cmd})"))
                .unwrap_or_default();
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("udp {addr} is already served{holder}; one proxy serves an address"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Binds one blocking UDP socket with large buffers.
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Binds a TCP listener with address reuse.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Sends `datagrams` from `sock` in one `sendmmsg` and says how many the
/// kernel took: all of them, or those before the first that failed (0 when
/// the call itself failed), which the caller sends again one at a time.
fn send_many(sock: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> usize {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use smallvec::SmallVec;
    use std::io::IoSlice;
    let addrs: SmallVec<[SocketAddrAny; 4]> =
        datagrams.iter().map(|(p, _)| SocketAddrAny::from(*p)).collect();
    let iovs: SmallVec<[[IoSlice<'_>; 1]; 4]> =
        datagrams.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    let mut controls: SmallVec<[SendAncillaryBuffer<'_, '_, '_>; 4]> =
        datagrams.iter().map(|_| SendAncillaryBuffer::default()).collect();
    let mut messages: SmallVec<[MMsgHdr<'_>; 4]> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    rustix::net::sendmmsg(sock, &mut messages, SendFlags::empty()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn listener() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn read(s: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// A batch reaches every peer, in order, and a datagram no socket can
    /// carry (IPv6 from an IPv4-only proxy) fails alone with its own error.
    #[test]
    fn a_batch_of_datagrams_arrives_whole_and_in_order() {
        let out = Outbound::new(vec![Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap())], vec![]);
        let (a, b) = (listener(), listener());
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut failures = Vec::new();
        let batch = [(pa, &b"one"[..]), (pb, &b"two"[..]), (pa, &b"three"[..])];
        out.send_udp_many(&batch, |i, e| failures.push((i, e.kind())));
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(read(&a), b"one");
        assert_eq!(read(&a), b"three");
        assert_eq!(read(&b), b"two");

        let v6: SocketAddr = "[::1]:5060".parse().unwrap();
        out.send_udp_many(&[(v6, &b"y"[..]), (pa, &b"x"[..])], |i, e| failures.push((i, e.kind())));
        assert_eq!(failures, [(0, io::ErrorKind::AddrNotAvailable)]);
        assert_eq!(read(&a), b"x");
        out.send_udp_many(&[], |_, _| panic!("nothing to send"));

        // The kernel refuses a datagram larger than UDP carries: where it
        // is first, `sendmmsg` fails whole; where it is second, it stops
        // after the first. Either way the others arrive and the refused one
        // is told, with its own error.
        let huge = vec![b'x'; 70_000];
        out.send_udp_many(&[(pa, &huge[..]), (pb, &b"after"[..])], |i, e| {
            failures.push((i, e.kind()))
        });
        out.send_udp_many(&[(pa, &b"before"[..]), (pb, &huge[..])], |i, e| {
            failures.push((i, e.kind()))
        });
        let too_big = io::Error::from_raw_os_error(90).kind(); // EMSGSIZE
        assert_eq!(failures[1..], [(0, too_big), (1, too_big)]);
        assert_eq!(read(&b), b"after");
        assert_eq!(read(&a), b"before");
    }
}
