//! NAT keepalives (`module nathelper { natping_interval … }`), sans-I/O:
//! which bindings are pinged and where, when in the interval each one is,
//! the OPTIONS request, and the count of failures in a row that removes a
//! binding. The task that sends is `crate::proxy::natping`.
//!
//! A NAT drops a UDP mapping that carries nothing for a while (often 30 to
//! 60 s, sometimes less), after which requests for the device no longer
//! reach it. The registrar keeps the mapping open by sending something to
//! the binding's `received` address from the address the device registered
//! to, once per interval: an OPTIONS (whose reply also tells that the
//! device is there) or a CRLFCRLF datagram. Over TCP and TLS the keepalive
//! is RFC 5626 §4.4.1's CRLFCRLF on the connection the device opened.
//!
//! Spread: at the start of each interval the pinger takes the bindings to
//! ping (N of them) and sends the i-th at `i · interval / N`, in batches of
//! one [`TICK`] ([`batch`]): 100,000 bindings over 30 s are about 167
//! pings every 50 ms, never one burst.
//!
//! Replies: each OPTIONS carries a Via branch starting with
//! [`BRANCH_PREFIX`]; the proxy core hands every response with such a top
//! Via branch to [`NatPinger::reply`] instead of routing it (it is the
//! answer to a request of the proxy itself, not one to forward).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Binding, Location};
use crate::proxy::Transport;

/// How often the pinger wakes to send the next batch.
pub const TICK: Duration = Duration::from_millis(50);

/// The start of the Via branch of every NAT ping OPTIONS (RFC 3261's magic
/// cookie first, so the reply is matched by branch as §17.1.3 says).
pub const BRANCH_PREFIX: &str = "z9hG4bK-sipc-natping-";

/// What a UDP binding is pinged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingMethod {
    /// An OPTIONS request; a reply of any status counts as alive.
    Options,
    /// A CRLFCRLF datagram; nothing answers it, so it never fails.
    Crlf,
}

/// The `module nathelper` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatPingConfig {
    pub interval: Duration,
    pub method: PingMethod,
    /// Only bindings with a `received` address (behind NAT).
    pub nated_only: bool,
    /// The From URI of OPTIONS pings; `None`: `sip:pinger@` and the proxy's address.
    pub from: Option<String>,
    /// Failures in a row that remove a binding (0: never removed).
    pub max_failures: u32,
}

impl NatPingConfig {
    /// How long an OPTIONS ping waits for its reply: half the interval (so
    /// it is decided before the next ping), at most 5 s.
    pub fn reply_timeout(&self) -> Duration {
        (self.interval / 2).clamp(TICK, Duration::from_secs(5))
    }

    /// Ticks in one interval (at least 1).
    pub fn ticks(&self) -> usize {
        (self.interval.as_millis() / TICK.as_millis()).max(1) as usize
    }
}

/// The positions (in the interval's list of bindings) sent at tick `tick`
/// of `ticks` when `n` bindings are spread over the interval: binding `i`
/// goes at the first tick `t` with `i < ⌈n·(t+1)/ticks⌉`, so every binding
/// is sent once and no tick sends more than `⌈n/ticks⌉`.
pub fn batch(n: usize, ticks: usize, tick: usize) -> Range<usize> {
    let at = |t: usize| ((n as u128 * t as u128).div_ceil(ticks.max(1) as u128)) as usize;
    at(tick).min(n)..at(tick + 1).min(n)
}

/// One binding to ping this interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingTarget {
    pub aor: String,
    pub contact: String,
    /// The binding's `received` address, else its Contact's.
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl PingTarget {
    /// Where a binding is pinged, or `None` when it is not: without
    /// `received`, only when `nated_only` is off and its Contact's host is
    /// an IP literal.
    pub fn of(aor: &str, b: &Binding, nated_only: bool) -> Option<PingTarget> {
        if b.peer {
            return None; // the node it registered through pings it
        }
        let addr = match b.received {
            Some(r) => r,
            None if nated_only => return None,
            None => crate::routing::health::uri_addr(&b.contact)?,
        };
        Some(PingTarget {
            aor: aor.to_owned(),
            contact: b.contact.clone(),
            addr,
            transport: b.transport,
        })
    }

    fn key(&self) -> (String, String) {
        (self.aor.clone(), self.contact.clone())
    }
}

/// The bindings of `location` to ping at `now` (unix seconds).
pub fn targets(location: &Location, now: u64, nated_only: bool) -> Vec<PingTarget> {
    let mut out = Vec::new();
    location.for_each_live(now, |aor, b| out.extend(PingTarget::of(aor, b, nated_only)));
    out
}

