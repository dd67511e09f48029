//! Bencode, the encoding of rtpengine's ng protocol.
//!
//! Four kinds of value: integers (`i42e`), byte strings (`4:spam`), lists
//! (`l…e`) and dictionaries (`d…e`, byte-string keys). Encoding writes
//! dictionary keys in sorted order, as the bencode specification asks
//! ([`Dict`] is a `BTreeMap` over the raw key bytes, so the order is that of
//! the bytes). Decoding accepts keys in any order, because rtpengine does
//! not sort the keys of its replies (`sdp` comes before `result`), but
//! rejects a repeated key.
//!
//! Decoding reads untrusted datagrams, so it never panics and never
//! allocates more than the input justifies: a string length is checked
//! against the bytes that remain before anything is copied, integers that
//! overflow `i64` or carry leading zeros are errors, nesting deeper than
//! [`MAX_DEPTH`] is an error (the decoder is recursive, and this bounds its
//! stack), and bytes after the top value are an error.
//!
//! [`decode_dict_keeping`] checks a reply as strictly (keys repeated inside
//! a value it skips aside) but builds only the top-level entries its caller
//! reads. Route code reads two or three
//! keys of a reply (`result`, `error-reason`, `sdp`), while rtpengine's
//! replies carry statistics: a `delete` reply nests a dictionary per tag,
//! per stream and per SSRC. Building and freeing all of that was two fifths
//! of what the relay cost the proxy in user space (callgrind,
//! `examples/nat-rtpengine.route` under SIPp: 145,000 instructions per call
//! for offer, answer and delete before, about 90,000 after;
//! docs/architecture.md).

use std::collections::BTreeMap;
use std::fmt;

/// The deepest nesting of lists and dictionaries [`decode`] accepts. An
/// rtpengine `query` reply nests about 8 levels.
pub const MAX_DEPTH: usize = 64;

/// A bencoded value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(Dict),
}

/// A dictionary: byte-string keys in byte order (the order encoding writes).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dict(BTreeMap<Vec<u8>, Value>);

impl Dict {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request dictionary `{ "command": command }`.
    pub fn command(command: &str) -> Self {
        Self::new().with("command", command)
    }

    /// Sets `key` and returns the dictionary, for building requests.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key`, returning its previous value.
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.as_bytes().to_vec(), value.into())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key.as_bytes())
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key.as_bytes())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key.as_bytes())
    }

    /// The byte string under `key`, when it is one.
    pub fn get_bytes(&self, key: &str) -> Option<&[u8]> {
        match self.get(key)? {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string under `key`, when it is one and is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(key)?).ok()
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn get_list(&self, key: &str) -> Option<&[Value]> {
        match self.get(key)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn get_dict(&self, key: &str) -> Option<&Dict> {
        match self.get(key)? {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded dictionary, in a buffer of its exact size.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(dict_len(self));
        encode_dict(self, &mut out);
        out
    }
}

impl FromIterator<(Vec<u8>, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Bytes(v.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Bytes(v.into_bytes())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<Dict> for Value {
    fn from(v: Dict) -> Self {
        Value::Dict(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

/// A list of strings, e.g. `"flags": ["trust-address", "SIP-source-address"]`.
impl From<&[&str]> for Value {
    fn from(v: &[&str]) -> Self {
        Value::List(v.iter().map(|s| Value::from(*s)).collect())
    }
}

impl<const N: usize> From<[&str; N]> for Value {
    fn from(v: [&str; N]) -> Self {
        Value::from(&v[..])
    }
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The encoded value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self));
        encode_into(self, &mut out);
        out
    }
}

/// Byte strings print as text when they are UTF-8 (replies are mostly text).
fn fmt_bytes(b: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match std::str::from_utf8(b) {
        Ok(s) => write!(f, "{s:?}"),
        Err(_) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => fmt_bytes(b, f),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key<'a>(&'a [u8]);
        impl fmt::Debug for Key<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_bytes(self.0, f)
            }
        }
        f.debug_map().entries(self.0.iter().map(|(k, v)| (Key(k), v))).finish()
    }
}

/// The length of `v`'s encoding: [`Value::encode`] and [`Dict::encode`]
/// size their buffer with it instead of growing it a dozen times.
pub fn encoded_len(v: &Value) -> usize {
    match v {
        Value::Int(i) => 2 + usize::from(*i < 0) + crate::sip::write::digit_count(i.unsigned_abs()),
        Value::Bytes(b) => bytes_len(b),
        Value::List(l) => 2 + l.iter().map(encoded_len).sum::<usize>(),
        Value::Dict(d) => dict_len(d),
    }
}

fn bytes_len(b: &[u8]) -> usize {
    crate::sip::write::digit_count(b.len() as u64) + 1 + b.len()
}

fn dict_len(d: &Dict) -> usize {
    2 + d.0.iter().map(|(k, v)| bytes_len(k) + encoded_len(v)).sum::<usize>()
}

/// Appends the encoding of `v` to `out`.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => {
            out.push(b'i');
            if *i < 0 {
                out.push(b'-');
            }
            crate::sip::write::extend_decimal(out, i.unsigned_abs());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(l) => {
            out.push(b'l');
            for item in l {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => encode_dict(d, out),
    }
}

/// `<len>:<bytes>`; the length written without the formatting machinery
/// (every key and value of every request goes through here).
fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    crate::sip::write::extend_decimal(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

fn encode_dict(d: &Dict, out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in &d.0 {
        encode_bytes(k, out);
        encode_into(v, out);
    }
    out.push(b'e');
}

/// Why some bytes are not one bencoded value; `at` is the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte {at}")]
pub struct DecodeError {
    pub at: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("input ends inside a value")]
    Truncated,
    #[error("unexpected byte")]
    UnexpectedByte,
    #[error("malformed integer")]
    BadInteger,
    #[error("malformed string length")]
    BadLength,
    #[error("string length runs past the end of the input")]
    LengthPastEnd,
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("dictionary key is not a byte string")]
    KeyNotString,
    #[error("repeated dictionary key")]
    DuplicateKey,
    #[error("bytes after the value")]
    TrailingBytes,
}

