//! HEP v3 capture for Homer (`module hep { destination = "udp:…"; }`):
//! every SIP message the proxy receives and sends goes, as it was on the
//! wire, to a HEP collector (heplify-server, Homer), with its addresses,
//! ports, transport, time and Call-ID.
//!
//! A HEP v3 packet is `HEP3`, its total length (16 bits), then chunks, each
//! a vendor (0: generic), a type, its own length with its 6-byte header, and
//! the value, all big-endian. The chunk types sipc writes are those of the
//! HEP v3 specification ("HEP3 Network Protocol Specification", sipcapture):
//!
//! | type | value |
//! |---|---|
//! | 0x0001 | IP family: 2 IPv4, 10 IPv6 (u8) |
//! | 0x0002 | IP protocol: 17 UDP, 6 TCP (TLS too) (u8) |
//! | 0x0003 / 0x0004 | IPv4 source / destination (4 bytes) |
//! | 0x0005 / 0x0006 | IPv6 source / destination (16 bytes) |
//! | 0x0007 / 0x0008 | source / destination port (u16) |
//! | 0x0009 / 0x000a | time: seconds / microseconds (u32) |
//! | 0x000b | protocol type: 1 SIP (u8) |
//! | 0x000c | capture agent id (u32) |
//! | 0x000e | authentication key (string, when `password` is set) |
//! | 0x000f | the captured message |
//! | 0x0011 | correlation id: the Call-ID |
//!
//! Two ways to the collector, both of which never make a worker wait:
//!
//! - `udp:IP:PORT`: one datagram per message from a non-blocking socket;
//!   a packet the kernel will not take now is counted and dropped. Each
//!   message costs one more system call and one more datagram through the
//!   kernel, about as much as relaying the message itself.
//! - `tcp:IP:PORT`: packets are appended to a buffer (HEP v3 packets carry
//!   their length, so they follow each other on a stream as they are), and
//!   a writer thread sends what has gathered every [`FLUSH_EVERY`], many
//!   packets to a write. The worker's cost is the encoding into the buffer;
//!   the collector sees a message at most a few tens of milliseconds late.
//!   Past [`MAX_BUFFERED`] (a collector that is down or slow) packets are
//!   counted and dropped; the writer reconnects once a second.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::transport::Transport;

/// One captured message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub transport: Transport,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub time: SystemTime,
    pub payload: &'a [u8],
    /// The Call-ID, for Homer to put the messages of a call together.
    pub call_id: Option<&'a str>,
}

fn chunk(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// `p` as a HEP v3 packet, appended to `out`.
pub fn encode(p: &Packet<'_>, capture_id: u32, password: Option<&str>, out: &mut Vec<u8>) {
    let start = out.len();
    // Chunks are 6-byte headers and short values besides the message.
    out.reserve(p.payload.len() + p.call_id.map_or(0, str::len) + 128);
    out.extend_from_slice(b"HEP3\0\0");
    // Mixed families (an IPv4-mapped peer of an IPv6 socket) go as IPv6.
    let (src, dst) = match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            chunk(out, 0x0001, &[2]);
            chunk(out, 0x0002, &[protocol(p.transport)]);
            chunk(out, 0x0003, &s.octets());
            chunk(out, 0x0004, &d.octets());
        }
        (s, d) => {
            chunk(out, 0x0001, &[10]);
            chunk(out, 0x0002, &[protocol(p.transport)]);
            chunk(out, 0x0005, &to_v6(s).octets());
            chunk(out, 0x0006, &to_v6(d).octets());
        }
    }
    chunk(out, 0x0007, &p.src.port().to_be_bytes());
    chunk(out, 0x0008, &p.dst.port().to_be_bytes());
    let since = p.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    chunk(out, 0x0009, &(since.as_secs() as u32).to_be_bytes());
    chunk(out, 0x000a, &since.subsec_micros().to_be_bytes());
    chunk(out, 0x000b, &[1]);
    chunk(out, 0x000c, &capture_id.to_be_bytes());
    if let Some(key) = password {
        chunk(out, 0x000e, key.as_bytes());
    }
    if let Some(call_id) = p.call_id {
        chunk(out, 0x0011, call_id.as_bytes());
    }
    chunk(out, 0x000f, p.payload);
    let len = (out.len() - start) as u16;
    out[start + 4..start + 6].copy_from_slice(&len.to_be_bytes());
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn protocol(t: Transport) -> u8 {
    match t {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => 6,
    }
}