/// The OPTIONS ping of one binding: to its contact URI, from the proxy's
/// socket `local` (the Via sent-by, with `rport` so the reply comes back
/// through the same NAT mapping, RFC 3581).
pub fn options(contact: &str, local: SocketAddr, from: Option<&str>, branch: &str) -> String {
    let from = match from {
        Some(f) => f.to_owned(),
        None => format!("sip:pinger@{local}"),
    };
    format!(
        "OPTIONS {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <{from}>;tag={tag}\r\nTo: <{contact}>\r\n\
         Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        tag = &branch[BRANCH_PREFIX.len().min(branch.len())..],
    )
}

/// Consecutive failures per binding; a success forgets them.
#[derive(Debug, Default)]
pub struct Failures {
    counts: HashMap<(String, String), u32>,
}

impl Failures {
    /// The binding answered.
    pub fn alive(&mut self, key: &(String, String)) {
        self.counts.remove(key);
    }

    /// The binding failed once more; true when that makes `max` in a row
    /// (`max` 0: never), and then its count is forgotten.
    pub fn failed(&mut self, key: (String, String), max: u32) -> bool {
        let n = self.counts.entry(key.clone()).or_insert(0);
        *n += 1;
        if max > 0 && *n >= max {
            self.counts.remove(&key);
            return true;
        }
        false
    }

    /// Forgets bindings no longer in the table.
    pub fn keep_only(&mut self, live: &HashSet<(String, String)>) {
        self.counts.retain(|k, _| live.contains(k));
    }

    pub fn get(&self, key: &(String, String)) -> u32 {
        self.counts.get(key).copied().unwrap_or(0)
    }
}

/// Counters of the pinger, printed by `sipc reload --status`.
#[derive(Debug, Default)]
pub struct NatPingStats {
    pub sent: AtomicU64,
    /// OPTIONS unanswered, CRLF on a missing connection, send errors.
    pub failed: AtomicU64,
    pub replies: AtomicU64,
    /// Bindings removed after `max_failures` failures in a row.
    pub removed: AtomicU64,
}

impl NatPingStats {
    /// One line for `sipc reload --status`.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "nat pings: sent {}, replies {}, failed {}, bindings removed {}\n",
            g(&self.sent),
            g(&self.replies),
            g(&self.failed),
            g(&self.removed)
        )
    }
}

#[derive(Default)]
struct State {
    /// The binding (AOR, contact) of each unanswered OPTIONS, by branch.
    pending: HashMap<String, (String, String)>,
    /// The pending branches by deadline, oldest first (every ping waits
    /// the same time, so sending order is deadline order): a tick looks
    /// only at the front. Answered ones stay here until their deadline.
    deadlines: VecDeque<(Instant, String)>,
    failures: Failures,
    next: u64,
}

/// The pinger's shared part: its settings, counters, the OPTIONS waiting
/// for replies and the failure counts. Lives in the server's `Services`.
pub struct NatPinger {
    pub config: NatPingConfig,
    pub stats: NatPingStats,
    state: Mutex<State>,
}

impl std::fmt::Debug for NatPinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatPinger").field("config", &self.config).finish_non_exhaustive()
    }
}