/// Decodes exactly one value from `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    // Built, so always `Some`.
    let v = d.value(0, true)?.unwrap_or(Value::List(Vec::new()));
    d.end()?;
    Ok(v)
}

/// Decodes exactly one value from `input`, which must be a dictionary.
pub fn decode_dict(input: &[u8]) -> Result<Dict, DecodeError> {
    match decode(input)? {
        Value::Dict(d) => Ok(d),
        _ => Err(DecodeError { at: 0, kind: DecodeErrorKind::UnexpectedByte }),
    }
}

/// [`decode_dict`], building only the top-level entries whose keys are in
/// `keep`: every other value is checked as thoroughly (the same errors at
/// the same offsets), except for keys repeated inside it, and skipped
/// without being copied. A key repeated at the top is an error, as in
/// [`decode_dict`].
pub fn decode_dict_keeping(input: &[u8], keep: &[&str]) -> Result<Dict, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    if d.peek()? != b'd' {
        return decode_dict(input);
    }
    let dict = d.dict(0, &|key| keep.iter().any(|k| k.as_bytes() == key))?;
    d.end()?;
    Ok(dict)
}

/// The keys of one dictionary seen so far, for finding a repeated one
/// without copying them: up to 16 keys in an array compared in place,
/// then a hash set (so a hostile reply with thousands of keys costs
/// linear time, not quadratic). A 64-bit filter over each key's length
/// and end bytes answers "new" without comparing for most keys (in the
/// dictionaries [`decode`] builds, and at the top of those
/// [`decode_dict_keeping`] reads; what it skips is not searched for repeats).
struct Keys<'a> {
    few: [&'a [u8]; 16],
    len: usize,
    seen: u64,
    many: Option<std::collections::HashSet<&'a [u8], foldhash::fast::RandomState>>,
}

impl<'a> Keys<'a> {
    fn new() -> Self {
        Keys { few: [&[]; 16], len: 0, seen: 0, many: None }
    }

    /// Adds `key`, read at offset `at`; a repeated key is an error there.
    fn check(&mut self, key: &'a [u8], at: usize) -> Result<(), DecodeError> {
        match self.insert(key) {
            true => Ok(()),
            false => Err(DecodeError { at, kind: DecodeErrorKind::DuplicateKey }),
        }
    }

