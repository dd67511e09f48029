//! The ban table: keys banned until a deadline.
//!
//! A key that is an IP address bans that source: its UDP datagrams are
//! dropped by the receive thread before anything is copied or parsed, and
//! its new TCP/TLS connections are closed on accept ([`Bans::is_banned_ip`]
//! is what both ask). Any other key (a From user, a Call-ID) is a ban the
//! routes test with `is_banned(KEY)`.
//!
//! The receive path asks for every datagram, so the common case, nothing
//! banned, is one atomic load; otherwise it is a read lock and one hash
//! lookup. Expired entries are removed when they are met and by
//! [`Bans::sweep`], so the table holds about what is banned now. It lives
//! in the long-lived services and survives reloads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Map<K> = HashMap<K, Instant, foldhash::fast::RandomState>;

/// Banned addresses and keys; see the module docs.
#[derive(Debug, Default)]
pub struct Bans {
    ips: RwLock<Map<IpAddr>>,
    keys: RwLock<Map<String>>,
    /// Entries in both maps, for the lock-free "nothing banned" test.
    count: AtomicUsize,
    /// Datagrams and connections dropped because their source is banned.
    pub dropped: AtomicU64,
    /// Bans set, ever.
    pub banned: AtomicU64,
    /// Changes when the set of banned addresses does (the receive threads
    /// rebuild their socket filters then: [`super::filter`]).
    generation: AtomicU64,
    /// The serving program's `blocklist` groups: their sources are dropped
    /// like banned ones, for as long as they are listed.
    blocklists: RwLock<Vec<super::acl::Acl>>,
    /// Networks in `blocklists` and `feeds` (0: the receive path skips them).
    listed: AtomicUsize,
    /// What each fetched blocklist's feed last gave, by blocklist name
    /// ([`super::feed`]).
    feeds: RwLock<HashMap<String, super::acl::Acl>>,
    /// Where bans set and lifted here go to be told to the other nodes of
    /// a cluster (`crate::cluster::counters`); unset on a lone node.
    share: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<BanChange>>,
}

/// A ban set or lifted on this node, for the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanChange {
    Ban { key: String, for_: Duration },
    Unban { key: String },
}

