//! Ordering a group's members for one call: the strategies, as pure
//! functions over a snapshot of each member's health and load.
//!
//! The first member of the order is tried first; the rest are the failover
//! sequence `next_destination()` walks. Members that are down or at their
//! call limit are left out (unless every member is down and the group says
//! `all_down try_all`). `hash(…)` uses rendezvous hashing: each member gets
//! a score from the key and its name, highest first, so a caller stays on
//! one member while it is up and only that member's callers move when it
//! goes down.

use crate::sema::ir::{AllDown, Strategy};

/// What the strategies need to know about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub trunk: u32,
    /// Stable identity for hashing (the trunk's name).
    pub name_hash: u64,
    pub weight: u32,
    pub priority: i64,
    pub up: bool,
    pub full: bool,
    pub active: u64,
}

/// FNV-1a, so hashes are the same in every process and run.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The members to try, in order. `turn` is the group's call counter (round
/// robin, weighted draws, tie breaks); `key` the hash of the call's key for
/// `hash(…)`.
pub fn order(
    strategy: Strategy,
    all_down: AllDown,
    members: &[Member],
    turn: u64,
    key: u64,
) -> Vec<u32> {
    let mut usable: Vec<&Member> = members.iter().filter(|m| m.up && !m.full).collect();
    if usable.is_empty() && all_down == AllDown::TryAll {
        usable = members.iter().filter(|m| !m.full).collect();
    }
    let n = usable.len();
    if n == 0 {
        return Vec::new();
    }
    match strategy {
        Strategy::RoundRobin => usable.rotate_left((turn % n as u64) as usize),
        Strategy::Priority => usable.sort_by_key(|m| m.priority),
        Strategy::LeastCalls => {
            usable.rotate_left((turn % n as u64) as usize);
            usable.sort_by_key(|m| m.active);
        }
        Strategy::Hash(_) => usable.sort_by_key(|m| std::cmp::Reverse(mix(key ^ m.name_hash))),
        Strategy::Weighted => {
            // Weighted draws without replacement, seeded by the turn.
            let mut seed = mix(turn.wrapping_add(0x9e37_79b9_7f4a_7c15));
            let mut rest = usable;
            let mut out = Vec::with_capacity(n);
            while !rest.is_empty() {
                let total: u64 = rest.iter().map(|m| u64::from(m.weight.max(1))).sum();
                let mut pick = seed % total;
                seed = mix(seed);
                let i = rest
                    .iter()
                    .position(|m| {
                        let w = u64::from(m.weight.max(1));
                        if pick < w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                out.push(rest.remove(i).trunk);
            }
            return out;
        }
    }
    usable.into_iter().map(|m| m.trunk).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sema::ir::HashKey;

    fn members(n: u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                trunk: i,
                name_hash: fnv(format!("fs{i}").as_bytes()),
                weight: 1,
                priority: i64::from(n - i),
                up: true,
                full: false,
                active: 0,
            })
            .collect()
    }

    #[test]
    fn round_robin_rotates_and_skips_down_members() {
        let mut m = members(3);
        assert_eq!(order(Strategy::RoundRobin, AllDown::Fail, &m, 0, 0), vec![0, 1, 2]);
        assert_eq!(order(Strategy::RoundRobin, AllDown::Fail, &m, 1, 0), vec![1, 2, 0]);
        m[1].up = false;
        assert_eq!(order(Strategy::RoundRobin, AllDown::Fail, &m, 1, 0), vec![2, 0]);
        m[2].full = true;
        assert_eq!(order(Strategy::RoundRobin, AllDown::Fail, &m, 1, 0), vec![0]);
    }

    #[test]
    fn all_down() {
        let mut m = members(2);
        m[0].up = false;
        m[1].up = false;
        assert!(order(Strategy::RoundRobin, AllDown::Fail, &m, 0, 0).is_empty());
        assert_eq!(order(Strategy::RoundRobin, AllDown::TryAll, &m, 0, 0), vec![0, 1]);
    }

    #[test]
    fn priority_and_least_calls() {
        let mut m = members(3);
        assert_eq!(order(Strategy::Priority, AllDown::Fail, &m, 7, 0), vec![2, 1, 0]);
        m[0].active = 5;
        m[1].active = 1;
        m[2].active = 3;
        assert_eq!(order(Strategy::LeastCalls, AllDown::Fail, &m, 0, 0), vec![1, 2, 0]);
    }

    #[test]
    fn hash_is_sticky_and_spreads() {
        let m = members(3);
        let s = Strategy::Hash(HashKey::CallId);
        let mut hits = [0; 3];
        for caller in 0..300 {
            let key = fnv(format!("caller{caller}").as_bytes());
            let first = order(s, AllDown::Fail, &m, caller, key)[0];
            assert_eq!(order(s, AllDown::Fail, &m, caller + 17, key)[0], first);
            hits[first as usize] += 1;
        }
        assert!(hits.iter().all(|&h| h > 60), "{hits:?}");
    }

    #[test]
    fn weighted_follows_weights() {
        let mut m = members(2);
        m[0].weight = 3;
        let mut first = [0; 2];
        for turn in 0..4000 {
            let o = order(Strategy::Weighted, AllDown::Fail, &m, turn, 0);
            assert_eq!(o.len(), 2);
            first[o[0] as usize] += 1;
        }
        assert!((2700..3300).contains(&first[0]), "{first:?}");
    }
}
