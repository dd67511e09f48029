//! Memory per contact of the location table: fills a [`Location`] through
//! `Location::register` (real REGISTERs, one contact per AOR, the shape of
//! a phone fleet) and reads VmRSS from /proc/self/status before and after,
//! at 100,000 and 1,000,000 contacts. Target: < 600 bytes per contact.
//!
//! `cargo bench --bench location_memory` (Linux only; prints a table).

use std::net::SocketAddr;

use bytes::Bytes;
use sipc::registrar::{Location, RegistrarConfig};
use sipc::sip::Message;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn register(loc: &Location, i: u32) {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK{i}\r\n\
         To: <sip:user{i}@example.com>\r\nFrom: <sip:user{i}@example.com>;tag={i}\r\n\
         Call-ID: 6a4c7f2e-{i:08}-4b1d@{ip}\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:user{i}@{ip}:5060;transport=udp>;expires=3600\r\nContent-Length: 0\r\n\r\n"
    );
    let msg = Message::parse(Bytes::from(text)).expect("valid REGISTER");
    let source: SocketAddr = format!("{ip}:5060").parse().unwrap();
    loc.register(&msg, source, 1_000).expect("registered");
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench -- --list`: nothing to list
    }
    let loc = Location::new(RegistrarConfig::default());
    let base = rss_bytes();
    println!("| contacts | RSS growth | bytes per contact |");
    println!("| --- | --- | --- |");
    let mut filled = 0;
    for target in [100_000u32, 1_000_000] {
        while filled < target {
            register(&loc, filled);
            filled += 1;
        }
        let grown = rss_bytes().saturating_sub(base);
        println!(
            "| {target} | {:.1} MiB | {} |",
            grown as f64 / (1024.0 * 1024.0),
            grown / u64::from(target)
        );
        assert_eq!(loc.aor_count(), target as usize);
    }
}