/// Where captured messages go: `module hep`.
#[derive(Debug)]
pub struct HepSender {
    link: Link,
    capture_id: u32,
    password: Option<String>,
    /// Capture every message unless a route says otherwise
    /// (`hep_capture(false)`); false: only where a route says so.
    pub capture_all: bool,
    pub stats: Arc<HepStats>,
}

/// Packets the collector got, and packets dropped on the way.
#[derive(Debug, Default)]
pub struct HepStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Debug)]
enum Link {
    Udp(UdpSocket),
    Tcp(Arc<Mutex<Batch>>),
}

/// Packets waiting for the TCP writer.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    packets: u64,
}

/// HEP packets of messages up to 64 KiB fit a UDP datagram.
const MAX_PACKET: usize = 65_507;

/// How often the TCP writer sends what has gathered: at 14,000 messages a
/// second (1,000 calls a second) that is some 280 packets to a write.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// What the TCP buffer holds at most while the collector is away or slow
/// (some 8,000 packets of 1 KiB); more is dropped and counted.
pub const MAX_BUFFERED: usize = 8 << 20;

impl HepSender {
    /// A sender to `destination`: `udp:IP:PORT` (or `IP:PORT`) or
    /// `tcp:IP:PORT`.
    pub fn new(
        destination: &str,
        capture_id: u32,
        password: Option<String>,
        capture_all: bool,
    ) -> Result<HepSender, String> {
        let (tcp, addr) = match destination.strip_prefix("tcp:") {
            Some(a) => (true, a),
            None => (false, destination.strip_prefix("udp:").unwrap_or(destination)),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| {
            format!(
                "module hep: destination = \"{destination}\" is not `udp:IP:PORT` or `tcp:IP:PORT` \
                 (e.g. \"udp:127.0.0.1:9060\")"
            )
        })?;
        let stats = Arc::new(HepStats::default());
        let link = if tcp {
            let batch = Arc::new(Mutex::new(Batch::default()));
            let weak = Arc::downgrade(&batch);
            let st = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("sipc-hep".into())
                .spawn(move || tcp_writer(addr, weak, &st))
                .map_err(|e| format!("module hep: cannot start the writer: {e}"))?;
            Link::Tcp(batch)
        } else {
            let local: SocketAddr =
                if addr.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }
                    .map_err(|e| format!("{e}"))?;
            let sock = UdpSocket::bind(local)
                .and_then(|s| s.connect(addr).map(|_| s))
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
                .map_err(|e| format!("module hep: cannot send to {addr}: {e}"))?;
            Link::Udp(sock)
        };
        Ok(HepSender { link, capture_id, password, capture_all, stats })
    }

    /// Sends one captured message (UDP), or queues it for the writer (TCP).
    pub fn capture(&self, p: &Packet<'_>) {
        match &self.link {
            Link::Udp(sock) => {
                let mut buf = Vec::with_capacity(p.payload.len() + 128);
                encode(p, self.capture_id, self.password.as_deref(), &mut buf);
                if buf.len() > MAX_PACKET || sock.send(&buf).is_err() {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Link::Tcp(batch) => {
                let mut b = batch.lock().unwrap_or_else(|e| e.into_inner());
                let before = b.bytes.len();
                if before + p.payload.len() <= MAX_BUFFERED {
                    encode(p, self.capture_id, self.password.as_deref(), &mut b.bytes);
                    // The 16-bit length must hold, or the stream loses its
                    // framing for every packet after this one.
                    if b.bytes.len() - before <= MAX_PACKET {
                        b.packets += 1;
                        return;
                    }
                    b.bytes.truncate(before);
                }
                drop(b);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The TCP writer: every [`FLUSH_EVERY`] it takes what has gathered and
/// writes it, reconnecting (at most once a second) when the collector
/// went away; what cannot be written is counted as dropped. It ends when
/// its sender is dropped (a reload that changes `module hep`).
fn tcp_writer(addr: SocketAddr, batch: Weak<Mutex<Batch>>, stats: &HepStats) {
    let mut stream: Option<TcpStream> = None;
    let mut last_try: Option<std::time::Instant> = None;
    let mut spare = Vec::new();
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(batch) = batch.upgrade() else { return };
        let packets = {
            let mut b = batch.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut b.bytes, &mut spare);
            std::mem::take(&mut b.packets)
        };
        drop(batch);
        if packets == 0 {
            continue;
        }
        if stream.is_none() && last_try.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_try = Some(std::time::Instant::now());
            stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .and_then(|s| {
                    s.set_nodelay(true)?;
                    s.set_write_timeout(Some(Duration::from_secs(1)))?;
                    Ok(s)
                })
                .map_err(|e| tracing::debug!(%addr, "hep: cannot connect: {e}"))
                .ok();
        }
        let written = match stream.as_mut() {
            Some(s) => match s.write_all(&spare) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(%addr, "hep: write failed, reconnecting: {e}");
                    stream = None;
                    false
                }
            },
            None => false,
        };
        let counter = if written { &stats.sent } else { &stats.dropped };
        counter.fetch_add(packets, Ordering::Relaxed);
        spare.clear();
        // A burst leaves a large buffer behind; give it back.
        if spare.capacity() > 1 << 20 {
            spare = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of a packet: `(type, value)`.
    fn chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len(), "total length");
        let mut out = Vec::new();
        let mut i = 6;
        while i < p.len() {
            assert_eq!(&p[i..i + 2], &[0, 0], "generic vendor");
            let kind = u16::from_be_bytes([p[i + 2], p[i + 3]]);
            let len = u16::from_be_bytes([p[i + 4], p[i + 5]]) as usize;
            out.push((kind, p[i + 6..i + len].to_vec()));
            i += len;
        }
        assert_eq!(i, p.len());
        out
    }

    #[test]
    fn an_ipv4_udp_message_has_the_chunks_of_the_specification() {
        let time = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let p = Packet {
            transport: Transport::Udp,
            src: "192.0.2.1:5062".parse().unwrap(),
            dst: "198.51.100.2:5060".parse().unwrap(),
            time,
            payload: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
            call_id: Some("abc@192.0.2.1"),
        };
        let mut buf = Vec::new();
        encode(&p, 7, Some("secret"), &mut buf);
        let c = chunks(&buf);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get(0x0001), [2]);
        assert_eq!(get(0x0002), [17]);
        assert_eq!(get(0x0003), [192, 0, 2, 1]);
        assert_eq!(get(0x0004), [198, 51, 100, 2]);
        assert_eq!(get(0x0007), 5062u16.to_be_bytes());
        assert_eq!(get(0x0008), 5060u16.to_be_bytes());
        assert_eq!(get(0x0009), 1_700_000_000u32.to_be_bytes());
        assert_eq!(get(0x000a), 123_456u32.to_be_bytes());
        assert_eq!(get(0x000b), [1]);
        assert_eq!(get(0x000c), 7u32.to_be_bytes());
        assert_eq!(get(0x000e), b"secret");
        assert_eq!(get(0x0011), b"abc@192.0.2.1");
        assert_eq!(get(0x000f), p.payload);
    }

    #[test]
    fn ipv6_and_tcp() {
        let p = Packet {
            transport: Transport::Tls,
            src: "[2001:db8::1]:5061".parse().unwrap(),
            dst: "192.0.2.9:5061".parse().unwrap(),
            time: SystemTime::now(),
            payload: b"x",
            call_id: None,
        };
        let mut buf = Vec::new();
        encode(&p, 1, None, &mut buf);
        let c = chunks(&buf);
        assert_eq!(c[0], (0x0001, vec![10]));
        assert_eq!(c[1], (0x0002, vec![6]));
        assert_eq!(c[2].1.len(), 16);
        assert_eq!(
            c[3],
            (0x0006, "::ffff:192.0.2.9".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec())
        );
        assert!(!c.iter().any(|(t, _)| *t == 0x0011 || *t == 0x000e));
    }
}
