//! Route execution speed: `request_route` of the example configurations on
//! a corpus message, through the JIT-compiled [`Program`] and through the
//! reference [`Evaluator`], in the same run. Besides criterion's numbers it
//! prints the evaluator/JIT time ratio of each configuration.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use criterion::Criterion;
use sipc::codegen::{Evaluator, Program};
use sipc::proxy::{Decision, RequestContext, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{EditedMessage, Message};

const INVITE: &str = "INVITE sip:bob@sip.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\nTo: Bob <sip:bob@sip.example.com>\r\n\
From: Alice <sip:alice@sip.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>\r\nUser-Agent: softphone/2.1\r\n\
Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n";

const REGISTER: &str = "REGISTER sip:sip.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\nTo: Alice <sip:alice@sip.example.com>\r\n\
From: Alice <sip:alice@sip.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\n\
Contact: <sip:alice@192.0.2.1>\r\nExpires: 3600\r\nUser-Agent: softphone/2.1\r\n\
Content-Length: 0\r\n\r\n";

/// A config heavier on the language itself: loops, arithmetic, string ops.
const COMPUTE: &str = r#"
listen udp 127.0.0.1:5060;
route SCORE {
    let i = 0;
    let acc = 0;
    while i < 40 {
        acc = acc + i * 3 % 7;
        i = i + 1;
    }
    $var(score) = acc;
    return acc > 10;
}
request_route {
    if route(SCORE) && $rU =~ "^[a-z]+$" && str_starts_with($fu, "sip:") {
        $du = "sip:127.0.0.1:5080";
        forward();
        exit;
    }
    reply(404, "Not Found");
}
"#;

fn program(name: &str, text: &str) -> sipc::sema::ir::CheckedProgram {
    let out = sema::check_source(name, text, &Options::default());
    assert_eq!(out.errors(), 0, "{name}");
    out.program
}

fn fresh(msg: &EditedMessage) -> RequestContext {
    RequestContext::new(msg.clone(), SocketAddr::from(([192, 0, 2, 1], 5060)), Transport::Udp)
}

/// Seconds per call, the best of five rounds (the machine is shared).
fn time(iters: u32, mut f: impl FnMut() -> Decision) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            start.elapsed().as_secs_f64() / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let default = std::fs::read_to_string(dir.join("default.route")).unwrap();
    let configs = [
        ("default.route", default.clone(), INVITE),
        ("default.route, REGISTER", default, REGISTER),
        (
            "stateless.route",
            std::fs::read_to_string(dir.join("bench/stateless.route")).unwrap(),
            INVITE,
        ),
        ("compute", COMPUTE.to_owned(), INVITE),
    ];
    let mut c = Criterion::default().configure_from_args();
    let mut ratios = Vec::new();
    for (name, text, message) in &configs {
        // Parsed and validated, as the proxy core does before any route runs.
        let mut parsed = Message::parse(Bytes::from_static(message.as_bytes())).unwrap();
        parsed.validate().unwrap();
        let msg = EditedMessage::new(parsed);
        let prog = program(name, text);
        let jit = Program::compile(&prog).unwrap();
        let eval = Evaluator::new(&prog).unwrap();
        assert_eq!(jit.run(&mut fresh(&msg)), eval.run(&mut fresh(&msg)));
        let mut g = c.benchmark_group(format!("route_exec/{name}"));
        g.bench_function("jit", |b| b.iter(|| jit.run(&mut fresh(black_box(&msg)))));
        g.bench_function("eval", |b| b.iter(|| eval.run(&mut fresh(black_box(&msg)))));
        g.bench_function("ctx_only", |b| b.iter(|| black_box(fresh(black_box(&msg)))));
        g.finish();
        let n = 50_000;
        let base = time(n, || {
            black_box(fresh(&msg));
            Decision::Drop
        });
        let tj = time(n, || jit.run(&mut fresh(&msg))) - base;
        let te = time(n, || eval.run(&mut fresh(&msg))) - base;
        ratios.push((name, tj, te));
    }
    // Compile time: what a reload of the config costs (check + JIT).
    let default = &configs[0].1;
    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    g.bench_function("default.route check+jit", |b| {
        b.iter(|| Program::compile(&program("default.route", black_box(default))).unwrap())
    });
    g.finish();
    let started = std::time::Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        black_box(Program::compile(&program("default.route", default)).unwrap());
    }
    let compile_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
    c.final_summary();
    println!("default.route: check + compile to native code {compile_ms:.2} ms (target < 20 ms)");
    for (name, tj, te) in ratios {
        println!(
            "{name}: jit {:.0} ns, evaluator {:.0} ns per request_route (message copy excluded): evaluator/jit = {:.2}x",
            tj * 1e9,
            te * 1e9,
            te / tj
        );
    }
}
