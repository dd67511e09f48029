//! Transports: UDP sockets, TCP listeners and the table of TCP connections.
//!
//! A received message reaches [`Core::handle`](super::core::Core::handle)
//! with the [`Inbound`] it arrived on; everything sent goes through
//! [`Outbound::send`], which picks the UDP socket of the right address
//! family or the TCP connection to the peer (reusing an open one, in either
//! direction, as RFC 3261 §18 asks, and opening one otherwise).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::sip::{Frame, ParseLimits, frame_stream};

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The token used in Via headers.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Parses a lowercase transport name (`udp`, `tcp`).
    pub fn from_name(name: &str) -> Option<Transport> {
        match name {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            _ => None,
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

/// Bytes one TCP connection may buffer before a message is complete.
const TCP_BUFFER: usize = 128 * 1024;

/// Everything that sends: the UDP sockets and the TCP connection table.
#[derive(Debug, Default)]
pub struct Outbound {
    udp: Vec<Arc<UdpSocket>>,
    tcp_listen: Vec<SocketAddr>,
    connections: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
}

impl Outbound {
    pub fn new(udp: Vec<Arc<UdpSocket>>, tcp_listen: Vec<SocketAddr>) -> Self {
        Self { udp, tcp_listen, connections: Mutex::new(HashMap::new()) }
    }

    /// The local address messages to `peer` leave from on `transport`, as it
    /// goes in a Via sent-by or a Record-Route.
    pub fn local_addr(&self, transport: Transport, peer: SocketAddr) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.udp_for(peer).and_then(|s| s.local_addr().ok()),
            Transport::Tcp => {
                self.tcp_listen.iter().copied().find(|a| a.is_ipv4() == peer.is_ipv4())
            }
        }
    }

    fn udp_for(&self, peer: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.udp.iter().find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == peer.is_ipv4()))
    }

    /// Sends `data` to `peer`.
    pub async fn send(
        self: &Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
        data: Bytes,
        on_message: &Arc<dyn Fn(Bytes, Inbound) + Send + Sync>,
        limits: ParseLimits,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => {
                let sock = self.udp_for(peer).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "no UDP socket for that family")
                })?;
                sock.send_to(&data, peer).await.map(|_| ())
            }
            Transport::Tcp => {
                let existing = self.connections.lock().unwrap().get(&peer).cloned();
                if let Some(tx) = existing {
                    if tx.send(data.clone()).await.is_ok() {
                        return Ok(());
                    }
                }
                let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(peer))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                let tx = self.adopt(stream, on_message.clone(), limits)?;
                tx.send(data).await.map_err(|_| io::Error::other("connection closed"))
            }
        }
    }

    /// Registers a TCP connection (accepted or opened) and starts its reader
    /// and writer tasks. Returns the sender that writes to it.
    pub fn adopt(
        self: &Arc<Self>,
        stream: TcpStream,
        on_message: Arc<dyn Fn(Bytes, Inbound) + Send + Sync>,
        limits: ParseLimits,
    ) -> io::Result<mpsc::Sender<Bytes>> {
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        self.connections.lock().unwrap().insert(peer, tx.clone());
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if wr.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
        let table = Arc::clone(self);
        let pong = tx.clone();
        tokio::spawn(async move {
            let inbound = Inbound { transport: Transport::Tcp, local, peer };
            let mut buf = BytesMut::with_capacity(8192);
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
                        Frame::Incomplete if buf.len() < TCP_BUFFER => break,
                        Frame::Incomplete | Frame::Invalid(_) => {
                            tracing::debug!(%peer, "closing TCP connection: bad framing");
                            break 'conn;
                        }
                    }
                }
            }
            let mut conns = table.connections.lock().unwrap();
            if conns.get(&peer).is_some_and(|t| t.same_channel(&pong)) {
                conns.remove(&peer);
            }
        });
        Ok(tx)
    }

    /// Number of open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }
}

/// Binds a UDP socket with address reuse and large buffers.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
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
