//! Heap bytes per transaction in each state of a call, counted by the
//! allocator (not timed, not RSS): a counting global allocator keeps the
//! live heap size, and the stateful core is driven in-process through
//! `Core::process` with the messages of SIPp-shaped calls (INVITE, 180,
//! 200, ACK, BYE, 200; and INVITE, 486, ACK), `CALLS` calls side by side.
//! After each stage the timers due within the next second fire (the T1
//! retransmission timers, as they would while the call goes on); then the
//! live heap
//! minus the heap before the first INVITE, divided by the calls, is the
//! cost of one call's transactions in that state, including their table
//! entries and the timers still armed (the queue's storage, as grown).
//!
//! The states:
//! - *live*: an INVITE relayed, a 180 passed back; server and client
//!   transactions in Proceeding, the request and branch kept;
//! - *accepted*: the 200 passed back; server and client INVITE
//!   transactions in Accepted (RFC 6026), waiting 64·T1 to absorb
//!   retransmissions;
//! - *completed (BYE)*: the BYE's server transaction in Completed (Timer
//!   J) and client in Completed (Timer K), counted on top of the accepted
//!   INVITE of the same call;
//! - *completed (486)*: an INVITE answered 486 and ACKed: server
//!   Confirmed (Timer I), client Completed (Timer D, its ACK kept).
//!
//! `cargo bench --bench txn_memory` (prints a table).

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sipc::codegen::Program;
use sipc::proxy::core::{Core, Step};
use sipc::proxy::stateful::TxnConfig;
use sipc::proxy::transport::Outbound;
use sipc::proxy::{Inbound, LocalIdentity, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{Message, ParseLimits};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts every allocation (`stats_alloc` wraps the system allocator).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CALLS: usize = 20_000;

/// The stateful benchmark logic without the registrar: record-route the
/// INVITE, relay everything to the UAS, in-dialog requests by their Route.
const ROUTES: &str = r#"
listen udp 127.0.0.1:5060;
request_route {
    if has_to_tag() {
        if loose_route() {
            relay();
            exit;
        }
        if is_method("ACK") {
            exit;
        }
        reply(404, "Not here");
        exit;
    }
    if is_method("INVITE") {
        record_route();
    }
    $du = "sip:127.0.0.1:5080";
    relay();
}
"#;

const UAC: ([u8; 4], u16) = ([127, 0, 0, 1], 5070);
const UAS: ([u8; 4], u16) = ([127, 0, 0, 1], 5080);

fn invite(i: usize) -> Bytes {
    let sdp = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
               c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    Bytes::from(format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-{i}-0\r\n\
         From: sipp <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag00{i}\r\n\
         To: service <sip:service@127.0.0.1:5060>\r\n\
         Call-ID: {i}-4242@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
         Contact: sip:sipp@127.0.0.1:5070\r\nMax-Forwards: 70\r\n\
         Subject: Performance Test\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

/// The in-dialog request `method` of call `i`, through the proxy's Route.
fn in_dialog(i: usize, method: &str, branch: &str, route: &str) -> Bytes {
    let cseq = if method == "BYE" { 2 } else { 1 };
    Bytes::from(format!(
        "{method} sip:service@127.0.0.1:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-{i}-{branch}\r\n\
         Route: {route}\r\n\
         From: sipp <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag00{i}\r\n\
         To: service <sip:service@127.0.0.1:5060>;tag=uas-{i}\r\n\
         Call-ID: {i}-4242@127.0.0.1\r\nCSeq: {cseq} {method}\r\n\
         Contact: sip:sipp@127.0.0.1:5070\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// The UAS's reply `code` to the forwarded request `fwd`.
fn reply(fwd: &Bytes, code: u16, i: usize) -> Bytes {
    let m = Message::parse(fwd.clone()).unwrap();
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for name in ["Via", "Record-Route", "From", "Call-ID", "CSeq"] {
        for h in m.headers_named(name) {
            out.push_str(&format!("{name}: {}\r\n", m.value_of(h)));
        }
    }
    let to = m.headers_named("To").map(|h| m.value_of(h)).next().unwrap();
    if to.contains("tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag=uas-{i}\r\n"));
    }
    out.push_str("Contact: <sip:service@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n");
    Bytes::from(out)
}

/// Every datagram a step sends: (sent on a branch, bytes).
fn sends(step: Option<Step>, out: &mut Vec<(bool, Bytes)>) {
    match step {
        Some(Step::Send(o)) => out.push((o.branch.is_some(), o.data)),
        Some(Step::Batch(steps)) => steps.into_iter().for_each(|s| sends(Some(s), out)),
        Some(Step::Resolve(_)) => panic!("no name resolution in this benchmark"),
        None => {}
    }
}

/// The one datagram sent on a branch.
fn forwarded(step: Option<Step>) -> Bytes {
    let mut out = Vec::new();
    sends(step, &mut out);
    out.into_iter().find(|(b, _)| *b).map(|(_, d)| d).expect("a forwarded request")
}

struct Bench {
    core: Arc<Core>,
    local: SocketAddr,
}

impl Bench {
    fn new() -> Bench {
        let checked = sema::check_source("txn.route", ROUTES, &Options::default());
        assert_eq!(checked.errors(), 0);
        let program = Arc::new(Program::compile(&checked.program).unwrap());
        let sock = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let local = sock.local_addr().unwrap();
        let mut identity = LocalIdentity::new();
        identity.add_socket(local);
        identity.add_socket(SocketAddr::from(([127, 0, 0, 1], 5060)));
        program.set_local(identity.clone());
        let outbound = Arc::new(Outbound::new(vec![sock], Vec::new()));
        let core = Arc::new(Core::new(
            identity,
            ParseLimits::default(),
            program,
            outbound,
            TxnConfig::default(),
        ));
        Bench { core, local }
    }

    /// Fires the timers due within the next second.
    fn settle(&self) {
        self.core.fire_due(std::time::Instant::now() + std::time::Duration::from_secs(1));
    }

    fn process(&self, data: Bytes, from: ([u8; 4], u16)) -> Option<Step> {
        let inbound =
            Inbound { transport: Transport::Udp, local: self.local, peer: SocketAddr::from(from) };
        self.core.process(data, inbound)
    }
}

/// The live heap, in bytes (`stats_alloc` counts a reallocation's growth
/// or shrinking in these two already).
fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Runs `f`, adding what it left allocated to `own`: the benchmark's own
/// data (replies it will send later), not the proxy's.
fn own<T>(counted: &mut isize, f: impl FnOnce() -> T) -> T {
    let before = live();
    let out = f();
    *counted += live() - before;
    out
}

/// The ACK of a non-2xx final reply to call `i`'s INVITE (same branch).
fn ack_of_rejected(i: usize) -> Bytes {
    Bytes::from(format!(
        "ACK sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-{i}-0\r\n\
         From: sipp <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag00{i}\r\n\
         To: service <sip:service@127.0.0.1:5060>;tag=uas-{i}\r\n\
         Call-ID: {i}-4242@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench -- --list`: nothing to list
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _enter = rt.enter();
    let per_call = |bytes: isize| bytes as f64 / CALLS as f64;

    // Answered calls: INVITE, 180 (live), 200 (accepted), ACK, BYE, 200.
    // `held` is what the benchmark itself keeps (the 200s it sends later,
    // the Route values): subtracted from the heap's growth.
    let bench = Bench::new();
    let mut oks = Vec::with_capacity(CALLS);
    let mut routes = Vec::with_capacity(CALLS);
    let base = live();
    let allocations_before = GLOBAL.stats().allocations;
    let mut held = 0;
    for i in 0..CALLS {
        let f = forwarded(bench.process(invite(i), UAC));
        let mut size = 0;
        let ok = own(&mut size, || reply(&f, 200, i));
        held += size;
        oks.push((ok, size));
        let ringing = reply(&f, 180, i);
        drop(f);
        sends(bench.process(ringing, UAS), &mut Vec::new());
    }
    bench.settle();
    let live_invite = live() - base - held;
    for (ok, size) in oks.drain(..) {
        let route = own(&mut held, || {
            let m = Message::parse(ok.clone()).unwrap();
            m.headers_named("Record-Route").map(|h| m.value_of(h).to_owned()).next()
        });
        routes.push(route.expect("the proxy record-routes"));
        held -= size; // handed to the proxy: whatever it keeps of it is its own
        sends(bench.process(ok, UAS), &mut Vec::new());
    }
    bench.settle();
    let accepted = live() - base - held;
    for (i, route) in routes.iter().enumerate() {
        sends(bench.process(in_dialog(i, "ACK", "ack", route), UAC), &mut Vec::new());
        let f = forwarded(bench.process(in_dialog(i, "BYE", "bye", route), UAC));
        sends(bench.process(reply(&f, 200, i), UAS), &mut Vec::new());
    }
    bench.settle();
    let with_bye = live() - base - held;
    // Allocations per answered call, the benchmark's own message building
    // included (about 20 per call: the datagrams, replies and Route values).
    let allocations = (GLOBAL.stats().allocations - allocations_before) as f64 / CALLS as f64;
    let answered = bench.core.transactions();
    drop(routes);

    // Rejected calls, on a fresh core so the figures do not mix.
    let bench2 = Bench::new();
    let base = live();
    for i in CALLS..2 * CALLS {
        let f = forwarded(bench2.process(invite(i), UAC));
        sends(bench2.process(reply(&f, 486, i), UAS), &mut Vec::new());
        drop(f);
        sends(bench2.process(ack_of_rejected(i), UAC), &mut Vec::new());
    }
    bench2.settle();
    let rejected = live() - base;
    let rejected_txns = bench2.core.transactions();

    println!(
        "{CALLS} calls of each kind; live transactions: {answered} and {rejected_txns}; \
         armed timers: {} and {}.",
        bench.core.armed_timers(),
        bench2.core.armed_timers()
    );
    println!(
        "Heap bytes per call counted by the allocator, table entries and armed timers included:"
    );
    println!(
        "Allocations per answered call (7 messages, the benchmark's own included): {allocations:.0}."
    );
    println!();
    println!("| state | heap bytes per call |");
    println!("| --- | --- |");
    println!("| INVITE live (Proceeding after a 180) | {:.0} |", per_call(live_invite));
    println!(
        "| INVITE answered (server and client Accepted, RFC 6026) | {:.0} |",
        per_call(accepted)
    );
    println!(
        "| INVITE Accepted + BYE Completed (server and client) | {:.0} (BYE: {:.0}) |",
        per_call(with_bye),
        per_call(with_bye - accepted)
    );
    println!(
        "| INVITE rejected 486 and ACKed (server Confirmed, client Completed) | {:.0} |",
        per_call(rejected)
    );
}
