//! SIP parse and serialize speed, against the `rsip` crate as the baseline in
//! the same run.
//!
//! Three messages from the test corpus: a ~900-byte INVITE with SDP, a REGISTER
//! with several Contacts and a 200 OK. For each:
//! - `sipc/locate`: `Message::parse` (start line, every header found, body delimited);
//! - `sipc/full`: locate + `validate` + Contact, i.e. every proxy header typed;
//! - `rsip/full`: `rsip::SipMessage::try_from` + the same headers typed;
//! - `sipc/serialize`: a proxy's edits (R-URI, Via, Record-Route, Max-Forwards) written out;
//! - `rsip/serialize`: rsip writing the parsed message back (no edits).
//!
//! After criterion's groups, a summary measures full parse of each message on
//! both sides in interleaved rounds and prints the throughput ratio, so the
//! comparison is made under the same machine load.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use rsip::prelude::*;
use sipc::sip::{EditedMessage, Message};

const MESSAGES: [(&str, &str); 3] = [
    ("invite", "invite_sdp.sip"),
    ("register", "register_contacts.sip"),
    ("ok200", "ok_200_sdp.sip"),
];

fn load(file: &str) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip").join(file);
    Bytes::from(std::fs::read(path).expect("corpus file"))
}

fn sipc_full(b: &Bytes) -> usize {
    let mut m = Message::parse(b.clone()).expect("parses");
    m.validate().expect("valid");
    // `validate` already typed a REGISTER's Contacts; type them once for the rest.
    let contacts = match m.method() {
        Some(sipc::sip::Method::Register) => m.header_count(sipc::sip::HeaderName::Contact),
        _ => m.contacts().filter(Result::is_ok).count(),
    };
    m.headers().len() + contacts
}

fn rsip_full(b: &Bytes) -> usize {
    let m = rsip::SipMessage::try_from(&b[..]).expect("rsip parses");
    let via = m.via_header().and_then(|v| v.typed()).expect("via");
    let from = m.from_header().and_then(|v| v.typed()).expect("from");
    let to = m.to_header().and_then(|v| v.typed()).expect("to");
    let cseq = m.cseq_header().and_then(|v| v.typed()).expect("cseq");
    let call_id = m.call_id_header().expect("call-id");
    let contacts = m.contact_headers().iter().filter(|c| c.typed().is_ok()).count();
    let mf = m.max_forwards_header().ok().map(|h| h.num().is_ok());
    black_box((via, from, to, cseq, call_id, mf));
    m.headers().iter().count() + contacts
}

fn proxy_edits(m: &Message) -> Bytes {
    let mut e = EditedMessage::new(m.clone());
    if m.is_request() {
        e.set_request_uri("sip:bob@192.0.2.50:5060");
        e.set_header("Max-Forwards", "69");
        e.insert_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK7f3a9c1e0b2d");
        e.insert_first("Record-Route", "<sip:192.0.2.1;lr>");
    } else {
        e.remove_first_value("Via");
    }
    e.serialize()
}

fn benches(c: &mut Criterion) {
    for (name, file) in MESSAGES {
        let bytes = load(file);
        let mut g = c.benchmark_group(format!("sip_parse/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("sipc/locate", |b| {
            b.iter(|| Message::parse(black_box(bytes.clone())).unwrap().headers().len())
        });
        g.bench_function("sipc/full", |b| b.iter(|| sipc_full(black_box(&bytes))));
        g.bench_function("rsip/full", |b| b.iter(|| rsip_full(black_box(&bytes))));
        let parsed = Message::parse(bytes.clone()).unwrap();
        g.bench_function("sipc/serialize", |b| b.iter(|| proxy_edits(black_box(&parsed)).len()));
        let rparsed = rsip::SipMessage::try_from(&bytes[..]).unwrap();
        g.bench_function("rsip/serialize", |b| b.iter(|| black_box(&rparsed).to_string().len()));
        g.finish();
    }
}

/// Runs `f` for about `budget` and returns ns per call.
fn ns_per_call(budget: Duration, f: &dyn Fn() -> usize) -> f64 {
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..100 {
            black_box(f());
        }
        n += 100;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn ratio_summary() {
    println!("\nfull parse, interleaved rounds (median of 7), same run:");
    println!("{:<10} {:>12} {:>12} {:>8}", "message", "sipc ns", "rsip ns", "ratio");
    for (name, file) in MESSAGES {
        let bytes = load(file);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            a.push(ns_per_call(Duration::from_millis(150), &|| sipc_full(&bytes)));
            b.push(ns_per_call(Duration::from_millis(150), &|| rsip_full(&bytes)));
        }
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (sa, sb) = (a[3], b[3]);
        println!("{name:<10} {sa:>12.0} {sb:>12.0} {:>7.1}x", sb / sa);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    ratio_summary();
}