impl NatPinger {
    pub fn new(config: NatPingConfig) -> Self {
        NatPinger { config, stats: NatPingStats::default(), state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh Via branch for an OPTIONS ping.
    pub fn branch(&self) -> String {
        let mut s = self.state();
        s.next += 1;
        format!("{BRANCH_PREFIX}{:x}-{}", std::process::id(), s.next)
    }

    /// An OPTIONS with `branch` went to `target`; it fails unanswered at `deadline`.
    pub fn sent_options(&self, branch: String, target: &PingTarget, deadline: Instant) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state();
        s.deadlines.push_back((deadline, branch.clone()));
        s.pending.insert(branch, target.key());
    }

    /// A ping that cannot be answered (CRLF) went out.
    pub fn sent_blind(&self) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A response whose top Via branch is `branch` (starting with
    /// [`BRANCH_PREFIX`]) arrived: any status means the device is there.
    /// A late or unknown one is ignored.
    pub fn reply(&self, branch: &str) {
        let mut s = self.state();
        if let Some(key) = s.pending.remove(branch) {
            s.failures.alive(&key);
            drop(s);
            self.stats.replies.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A ping of `target` failed at once (no connection, send error);
    /// true when the binding is to be removed.
    pub fn failed_now(&self, target: &PingTarget) -> bool {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.state().failures.failed(target.key(), self.config.max_failures)
    }

    /// Fails the OPTIONS unanswered at `now`; returns the bindings (AOR,
    /// contact) whose failures reached `max_failures`.
    pub fn expire(&self, now: Instant) -> Vec<(String, String)> {
        let mut s = self.state();
        let mut remove = Vec::new();
        while s.deadlines.front().is_some_and(|(d, _)| *d <= now) {
            let Some((_, b)) = s.deadlines.pop_front() else { break };
            let Some(key) = s.pending.remove(&b) else { continue }; // answered
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            if s.failures.failed(key.clone(), self.config.max_failures) {
                remove.push(key);
            }
        }
        remove
    }

    /// Forgets the failure counts of bindings not in `targets`.
    pub fn keep_only(&self, targets: &[PingTarget]) {
        let live: HashSet<(String, String)> = targets.iter().map(PingTarget::key).collect();
        self.state().failures.keep_only(&live);
    }

    /// Failures in a row of a binding so far.
    pub fn failures(&self, aor: &str, contact: &str) -> u32 {
        self.state().failures.get(&(aor.to_owned(), contact.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tick each binding is sent at, for `n` bindings over `interval`.
    fn send_ticks(n: usize, interval: Duration) -> Vec<usize> {
        let cfg = NatPingConfig {
            interval,
            method: PingMethod::Options,
            nated_only: true,
            from: None,
            max_failures: 0,
        };
        let ticks = cfg.ticks();
        let mut at = vec![usize::MAX; n];
        for t in 0..ticks {
            for i in batch(n, ticks, t) {
                assert_eq!(at[i], usize::MAX, "binding {i} sent twice");
                at[i] = t;
            }
        }
        at
    }

    #[test]
    fn bindings_of_other_nodes_are_theirs_to_ping() {
        let location = Location::new(crate::registrar::RegistrarConfig::default());
        let b = |contact: &str, peer: bool| Binding {
            contact: contact.into(),
            expires_at: u64::MAX,
            q: None,
            call_id: "c".into(),
            cseq: 1,
            path: Vec::new(),
            received: Some("198.51.100.7:4000".parse().unwrap()),
            transport: Transport::Udp,
            instance: None,
            reg_id: None,
            methods: None,
            peer,
        };
        location.apply_shared(
            "sip:a@example.com",
            vec![b("sip:a@10.0.0.1", false), b("sip:a@10.0.0.2", true)],
        );
        let t = targets(&location, 1000, true);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].contact, "sip:a@10.0.0.1");
    }

    #[test]
    fn pings_are_spread_evenly_over_the_interval() {
        // 100,000 bindings over 30 s: 600 ticks of 50 ms, 167 at most each.
        let at = send_ticks(100_000, Duration::from_secs(30));
        assert!(at.iter().all(|&t| t < 600), "every binding is sent within the interval");
        let mut per_tick = vec![0usize; 600];
        at.iter().for_each(|&t| per_tick[t] += 1);
        assert_eq!(per_tick.iter().sum::<usize>(), 100_000);
        assert_eq!(*per_tick.iter().max().unwrap(), 167);
        assert!(*per_tick.iter().min().unwrap() >= 166, "no tick is left empty");
        // Per second (20 ticks): about 3,333, never a burst.
        for second in per_tick.chunks(20) {
            let n: usize = second.iter().sum();
            assert!((3_320..=3_340).contains(&n), "{n} in one second");
        }
        // In order: send times never go back.
        assert!(at.windows(2).all(|w| w[0] <= w[1]));
        // Fewer bindings than ticks: one per tick at most, spread out.
        let at = send_ticks(7, Duration::from_secs(1));
        assert_eq!(at, [0, 2, 5, 8, 11, 14, 17], "binding i at tick ⌊i·20/7⌋");
        assert!(send_ticks(0, Duration::from_secs(1)).is_empty());
        // An interval shorter than a tick is one tick.
        assert_eq!(send_ticks(3, Duration::from_millis(10)), [0, 0, 0]);
    }

    fn target(contact: &str) -> PingTarget {
        PingTarget {
            aor: "sip:bob@example.com".into(),
            contact: contact.into(),
            addr: "203.0.113.7:40000".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn failures_in_a_row_remove_and_a_reply_resets() {
        let p = NatPinger::new(NatPingConfig {
            interval: Duration::from_secs(2),
            method: PingMethod::Options,
            nated_only: true,
            from: None,
            max_failures: 3,
        });
        let t0 = Instant::now();
        let a = target("sip:a@10.0.0.1");
        let b = target("sip:b@10.0.0.2");
        let timeout = p.config.reply_timeout();
        assert_eq!(timeout, Duration::from_secs(1));
        // a fails twice, answers, then fails three times: removed on the third.
        for round in 0..6u32 {
            let now = t0 + Duration::from_secs(2 * u64::from(round));
            let (ba, bb) = (p.branch(), p.branch());
            assert!(ba.starts_with(BRANCH_PREFIX) && ba != bb);
            p.sent_options(ba.clone(), &a, now + timeout);
            p.sent_options(bb.clone(), &b, now + timeout);
            p.reply(&bb); // b always answers
            if round == 2 {
                p.reply(&ba);
            }
            assert!(p.expire(now + timeout / 2).is_empty(), "not late yet");
            let removed = p.expire(now + timeout);
            let want = if round == 5 { vec![(a.aor.clone(), a.contact.clone())] } else { vec![] };
            assert_eq!(removed, want, "round {round}");
            p.reply(&ba); // too late: ignored
        }
        assert_eq!(p.failures(&b.aor, &b.contact), 0);
        assert_eq!(p.stats.sent.load(Ordering::Relaxed), 12);
        assert_eq!(p.stats.failed.load(Ordering::Relaxed), 5);
        assert_eq!(p.stats.replies.load(Ordering::Relaxed), 7);
        // max_failures 0: counted, never removed; a binding that left the table is forgotten.
        let mut f = Failures::default();
        let k = (a.aor.clone(), a.contact.clone());
        assert!(!(0..100).any(|_| f.failed(k.clone(), 0)));
        assert_eq!(f.get(&k), 100);
        f.keep_only(&HashSet::new());
        assert_eq!(f.get(&k), 0);
        // Immediate failures (no TCP connection) count the same way.
        let p = NatPinger::new(NatPingConfig { max_failures: 2, ..p.config.clone() });
        assert!(!p.failed_now(&a));
        assert!(p.failed_now(&a));
    }

    #[test]
    fn which_bindings_are_pinged_and_where() {
        let l = Location::new(super::super::RegistrarConfig::default());
        let reg = |user: &str, contact: &str, via: &str| {
            let text = format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK1\r\n\
                 To: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=1\r\n\
                 Call-ID: {user}\r\nCSeq: 1 REGISTER\r\nContact: <{contact}>\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            crate::sip::Message::parse(bytes::Bytes::from(text)).unwrap()
        };
        let src: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        // NATed: a private contact registered from a public source.
        l.register(&reg("nat", "sip:nat@192.168.1.2:5060", "192.168.1.2:5060"), src, 0).unwrap();
        // Not NATed: the contact is the source.
        l.register(&reg("pub", "sip:pub@198.51.100.7:40000", "198.51.100.7:40000"), src, 0)
            .unwrap();
        let mut t = targets(&l, 0, true);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].contact.as_str(), t[0].addr), ("sip:nat@192.168.1.2:5060", src));
        t = targets(&l, 0, false);
        t.sort_by(|a, b| a.aor.cmp(&b.aor));
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].addr, src, "the contact's own address");
        assert!(targets(&l, 1_000_000, false).is_empty(), "expired bindings are not pinged");
        assert!(l.remove_contact("sip:nat@example.com", "sip:nat@192.168.1.2:5060"));
        assert!(!l.remove_contact("sip:nat@example.com", "sip:nat@192.168.1.2:5060"));
        assert!(l.lookup("sip:nat@example.com", 0).is_empty());
        // A persistent table hands the removal to its write-behind store.
        let l = Location::new(super::super::RegistrarConfig::default()).persistent();
        l.register(&reg("nat", "sip:nat@192.168.1.2:5060", "192.168.1.2:5060"), src, 0).unwrap();
        l.register(&reg("nat", "sip:nat@192.168.1.3:5060", "192.168.1.3:5060"), src, 0).unwrap();
        l.take_dirty();
        assert!(l.remove_contact("sip:nat@example.com", "sip:nat@192.168.1.2:5060"));
        let dirty = l.take_dirty();
        let left: Vec<&str> =
            dirty["sip:nat@example.com"].iter().map(|b| b.contact.as_str()).collect();
        assert_eq!(left, ["sip:nat@192.168.1.3:5060"], "the other binding stays");
    }

    #[test]
    fn the_ping_parses_as_sip() {
        let m = options(
            "sip:bob@192.168.1.2:5060;ob",
            "127.0.0.1:5060".parse().unwrap(),
            Some("sip:pinger@example.com"),
            "z9hG4bK-sipc-natping-1-1",
        );
        let mut msg = crate::sip::Message::parse(bytes::Bytes::from(m)).unwrap();
        msg.validate().unwrap();
        assert_eq!(msg.method_str(), Some("OPTIONS"));
        let via = msg.via().unwrap().unwrap();
        assert_eq!(via.branch(), Some("z9hG4bK-sipc-natping-1-1"));
    }
}
