//! Writing addresses into SIP text without the formatting machinery:
//! every forwarded message gets a Via sent-by, `received`/`rport` and
//! often Record-Route URIs, and `Display` for IPv4 addresses and integers
//! was a tenth of the proxy core's time.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The decimal digits of `v`, written at the end of `buf`.
fn digits(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let (mut i, mut v) = (buf.len(), v);
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
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
    // Byte by byte into `out`, without `decimal`'s UTF-8 check of its
    // buffer: an IPv4 address is four of these.
    out.extend(digits(v, &mut [0; 20]).iter().map(|&d| char::from(d)));
}

/// [`push_u64`] for ports.
pub fn push_u16(out: &mut String, v: u16) {
    push_u64(out, u64::from(v));
}

/// Appends `ip` as text (see [`push_u16`]; IPv6 goes through `Display`).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u16(out, u16::from(o));
            }
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// Appends `ip:port`, or `[ip]:port` for IPv6 (a Via sent-by, a URI host).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    if addr.is_ipv6() {
        out.push('[');
        push_ip(out, addr.ip());
        out.push(']');
    } else {
        push_ip(out, addr.ip());
    }
    out.push(':');
    push_u16(out, addr.port());
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