    /// Adds `key`; `false` when it was there already.
    #[inline]
    fn insert(&mut self, key: &'a [u8]) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        let bit = 1u64 << (filter_hash(key) & 63);
        if self.seen & bit != 0 && self.few[..self.len].contains(&key) {
            return false;
        }
        if self.len == self.few.len() {
            let mut many: std::collections::HashSet<_, _> = self.few.iter().copied().collect();
            many.insert(key);
            self.many = Some(many);
            return true;
        }
        self.seen |= bit;
        self.few[self.len] = key;
        self.len += 1;
        true
    }
}

/// A few bits of `key` for [`Keys`]' filter: equal keys give equal bits.
#[inline]
fn filter_hash(key: &[u8]) -> u32 {
    let (first, last) = match key {
        [] => return 0,
        [only] => (*only, *only),
        [first, .., last] => (*first, *last),
    };
    (key.len() as u32).wrapping_mul(29) ^ u32::from(first) ^ u32::from(last).rotate_left(3)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { at: self.pos, kind }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input.get(self.pos).copied().ok_or_else(|| self.err(DecodeErrorKind::Truncated))
    }

    /// No bytes after the top value.
    fn end(&self) -> Result<(), DecodeError> {
        match self.pos == self.input.len() {
            true => Ok(()),
            false => Err(self.err(DecodeErrorKind::TrailingBytes)),
        }
    }

    /// One value at nesting `depth`: built when `build`, else only checked
    /// (`None`), with the same errors at the same offsets either way.
    fn value(&mut self, depth: usize, build: bool) -> Result<Option<Value>, DecodeError> {
        if !build {
            return self.skip(depth).map(|()| None);
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.int()?;
                Ok(build.then_some(Value::Int(n)))
            }
            b'0'..=b'9' => {
                let b = self.bytes()?;
                Ok(build.then(|| Value::Bytes(b.to_vec())))
            }
            b'l' => {
                self.enter(depth)?;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.extend(self.value(depth + 1, build)?);
                }
                self.pos += 1;
                Ok(build.then_some(Value::List(items)))
            }
            b'd' => {
                let d = self.dict(depth, &|_| build)?;
                Ok(build.then_some(Value::Dict(d)))
            }
            _ => Err(self.err(DecodeErrorKind::UnexpectedByte)),
        }
    }

    /// One value at nesting `depth` checked and passed over: the errors
    /// [`Decoder::value`] would give, at the same offsets, except that a
    /// key repeated inside it is not looked for. Nothing reads what is
    /// skipped, so what matters is its extent (every length within the
    /// input, every integer well formed, every container closed, keys that
    /// are strings, nesting within [`MAX_DEPTH`]), and a repeat there cannot
    /// change it. Most of a `delete` reply (its statistics: forty-odd small
    /// dictionaries for one audio stream) goes through here, so it is one
    /// loop with the open containers in two bit sets, not a recursion that
    /// keeps a set of keys per dictionary: that recursion was two fifths of
    /// what the relay cost per call in user space (callgrind, 30,900 of
    /// 74,600 instructions through `examples/nat-rtpengine.route`).
    fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        // Containers opened inside this value; bit `i` of `dicts` says the
        // `i`th is a dictionary, of `value_next` that it read a key and
        // owes its value.
        let mut open = 0usize;
        let mut dicts = 0u64;
        let mut value_next = 0u64;
        loop {
            let c = self.peek()?;
            if open > 0 {
                let bit = 1u64 << (open - 1);
                if dicts & bit != 0 && value_next & bit == 0 {
                    // A dictionary's key, or its end.
                    if c == b'e' {
                        self.pos += 1;
                        open -= 1;
                        if open == 0 {
                            return Ok(());
                        }
                        value_next &= !(1u64 << (open - 1));
                        continue;
                    }
                    if !c.is_ascii_digit() {
                        return Err(self.err(DecodeErrorKind::KeyNotString));
                    }
                    self.bytes()?;
                    value_next |= bit;
                    continue;
                }
            }
            match c {
                b'i' => {
                    self.pos += 1;
                    self.int()?;
                }
                b'0'..=b'9' => {
                    self.bytes()?;
                }
                b'l' | b'd' => {
                    self.enter(depth + open)?;
                    // `enter` refused any depth past 63: the shift is in range.
                    let bit = 1u64 << open;
                    if c == b'd' {
                        dicts |= bit;
                    } else {
                        dicts &= !bit;
                    }
                    value_next &= !bit;
                    open += 1;
                    continue;
                }
                // A list's end (a dictionary's was taken above; one owing a
                // value cannot end).
                b'e' if open > 0 && dicts & (1u64 << (open - 1)) == 0 => {
                    self.pos += 1;
                    open -= 1;
                }
                _ => return Err(self.err(DecodeErrorKind::UnexpectedByte)),
            }
            // A value is complete: the skipped one, or an element of the
            // innermost open container (a dictionary now wants a key).
            if open == 0 {
                return Ok(());
            }
            value_next &= !(1u64 << (open - 1));
        }
    }

    /// Steps into a list or dictionary at `depth`.
    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(DecodeErrorKind::TooDeep));
        }
        self.pos += 1;
        Ok(())
    }

    /// A dictionary at `depth`, the values of the keys `build` picks built
    /// (the rest checked, and their entries left out).
    fn dict(&mut self, depth: usize, build: &dyn Fn(&[u8]) -> bool) -> Result<Dict, DecodeError> {
        self.enter(depth)?;
        let mut map = BTreeMap::new();
        let mut keys = Keys::new();
        while let Some((at, key)) = self.next_key()? {
            let v = self.value(depth + 1, build(key))?;
            keys.check(key, at)?;
            if let Some(v) = v {
                map.insert(key.to_vec(), v);
            }
        }
        self.pos += 1;
        Ok(Dict(map))
    }

    /// The next key of the dictionary being read and its offset; `None`
    /// at the dictionary's closing `e`, which is left for the caller.
    fn next_key(&mut self) -> Result<Option<(usize, &'a [u8])>, DecodeError> {
        let c = self.peek()?;
        if c == b'e' {
            return Ok(None);
        }
        if !c.is_ascii_digit() {
            return Err(self.err(DecodeErrorKind::KeyNotString));
        }
        let at = self.pos;
        Ok(Some((at, self.bytes()?)))
    }

    /// The digits of an integer after its `i`, through the closing `e`:
    /// `-?(0|[1-9][0-9]*)`, no `-0`, within `i64`. One pass over the
    /// digits (integers are most of a `delete` reply's statistics).
    #[inline]
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        // Most integers of a reply are a few digits (counters, ports, Unix
        // times): up to 18 digits cannot overflow, so those are read in one
        // loop and the general reading below is for the rest.
        if let Some(&c) = rest.first()
            && c.is_ascii_digit()
        {
            let mut i = 0;
            let mut n: i64 = 0;
            while let Some(&d) = rest.get(i)
                && d.is_ascii_digit()
                && i < 18
            {
                n = n * 10 + i64::from(d - b'0');
                i += 1;
            }
            if rest.get(i) == Some(&b'e') && (c != b'0' || i == 1) {
                self.pos = start + i + 1;
                return Ok(n);
            }
        }
        self.int_general()
    }

    /// [`Decoder::int`] for any integer, with every error.
    #[inline(never)]
    fn int_general(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let negative = rest.first() == Some(&b'-');
        let first = usize::from(negative);
        let mut i = first;
        let mut magnitude: u64 = 0;
        let mut overflow = false;
        while let Some(&c) = rest.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            match magnitude.checked_mul(10).and_then(|m| m.checked_add(u64::from(c - b'0'))) {
                Some(m) => magnitude = m,
                None => overflow = true,
            }
            i += 1;
        }
        let bad = DecodeError { at: start - 1, kind: DecodeErrorKind::BadInteger };
        match rest.get(i) {
            // Only digits (after an optional sign) to the end: the input
            // stops inside what could still be an integer.
            None => {
                self.pos = self.input.len();
                Err(self.err(DecodeErrorKind::Truncated))
            }
            Some(b'e') => {
                let digits = &rest[first..i];
                let well_formed = !digits.is_empty()
                    && (digits == b"0" || digits[0] != b'0')
                    && !(negative && digits == b"0");
                if !well_formed || overflow {
                    return Err(bad);
                }
                let n = if negative {
                    // i64::MIN's magnitude is one more than i64::MAX.
                    (magnitude <= 1 << 63).then(|| 0i64.wrapping_sub_unsigned(magnitude))
                } else {
                    i64::try_from(magnitude).ok()
                };
                self.pos = start + i + 1;
                n.ok_or(bad)
            }
            Some(_) => Err(bad),
        }
    }

    /// A byte string `<len>:<bytes>`, borrowed from the input.
    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let input: &'a [u8] = self.input;
        let rest = &input[start..];
        // Most strings of a reply (its keys, short values) have a length of
        // one or two digits: read those at once; the general reading below
        // gives every error.
        let short = match *rest {
            [d @ b'0'..=b'9', b':', ..] => Some((usize::from(d - b'0'), 2)),
            [d @ b'1'..=b'9', e @ b'0'..=b'9', b':', ..] => {
                Some((usize::from(d - b'0') * 10 + usize::from(e - b'0'), 3))
            }
            _ => None,
        };
        if let Some((len, body)) = short
            && len <= rest.len() - body
        {
            self.pos = start + body + len;
            return Ok(&rest[body..body + len]);
        }
        self.bytes_general()
    }

    /// [`Decoder::bytes`] for any length, with every error.
    #[inline(never)]
    fn bytes_general(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let input: &'a [u8] = self.input;
        let rest = &input[start..];
        let mut digits = 0;
        let mut len = 0u64;
        while let Some(&c) = rest.get(digits) {
            if !c.is_ascii_digit() {
                break;
            }
            // Past 19 digits the length is refused below; no overflow here.
            if digits < 19 {
                len = len * 10 + u64::from(c - b'0');
            }
            digits += 1;
        }
        // 19 digits fit in a u64; no real length comes near that.
        if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
            return Err(self.err(DecodeErrorKind::BadLength));
        }
        match rest.get(digits) {
            None => {
                self.pos = self.input.len();
                return Err(self.err(DecodeErrorKind::Truncated));
            }
            Some(b':') => {}
            Some(_) => {
                self.pos += digits;
                return Err(self.err(DecodeErrorKind::BadLength));
            }
        }
        let body = digits + 1;
        let available = (rest.len() - body) as u64;
        if len > available {
            return Err(self.err(DecodeErrorKind::LengthPastEnd));
        }
        let len = len as usize;
        self.pos = start + body + len;
        Ok(&rest[body..body + len])
    }
}

