//! The ng protocol client: requests to rtpengine instances over UDP.
//!
//! A message is a cookie, one space and a bencoded dictionary; the reply
//! carries the request's cookie. The client owns one UDP socket per
//! address family (an ephemeral port) and one receive task that matches
//! replies to waiting requests by cookie and by the instance they were sent
//! to; a datagram with an unknown cookie (a reply that came after its
//! request gave up, or anything else) is counted and dropped.
//!
//! A request goes to the live instance its Call-ID hashes to
//! ([`super::instances`]). It is sent with a fresh cookie and, when no
//! reply comes within `timeout`, sent again `retries` times with the same
//! cookie: rtpengine keeps its recent replies by cookie and answers a
//! retransmission from them instead of running the command twice, and a
//! late reply to the first send still matches. When the instance never
//! answers it is marked down and the request moves to the next live
//! instance with a new cookie. A down instance is pinged in the background
//! every `ping_interval` until it answers, then it is up again. With no
//! live instance a request fails at once.
//!
//! Each cookie is a per-client random prefix and a counter, so a restarted
//! proxy does not send cookies rtpengine still has replies for.
//!
//! Route code is synchronous (docs/architecture.md): [`NgClient::request_sync`]
//! does the whole exchange on the calling thread with a socket of that
//! thread's own (one `sendto`, one `recvfrom`, no hand-over to another
//! thread), the way Kamailio's module does it in its worker processes;
//! [`NgClient::request`] is the async form (background pings, tests) and
//! [`NgClient::request_blocking`] runs that on the client's runtime and
//! waits for it, bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::bencode::{self, Dict};
use super::instances::{Instance, InstanceSpec, InstanceStats, order_for};

/// Client settings.
#[derive(Debug, Clone)]
pub struct NgSettings {
    pub instances: Vec<InstanceSpec>,
    /// How long to wait for a reply to each datagram.
    pub timeout: Duration,
    /// Retransmissions to an instance after the first send, before failing over.
    pub retries: u32,
    /// How often a down instance is pinged.
    pub ping_interval: Duration,
}

impl NgSettings {
    /// The given instances with the default timing: 500 ms timeout, 2
    /// retries, a ping every second to down instances.
    pub fn new(instances: Vec<InstanceSpec>) -> Self {
        Self {
            instances,
            timeout: Duration::from_millis(500),
            retries: 2,
            ping_interval: Duration::from_secs(1),
        }
    }
}

/// Why a request has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    /// rtpengine answered `result` = `error`.
    #[error("rtpengine {instance}: {reason}")]
    Rtpengine { instance: SocketAddr, reason: String },
    /// The reply had the request's cookie but no usable dictionary.
    #[error("rtpengine {instance}: malformed reply: {detail}")]
    Malformed { instance: SocketAddr, detail: String },
    /// Every live instance was tried and none answered.
    #[error("no rtpengine answered (tried {})", list(.tried))]
    Timeout { tried: Vec<SocketAddr> },
    /// No instance is up.
    #[error("no rtpengine instance is up")]
    NoLiveInstance,
    /// The request could not be sent (a socket error).
    #[error("rtpengine {instance}: cannot send: {detail}")]
    Send { instance: SocketAddr, detail: String },
    /// [`NgClient::request_blocking`] waited its bound.
    #[error("no rtpengine result within {0:?}")]
    WaitExpired(Duration),
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A request waiting for its reply.
struct Waiter {
    from: SocketAddr,
    tx: oneshot::Sender<Vec<u8>>,
}

/// What the receive task shares with the client.
struct Shared {
    v4: Option<Arc<UdpSocket>>,
    v6: Option<Arc<UdpSocket>>,
    waiting: Mutex<HashMap<Vec<u8>, Waiter>>,
    /// Datagrams matched to no waiting request: late replies, garbage.
    stale: AtomicU64,
    /// How long the requests of route code took, send to result.
    latency: Latency,
}

/// Upper bounds (µs) of the latency histogram's buckets; the last bucket
/// holds everything slower.
const LATENCY_BOUNDS_US: [u64; 20] = [
    25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000,
    10_000, 100_000, 1_000_000,
];

/// A histogram of request durations: a count per bucket, lock-free.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
}

impl Latency {
    fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The bucket bound at or under which the fraction `q` of the requests
    /// fall (µs; `None` with no request, `u64::MAX` past the last bound).
    fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// What the requests of route code took: how many, and the bucket bounds
/// of the median and the 99th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub requests: u64,
    /// µs; the true value is at most this and above the bucket below.
    pub p50_us: u64,
    pub p99_us: u64,
}

