//! The floor under `benches/sipp_proxy.sh`: a UDP relay on 127.0.0.1:5060
//! that does no SIP work at all. It passes every datagram from the SIPp UAC
//! (port 5070) to the UAS (5080) and back, copying it once, as a proxy must
//! at least do. What it costs per 1,000 calls is what the kernel, the
//! loopback delivery and the wake-ups charge on this machine before any
//! parsing or routing, so sipc's own share is its figure minus this one.
//!
//! `udp_relay blocking`: one thread, blocking `recv_from`/`send_to` (the
//! shape of a Kamailio UDP worker). `udp_relay tokio`: one task on tokio's
//! multi-thread runtime, as sipc's receive path runs.
//!
//! Built with `cargo build --release --example udp_relay`; run by
//! `benches/sipp_proxy.sh` (targets `relay-blocking`, `relay-tokio`).

use std::net::SocketAddr;

const LISTEN: &str = "127.0.0.1:5060";
const UAC_PORT: u16 = 5070;

fn peer_of(from: SocketAddr) -> SocketAddr {
    let port = if from.port() == UAC_PORT { 5080 } else { UAC_PORT };
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn blocking() -> std::io::Result<()> {
    let sock = std::net::UdpSocket::bind(LISTEN)?;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        let copy = buf[..n].to_vec();
        sock.send_to(&copy, peer_of(from))?;
    }
}

fn tokio_task() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let relay = tokio::spawn(async {
            let sock = tokio::net::UdpSocket::bind(LISTEN).await?;
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = sock.recv_from(&mut buf).await?;
                let copy = bytes::Bytes::copy_from_slice(&buf[..n]);
                sock.send_to(&copy, peer_of(from)).await?;
            }
        });
        relay.await.map_err(std::io::Error::other)?
    })
}

fn main() -> std::io::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("blocking") => blocking(),
        Some("tokio") => tokio_task(),
        _ => {
            eprintln!("usage: udp_relay blocking|tokio   (relays 127.0.0.1:5060 <-> :5070/:5080)");
            std::process::exit(2);
        }
    }
}