#[cfg(test)]
mod tests {
    use super::DecodeErrorKind as K;
    use super::*;

    fn kind(input: &[u8]) -> K {
        decode(input).expect_err("must be rejected").kind
    }

    /// Keys of one length with the same first and last byte share the
    /// filter's bit: they are told apart by comparing them, and a key
    /// repeated is found however its bit is shared.
    #[test]
    fn keys_sharing_a_filter_bit_are_compared() {
        let d = decode_dict(b"d3:abci1e3:axci2e3:ayci3ee").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            decode(b"d3:abci1e3:axci2e3:abci3ee").unwrap_err(),
            DecodeError { at: 17, kind: K::DuplicateKey }
        );
        let kept = decode_dict_keeping(b"d3:abci1e3:axci2e3:abci3ee", &[]);
        assert_eq!(kept.unwrap_err(), DecodeError { at: 17, kind: K::DuplicateKey });
    }

    #[test]
    fn encodes_each_kind() {
        assert_eq!(Value::Int(42).encode(), b"i42e");
        assert_eq!(Value::Int(-7).encode(), b"i-7e");
        assert_eq!(Value::Int(0).encode(), b"i0e");
        assert_eq!(Value::from("spam").encode(), b"4:spam");
        assert_eq!(Value::from("").encode(), b"0:");
        assert_eq!(Value::from(["a", "bc"]).encode(), b"l1:a2:bce");
        assert_eq!(Value::Int(i64::MIN).encode(), b"i-9223372036854775808e");
    }

    #[test]
    fn dictionary_keys_are_written_sorted() {
        let d =
            Dict::command("offer").with("sdp", "v=0").with("call-id", "c1").with("ICE", "remove");
        // Byte order: upper case before lower case.
        assert_eq!(d.encode(), b"d3:ICE6:remove7:call-id2:c17:command5:offer3:sdp3:v=0e");
    }

    #[test]
    fn the_protocol_documents_ping_and_pong() {
        assert_eq!(Dict::command("ping").encode(), b"d7:command4:pinge");
        let pong = decode_dict(b"d6:result4:ponge").unwrap();
        assert_eq!(pong.get_str("result"), Some("pong"));
    }

    #[test]
    fn decodes_unsorted_keys_as_rtpengine_sends_them() {
        let d = decode_dict(b"d3:sdp3:v=06:result2:oke").unwrap();
        assert_eq!(d.get_str("result"), Some("ok"));
        assert_eq!(d.get_str("sdp"), Some("v=0"));
        assert_eq!(d.encode(), b"d6:result2:ok3:sdp3:v=0e");
    }

    #[test]
    fn decodes_nested_values() {
        let v = decode(b"d4:listli1ei-2e0:d1:xi3eee3:numi99ee").unwrap();
        let Value::Dict(d) = &v else { panic!("{v:?}") };
        let list = d.get_list("list").unwrap();
        assert_eq!(list[0], Value::Int(1));
        assert_eq!(list[1], Value::Int(-2));
        assert_eq!(list[2], Value::from(""));
        assert_eq!(list[3], Value::Dict(Dict::new().with("x", 3)));
        assert_eq!(d.get_int("num"), Some(99));
        assert_eq!(format!("{v:?}"), r#"{"list": [1, -2, "", {"x": 3}], "num": 99}"#);
    }

    #[test]
    fn rejects_truncated_input() {
        for input in
            [&b""[..], b"i", b"i12", b"4:spa", b"4", b"l", b"li1e", b"d", b"d1:a", b"d1:ai1e"]
        {
            let k = kind(input);
            assert!(matches!(k, K::Truncated | K::LengthPastEnd), "{input:?}: {k:?}");
        }
    }

    #[test]
    fn rejects_malformed_integers() {
        for input in [&b"ie"[..], b"i-e", b"i-0e", b"i03e", b"i1.5e", b"i+1e", b"i 1e", b"ixe"] {
            assert_eq!(kind(input), K::BadInteger, "{input:?}");
        }
        assert_eq!(kind(b"i9223372036854775808e"), K::BadInteger);
        assert_eq!(decode(b"i9223372036854775807e").unwrap(), Value::Int(i64::MAX));
        assert_eq!(decode(b"i-9223372036854775808e").unwrap(), Value::Int(i64::MIN));
    }

    #[test]
    fn rejects_bad_and_huge_lengths() {
        assert_eq!(kind(b"01:a"), K::BadLength);
        assert_eq!(kind(b"1x:a"), K::BadLength);
        assert_eq!(kind(b"5:abc"), K::LengthPastEnd);
        // A length far beyond the input is refused before any allocation.
        assert_eq!(kind(b"9999999999999999999:a"), K::LengthPastEnd);
        assert_eq!(kind(b"99999999999999999999:a"), K::BadLength);
        assert_eq!(kind(b"18446744073709551616:a"), K::BadLength);
    }

    #[test]
    fn rejects_structural_garbage() {
        assert_eq!(kind(b"x"), K::UnexpectedByte);
        assert_eq!(kind(b"e"), K::UnexpectedByte);
        assert_eq!(kind(b"i1ei2e"), K::TrailingBytes);
        assert_eq!(kind(b"di1ei2ee"), K::KeyNotString);
        assert_eq!(kind(b"d1:ai1e1:ai2ee"), K::DuplicateKey);
        assert_eq!(kind(b"lxe"), K::UnexpectedByte);
        assert!(decode_dict(b"le").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(kind(&deep), K::TooDeep);
        // Far deeper than any stack would take: still an error, not a crash.
        assert_eq!(kind(&vec![b'l'; 1_000_000]), K::TooDeep);
        assert_eq!(kind(&b"d1:a".repeat(100_000)), K::TooDeep);
    }

    #[test]
    fn errors_name_the_offset() {
        let e = decode(b"d1:ai1e1:bi0xe").unwrap_err();
        assert_eq!(e, DecodeError { at: 10, kind: K::BadInteger });
        assert_eq!(e.to_string(), "bencode: malformed integer at byte 10");
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::vec(
                    (proptest::collection::vec(any::<u8>(), 0..8), inner),
                    0..6
                )
                .prop_map(|kv| Value::Dict(kv.into_iter().collect())),
            ]
        })
    }

    /// [`decode_dict`]'s answer with only the kept keys: what
    /// [`decode_dict_keeping`] gives for input without a repeated key.
    fn kept(input: &[u8], keep: &[&str]) -> Result<Dict, DecodeError> {
        decode_dict(input).map(|d| {
            Dict(d.0.into_iter().filter(|(k, _)| keep.iter().any(|w| w.as_bytes() == k)).collect())
        })
    }

    /// Whether [`decode_dict_keeping`] agrees with [`kept`] on `input`: the
    /// same answer, or `decode_dict` stopped at a repeated key (which the
    /// keeping decoder does not look for inside what it skips) where the
    /// keeping decoder accepts or fails later.
    fn agrees(input: &[u8], keep: &[&str]) -> bool {
        match (decode_dict_keeping(input, keep), kept(input, keep)) {
            (got, want) if got == want => true,
            (Ok(_), Err(e)) => e.kind == K::DuplicateKey,
            (Err(got), Err(e)) => e.kind == K::DuplicateKey && got.at > e.at,
            _ => false,
        }
    }

    #[test]
    fn keeping_builds_only_the_kept_keys_and_rejects_what_decoding_rejects() {
        let reply = b"d3:sdp5:v=0\r\n6:result2:ok4:tagsd3:abcd7:createdi1e5:ssrcsli1ei2eeee\
                      7:warning3:oh!e";
        let d = decode_dict_keeping(reply, &["sdp", "result"]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get_str("result"), Some("ok"));
        assert_eq!(d.get_bytes("sdp"), Some(&b"v=0\r\n"[..]));
        assert_eq!(d, kept(reply, &["sdp", "result"]).unwrap());
        // A key repeated inside a skipped value is not looked for.
        let repeat_inside = b"d6:result2:ok4:tagsd1:ai1e1:ai2eee";
        assert_eq!(decode_dict_keeping(repeat_inside, &["result"]).unwrap().len(), 1);
        assert_eq!(decode_dict(repeat_inside).unwrap_err().kind, K::DuplicateKey);
        for bad in [
            &b"d6:result2:ok6:result2:oke"[..], // repeated kept key
            b"d1:xi1e1:xi2e6:result2:oke",      // repeated skipped key
            b"d6:result2:ok4:tagsli01eee",      // bad integer in a skipped list
            b"d6:result2:ok4:tags5:abce",       // string past the end
            b"d6:result2:ok4:tagsdi1ei2eee",    // key not a string, skipped
            b"d6:result2:oke ",                 // trailing bytes
            b"l6:resulte",                      // not a dictionary
        ] {
            assert_eq!(decode_dict_keeping(bad, &["result"]), kept(bad, &["result"]), "{bad:?}");
            assert!(decode_dict_keeping(bad, &["result"]).is_err(), "{bad:?}");
        }
        let deep = [&b"d1:x"[..], &[b'l'; MAX_DEPTH], &[b'e'; MAX_DEPTH], b"e"].concat();
        assert_eq!(decode_dict_keeping(&deep, &[]).unwrap_err().kind, K::TooDeep);
        assert_eq!(decode_dict(&deep).unwrap_err().kind, K::TooDeep);
        let fits = [&b"d1:x"[..], &[b'l'; MAX_DEPTH - 1], &[b'e'; MAX_DEPTH - 1], b"e"].concat();
        assert_eq!(decode_dict_keeping(&fits, &[]), kept(&fits, &[]));
        assert!(decode_dict_keeping(&fits, &[]).is_ok());
    }

    /// Skipped values nest and alternate the ways a `delete` reply's
    /// statistics do; each is checked as the full decoder checks it.
    #[test]
    fn skipped_values_are_checked_as_decoded() {
        for input in [
            &b"d4:tagsd3:abcd7:createdi1e6:mediasld5:indexi1e7:streamsld5:ssrcsdeeeeeee\
               6:result2:oke"[..],
            b"d1:xlli1eed1:ai-2ee0:e6:result2:oke",
            b"d1:xdd",                    // truncated in a dictionary
            b"d1:xd1:ae6:result2:oke",    // a dictionary ends owing a value
            b"d1:xdi1ei2ee6:result2:oke", // a key that is not a string
            b"d1:xe6:result2:oke",        // an end where a value belongs
            b"d1:xli-0ee6:result2:oke",   // a malformed integer in a list
            b"d1:xl9:abce",               // a string past the end
            b"d1:xl",                     // truncated in a list
            b"d1:xldee6:result2:oke",
        ] {
            assert_eq!(
                decode_dict_keeping(input, &["result"]),
                kept(input, &["result"]),
                "{input:?}"
            );
            let ok = input.ends_with(b"6:result2:oke") && !input.starts_with(b"d1:xd1:");
            let ok = ok && !input.starts_with(b"d1:xdi") && !input.starts_with(b"d1:xe");
            let ok = ok && !input.starts_with(b"d1:xli-");
            assert_eq!(decode_dict_keeping(input, &["result"]).is_ok(), ok, "{input:?}");
        }
    }

    #[test]
    fn many_keys_are_checked_for_repeats_in_linear_time() {
        let mut input = b"d".to_vec();
        for i in 0..20_000 {
            let k = format!("k{i}");
            input.extend(format!("{}:{k}i0e", k.len()).bytes());
        }
        let mut repeated = input.clone();
        input.extend(b"e");
        repeated.extend(b"6:k19999i0ee");
        assert!(decode_dict_keeping(&input, &[]).is_ok());
        assert_eq!(decode_dict_keeping(&repeated, &[]).unwrap_err().kind, K::DuplicateKey);
        assert_eq!(decode_dict(&repeated).unwrap_err().kind, K::DuplicateKey);
    }

    proptest::proptest! {
        #[test]
        fn keeping_agrees_with_decoding(v in value(), at in 0usize..1000, byte in proptest::prelude::any::<u8>(), mutate in proptest::prelude::any::<bool>()) {
            let d = match v {
                Value::Dict(d) => d,
                other => Dict::new().with("result", "ok").with("x", other),
            };
            let mut bytes = d.encode();
            if mutate {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let keep: Vec<String> = d.iter().take(2).map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
            let keep: Vec<&str> = keep.iter().map(String::as_str).chain(["result"]).collect();
            proptest::prop_assert!(agrees(&bytes, &keep), "{:?}", bytes);
            if !mutate {
                proptest::prop_assert_eq!(decode_dict_keeping(&bytes, &keep), kept(&bytes, &keep));
            }
        }

        #[test]
        fn keeping_agrees_on_arbitrary_bytes(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            proptest::prop_assert!(agrees(&input, &["a", "result"]), "{:?}", input);
        }

        /// Integers read as `str::parse` reads them, leading zeros and
        /// `-0` refused: the short ones by the quick loop, the rest (19
        /// digits and more, signs) by the general one.
        #[test]
        fn integers_read_as_parsed(digits in "-?[0-9]{1,21}") {
            let text = format!("i{digits}e");
            let tail = digits.trim_start_matches('-');
            let canonical = (tail == "0" || !tail.starts_with('0')) && digits != "-0";
            let want = digits.parse::<i64>().ok().filter(|_| canonical);
            proptest::prop_assert_eq!(decode(text.as_bytes()).ok(), want.map(Value::Int));
        }

        #[test]
        fn round_trips(v in value()) {
            let bytes = v.encode();
            // The buffer was sized exactly.
            proptest::prop_assert_eq!(encoded_len(&v), bytes.len());
            proptest::prop_assert_eq!(bytes.capacity(), bytes.len());
            proptest::prop_assert_eq!(decode(&bytes).unwrap(), v.clone());
            // Encoding is canonical: decoding and encoding again changes nothing.
            proptest::prop_assert_eq!(decode(&bytes).unwrap().encode(), bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode(&input);
        }

        #[test]
        fn every_strict_prefix_of_an_encoding_is_rejected(v in value(), cut in 0usize..1000) {
            let bytes = v.encode();
            let cut = cut % bytes.len();
            proptest::prop_assert!(decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn mutated_encodings_never_panic(v in value(), at in 0usize..1000, byte in proptest::prelude::any::<u8>()) {
            let mut bytes = v.encode();
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = decode(&bytes);
        }
    }
}