thread_local! {
    /// The calling thread's sockets for [`NgClient::request_sync`] (IPv4,
    /// IPv6) and its receive buffer.
    static THREAD_SOCKETS: std::cell::RefCell<ThreadSockets> =
        std::cell::RefCell::new(ThreadSockets::default());
}

#[derive(Default)]
struct ThreadSockets {
    v4: Option<std::net::UdpSocket>,
    v6: Option<std::net::UdpSocket>,
    /// The receive timeout each socket has (set only when it changes: one
    /// system call less per request).
    timeout_v4: Option<Duration>,
    timeout_v6: Option<Duration>,
    buf: Vec<u8>,
}

impl Shared {
    fn socket(&self, to: SocketAddr) -> Option<&Arc<UdpSocket>> {
        if to.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() }
    }

    fn on_datagram(&self, data: &[u8], from: SocketAddr) {
        let matched = data.iter().position(|&c| c == b' ').and_then(|sp| {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let cookie = &data[..sp];
            if waiting.get(cookie).is_none_or(|w| w.from != from) {
                return None;
            }
            let w = waiting.remove(cookie)?;
            Some((w, sp))
        });
        match matched {
            // The requester may have given up meanwhile; then nobody reads it.
            Some((w, sp)) => drop(w.tx.send(data[sp + 1..].to_vec())),
            None => {
                self.stale.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, len = data.len(), "rtpengine: unmatched datagram dropped");
            }
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    instances: Vec<Instance>,
    timeout: Duration,
    retries: u32,
    ping_interval: Duration,
    prefix: String,
    next_cookie: AtomicU64,
    runtime: tokio::runtime::Handle,
    receivers: Vec<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for r in &self.receivers {
            r.abort();
        }
    }
}

/// The ng client. Cloning is cheap and shares the sockets, the instances'
/// state and the counters; the receive task ends when the last clone goes.
#[derive(Clone)]
pub struct NgClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgClient").field("instances", &self.stats()).finish()
    }
}

