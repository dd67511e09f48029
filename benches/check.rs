//! Check speed: the default example configuration, and a generated
//! 10,000-line configuration, reported in lines per second.
//!
//! Targets: `examples/default.route` checks faster than `kamailio -c` takes on
//! the 1,060-line default kamailio.cfg (about 16 ms), and the generated
//! configuration checks at 500,000 lines/s or more.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sipc::sema::{self, Options};

/// A clean configuration of about `lines` lines: many sub-routes using every
/// kind of statement, all called from `request_route`.
pub fn generated(lines: usize) -> String {
    let mut s = String::from(
        "listen udp 127.0.0.1:5060;\nflag FLT_ACC;\nconst LIMIT = 10;\ntable GW {\n    \"de\" => \"sip:10.0.0.1\";\n}\n",
    );
    let per_route = 26;
    let routes = lines / per_route;
    s.push_str("request_route {\n");
    for i in 0..routes {
        let _ = writeln!(s, "    route(R{i});");
    }
    s.push_str("    relay();\n    exit;\n}\n");
    for i in 0..routes {
        let _ = write!(
            s,
            r#"route R{i} {{
    # route {i}
    let n = {i};
    $var(count) = n + LIMIT * 2;
    if is_method("INVITE") && $var(count) > 3 {{
        setflag(FLT_ACC);
        record_route();
    }} else if $ua =~ "^(friendly|scanner){}[0-9]*$" {{
        log(info, "scanner $ua from $si:$sp in route {i}");
        exit;
    }}
    switch $rU {{
        case "alice":
            $du = table_get(GW, "de");
        case =~ "^\\+49[0-9]+$":
            $ru = "sip:" + $rU + "@gw.example.com";
        default:
            n = n - 1;
    }}
    while n > 0 {{
        n = n - 1;
    }}
    if !is_present_hf("X-Route-{i}") {{
        append_hf("X-Route-{i}: $ru\r\n");
    }}
}}
"#,
            i % 7
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let opts = Options::default();
    let default =
        std::fs::read_to_string("examples/default.route").expect("run from the crate root");
    let out = sema::check_source("default.route", &default, &opts);
    assert_eq!(out.diagnostics.len(), 0, "{:?}", out.diagnostics);
    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Elements(default.lines().count() as u64));
    g.bench_function("default.route", |b| {
        b.iter(|| sema::check_source("default.route", black_box(&default), &opts))
    });
    let big = generated(10_000);
    let out = sema::check_source("generated.route", &big, &opts);
    assert_eq!(out.diagnostics.len(), 0, "{:?}", out.diagnostics.first());
    g.throughput(Throughput::Elements(big.lines().count() as u64));
    g.bench_function("generated_10k_lines", |b| {
        b.iter(|| sema::check_source("generated.route", black_box(&big), &opts))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
