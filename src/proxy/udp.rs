//! UDP: a blocking receive thread per socket, routing each datagram inline.
//!
//! Each `listen udp` is a group of `SO_REUSEPORT` sockets, one per routing
//! worker (see [`super::transport::bind_udp_group`]); each socket has a
//! thread of its own that sleeps in `recvfrom`, then parses, routes and sends
//! the datagram before reading the next. Why threads rather than tokio tasks:
//! a datagram costs a blocked thread one wake-up and two system calls
//! (`recvfrom`, `sendto`), where a task also pays the reactor's `epoll_wait`,
//! a receive that finds the socket empty, and often a second worker thread
//! woken to steal the task. On the end-to-end benchmark (one worker, SIPp at
//! 1,000 calls/s) that is about a seventh of the proxy's CPU per call.
//! Everything that waits (TCP and TLS sends, name resolution, transaction
//! timers) still runs on tokio: the thread hands those steps to the runtime
//! and reads on.
//!
//! The bounded queue in front of routing is the socket's receive buffer
//! (4 MiB asked for; the kernel caps it at `net.core.rmem_max`), so memory
//! cannot grow however hard the proxy is pushed. Overload
//! shows as time spent in that queue: the kernel stamps each datagram on
//! arrival (`SO_TIMESTAMPNS`), and a request that waited longer than the
//! configured bound is answered `503` with `Retry-After` without being
//! routed, which drains the backlog fast (responses and ACKs that waited too
//! long are dropped: their senders retransmit what must arrive).

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

use super::core::Core;
use super::transport::{Inbound, Transport};

/// The receive threads of every UDP socket.
#[derive(Debug)]
pub struct Receivers {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
    threads: Vec<JoinHandle<()>>,
}

impl Receivers {
    /// Starts one thread per socket. Steps that wait are spawned on
    /// `runtime`; a request that waited longer than `max_wait` in the
    /// socket's queue is answered 503.
    pub fn start(
        core: &Arc<Core>,
        sockets: &[Arc<UdpSocket>],
        runtime: tokio::runtime::Handle,
        max_wait: Duration,
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Receivers { stop, sockets: sockets.to_vec(), threads: Vec::new() };
        for (i, sock) in sockets.iter().enumerate() {
            let local = sock.local_addr()?;
            // A timeout bounds how long a thread can miss the stop flag if
            // shutting down the socket does not wake it.
            sock.set_read_timeout(Some(Duration::from_secs(1)))?;
            setsockopt(sock.as_ref(), sockopt::ReceiveTimestampns, &true)?;
            let (core, sock, stop, runtime) =
                (Arc::clone(core), Arc::clone(sock), Arc::clone(&receivers.stop), runtime.clone());
            let thread =
                std::thread::Builder::new().name(format!("sipc-udp-{i}")).spawn(move || {
                    let _rt = runtime.enter();
                    serve(&core, &sock, local, &stop, max_wait);
                })?;
            receivers.threads.push(thread);
        }
        Ok(receivers)
    }

    /// Tells every thread to stop after the datagram it is routing.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Release);
        for sock in &self.sockets {
            // Wakes a thread blocked in recvfrom (Linux wakes readers of an
            // unconnected UDP socket even though it reports ENOTCONN).
            let _ = socket2::SockRef::from(sock.as_ref()).shutdown(std::net::Shutdown::Read);
        }
    }

    /// Stops the threads and waits for them, at most until `deadline`.
    pub async fn stop(mut self, deadline: tokio::time::Instant) {
        self.signal_stop();
        let threads = std::mem::take(&mut self.threads);
        while threads.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn serve(core: &Arc<Core>, sock: &UdpSocket, local: SocketAddr, stop: &AtomicBool, max: Duration) {
    let mut buf = vec![0u8; 65_536];
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut filter = BanFilter::default();
    let mut stamps = Stamps::new(max);
    while !stop.load(Ordering::Acquire) {
        let received = stamps.receive(sock, &mut buf, &mut control);
        let bans = &core.services().bans;
        filter.refresh(bans, sock, local);
        let Some(Datagram { len, peer, waited }) = received else {
            continue;
        };
        if stop.load(Ordering::Acquire) {
            break;
        }
        // A banned source the kernel filter does not hold (yet, or beyond
        // its size, or IPv6) costs its receive and this lookup, nothing more.
        if bans.drops(peer.ip()) {
            continue;
        }
        let inbound = Inbound { transport: Transport::Udp, local, peer };
        let data = Bytes::copy_from_slice(&buf[..len]);
        // A bug on one message's path must not end this thread: its socket's
        // peers would go unanswered from then on.
        let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if waited > max {
                core.shed(data, inbound);
            } else {
                core.handle_now(data, inbound);
            }
        }));
        if routed.is_err() {
            core.stats.dropped_malformed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%peer, "routing a datagram panicked; it is dropped, the socket keeps serving");
        }
    }
}

