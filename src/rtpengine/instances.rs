//! The rtpengine instances a client talks to: their addresses and weights,
//! whether each is up, its counters, and which instance serves a call.
//!
//! A call goes to the instance chosen by weighted rendezvous hashing of its
//! Call-ID over the live instances: each instance scores
//! `weight / -ln(u)` with `u` a hash of (Call-ID, instance address) mapped
//! into (0, 1), and the highest score wins. Every message of a call
//! (offer, answer, delete) therefore reaches the same instance while it is
//! up; when one goes down only its calls move (to the instance that scored
//! next for each of them), and they move back when it comes up again. Over
//! many calls an instance's share is its weight over the sum of the live
//! weights. The hash is fixed (FNV-1a and a mixer, no per-process seed), so
//! two proxies in front of the same instances choose alike.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One instance in the settings: `udp:127.0.0.1:22222`, optionally with a
/// weight, `udp:127.0.0.1:22222=2` (the form of Kamailio's `rtpengine_sock`).
/// `udp6:[::1]:22222` for IPv6. Addresses are IP literals: the client never
/// resolves names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub addr: SocketAddr,
    /// Relative share of calls, at least 1.
    pub weight: u32,
}

impl InstanceSpec {
    pub fn new(addr: SocketAddr, weight: u32) -> Self {
        Self { addr, weight: weight.max(1) }
    }
}

impl fmt::Display for InstanceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.addr.is_ipv4() { "udp" } else { "udp6" };
        write!(f, "{scheme}:{}", self.addr)?;
        if self.weight != 1 {
            write!(f, "={}", self.weight)?;
        }
        Ok(())
    }
}

