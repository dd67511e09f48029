//! The proxy core's user-space work per message, without sockets: what
//! `Core::process` does with a datagram (parse, validate, RFC 3261 §16
//! checks, the compiled request route, the forwarding edits, serialising)
//! for the stateless benchmark config, on the INVITE and the 200 OK of a
//! SIPp call.
//!
//! `benches/sipp_proxy.sh` measures the whole proxy, kernel included, and
//! is noisy on a shared machine; this isolates the part sipc controls. The
//! baseline in the same run is `Message::parse` of the same bytes, so the
//! summary reads "processing a message costs N parses".

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::Criterion;
use sipc::codegen::Program;
use sipc::proxy::core::{Core, Step};
use sipc::proxy::stateful::TxnConfig;
use sipc::proxy::transport::Outbound;
use sipc::proxy::{Inbound, LocalIdentity, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{Message, ParseLimits};

/// SIPp's uac.xml INVITE, as it arrives from 127.0.0.1:5070.
const INVITE: &str = "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1234-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5070>;tag=1234SIPpTag001\r\n\
To: service <sip:service@127.0.0.1:5060>\r\n\
Call-ID: 1-1234@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5070\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const SIPP_UAC: ([u8; 4], u16) = ([127, 0, 0, 1], 5070);
const SIPP_UAS: ([u8; 4], u16) = ([127, 0, 0, 1], 5080);

fn sent(step: Option<Step>) -> Bytes {
    match step {
        Some(Step::Send(out)) => out.data,
        other => panic!("expected one datagram to send, got {other:?}"),
    }
}

/// The UAS's 200 OK to the forwarded INVITE `fwd` (every Via copied back).
fn ok_for(fwd: &Bytes) -> Bytes {
    let m = Message::parse(fwd.clone()).unwrap();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for h in m.headers_named(name) {
            out.push_str(&format!("{name}: {}\r\n", m.value_of(h)));
        }
    }
    let to = m.headers_named("To").map(|h| m.value_of(h)).next().unwrap();
    out.push_str(&format!("To: {to};tag=uas-1\r\nContact: <sip:127.0.0.1:5080>\r\n"));
    out.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}

/// Seconds per call, the best of five rounds (the machine is shared).
fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _enter = rt.enter();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench/stateless.route");
    let src = std::fs::read_to_string(path).unwrap();
    let checked = sema::check_source("stateless.route", &src, &Options::default());
    assert_eq!(checked.errors(), 0);
    let program = Arc::new(Program::compile(&checked.program).unwrap());
    let sock = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let local_addr = sock.local_addr().unwrap();
    let mut local = LocalIdentity::new();
    local.add_socket(local_addr);
    program.set_local(local.clone());
    let outbound = Arc::new(Outbound::new(vec![sock], Vec::new()));
    let core = Core::new(local, ParseLimits::default(), program, outbound, TxnConfig::default());
    let inbound = |peer: ([u8; 4], u16)| Inbound {
        transport: Transport::Udp,
        local: local_addr,
        peer: SocketAddr::from(peer),
    };
    let invite = Bytes::from_static(INVITE.as_bytes());
    let fwd = sent(core.process(invite.clone(), inbound(SIPP_UAC)));
    let ok = ok_for(&fwd);
    let back = sent(core.process(ok.clone(), inbound(SIPP_UAS)));
    assert!(back.starts_with(b"SIP/2.0 200 OK"));

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("core_process");
    g.bench_function("invite", |b| {
        b.iter(|| core.process(black_box(invite.clone()), inbound(SIPP_UAC)))
    });
    g.bench_function("200 ok", |b| {
        b.iter(|| core.process(black_box(ok.clone()), inbound(SIPP_UAS)))
    });
    g.bench_function("parse invite (baseline)", |b| {
        b.iter(|| Message::parse(black_box(invite.clone())).unwrap())
    });
    g.finish();
    c.final_summary();

    let n = 50_000;
    let parse = time(n, || {
        black_box(Message::parse(invite.clone()).unwrap());
    });
    for (name, msg, from) in [("INVITE", &invite, SIPP_UAC), ("200 OK", &ok, SIPP_UAS)] {
        let t = time(n, || {
            black_box(core.process(msg.clone(), inbound(from)));
        });
        println!(
            "{name}: Core::process {:.2} µs = {:.1} INVITE parses ({:.2} µs each), same run",
            t * 1e6,
            t / parse,
            parse * 1e6
        );
    }
}
