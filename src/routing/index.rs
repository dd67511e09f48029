//! Lookup structures of routing tables, sized for millions of rows.
//!
//! A `by prefix(…)` table is a sorted array of keys packed into `u128`s
//! (big-endian bytes, zero padded, so integer order is string order and a
//! key sorts right before every string it prefixes). The longest prefix of
//! a query `q` is found with one binary search for the greatest key `c <= q`
//! and a walk up `c`'s *parent* chain (the next shorter key that prefixes
//! it): every key between a prefix `p` of `q` and `q` starts with `p`, so
//! the longest key prefixing `q` is `c` or one of its ancestors. Lookups cost
//! one binary search over a flat array (no pointer chasing, no allocation);
//! building is a sort plus one linear pass with a stack. Keys are at most 16
//! bytes (E.164 numbers have 15 digits), which the checker enforces.
//!
//! A binary search over a million keys is about 20 dependent cache misses,
//! so a first-level index narrows it first: each of the first few bytes of
//! a key is mapped, preserving order, to one of [`CLASSES`] classes (below
//! `0`, the ten digits, above `9`), and `starts` gives where each class
//! tuple's keys begin. Keys of smaller tuples are all smaller than the query,
//! keys of larger tuples all larger, so the search runs inside one bucket
//! (a handful of keys at 1M rows), and the greatest key `<= q` is in it or
//! is the one right before it. The depth grows with the table (up to 5
//! bytes: 12⁵ buckets, 1 MiB).
//!
//! `by exact(…)` tables are a `HashMap`; `by range(…)` tables are sorted,
//! non-overlapping integer ranges searched the same way.

use std::collections::HashMap;

/// Longest key a prefix table accepts, in bytes.
pub const MAX_PREFIX_LEN: usize = 16;

const NONE: u32 = u32::MAX;

/// `s` packed big-endian into a `u128` (first `MAX_PREFIX_LEN` bytes).
fn pack(s: &[u8]) -> u128 {
    let mut buf = [0u8; MAX_PREFIX_LEN];
    let n = s.len().min(MAX_PREFIX_LEN);
    buf[..n].copy_from_slice(&s[..n]);
    u128::from_be_bytes(buf)
}

/// Whether the key `(k, klen)` is a prefix of the packed query `q`.
fn is_prefix(k: u128, klen: u8, q: u128, qlen: usize) -> bool {
    if klen as usize > qlen {
        return false;
    }
    if klen == 0 {
        return true;
    }
    let shift = 8 * (MAX_PREFIX_LEN as u32 - u32::from(klen));
    (k >> shift) == (q >> shift)
}

/// A longest-prefix-match index from string keys to `u32` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixIndex {
    /// One record per key, so each step of a search or of the parent walk
    /// touches one cache line (separate arrays cost a miss per field).
    nodes: Vec<Node>,
    /// How many leading bytes the first-level index uses (0: none).
    depth: u32,
    /// Where the keys of each class tuple start; `CLASSES^depth + 1` entries.
    starts: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    key: u128,
    /// Index of the longest other key that is a prefix of this one.
    parent: u32,
    value: u32,
    len: u8,
}

/// Byte classes of the first-level index: below `0`, `0`..=`9`, above `9`.
const CLASSES: usize = 12;

fn class(b: u8) -> usize {
    match b {
        b'0'..=b'9' => 1 + (b - b'0') as usize,
        0..=b'/' => 0,
        _ => 11,
    }
}

/// The bucket of a packed key: its first `depth` bytes' classes.
fn bucket(k: u128, depth: u32) -> usize {
    let bytes = k.to_be_bytes();
    bytes[..depth as usize].iter().fold(0, |acc, &b| acc * CLASSES + class(b))
}

/// Why rows cannot go into an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Rows `.0` and `.1` (positions in the input) have the same key.
    Duplicate(usize, usize),
    /// Row `.0`'s key is longer than [`MAX_PREFIX_LEN`] or contains NUL.
    BadKey(usize),
}

