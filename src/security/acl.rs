//! Address groups: `acl NAME ADDRESS… [from "FILE"];` and `in_acl(NAME)`;
//! and blocklists, `blocklist NAME ADDRESS… [from "FILE"];`, groups whose
//! sources are dropped like banned ones ([`super::Bans::set_blocklists`]).
//!
//! A group is a set of IPv4 and IPv6 networks, written inline (`10.0.0.0/8
//! 192.0.2.7 "2001:db8::/32"`) or one per line in a file beside the config
//! (`#` comments; a CSV's first column). The file is read with the config,
//! so saving it reloads the config like any include. The networks are
//! merged into sorted, disjoint ranges once, at check time: a test is a
//! binary search, whatever the group's size.

use std::net::IpAddr;

/// A checked address group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    /// A `blocklist`: its sources are dropped like banned ones.
    pub block: bool,
    /// A blocklist fetched over HTTPS (`from "https://…" refresh D key
    /// "…"`): its entries come from [`super::feed`], not from here.
    pub feed: Option<Feed>,
    /// Disjoint inclusive ranges, sorted.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Where a blocklist's entries are fetched from, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Feed {
    pub url: String,
    pub refresh_ms: u64,
    /// Sent as `Authorization: Bearer KEY`, and put in place of `{key}` in
    /// the URL (APIBAN's `https://apiban.org/api/{key}/banned`).
    pub key: Option<String>,
}

/// An IPv4 or IPv6 network: `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`,
/// `[2001:db8::1]`.
pub fn parse_net(text: &str) -> Option<(IpAddr, u8)> {
    let text = text.trim();
    let (ip, bits) = match text.split_once('/') {
        Some((ip, b)) => (ip, Some(b.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let ip: IpAddr = ip.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

impl Acl {
    pub fn new(name: &str, nets: &[(IpAddr, u8)]) -> Acl {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(ip, bits) in nets {
            match ip {
                IpAddr::V4(a) => {
                    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
                    let start = u32::from(a) & mask;
                    v4.push((start, start | !mask));
                }
                IpAddr::V6(a) => {
                    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
                    let start = u128::from(a) & mask;
                    v6.push((start, start | !mask));
                }
            }
        }
        Acl { name: name.to_owned(), block: false, feed: None, v4: merge(v4), v6: merge(v6) }
    }

    /// The IPv4 ranges (inclusive, as integers), for a socket filter.
    pub fn v4_ranges(&self) -> &[(u32, u32)] {
        &self.v4
    }

    /// Whether `ip` is in the group (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Networks in the group after merging.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn merge<T: Ord + Copy + num_one::One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 || last.1.next() == Some(s) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < x);
    ranges.get(i).is_some_and(|r| r.0 <= x)
}

/// The successor of a range end, for merging adjacent ranges.
mod num_one {
    pub trait One: Sized {
        fn next(self) -> Option<Self>;
    }
    impl One for u32 {
        fn next(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl One for u128 {
        fn next(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_merge_and_match() {
        let nets: Vec<_> =
            ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.7", "192.0.2.8/31", "2001:db8::/32"]
                .iter()
                .map(|n| parse_net(n).unwrap())
                .collect();
        let acl = Acl::new("trusted", &nets);
        assert_eq!(acl.len(), 3, "10/8 holds 10.1/16; .7 and .8/31 are adjacent");
        assert!(acl.contains(ip("10.200.3.4")));
        assert!(acl.contains(ip("192.0.2.9")));
        assert!(!acl.contains(ip("192.0.2.10")));
        assert!(!acl.contains(ip("11.0.0.1")));
        assert!(acl.contains(ip("2001:db8:ffff::1")));
        assert!(!acl.contains(ip("2001:db9::1")));
        assert!(acl.contains(ip("::ffff:10.0.0.1")), "v4-mapped");
        assert!(Acl::new("all", &[parse_net("0.0.0.0/0").unwrap()]).contains(ip("8.8.8.8")));
        assert!(Acl::new("none", &[]).is_empty());
        assert_eq!(parse_net("10.0.0.0/33"), None);
        assert_eq!(parse_net("[::1]"), Some((ip("::1"), 128)));
        assert_eq!(parse_net("example.com"), None);
    }
}