impl NgClient {
    /// Binds the client's sockets and starts its receive task on the
    /// current tokio runtime (an error outside one).
    pub fn new(settings: NgSettings) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| std::io::Error::other(format!("rtpengine client: {e}")))?;
        if settings.instances.is_empty() {
            return Err(std::io::Error::other("rtpengine client: no instance configured"));
        }
        let _enter = runtime.enter();
        let bind = |any: &str| -> std::io::Result<Arc<UdpSocket>> {
            let s = std::net::UdpSocket::bind(any)?;
            s.set_nonblocking(true)?;
            Ok(Arc::new(UdpSocket::from_std(s)?))
        };
        let has = |v4: bool| settings.instances.iter().any(|i| i.addr.is_ipv4() == v4);
        let v4 = if has(true) { Some(bind("0.0.0.0:0")?) } else { None };
        let v6 = if has(false) { Some(bind("[::]:0")?) } else { None };
        let shared = Arc::new(Shared {
            v4: v4.clone(),
            v6: v6.clone(),
            waiting: Mutex::new(HashMap::new()),
            stale: AtomicU64::new(0),
            latency: Latency::default(),
        });
        let receivers = [v4, v6]
            .into_iter()
            .flatten()
            .map(|sock| runtime.spawn(receive(sock, Arc::downgrade(&shared))).abort_handle())
            .collect();
        let mut seed = [0u8; 4];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                instances: settings.instances.into_iter().map(Instance::new).collect(),
                timeout: settings.timeout,
                retries: settings.retries,
                ping_interval: settings.ping_interval,
                prefix: format!("{:08x}", u32::from_be_bytes(seed)),
                next_cookie: AtomicU64::new(1),
                runtime,
                receivers,
            }),
        })
    }

    /// Sends `command` (a dictionary with at least `command`) for the call
    /// `call_id` and returns rtpengine's reply dictionary when its `result`
    /// is `ok` or `pong`. A dictionary without `call-id` gets `call_id`
    /// (unless it is empty, e.g. for `ping`).
    pub async fn request(&self, call_id: &str, command: Dict) -> Result<Dict, NgError> {
        let (body, order) = self.prepare(call_id, command)?;
        let mut tried = Vec::new();
        for n in order {
            // Another request may have found it down meanwhile.
            if !self.inner.instances[n].is_up() && !tried.is_empty() {
                continue;
            }
            let inst = &self.inner.instances[n];
            let outcome = self.exchange(inst, &body, self.inner.retries).await;
            let read = outcome.map(|reply| result(inst, &reply, None));
            if let Some(done) = self.settle(n, read, &mut tried) {
                return done;
            }
        }
        Err(NgError::Timeout { tried })
    }

    /// The encoded command (with `call-id` added when missing and `call_id`
    /// is not empty) and the live instances to try, in the call's order.
    fn prepare(&self, call_id: &str, mut command: Dict) -> Result<(Vec<u8>, Vec<usize>), NgError> {
        if !call_id.is_empty() && !command.contains_key("call-id") {
            command.insert("call-id", call_id);
        }
        let order = order_for(&self.inner.instances, call_id);
        if order.is_empty() {
            return Err(NgError::NoLiveInstance);
        }
        Ok((command.encode(), order))
    }

    /// What one instance's exchange means for the request: its result (a
    /// reply, or a send error), or `None` after a timeout, which marks the
    /// instance down and moves on to the next.
    fn settle(
        &self,
        n: usize,
        outcome: Result<Result<Dict, NgError>, Exchange>,
        tried: &mut Vec<SocketAddr>,
    ) -> Option<Result<Dict, NgError>> {
        let inst = &self.inner.instances[n];
        match outcome {
            Ok(read) => Some(read),
            Err(Exchange::Send(detail)) => {
                Some(Err(NgError::Send { instance: inst.spec.addr, detail }))
            }
            Err(Exchange::Timeout) => {
                tried.push(inst.spec.addr);
                self.mark_down(n);
                None
            }
        }
    }

    /// A fresh cookie and the datagram: the cookie, a space, the command.
    fn framed(&self, body: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let cookie = self.cookie();
        let mut msg = Vec::with_capacity(cookie.len() + 1 + body.len());
        msg.extend_from_slice(&cookie);
        msg.push(b' ');
        msg.extend_from_slice(body);
        (cookie, msg)
    }

    /// [`Self::request`] for a caller outside the tokio runtime (a routing
    /// thread): runs it on the client's runtime and waits at most
    /// `max_wait`. The request runs to its end even when the wait expires.
    /// Must not be called from a runtime thread: it would block that thread.
    pub fn request_blocking(
        &self,
        call_id: &str,
        command: Dict,
        max_wait: Duration,
    ) -> Result<Dict, NgError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let client = self.clone();
        let call_id = call_id.to_owned();
        self.inner.runtime.spawn(async move {
            let _ = tx.send(client.request(&call_id, command).await);
        });
        rx.recv_timeout(max_wait).unwrap_or(Err(NgError::WaitExpired(max_wait)))
    }

    /// [`Self::request`] done on the calling thread, which waits for each
    /// reply in `recvfrom` on a socket of its own (bound on first use, kept
    /// for the thread's life): the same cookies, retransmissions, failover
    /// and down-marking, without a hop to the runtime and back. The wait is
    /// bounded by [`Self::worst_case`]. Replies that come after their
    /// request gave up land on the thread's socket and are skipped (counted
    /// in `stale_datagrams`) by its next request. The duration of every
    /// call is recorded ([`Self::latency`]).
    pub fn request_sync(&self, call_id: &str, command: Dict) -> Result<Dict, NgError> {
        self.request_sync_keeping(call_id, command, None)
    }

    /// [`Self::request_sync`], the reply's dictionary holding only `result`,
    /// `error-reason` and the keys in `keep` (all of them for `None`): the
    /// rest of the reply is checked but not built (see
    /// [`bencode::decode_dict_keeping`]).
    pub fn request_sync_keeping(
        &self,
        call_id: &str,
        command: Dict,
        keep: Option<&[&str]>,
    ) -> Result<Dict, NgError> {
        let started = std::time::Instant::now();
        let (body, order) = self.prepare(call_id, command)?;
        let mut tried = Vec::new();
        let mut out = None;
        for n in order {
            if !self.inner.instances[n].is_up() && !tried.is_empty() {
                continue;
            }
            let outcome = self.exchange_sync(&self.inner.instances[n], &body, keep);
            out = self.settle(n, outcome, &mut tried);
            if out.is_some() {
                break;
            }
        }
        self.inner.shared.latency.record(started.elapsed());
        out.unwrap_or(Err(NgError::Timeout { tried }))
    }

    /// One request to one instance on the calling thread's socket, its
    /// reply read ([`result`]) where it was received, without a copy.
    fn exchange_sync(
        &self,
        inst: &Instance,
        body: &[u8],
        keep: Option<&[&str]>,
    ) -> Result<Result<Dict, NgError>, Exchange> {
        let to = inst.spec.addr;
        let (cookie, msg) = self.framed(body);
        THREAD_SOCKETS.with(|cell| {
            let mut socks = cell.borrow_mut();
            let ThreadSockets { v4, v6, timeout_v4, timeout_v6, buf } = &mut *socks;
            let (slot, set) = if to.is_ipv4() { (v4, timeout_v4) } else { (v6, timeout_v6) };
            if slot.is_none() {
                let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                *slot = Some(
                    std::net::UdpSocket::bind(any).map_err(|e| Exchange::Send(e.to_string()))?,
                );
            }
            let Some(sock) = slot.as_ref() else { return Err(Exchange::Timeout) };
            if buf.is_empty() {
                buf.resize(65_536, 0);
            }
            for _ in 0..=self.inner.retries {
                inst.sent.fetch_add(1, Ordering::Relaxed);
                sock.send_to(&msg, to).map_err(|e| Exchange::Send(e.to_string()))?;
                let deadline = std::time::Instant::now() + self.inner.timeout;
                let mut left = self.inner.timeout;
                loop {
                    if left.is_zero() {
                        break;
                    }
                    if *set != Some(left) {
                        if sock.set_read_timeout(Some(left)).is_err() {
                            break;
                        }
                        *set = Some(left);
                    }
                    match sock.recv_from(buf) {
                        Ok((n, from)) => {
                            let reply = &buf[..n];
                            if from == to
                                && reply.len() > cookie.len()
                                && reply.starts_with(&cookie)
                                && reply[cookie.len()] == b' '
                            {
                                inst.replies.fetch_add(1, Ordering::Relaxed);
                                return Ok(result(inst, &reply[cookie.len() + 1..], keep));
                            }
                            self.inner.shared.stale.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // Timed out (WouldBlock/TimedOut), or an ICMP error
                        // of an earlier send: wait out this try.
                        Err(_) => break,
                    }
                    left = deadline.saturating_duration_since(std::time::Instant::now());
                }
                inst.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(Exchange::Timeout)
        })
    }

    /// The requests of route code so far ([`Self::request_sync`]): count,
    /// median and 99th percentile (bucket bounds, µs).
    pub fn latency(&self) -> Option<LatencySummary> {
        let l = &self.inner.shared.latency;
        let requests = l.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        Some(LatencySummary { requests, p50_us: l.quantile(0.50)?, p99_us: l.quantile(0.99)? })
    }

    /// One line for `sipc reload --status`: each instance's state and
    /// counters, and the latency of route code's requests.
    pub fn status_line(&self) -> String {
        let instances: Vec<String> = self
            .stats()
            .iter()
            .map(|s| {
                format!(
                    "{} {} (sent {}, replies {}, errors {}, timeouts {})",
                    s.addr,
                    if s.up { "up" } else { "down" },
                    s.sent,
                    s.replies,
                    s.errors,
                    s.timeouts
                )
            })
            .collect();
        let latency = match self.latency() {
            Some(l) => {
                format!("; {} requests, p50 <= {} us, p99 <= {} us", l.requests, l.p50_us, l.p99_us)
            }
            None => String::new(),
        };
        format!("rtpengine: {}{latency}\n", instances.join(", "))
    }

    /// Each instance's state and counters, in the order of the settings.
    pub fn stats(&self) -> Vec<InstanceStats> {
        self.inner.instances.iter().map(Instance::stats).collect()
    }

    /// Datagrams that matched no waiting request (late replies, garbage).
    pub fn stale_datagrams(&self) -> u64 {
        self.inner.shared.stale.load(Ordering::Relaxed)
    }

    /// The longest a [`Self::request`] can take when nothing answers: every
    /// live instance waited out (first send and retries).
    pub fn worst_case(&self) -> Duration {
        self.inner.timeout * (self.inner.retries + 1) * self.inner.instances.len() as u32
    }

    fn cookie(&self) -> Vec<u8> {
        let n = self.inner.next_cookie.fetch_add(1, Ordering::Relaxed);
        let prefix = self.inner.prefix.as_bytes();
        let mut cookie = Vec::with_capacity(prefix.len() + 1 + crate::sip::write::digit_count(n));
        cookie.extend_from_slice(prefix);
        cookie.push(b'_');
        crate::sip::write::extend_decimal(&mut cookie, n);
        cookie
    }

    /// One request to one instance: a fresh cookie, sent `1 + retries`
    /// times until a reply matches.
    async fn exchange(
        &self,
        inst: &Instance,
        body: &[u8],
        retries: u32,
    ) -> Result<Vec<u8>, Exchange> {
        let shared = &self.inner.shared;
        let to = inst.spec.addr;
        let Some(sock) = shared.socket(to) else {
            return Err(Exchange::Send("no socket of its address family".into()));
        };
        let (cookie, msg) = self.framed(body);
        let (tx, mut rx) = oneshot::channel();
        shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cookie.clone(), Waiter { from: to, tx });
        // Removes the waiter however this ends (also when the caller's future is dropped).
        let _unregister = Unregister { shared, cookie };
        for _ in 0..=retries {
            inst.sent.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = sock.send_to(&msg, to).await {
                return Err(Exchange::Send(e.to_string()));
            }
            match tokio::time::timeout(self.inner.timeout, &mut rx).await {
                Ok(Ok(reply)) => {
                    inst.replies.fetch_add(1, Ordering::Relaxed);
                    return Ok(reply);
                }
                Ok(Err(_)) => return Err(Exchange::Timeout),
                Err(_) => {
                    inst.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Err(Exchange::Timeout)
    }

    /// Marks instance `n` down and starts its health pinger (once).
    fn mark_down(&self, n: usize) {
        let inst = &self.inner.instances[n];
        if inst.set_up(false) {
            tracing::warn!(instance = %inst.spec.addr, "rtpengine instance is down");
        }
        if inst.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        self.inner.runtime.spawn(ping_until_up(weak, n));
    }
}

/// The pinger of a down instance: every `ping_interval` one `ping` (no
/// retransmission); the first `pong` marks it up and ends the task. Also
/// ends when the client is dropped.
async fn ping_until_up(weak: Weak<Inner>, n: usize) {
    let ping = Dict::command("ping").encode();
    loop {
        let interval = match weak.upgrade() {
            Some(inner) => inner.ping_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(inner) = weak.upgrade() else { return };
        let client = NgClient { inner };
        let inst = &client.inner.instances[n];
        let answered = match client.exchange(inst, &ping, 0).await {
            Ok(reply) => result(inst, &reply, Some(&[])).is_ok(),
            Err(_) => false,
        };
        if answered {
            inst.probing.store(false, Ordering::SeqCst);
            if inst.set_up(true) {
                tracing::info!(instance = %inst.spec.addr, "rtpengine instance is up again");
            }
            return;
        }
    }
}

enum Exchange {
    Timeout,
    Send(String),
}

struct Unregister<'a> {
    shared: &'a Shared,
    cookie: Vec<u8>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.cookie);
    }
}

/// The reply's dictionary, by its `result`: all of it, or (`keep`) only
/// `result`, `error-reason` and the keys named.
fn result(inst: &Instance, reply: &[u8], keep: Option<&[&str]>) -> Result<Dict, NgError> {
    let instance = inst.spec.addr;
    let fail = |e: NgError| {
        inst.errors.fetch_add(1, Ordering::Relaxed);
        Err(e)
    };
    let decoded = match keep {
        None => bencode::decode_dict(reply),
        Some(keep) => {
            let mut words: smallvec::SmallVec<[&str; 8]> =
                smallvec::smallvec!["result", "error-reason"];
            words.extend_from_slice(keep);
            bencode::decode_dict_keeping(reply, &words)
        }
    };
    let dict = match decoded {
        Ok(d) => d,
        Err(e) => return fail(NgError::Malformed { instance, detail: e.to_string() }),
    };
    match dict.get_str("result") {
        Some("ok" | "pong") => Ok(dict),
        Some("error") => {
            let reason = dict.get_bytes("error-reason").map_or_else(
                || "error without an error-reason".to_owned(),
                |r| String::from_utf8_lossy(r).into_owned(),
            );
            fail(NgError::Rtpengine { instance, reason })
        }
        Some(other) => {
            fail(NgError::Malformed { instance, detail: format!("unknown result `{other}`") })
        }
        None => fail(NgError::Malformed { instance, detail: "no `result` key".into() }),
    }
}

/// Reads replies until the client is dropped (its drop aborts this task).
async fn receive(sock: Arc<UdpSocket>, shared: Weak<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let got = sock.recv_from(&mut buf).await;
        let Some(shared) = shared.upgrade() else { return };
        match got {
            Ok((n, from)) => shared.on_datagram(&buf[..n], from),
            // ICMP errors surface here on some systems; the waits time out anyway.
            Err(e) => tracing::debug!("rtpengine socket: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// How the fake instance treats each request.
    #[derive(Debug, Clone)]
    enum Mode {
        /// `result` = `ok` (`pong` for ping), with `who` naming the fake.
        Ok,
        /// `result` = `error` with this `error-reason`.
        Error(&'static str),
        /// Never answers.
        Silent,
        /// Ignores the first n datagrams, answers the rest.
        DropFirst(usize),
        /// Answers each datagram after this delay.
        Late(Duration),
        /// Sends datagrams that match nothing, then the reply.
        GarbageFirst,
        /// Answers with the request's cookie and no dictionary.
        Malformed,
        /// Answers from another socket (another port).
        OtherSource,
    }

    struct Fake {
        addr: SocketAddr,
        mode: Arc<Mutex<Mode>>,
        /// Every datagram received: (cookie, decoded dictionary).
        seen: Arc<Mutex<Vec<(String, Dict)>>>,
    }

    impl Fake {
        async fn start(name: &'static str, mode: Mode) -> Fake {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let other = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            let addr = sock.local_addr().unwrap();
            let mode = Arc::new(Mutex::new(mode));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (m, s) = (Arc::clone(&mode), Arc::clone(&seen));
            let sock = Arc::new(sock);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await.unwrap();
                    let data = &buf[..n];
                    let sp = data.iter().position(|&c| c == b' ').unwrap();
                    let cookie = String::from_utf8(data[..sp].to_vec()).unwrap();
                    let req = bencode::decode_dict(&data[sp + 1..]).unwrap();
                    let count = {
                        let mut s = s.lock().unwrap();
                        s.push((cookie.clone(), req.clone()));
                        s.len()
                    };
                    let mode = m.lock().unwrap().clone();
                    let reply = |d: Dict| [cookie.as_bytes(), b" ", &d.encode()].concat();
                    let ok = if req.get_str("command") == Some("ping") {
                        Dict::new().with("result", "pong")
                    } else {
                        Dict::new().with("result", "ok").with("who", name)
                    };
                    let out = match mode {
                        Mode::Ok => reply(ok),
                        Mode::Error(reason) => {
                            reply(Dict::new().with("result", "error").with("error-reason", reason))
                        }
                        Mode::Silent => continue,
                        Mode::DropFirst(k) if count <= k => continue,
                        Mode::DropFirst(_) => reply(ok),
                        Mode::Late(d) => {
                            let (sock, out) = (Arc::clone(&sock), reply(ok));
                            tokio::spawn(async move {
                                tokio::time::sleep(d).await;
                                let _ = sock.send_to(&out, from).await;
                            });
                            continue;
                        }
                        Mode::GarbageFirst => {
                            for g in [
                                &b"garbage"[..],
                                b"",
                                b"nocookie-d6:result2:oke",
                                b"12345_1 d6:result2:oke",
                            ] {
                                sock.send_to(g, from).await.unwrap();
                            }
                            reply(ok)
                        }
                        Mode::Malformed => [cookie.as_bytes(), b" d6:result"].concat(),
                        Mode::OtherSource => {
                            other.send_to(&reply(ok), from).await.unwrap();
                            continue;
                        }
                    };
                    sock.send_to(&out, from).await.unwrap();
                }
            });
            Fake { addr, mode, seen }
        }

        fn set(&self, mode: Mode) {
            *self.mode.lock().unwrap() = mode;
        }

        fn seen(&self) -> Vec<(String, Dict)> {
            self.seen.lock().unwrap().clone()
        }

        fn spec(&self) -> InstanceSpec {
            InstanceSpec::new(self.addr, 1)
        }
    }

    fn settings(instances: Vec<InstanceSpec>) -> NgSettings {
        NgSettings {
            instances,
            timeout: Duration::from_millis(60),
            retries: 2,
            ping_interval: Duration::from_millis(40),
        }
    }

    fn offer() -> Dict {
        Dict::command("offer").with("from-tag", "ft").with("sdp", "v=0\r\n")
    }

    #[tokio::test]
    async fn an_ok_reply_is_the_result() {
        let fake = Fake::start("a", Mode::Ok).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let reply = client.request("call-1", offer()).await.unwrap();
        assert_eq!(reply.get_str("who"), Some("a"));
        let pong = client.request("", Dict::command("ping")).await.unwrap();
        assert_eq!(pong.get_str("result"), Some("pong"));
        let seen = fake.seen();
        // The call's id is added; each request has its own cookie.
        assert_eq!(seen[0].1.get_str("call-id"), Some("call-1"));
        assert!(!seen[1].1.contains_key("call-id"));
        assert_ne!(seen[0].0, seen[1].0);
        let s = &client.stats()[0];
        assert_eq!((s.sent, s.replies, s.timeouts, s.errors, s.up), (2, 2, 0, 0, true));
    }

    #[tokio::test]
    async fn sync_requests_build_only_the_keys_asked_for() {
        let fake = Fake::start("a", Mode::Ok).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let c = client.clone();
        let (all, kept, bare) = tokio::task::spawn_blocking(move || {
            (
                c.request_sync("c", offer()).unwrap(),
                c.request_sync_keeping("c", offer(), Some(&["who"])).unwrap(),
                c.request_sync_keeping("c", offer(), Some(&[])).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!((all.get_str("who"), all.len()), (Some("a"), 2));
        assert_eq!((kept.get_str("who"), kept.len()), (Some("a"), 2));
        assert_eq!((bare.get_str("result"), bare.len()), (Some("ok"), 1));
        // An error keeps its reason whatever the caller asked for.
        fake.set(Mode::Error("Unknown call-id"));
        let c = client.clone();
        let err =
            tokio::task::spawn_blocking(move || c.request_sync_keeping("c", offer(), Some(&[])))
                .await
                .unwrap();
        let reason = "Unknown call-id".to_owned();
        assert_eq!(err.unwrap_err(), NgError::Rtpengine { instance: fake.addr, reason });
    }

    #[tokio::test]
    async fn an_error_reply_gives_rtpengines_reason() {
        let fake = Fake::start("a", Mode::Error("Unknown call-id")).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let err = client.request("c", Dict::command("query")).await.unwrap_err();
        assert_eq!(
            err,
            NgError::Rtpengine { instance: fake.addr, reason: "Unknown call-id".into() }
        );
        assert_eq!(err.to_string(), format!("rtpengine {}: Unknown call-id", fake.addr));
        assert_eq!(client.stats()[0].errors, 1);
        // An answering instance stays up, whatever it answers.
        assert!(client.stats()[0].up);
    }

    #[tokio::test]
    async fn a_lost_datagram_is_retransmitted_with_the_same_cookie() {
        let fake = Fake::start("a", Mode::DropFirst(2)).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        client.request("c", offer()).await.unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|(c, _)| *c == seen[0].0));
        let s = &client.stats()[0];
        assert_eq!((s.sent, s.timeouts, s.replies, s.up), (3, 2, 1, true));
    }

    #[tokio::test]
    async fn a_late_reply_to_an_earlier_send_matches_and_later_ones_are_dropped() {
        let fake = Fake::start("a", Mode::Late(Duration::from_millis(150))).await;
        let mut s = settings(vec![fake.spec()]);
        s.timeout = Duration::from_millis(100);
        let client = NgClient::new(s).unwrap();
        let start = Instant::now();
        client.request("c", offer()).await.unwrap();
        // The first send's reply (at 150 ms) ends it, during the second wait.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(145), "{took:?}");
        assert_eq!(fake.seen().len(), 2);
        // The second send's reply arrives after the request ended: dropped.
        wait_until("the second reply came", || client.stale_datagrams() == 1).await;
        let s = &client.stats()[0];
        assert_eq!((s.sent, s.timeouts, s.replies), (2, 1, 1));
    }

    #[tokio::test]
    async fn garbage_and_foreign_cookies_are_ignored() {
        let fake = Fake::start("a", Mode::GarbageFirst).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let reply = client.request("c", offer()).await.unwrap();
        assert_eq!(reply.get_str("who"), Some("a"));
        assert_eq!(client.stale_datagrams(), 4);
        assert_eq!(client.stats()[0].timeouts, 0);
    }

    #[tokio::test]
    async fn a_reply_from_another_address_does_not_match() {
        let fake = Fake::start("a", Mode::OtherSource).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let err = client.request("c", offer()).await.unwrap_err();
        assert_eq!(err, NgError::Timeout { tried: vec![fake.addr] });
        wait_until("three replies came", || client.stale_datagrams() == 3).await;
    }

    #[tokio::test]
    async fn a_malformed_reply_with_the_cookie_is_an_error() {
        let fake = Fake::start("a", Mode::Malformed).await;
        let client = NgClient::new(settings(vec![fake.spec()])).unwrap();
        let err = client.request("c", offer()).await.unwrap_err();
        assert!(matches!(&err, NgError::Malformed { instance, .. } if *instance == fake.addr));
        assert!(err.to_string().contains("malformed reply: bencode"), "{err}");
        assert_eq!(client.stats()[0].errors, 1);
    }

    /// A Call-ID that `client`'s hash sends to instance `n` first.
    fn call_on(client: &NgClient, n: usize) -> String {
        (0..)
            .map(|i| format!("call-{i}"))
            .find(|id| order_for(&client.inner.instances, id)[0] == n)
            .unwrap()
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_silent_instance_fails_over_goes_down_and_comes_back_up() {
        let a = Fake::start("a", Mode::Silent).await;
        let b = Fake::start("b", Mode::Ok).await;
        let client = NgClient::new(settings(vec![a.spec(), b.spec()])).unwrap();
        let id = call_on(&client, 0);
        let reply = client.request(&id, offer()).await.unwrap();
        assert_eq!(reply.get_str("who"), Some("b"));
        let [sa, sb] = [&client.stats()[0], &client.stats()[1]].map(Clone::clone);
        assert_eq!((sa.up, sa.sent, sa.timeouts), (false, 3, 3));
        assert_eq!((sb.up, sb.sent, sb.replies), (true, 1, 1));
        // The failover used a new cookie.
        assert_ne!(a.seen()[0].0, b.seen()[0].0);
        // While it is down, the call goes straight to b.
        let offers = |f: &Fake| {
            f.seen().iter().filter(|(_, d)| d.get_str("command") == Some("offer")).count()
        };
        assert_eq!(client.request(&id, offer()).await.unwrap().get_str("who"), Some("b"));
        assert_eq!(offers(&a), 3);
        // a answers pings again: up, and the call is back on it.
        a.set(Mode::Ok);
        wait_until("a is up", || client.stats()[0].up).await;
        assert_eq!(a.seen().last().unwrap().1.get_str("command"), Some("ping"));
        assert_eq!(client.request(&id, offer()).await.unwrap().get_str("who"), Some("a"));
    }

    #[tokio::test]
    async fn every_instance_silent_is_a_timeout_then_none_is_live() {
        let a = Fake::start("a", Mode::Silent).await;
        let b = Fake::start("b", Mode::Silent).await;
        let client = NgClient::new(settings(vec![a.spec(), b.spec()])).unwrap();
        let id = call_on(&client, 1);
        let start = Instant::now();
        let err = client.request(&id, offer()).await.unwrap_err();
        assert_eq!(err, NgError::Timeout { tried: vec![b.addr, a.addr] });
        // 2 instances × 3 waits of 60 ms.
        assert!(start.elapsed() >= Duration::from_millis(360));
        assert_eq!(client.worst_case(), Duration::from_millis(360));
        assert_eq!(client.request(&id, offer()).await.unwrap_err(), NgError::NoLiveInstance);
        // Pings keep going to both while they are down.
        let (na, nb) = (a.seen().len(), b.seen().len());
        wait_until("more pings", || a.seen().len() > na + 1 && b.seen().len() > nb + 1).await;
        b.set(Mode::Ok);
        wait_until("b is up", || client.stats()[1].up).await;
        assert_eq!(client.request(&id, offer()).await.unwrap().get_str("who"), Some("b"));
        assert!(!client.stats()[0].up);
    }

    #[tokio::test]
    async fn an_error_reply_does_not_fail_over() {
        let a = Fake::start("a", Mode::Error("Unknown call-id")).await;
        let b = Fake::start("b", Mode::Ok).await;
        let client = NgClient::new(settings(vec![a.spec(), b.spec()])).unwrap();
        let id = call_on(&client, 0);
        assert!(matches!(client.request(&id, offer()).await, Err(NgError::Rtpengine { .. })));
        assert!(b.seen().is_empty());
    }

    #[test]
    fn a_thread_outside_the_runtime_waits_bounded() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (a, silent) = rt.block_on(async {
            (Fake::start("a", Mode::Ok).await, Fake::start("s", Mode::Silent).await)
        });
        let client = rt.block_on(async { NgClient::new(settings(vec![a.spec()])).unwrap() });
        let reply = std::thread::spawn(move || {
            client.request_blocking("c", offer(), Duration::from_secs(1))
        })
        .join()
        .unwrap();
        assert_eq!(reply.unwrap().get_str("who"), Some("a"));
        let client = rt.block_on(async { NgClient::new(settings(vec![silent.spec()])).unwrap() });
        let wait = Duration::from_millis(30);
        let err =
            std::thread::spawn(move || client.request_blocking("c", offer(), wait)).join().unwrap();
        assert_eq!(err.unwrap_err(), NgError::WaitExpired(wait));
    }

    #[test]
    fn needs_a_runtime_and_an_instance() {
        assert!(NgClient::new(settings(vec![])).is_err());
        let spec = InstanceSpec::new("127.0.0.1:9".parse().unwrap(), 1);
        assert!(NgClient::new(settings(vec![spec])).is_err());
    }
}