impl PrefixIndex {
    /// Builds the index; `rows` yields `(key, value)`. Every duplicate and
    /// bad key is reported (the index is still built from the first of
    /// each duplicate, so a caller may go on).
    pub fn build<'a>(rows: impl IntoIterator<Item = (&'a str, u32)>) -> (Self, Vec<BuildError>) {
        let mut errors = Vec::new();
        let mut entries: Vec<(u128, u8, u32, u32)> = Vec::new();
        for (pos, (key, value)) in rows.into_iter().enumerate() {
            let b = key.as_bytes();
            if b.len() > MAX_PREFIX_LEN || b.contains(&0) {
                errors.push(BuildError::BadKey(pos));
                continue;
            }
            entries.push((pack(b), b.len() as u8, pos as u32, value));
        }
        // Stable on input position, so the first of equal keys comes first.
        entries.sort_unstable_by_key(|&(k, l, pos, _)| (k, l, pos));
        let mut idx = PrefixIndex::default();
        idx.nodes.reserve(entries.len());
        let mut stack: Vec<u32> = Vec::new();
        let mut kept: Option<(u128, u8, u32)> = None;
        for &(k, l, pos, v) in &entries {
            if let Some((kk, kl, kpos)) = kept
                && kk == k
                && kl == l
            {
                errors.push(BuildError::Duplicate(kpos as usize, pos as usize));
                continue;
            }
            kept = Some((k, l, pos));
            while let Some(&top) = stack.last() {
                let t = top as usize;
                if is_prefix(idx.nodes[t].key, idx.nodes[t].len, k, l as usize) {
                    break;
                }
                stack.pop();
            }
            let me = idx.nodes.len() as u32;
            let parent = stack.last().copied().unwrap_or(NONE);
            idx.nodes.push(Node { key: k, parent, value: v, len: l });
            stack.push(me);
        }
        idx.index_buckets();
        (idx, errors)
    }

    /// Builds the first-level index (see the module docs).
    fn index_buckets(&mut self) {
        let mut depth = 0u32;
        while depth < 5 && CLASSES.pow(depth) * 4 < self.nodes.len() {
            depth += 1;
        }
        self.depth = depth;
        if depth == 0 {
            return;
        }
        let n = CLASSES.pow(depth);
        let mut starts = vec![0u32; n + 1];
        for n in &self.nodes {
            starts[bucket(n.key, depth) + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        self.starts = starts;
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The value of the longest key that is a prefix of `query`.
    pub fn longest_prefix(&self, query: &str) -> Option<u32> {
        let qb = query.as_bytes();
        let q = pack(qb);
        let qlen = qb.len();
        // Greatest key <= q (keys equal to q as packed but longer than the
        // query cannot exist: they would end in the query's padding).
        let n = if self.depth == 0 {
            self.nodes.partition_point(|n| n.key <= q)
        } else {
            let b = bucket(q, self.depth);
            let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
            lo + self.nodes[lo..hi].partition_point(|n| n.key <= q)
        };
        let mut i = n.checked_sub(1)? as u32;
        while i != NONE {
            let at = i as usize;
            let n = &self.nodes[at];
            if is_prefix(n.key, n.len, q, qlen) {
                return Some(n.value);
            }
            i = n.parent;
        }
        None
    }
}

/// An exact-match index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExactIndex {
    map: HashMap<String, u32>,
}

impl ExactIndex {
    pub fn build<'a>(rows: impl IntoIterator<Item = (&'a str, u32)>) -> (Self, Vec<BuildError>) {
        let mut map: HashMap<String, u32> = HashMap::new();
        let mut first: HashMap<&'a str, usize> = HashMap::new();
        let mut errors = Vec::new();
        for (pos, (key, value)) in rows.into_iter().enumerate() {
            if let Some(&f) = first.get(key) {
                errors.push(BuildError::Duplicate(f, pos));
                continue;
            }
            first.insert(key, pos);
            map.insert(key.to_owned(), value);
        }
        (ExactIndex { map }, errors)
    }

    pub fn get(&self, key: &str) -> Option<u32> {
        self.map.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Non-overlapping inclusive integer ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeIndex {
    /// `(low, high, value)`, sorted by `low`.
    ranges: Vec<(u64, u64, u32)>,
}

/// How a range row relates to the rows before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeProblem {
    /// Row `.1` lies entirely inside row `.0`: it can never be chosen.
    Shadowed(usize, usize),
    /// Rows `.0` and `.1` overlap partly.
    Overlap(usize, usize),
    /// Row `.0` is not `LOW-HIGH` with `LOW <= HIGH`.
    BadKey(usize),
}

