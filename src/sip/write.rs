//! Writing addresses into SIP text without the formatting machinery:
//! every forwarded message gets a Via sent-by, `received`/`rport` and
//! often Record-Route URIs, and `Display` for IPv4 addresses and integers
//! was a tenth of the proxy core's time.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Appends `v` in decimal, without the formatting machinery (addresses and
/// ports are written into every forwarded message).
pub fn push_u16(out: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let (mut i, mut v) = (buf.len(), v);
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&d| char::from(d)));
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