impl FromStr for InstanceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (rest, weight) = match s.rsplit_once('=') {
            Some((rest, w)) => {
                let w: u32 = w.trim().parse().map_err(|_| format!("`{s}`: bad weight `{w}`"))?;
                if w == 0 {
                    return Err(format!("`{s}`: the weight must be at least 1"));
                }
                (rest, w)
            }
            None => (s, 1),
        };
        let addr = rest
            .strip_prefix("udp:")
            .or_else(|| rest.strip_prefix("udp6:"))
            .ok_or_else(|| format!("`{s}`: expected udp:ADDRESS:PORT or udp6:[ADDRESS]:PORT"))?;
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{addr}` is not an IP address and port"))?;
        Ok(Self { addr, weight })
    }
}

/// The counters and state of one instance, as a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStats {
    pub addr: SocketAddr,
    pub weight: u32,
    pub up: bool,
    /// Datagrams sent: requests, their retransmissions, health pings.
    pub sent: u64,
    /// Waits for a reply that expired (one per unanswered datagram).
    pub timeouts: u64,
    /// Replies with `result` = `error`, and malformed replies.
    pub errors: u64,
    /// Replies matched to a request.
    pub replies: u64,
}

/// One instance's live state.
#[derive(Debug)]
pub(crate) struct Instance {
    pub spec: InstanceSpec,
    up: AtomicBool,
    /// A health pinger is running for it.
    pub probing: AtomicBool,
    pub sent: AtomicU64,
    pub timeouts: AtomicU64,
    pub errors: AtomicU64,
    pub replies: AtomicU64,
    /// Hash of the address, the instance's part of each rendezvous hash.
    key: u64,
}

impl Instance {
    pub fn new(spec: InstanceSpec) -> Self {
        Self {
            key: fnv1a(spec.addr.to_string().as_bytes()),
            spec,
            up: AtomicBool::new(true),
            probing: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            replies: AtomicU64::new(0),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the instance up or down; returns whether that changed it.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed) != up
    }

    pub fn stats(&self) -> InstanceStats {
        InstanceStats {
            addr: self.spec.addr,
            weight: self.spec.weight,
            up: self.is_up(),
            sent: self.sent.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            replies: self.replies.load(Ordering::Relaxed),
        }
    }

    /// This instance's rendezvous score for a call.
    fn score(&self, call: u64) -> f64 {
        let h = mix(call ^ self.key);
        // The top 53 bits as a float in (0, 1): never 0, so ln is finite.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        f64::from(self.spec.weight) / -u.ln()
    }
}

/// The indices of the live instances in the order a call tries them: the
/// instance that serves it first, then the next scores (the failover
/// order). Empty when none is up.
pub(crate) fn order_for(instances: &[Instance], call_id: &str) -> Vec<usize> {
    let call = fnv1a(call_id.as_bytes());
    let mut live: Vec<(f64, usize)> = instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.is_up())
        .map(|(n, i)| (i.score(call), n))
        .collect();
    live.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    live.into_iter().map(|(_, n)| n).collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The splitmix64 finalizer: spreads FNV's weak low bits over the word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(specs: &[&str]) -> Vec<Instance> {
        specs.iter().map(|s| Instance::new(s.parse().unwrap())).collect()
    }

    #[test]
    fn parses_instance_specs() {
        let s: InstanceSpec = "udp:127.0.0.1:22222".parse().unwrap();
        assert_eq!(s, InstanceSpec::new("127.0.0.1:22222".parse().unwrap(), 1));
        let s: InstanceSpec = "udp:10.0.0.2:2223=3".parse().unwrap();
        assert_eq!(s.weight, 3);
        assert_eq!(s.to_string(), "udp:10.0.0.2:2223=3");
        let s: InstanceSpec = "udp6:[::1]:22222".parse().unwrap();
        assert_eq!(s.to_string(), "udp6:[::1]:22222");
        for bad in [
            "127.0.0.1:22222",
            "tcp:127.0.0.1:1",
            "udp:localhost:22222",
            "udp:1.2.3.4",
            "udp:1.2.3.4:5=0",
            "udp:1.2.3.4:5=x",
        ] {
            assert!(bad.parse::<InstanceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_call_stays_on_its_instance() {
        let inst = set(&["udp:127.0.0.1:1", "udp:127.0.0.1:2", "udp:127.0.0.1:3"]);
        for n in 0..100 {
            let id = format!("call-{n}@host");
            let order = order_for(&inst, &id);
            assert_eq!(order.len(), 3);
            assert_eq!(order, order_for(&inst, &id));
        }
    }

    #[test]
    fn shares_follow_weights() {
        let inst = set(&["udp:127.0.0.1:1=1", "udp:127.0.0.1:2=3"]);
        let mut count = [0u32; 2];
        for n in 0..20_000 {
            count[order_for(&inst, &format!("{n:x}-abc@10.0.0.1"))[0]] += 1;
        }
        // Expected 5,000 / 15,000.
        assert!((4_500..5_500).contains(&count[0]), "{count:?}");
    }

    #[test]
    fn only_the_calls_of_a_down_instance_move() {
        let inst = set(&["udp:127.0.0.1:1", "udp:127.0.0.1:2", "udp:127.0.0.1:3"]);
        let ids: Vec<String> = (0..3_000).map(|n| format!("{n}@x")).collect();
        let before: Vec<Vec<usize>> = ids.iter().map(|id| order_for(&inst, id)).collect();
        inst[1].set_up(false);
        let mut moved = 0;
        for (id, was) in ids.iter().zip(&before) {
            let now = order_for(&inst, id);
            assert!(!now.contains(&1));
            if was[0] == 1 {
                moved += 1;
                // It goes where it would have failed over to.
                assert_eq!(now[0], was[1]);
            } else {
                assert_eq!(now[0], was[0]);
            }
        }
        assert!((800..1_200).contains(&moved), "{moved}");
        inst[1].set_up(true);
        assert!(ids.iter().zip(&before).all(|(id, was)| order_for(&inst, id) == *was));
    }

    #[test]
    fn no_live_instance_gives_an_empty_order() {
        let inst = set(&["udp:127.0.0.1:1"]);
        assert!(inst[0].set_up(false));
        assert!(!inst[0].set_up(false));
        assert!(order_for(&inst, "x").is_empty());
    }
}