/// Parses `"100-199"` (or a single number) into an inclusive range.
pub fn parse_range(key: &str) -> Option<(u64, u64)> {
    let (lo, hi) = key.split_once('-').unwrap_or((key, key));
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

impl RangeIndex {
    pub fn build<'a>(rows: impl IntoIterator<Item = (&'a str, u32)>) -> (Self, Vec<RangeProblem>) {
        let mut problems = Vec::new();
        let mut all: Vec<(u64, u64, u32, usize)> = Vec::new();
        for (pos, (key, value)) in rows.into_iter().enumerate() {
            match parse_range(key) {
                Some((lo, hi)) => all.push((lo, hi, value, pos)),
                None => problems.push(RangeProblem::BadKey(pos)),
            }
        }
        all.sort_by_key(|&(lo, hi, _, pos)| (lo, std::cmp::Reverse(hi), pos));
        let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for (lo, hi, v, pos) in all {
            if let Some(&(_, phi, _)) = ranges.last()
                && lo <= phi
            {
                let prev = *owner.last().unwrap_or(&0);
                let (a, b) = (prev.min(pos), prev.max(pos));
                problems.push(if hi <= phi {
                    RangeProblem::Shadowed(a, b)
                } else {
                    RangeProblem::Overlap(a, b)
                });
                continue;
            }
            ranges.push((lo, hi, v));
            owner.push(pos);
        }
        (RangeIndex { ranges }, problems)
    }

    /// The value of the range containing `key` (a decimal number).
    pub fn get(&self, key: &str) -> Option<u32> {
        let k: u64 = key.parse().ok()?;
        let n = self.ranges.partition_point(|r| r.0 <= k);
        let (_, hi, v) = *self.ranges.get(n.checked_sub(1)?)?;
        (k <= hi).then_some(v)
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(rows: &[&str]) -> PrefixIndex {
        let (idx, errs) = PrefixIndex::build(rows.iter().enumerate().map(|(i, k)| (*k, i as u32)));
        assert!(errs.is_empty(), "{errs:?}");
        idx
    }

    #[test]
    fn longest_prefix_wins() {
        let idx = prefix(&["", "0", "0086", "00861", "0044", "1"]);
        assert_eq!(idx.longest_prefix("008613800000000"), Some(3));
        assert_eq!(idx.longest_prefix("0086213"), Some(2));
        assert_eq!(idx.longest_prefix("0033"), Some(1));
        assert_eq!(idx.longest_prefix("2"), Some(0));
        assert_eq!(idx.longest_prefix(""), Some(0));
        assert_eq!(idx.longest_prefix("1"), Some(5));
        // Longer than 16 bytes: the first 16 decide (no key is longer).
        assert_eq!(idx.longest_prefix("00861234567890123456"), Some(3));
    }

    #[test]
    fn ancestors_are_found_past_unrelated_siblings() {
        let idx = prefix(&["1", "123", "1234", "125"]);
        assert_eq!(idx.longest_prefix("1299"), Some(0));
        assert_eq!(idx.longest_prefix("12399"), Some(1));
        assert_eq!(idx.longest_prefix("12349"), Some(2));
        assert_eq!(idx.longest_prefix("0"), None);
        assert_eq!(idx.longest_prefix("12"), Some(0));
    }

    #[test]
    fn agrees_with_a_linear_scan() {
        // A deterministic pseudo-random table of digit prefixes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut keys: Vec<String> = Vec::new();
        for _ in 0..2000 {
            let len = (next() % 7) as usize;
            let k: String = (0..len).map(|_| char::from(b'0' + (next() % 4) as u8)).collect();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let idx = prefix(&refs);
        for _ in 0..5000 {
            let len = (next() % 9) as usize;
            let q: String = (0..len).map(|_| char::from(b'0' + (next() % 4) as u8)).collect();
            let want = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| q.starts_with(k.as_str()))
                .max_by_key(|(_, k)| k.len())
                .map(|(i, _)| i as u32);
            assert_eq!(idx.longest_prefix(&q), want, "query {q}");
        }
    }

    #[test]
    fn duplicates_and_bad_keys_are_reported() {
        let (_, errs) = PrefixIndex::build([("49", 0), ("12345678901234567", 1), ("49", 2)]);
        assert_eq!(errs, vec![BuildError::BadKey(1), BuildError::Duplicate(0, 2)]);
        let (_, errs) = ExactIndex::build([("a", 0), ("b", 1), ("a", 2)]);
        assert_eq!(errs, vec![BuildError::Duplicate(0, 2)]);
    }

    #[test]
    fn ranges() {
        let (idx, problems) = RangeIndex::build([
            ("100-199", 0),
            ("120-130", 1),
            ("190-250", 2),
            ("300", 3),
            ("x", 4),
        ]);
        assert_eq!(
            problems,
            vec![
                RangeProblem::BadKey(4),
                RangeProblem::Shadowed(0, 1),
                RangeProblem::Overlap(0, 2)
            ]
        );
        assert_eq!(idx.get("150"), Some(0));
        assert_eq!(idx.get("300"), Some(3));
        assert_eq!(idx.get("299"), None);
        assert_eq!(idx.get("abc"), None);
    }
}