/// The ban filter a receive thread keeps on its socket
/// ([`crate::security::filter`]).
#[derive(Default)]
struct BanFilter {
    /// The ban table generation the filter was built from.
    generation: u64,
    /// When the earliest ban in the filter runs out.
    until: Option<std::time::Instant>,
    /// Installing failed once (logged); the threads drop in user space.
    failed: bool,
}

impl BanFilter {
    /// Rebuilds the filter if the bans changed or one in it expired.
    fn refresh(&mut self, bans: &crate::security::Bans, sock: &UdpSocket, local: SocketAddr) {
        // A ban in the filter ran out (or was renewed: the snapshot then
        // brings the later deadline).
        let expired = self.until.is_some_and(|u| std::time::Instant::now() >= u);
        if expired {
            bans.sweep(std::time::Instant::now());
        }
        let generation = bans.generation();
        if (generation == self.generation && !expired) || self.failed || !local.is_ipv4() {
            return;
        }
        let (banned, until) = bans.ipv4_snapshot(crate::security::filter::MAX_FILTERED);
        match crate::security::filter::install_with(sock, &banned, &bans.listed_v4()) {
            Ok(()) => {
                self.generation = generation;
                self.until = until;
            }
            Err(e) => {
                self.failed = true;
                tracing::warn!(
                    "cannot install the ban filter on {local}: {e}; banned sources are dropped after receiving"
                );
            }
        }
    }
}

/// When a receive thread reads a datagram's arrival stamp.
///
/// Reading it takes `recvmsg` and a control message where `recvfrom` does
/// without: about 2% of the stateful proxy's CPU per call, on the
/// end-to-end benchmark, for a figure that matters only under overload. So
/// the stamp is read on the first datagram after a quarter of the bound
/// has passed since the last stamped one, and on every datagram while the
/// last stamp showed a wait over three quarters of it. That keeps the
/// bound exact: the queue is first in, first out, so a datagram read `d`
/// after one that had waited `w` has waited at most `w + d`, under the
/// bound whenever it is read unstamped.
struct Stamps {
    /// A quarter of the bound: the longest run of unstamped reads.
    every: Duration,
    /// Three quarters of it: a longer wait stamps every datagram.
    backlog: Duration,
    /// When the last stamped datagram was read (`None`: stamp the next).
    last: Option<std::time::Instant>,
}

impl Stamps {
    fn new(max: Duration) -> Self {
        Stamps { every: max / 4, backlog: max - max / 4, last: None }
    }

    /// Reads one datagram, with its stamp when [`Stamps::wanted`] says so.
    fn receive(
        &mut self,
        sock: &UdpSocket,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> Option<Datagram> {
        if !self.wanted(std::time::Instant::now()) {
            return receive_unstamped(sock, buf);
        }
        let d = receive(sock, buf, control);
        self.read(d.as_ref().map(|d| d.waited), std::time::Instant::now());
        d
    }

    /// Whether the datagram read `now` is to be read with its stamp.
    fn wanted(&self, now: std::time::Instant) -> bool {
        self.last.is_none_or(|at| now.saturating_duration_since(at) >= self.every)
    }

    /// A stamped read returned at `now`, with the datagram's wait if one
    /// was read (none: a timeout or an error; the next read is stamped).
    fn read(&mut self, waited: Option<Duration>, now: std::time::Instant) {
        self.last = match waited {
            Some(w) if w <= self.backlog => Some(now),
            _ => None,
        };
    }
}

/// Reads one datagram without its arrival stamp (see [`Stamps`]), like
/// [`receive`] otherwise.
fn receive_unstamped(sock: &UdpSocket, buf: &mut [u8]) -> Option<Datagram> {
    match sock.recv_from(buf) {
        Ok((len, peer)) => Some(Datagram { len, peer, waited: Duration::ZERO }),
        Err(e) => {
            tracing::trace!("udp recv: {e}");
            None
        }
    }
}

/// One received datagram: its length in the buffer, its sender, and how
/// long it waited in the socket's queue.
struct Datagram {
    len: usize,
    peer: SocketAddr,
    waited: Duration,
}

/// Reads one datagram, blocking. `None` on timeouts, errors (ICMP errors
/// from earlier sends surface here), a socket shut down for stopping, and
/// senders that are not IP.
fn receive(sock: &UdpSocket, buf: &mut [u8], control: &mut [u8]) -> Option<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::empty(),
    ) {
        Ok(m) => m,
        Err(e) => {
            tracing::trace!("udp recv: {e}");
            return None;
        }
    };
    let addr = msg.address?;
    let peer = match addr.family()? {
        nix::sys::socket::AddressFamily::Inet => SocketAddr::V4((*addr.as_sockaddr_in()?).into()),
        nix::sys::socket::AddressFamily::Inet6 => SocketAddr::V6((*addr.as_sockaddr_in6()?).into()),
        _ => return None,
    };
    let arrived = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    });
    Some(Datagram { len: msg.bytes, peer, waited: arrived.map_or(Duration::ZERO, queued_for) })
}

