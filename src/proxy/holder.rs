//! Who holds a UDP address: the process behind a socket bound to it, read
//! from `/proc/net/udp{,6}` (the socket's inode) and `/proc/PID/fd` (which
//! process has that inode open). Used to name the other proxy when an
//! address is already served; best effort (another user's processes are
//! not readable), so `None` is a normal answer.

use std::net::{IpAddr, SocketAddr};

/// The inode of the socket bound to `addr` (or to its port on the wildcard
/// address).
fn inode_of(addr: SocketAddr) -> Option<String> {
    let table = if addr.is_ipv4() { "/proc/net/udp" } else { "/proc/net/udp6" };
    let text = std::fs::read_to_string(table).ok()?;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else { continue };
        let Some((ip_hex, port_hex)) = local.split_once(':') else { continue };
        if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
            continue;
        }
        let ip = parse_ip(ip_hex)?;
        if ip == addr.ip() || ip.is_unspecified() {
            return Some((*inode).to_owned());
        }
    }
    None
}

/// An address as `/proc/net/udp` writes it: the bytes of each 32-bit word
/// in host (little-endian) order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The process (pid and command line) holding a socket bound to `addr`.
pub fn udp_holder(addr: SocketAddr) -> Option<(u32, String)> {
    let want = format!("socket:[{}]", inode_of(addr)?);
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == want) {
                let cmd = std::fs::read(proc_entry.path().join("cmdline")).unwrap_or_default();
                let cmd: Vec<String> = cmd
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                return Some((pid, cmd.join(" ")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_bound_socket_is_this_process() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let (pid, _) = udp_holder(addr).expect("found in /proc");
        assert_eq!(pid, std::process::id());
        assert_eq!(parse_ip("0100007F"), Some(IpAddr::from([127, 0, 0, 1])));
    }
}
