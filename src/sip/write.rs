//! Writing addresses into SIP text without the formatting machinery:
//! every forwarded message gets a Via sent-by, `received`/`rport` and
//! often Record-Route URIs, and `Display` for IPv4 addresses and integers
//! was a tenth of the proxy core's time.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// How many decimal digits `v` has.
pub fn digit_count(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Writes `v` in decimal into `slots`, exactly [`digit_count`] long, last
/// digit first. The one digit loop: [`digits`] and the address writer put
/// their digits in place with it (copying them over from another buffer
/// was a call to memcpy for each octet of every address).
fn fill_digits(slots: &mut [u8], mut v: u64) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The decimal digits of `v`, written at the end of `buf`.
fn digits(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let start = buf.len() - digit_count(v);
    fill_digits(&mut buf[start..], v);
    &buf[start..]
}

/// Appends `v` in decimal to a byte buffer (bencode lengths and integers).
pub fn extend_decimal(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(digits(v, &mut [0; 20]));
}

/// `v` in decimal, written into `buf`: for a header value that needs no
/// `String` of its own (Max-Forwards).
pub fn decimal(v: u64, buf: &mut [u8; 20]) -> &str {
    // Only ASCII digits were written.
    std::str::from_utf8(digits(v, buf)).unwrap_or("0")
}

/// Appends `v` in decimal, without the formatting machinery (addresses,
/// ports and Content-Length are written into every forwarded message).
pub fn push_u64(out: &mut String, v: u64) {
    out.push_str(decimal(v, &mut [0; 20]));
}

/// [`push_u64`] for ports.
pub fn push_u16(out: &mut String, v: u16) {
    push_u64(out, u64::from(v));
}

/// Room for the longest `a.b.c.d:port`.
const V4_ADDR_MAX: usize = 21;

/// Writes `v` at `buf[n..]`, returning the new end.
fn put_decimal(buf: &mut [u8; V4_ADDR_MAX], n: usize, v: u16) -> usize {
    let len = digit_count(u64::from(v));
    fill_digits(&mut buf[n..n + len], u64::from(v));
    n + len
}

/// Writes the dotted quad at the start of `buf`, returning its length.
fn put_ipv4(buf: &mut [u8; V4_ADDR_MAX], a: std::net::Ipv4Addr) -> usize {
    let mut n = 0;
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        n = put_decimal(buf, n, u16::from(o));
    }
    n
}

/// Appends the first `n` bytes of `buf`, all ASCII digits, dots and colons.
fn push_ascii(out: &mut String, buf: &[u8; V4_ADDR_MAX], n: usize) {
    out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

/// Appends `ip` as text (IPv4 built on the stack and appended at once;
/// IPv6 goes through `Display`).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            let mut buf = [0; V4_ADDR_MAX];
            let n = put_ipv4(&mut buf, a);
            push_ascii(out, &buf, n);
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// Appends `ip:port`, or `[ip]:port` for IPv6 (a Via sent-by, a URI host).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let mut buf = [0; V4_ADDR_MAX];
            let mut n = put_ipv4(&mut buf, *a.ip());
            buf[n] = b':';
            n = put_decimal(&mut buf, n + 1, a.port());
            push_ascii(out, &buf, n);
        }
        SocketAddr::V6(_) => {
            out.push('[');
            push_ip(out, addr.ip());
            out.push(']');
            out.push(':');
            push_u16(out, addr.port());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_to_string() {
        for v in (0..=1000).chain([65_535, 4_294_967_295, u64::MAX]) {
            assert_eq!(super::decimal(v, &mut [0; 20]), v.to_string());
            let mut s = String::from("x");
            push_u64(&mut s, v);
            assert_eq!(s, format!("x{v}"));
        }
    }

    #[test]
    fn every_digit_count_is_written_as_display_writes_it() {
        let edges = [0u16, 9, 10, 99, 100, 255, 999, 1000, 9999, 10_000, 65_535];
        for &o in edges.iter().filter(|&&o| o <= 255) {
            for &port in &edges {
                let o = o as u8;
                let a = SocketAddr::from(([o, 255 - o, 7, o], port));
                let mut s = String::new();
                push_socket_addr(&mut s, a);
                assert_eq!(s, a.to_string());
            }
        }
    }

    #[test]
    fn fast_address_writing_matches_display() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:5060",
            "255.255.255.255:65535",
            "[::1]:5061",
            "[2001:db8::7]:9",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = String::new();
            push_socket_addr(&mut s, a);
            assert_eq!(s, a.to_string());
            let mut ip = String::new();
            push_ip(&mut ip, a.ip());
            assert_eq!(ip, a.ip().to_string());
        }
    }
}