/// An IPv4-mapped IPv6 address is the IPv4 address (a dual-stack socket
/// reports IPv4 peers that way).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Bans {
    /// Bans `key` for `for_` from `now` (an IP address bans the source).
    /// A ban already longer is kept. True when `key` was not banned at
    /// `now` (a new ban, worth a log line).
    pub fn ban(&self, key: &str, for_: Duration, now: Instant) -> bool {
        let new = self.ban_here(key, for_, now);
        if new && let Some(tx) = self.share.get() {
            let _ = tx.send(BanChange::Ban { key: key.trim().to_owned(), for_ });
        }
        new
    }

    /// Sends the bans set and lifted from now on to `tx` as well (the
    /// cluster's shared bans); only the first call counts.
    pub fn share_with(&self, tx: tokio::sync::mpsc::UnboundedSender<BanChange>) {
        let _ = self.share.set(tx);
    }

    /// [`Bans::ban`] without telling the other nodes: a ban they told
    /// this one about.
    pub fn ban_here(&self, key: &str, for_: Duration, now: Instant) -> bool {
        let until = now + for_;
        let previous = match key.trim().parse::<IpAddr>() {
            Ok(ip) => {
                let previous = upsert(&self.ips, canonical(ip), until);
                if previous.is_none() {
                    self.generation.fetch_add(1, Ordering::Release);
                }
                previous
            }
            Err(_) => upsert(&self.keys, key.to_owned(), until),
        };
        if previous.is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        // Bans of sources never seen again expire unmet: every 256th ban
        // sweeps, so the table stays about as large as what is banned now.
        if self.banned.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
            self.sweep(now);
        }
        previous.is_none_or(|p| p <= now)
    }

    /// Lifts the ban on `key`; true when there was one.
    pub fn unban(&self, key: &str) -> bool {
        if let Some(tx) = self.share.get() {
            let _ = tx.send(BanChange::Unban { key: key.trim().to_owned() });
        }
        self.unban_here(key)
    }

    /// [`Bans::unban`] without telling the other nodes.
    pub fn unban_here(&self, key: &str) -> bool {
        let removed = match key.trim().parse::<IpAddr>() {
            Ok(ip) => {
                let removed = write(&self.ips).remove(&canonical(ip)).is_some();
                if removed {
                    self.generation.fetch_add(1, Ordering::Release);
                }
                removed
            }
            Err(_) => write(&self.keys).remove(key).is_some(),
        };
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Whether `key` is banned (or, an address, blocklisted) at `now`.
    pub fn is_banned(&self, key: &str, now: Instant) -> bool {
        match key.trim().parse::<IpAddr>() {
            Ok(ip) => self.is_listed(ip) || self.is_banned_ip(ip, now),
            Err(_) => self.count.load(Ordering::Relaxed) > 0 && self.check(&self.keys, key, now),
        }
    }

    /// Whether source `ip` is banned at `now` (the receive path's test).
    #[inline]
    pub fn is_banned_ip(&self, ip: IpAddr, now: Instant) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.check(&self.ips, &canonical(ip), now)
    }

    fn check<K, Q>(&self, map: &RwLock<Map<K>>, key: &Q, now: Instant) -> bool
    where
        K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        match read(map).get(key) {
            None => return false,
            Some(until) if *until > now => return true,
            Some(_) => {}
        }
        // Expired: remove it (unless it was renewed meanwhile).
        let mut m = write(map);
        if m.get(key).is_some_and(|until| *until <= now) {
            m.remove(key);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        }
        false
    }

    /// Removes every expired entry.
    pub fn sweep(&self, now: Instant) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut gone = 0;
        write(&self.ips).retain(|_, until| {
            *until > now || {
                gone += 1;
                false
            }
        });
        if gone > 0 {
            self.generation.fetch_add(1, Ordering::Release);
        }
        write(&self.keys).retain(|_, until| {
            *until > now || {
                gone += 1;
                false
            }
        });
        self.count.fetch_sub(gone, Ordering::Relaxed);
    }

    /// Every ban in force at `now`, with the time it has left (what
    /// [`store`](super::store) saves across a restart).
    pub fn entries(&self, now: Instant) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = read(&self.ips)
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(ip, until)| (ip.to_string(), *until - now))
            .collect();
        out.extend(
            read(&self.keys)
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(k, until)| (k.clone(), *until - now)),
        );
        out.sort();
        out
    }

    /// Changes whenever the set of banned addresses does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The banned IPv4 addresses for a socket filter, those banned longest
    /// first, at most `max`; and the earliest of their deadlines (when the
    /// filter must be rebuilt without them).
    pub fn ipv4_snapshot(&self, max: usize) -> (Vec<std::net::Ipv4Addr>, Option<Instant>) {
        let mut v4: Vec<(std::net::Ipv4Addr, Instant)> = read(&self.ips)
            .iter()
            .filter_map(|(ip, until)| match ip {
                IpAddr::V4(a) => Some((*a, *until)),
                IpAddr::V6(_) => None,
            })
            .collect();
        v4.sort_by_key(|(_, until)| std::cmp::Reverse(*until));
        v4.truncate(max);
        let earliest = v4.iter().map(|(_, u)| *u).min();
        (v4.into_iter().map(|(a, _)| a).collect(), earliest)
    }

    /// Entries now (some may have expired since the last sweep).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the blocklists (a program's `blocklist` groups, when it is
    /// loaded: an edited list file takes effect with the reload its saving
    /// triggers).
    pub fn set_blocklists(&self, lists: Vec<super::acl::Acl>) {
        let mut current = write(&self.blocklists);
        if *current == lists {
            return;
        }
        // A feed no blocklist fetches any more is forgotten.
        write(&self.feeds)
            .retain(|name, _| lists.iter().any(|l| l.feed.is_some() && l.name == *name));
        *current = lists;
        drop(current);
        self.recount();
    }

    /// Replaces what blocklist `name`'s feed gave.
    pub fn set_feed(&self, name: &str, entries: super::acl::Acl) {
        let mut feeds = write(&self.feeds);
        if feeds.get(name) == Some(&entries) {
            return;
        }
        feeds.insert(name.to_owned(), entries);
        drop(feeds);
        self.recount();
    }

    /// The blocklists fetched over HTTPS, by name, with their feeds.
    pub fn feeds_wanted(&self) -> Vec<(String, super::acl::Feed)> {
        read(&self.blocklists)
            .iter()
            .filter_map(|l| l.feed.clone().map(|f| (l.name.clone(), f)))
            .collect()
    }

    fn recount(&self) {
        let n: usize = read(&self.blocklists).iter().map(|l| l.len()).sum::<usize>()
            + read(&self.feeds).values().map(|l| l.len()).sum::<usize>();
        self.listed.store(n, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether `ip` is on a blocklist.
    pub fn is_listed(&self, ip: IpAddr) -> bool {
        self.listed.load(Ordering::Relaxed) > 0
            && (read(&self.blocklists).iter().any(|l| l.contains(ip))
                || read(&self.feeds).values().any(|l| l.contains(ip)))
    }

    /// The IPv4 ranges of the blocklists, for the socket filter.
    pub fn listed_v4(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> =
            read(&self.blocklists).iter().flat_map(|l| l.v4_ranges().iter().copied()).collect();
        out.extend(read(&self.feeds).values().flat_map(|l| l.v4_ranges().iter().copied()));
        out
    }

    /// The receive path's question: is a datagram or connection from `ip`
    /// to be dropped now? (Counted when it is.) With nothing banned or
    /// listed this is two atomic loads, before even reading the clock.
    #[inline]
    pub fn drops(&self, ip: IpAddr) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 && self.listed.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let banned = self.is_banned_ip(ip, Instant::now()) || self.is_listed(ip);
        if banned {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        banned
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Sets `key`'s deadline to `until` unless it already lasts longer; the
/// deadline it had, `None` when the key is new.
fn upsert<K: std::hash::Hash + Eq>(
    map: &RwLock<Map<K>>,
    key: K,
    until: Instant,
) -> Option<Instant> {
    let mut m = write(map);
    match m.get_mut(&key) {
        Some(old) => {
            let previous = *old;
            *old = previous.max(until);
            Some(previous)
        }
        None => {
            m.insert(key, until);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_test_expire_and_lift() {
        let bans = Bans::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!bans.is_banned_ip(ip, t0));
        bans.ban("127.0.0.2", Duration::from_secs(10), t0);
        bans.ban("alice", Duration::from_secs(1), t0);
        assert!(bans.is_banned_ip(ip, t0));
        assert!(bans.is_banned_ip("::ffff:127.0.0.2".parse().unwrap(), t0), "v4-mapped");
        assert!(bans.is_banned("127.0.0.2", t0));
        assert!(bans.is_banned("alice", t0));
        assert!(!bans.is_banned("bob", t0));
        assert_eq!(bans.len(), 2);
        // A shorter ban does not cut a longer one.
        bans.ban("127.0.0.2", Duration::from_secs(1), t0);
        assert!(bans.is_banned_ip(ip, t0 + Duration::from_secs(5)));
        // Expiry, met on a test.
        assert!(!bans.is_banned("alice", t0 + Duration::from_secs(2)));
        assert_eq!(bans.len(), 1);
        assert!(bans.unban("127.0.0.2"));
        assert!(!bans.unban("127.0.0.2"));
        assert!(!bans.is_banned_ip(ip, t0));
        assert!(bans.is_empty());
    }

    #[test]
    fn sweep_removes_what_expired() {
        let bans = Bans::default();
        let t0 = Instant::now();
        for i in 0..100 {
            bans.ban(&format!("10.0.0.{i}"), Duration::from_secs(1 + i % 2), t0);
        }
        bans.sweep(t0 + Duration::from_millis(1500));
        assert_eq!(bans.len(), 50);
    }
}