/// Time since the kernel stamped a datagram on arrival. The stamp is wall
/// clock time; a clock stepped backwards reads as no wait, and one stepped
/// forwards by more than a minute is not believed either. "Now" is read from
/// the coarse clock (one tick, a few milliseconds, of resolution; no
/// hardware clock read), plenty against a bound of a tenth of a second.
fn queued_for(arrived: TimeSpec) -> Duration {
    let arrived = Duration::from(arrived);
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE)
        .map(Duration::from)
        .or_else(|_| SystemTime::now().duration_since(UNIX_EPOCH))
        .unwrap_or_default();
    match now.checked_sub(arrived) {
        Some(d) if d < Duration::from_secs(60) => d,
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::transport::bind_udp_group;

    #[test]
    fn one_peer_lands_on_one_socket_of_the_group_in_order() {
        let group = bind_udp_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|s| s.local_addr().unwrap().port() == port));
        for s in &group {
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            setsockopt(s, sockopt::ReceiveTimestampns, &true).unwrap();
        }
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..50u8 {
            peer.send_to(&[i], group[0].local_addr().unwrap()).unwrap();
        }
        let (mut buf, mut control) = ([0u8; 16], nix::cmsg_space!(TimeSpec));
        let mut per_socket = Vec::new();
        for s in &group {
            let mut got = Vec::new();
            while let Some(d) = receive(s, &mut buf, &mut control) {
                assert_eq!(d.peer, peer.local_addr().unwrap());
                assert!(d.waited < Duration::from_secs(5), "stamped on arrival: {:?}", d.waited);
                got.push(buf[0]);
            }
            per_socket.push(got);
        }
        per_socket.sort();
        assert!(per_socket[..2].iter().all(Vec::is_empty), "all on one socket");
        assert_eq!(per_socket[2], (0..50).collect::<Vec<u8>>(), "in the order sent");
    }

    /// Stamps are read once a quarter of the bound has passed, and on
    /// every datagram while the waits come near it, so no datagram read
    /// unstamped can have waited past the bound.
    #[test]
    fn stamps_are_read_often_enough_to_hold_the_bound() {
        let ms = Duration::from_millis;
        let t0 = std::time::Instant::now();
        let mut stamps = Stamps::new(ms(200));
        assert!(stamps.wanted(t0), "the first datagram is stamped");
        stamps.read(Some(ms(10)), t0);
        assert!(!stamps.wanted(t0 + ms(49)));
        assert!(stamps.wanted(t0 + ms(50)), "a quarter of the bound since the last stamp");
        // A wait over three quarters: every datagram is stamped until one
        // shows a shorter wait.
        stamps.read(Some(ms(151)), t0 + ms(50));
        assert!(stamps.wanted(t0 + ms(50)));
        stamps.read(Some(ms(150)), t0 + ms(51));
        assert!(!stamps.wanted(t0 + ms(51)));
        // A timeout (no datagram) stamps the next one.
        stamps.read(None, t0 + ms(60));
        assert!(stamps.wanted(t0 + ms(60)));
    }

    #[test]
    fn waits_are_measured_from_the_kernel_stamp_and_clock_steps_are_not_believed() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ago = |d: Duration| TimeSpec::from(now - d);
        let waited = queued_for(ago(Duration::from_millis(300)));
        // The coarse clock may lag the stamp by a tick.
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5));
        assert_eq!(queued_for(TimeSpec::from(now + Duration::from_secs(10))), Duration::ZERO);
        assert_eq!(queued_for(ago(Duration::from_secs(3600))), Duration::ZERO);
    }
}
