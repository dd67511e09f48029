//! Banned IPv4 sources dropped in the kernel: a classic BPF socket filter
//! on each UDP socket.
//!
//! Dropping a banned source's datagram in the receive thread still costs
//! the thread a wake-up and a `recvmsg` (about a third of what answering an
//! OPTIONS costs, `benches/sipp_ban.sh`). A socket filter that compares the
//! IPv4 source address with the banned ones drops the datagram while the
//! kernel queues it: the proxy's threads never see it, and on loopback the
//! work is charged to the sender. The filter is a list of compares (two
//! instructions per address, within the kernel's 4,096-instruction limit),
//! so it carries at most [`MAX_FILTERED`] addresses, the ones banned
//! longest; any beyond and every IPv6 ban are still dropped by
//! [`super::Bans::drops`] before parsing.
//!
//! Each receive thread rebuilds its socket's filter when the ban table's
//! generation changes (a ban of a new address, a lifted or expired one) or
//! when the earliest ban in its filter runs out; both are looked at after
//! every datagram and at least once a second, so an expired ban lets its
//! source through again within a second.

use std::net::Ipv4Addr;

use socket2::SockFilter;

/// Addresses a filter carries at most.
pub const MAX_FILTERED: usize = 2000;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
/// `BPF_LD | BPF_W | BPF_ABS` (0x00 | 0x00 | 0x20).
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K` (0x05 | 0x10 | 0x00).
const JMP_JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`.
const RET_K: u16 = 0x06;
/// Negative offsets address the network header (`SKF_NET_OFF`): a UDP
/// socket's filter runs with the packet at the UDP header.
const SKF_NET_OFF: i32 = -0x10_0000;
/// Offset of the source address in an IPv4 header.
const IPV4_SRC: i32 = 12;

/// Blocklist ranges a filter carries at most (three instructions each).
pub const MAX_RANGES: usize = 400;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const JMP_JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JGT | BPF_K`.
const JMP_JGT_K: u16 = 0x25;

/// The filter that drops datagrams from `banned` and from the inclusive
/// address `ranges` (blocklists), and accepts the rest.
pub fn program_with(banned: &[Ipv4Addr], ranges: &[(u32, u32)]) -> Vec<SockFilter> {
    let ranges = &ranges[..ranges.len().min(MAX_RANGES)];
    // The kernel takes 4,096 instructions: the load and the accept, three
    // per range, two per banned address.
    let room = (4096 - 2 - 3 * ranges.len()) / 2;
    let mut out = program(&banned[..banned.len().min(room)]);
    let accept = out.pop().expect("the accept at the end");
    for &(start, end) in ranges {
        // Below the range: skip its two other instructions; above: skip the drop.
        out.push(SockFilter::new(JMP_JGE_K, 0, 2, start));
        out.push(SockFilter::new(JMP_JGT_K, 1, 0, end));
        out.push(SockFilter::new(RET_K, 0, 0, 0));
    }
    out.push(accept);
    out
}

/// The filter that drops datagrams from `banned` and accepts the rest.
pub fn program(banned: &[Ipv4Addr]) -> Vec<SockFilter> {
    let banned = &banned[..banned.len().min(MAX_FILTERED)];
    let mut out = Vec::with_capacity(2 * banned.len() + 2);
    out.push(SockFilter::new(LD_W_ABS, 0, 0, (SKF_NET_OFF + IPV4_SRC) as u32));
    for ip in banned {
        // Equal: fall through to the drop; not equal: skip it.
        out.push(SockFilter::new(JMP_JEQ_K, 0, 1, u32::from(*ip)));
        out.push(SockFilter::new(RET_K, 0, 0, 0));
    }
    out.push(SockFilter::new(RET_K, 0, 0, u32::MAX));
    out
}

/// Installs the filter for `banned` and `ranges` on `sock` (removes any
/// when both are empty).
pub fn install_with(
    sock: &std::net::UdpSocket,
    banned: &[Ipv4Addr],
    ranges: &[(u32, u32)],
) -> std::io::Result<()> {
    if ranges.is_empty() {
        return install(sock, banned);
    }
    socket2::SockRef::from(sock).attach_filter(&program_with(banned, ranges))
}

/// Installs the filter for `banned` on `sock` (removes any when `banned`
/// is empty).
pub fn install(sock: &std::net::UdpSocket, banned: &[Ipv4Addr]) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(sock);
    if banned.is_empty() {
        // ENOENT when no filter was attached: nothing to remove.
        return match sock.detach_filter() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => Ok(()),
            r => r,
        };
    }
    sock.attach_filter(&program(banned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn pair(ip: &str) -> UdpSocket {
        let s = UdpSocket::bind((ip, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        s
    }

    /// The kernel drops what the filter names and passes the rest; a new
    /// filter replaces the old; an empty list removes it.
    #[test]
    fn the_kernel_drops_banned_sources() {
        let server = pair("127.0.0.1");
        let to = server.local_addr().unwrap();
        let (a, b) = (pair("127.0.0.2"), pair("127.0.0.3"));
        let mut buf = [0u8; 64];
        let mut got = |server: &UdpSocket| {
            let mut from = Vec::new();
            while let Ok((_, f)) = server.recv_from(&mut buf) {
                from.push(f.ip().to_string());
            }
            from
        };
        install(&server, &["127.0.0.2".parse().unwrap()]).unwrap();
        a.send_to(b"x", to).unwrap();
        b.send_to(b"y", to).unwrap();
        assert_eq!(got(&server), ["127.0.0.3"]);
        install(&server, &["127.0.0.3".parse().unwrap(), "10.0.0.1".parse().unwrap()]).unwrap();
        a.send_to(b"x", to).unwrap();
        b.send_to(b"y", to).unwrap();
        assert_eq!(got(&server), ["127.0.0.2"]);
        install(&server, &[]).unwrap();
        install(&server, &[]).unwrap();
        a.send_to(b"x", to).unwrap();
        b.send_to(b"y", to).unwrap();
        assert_eq!(got(&server).len(), 2);
    }

    #[test]
    fn blocklist_ranges_are_dropped() {
        let server = pair("127.0.0.1");
        let to = server.local_addr().unwrap();
        let (a, b, d) = (pair("127.0.0.2"), pair("127.0.0.3"), pair("127.0.0.5"));
        let range =
            (u32::from(Ipv4Addr::new(127, 0, 0, 3)), u32::from(Ipv4Addr::new(127, 0, 0, 4)));
        install_with(&server, &["127.0.0.2".parse().unwrap()], &[range]).unwrap();
        for s in [&a, &b, &d] {
            s.send_to(b"x", to).unwrap();
        }
        let mut buf = [0u8; 16];
        let mut from = Vec::new();
        while let Ok((_, f)) = server.recv_from(&mut buf) {
            from.push(f.ip().to_string());
        }
        assert_eq!(from, ["127.0.0.5"]);
        let many: Vec<(u32, u32)> = (0..1000u32).map(|i| (i * 4, i * 4 + 1)).collect();
        let full: Vec<Ipv4Addr> = (0..5000u32).map(Ipv4Addr::from).collect();
        assert!(program_with(&full, &many).len() <= 4096);
    }

    #[test]
    fn a_full_filter_fits_the_kernel_limit() {
        let many: Vec<Ipv4Addr> = (0..5000u32).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect();
        assert!(program(&many).len() <= 4096);
        let server = pair("127.0.0.1");
        install(&server, &many).unwrap();
    }
}
