//! Prometheus metrics through `sipc run examples/default.route` (its SIP
//! and metrics ports moved to free ones): SIP traffic over loopback, then
//! `GET /metrics` over HTTP. The text is checked by Debian's `promtool
//! check metrics` (Prometheus's own parser and linter, which did not write
//! it), and the values by what the traffic was: requests by method,
//! replies by class, malformed datagrams dropped, the request route's run
//! times, the configuration generation and reload count after a reload.
//! Without promtool the check says so loudly; under CI (`CI=true`) it
//! fails. Bounded: every wait is a few seconds.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Reaper, free_udp_port, sipc_run, wait_started};

struct Setup {
    dir: PathBuf,
    route: PathBuf,
    control: PathBuf,
    sip: SocketAddr,
    metrics: SocketAddr,
    _proxy: Reaper,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start() -> Setup {
    let dir = std::env::temp_dir().join(format!("sipc-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sip, metrics) = (free_udp_port(), free_tcp_port());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/default.route");
    let mut text = std::fs::read_to_string(example).unwrap();
    for (from, to) in [
        ("listen udp 127.0.0.1:5060;".to_string(), format!("listen udp 127.0.0.1:{sip};")),
        ("listen = \"127.0.0.1:9090\";".to_string(), format!("listen = \"127.0.0.1:{metrics}\";")),
    ] {
        assert!(text.contains(&from), "the example has no `{from}`");
        text = text.replace(&from, &to);
    }
    let route = dir.join("default.route");
    std::fs::write(&route, text).unwrap();
    let control = dir.join("control.sock");
    let proxy = sipc_run(&route, &["--control", control.to_str().unwrap(), "-n", "1"], None);
    wait_started(&control);
    Setup {
        dir,
        route,
        control,
        sip: format!("127.0.0.1:{sip}").parse().unwrap(),
        metrics: format!("127.0.0.1:{metrics}").parse().unwrap(),
        _proxy: proxy,
    }
}

/// One HTTP/1.1 request; the status line and the body.
fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

fn scrape(setup: &Setup) -> String {
    let (status, body) =
        http(setup.metrics, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// The value of the sample `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

fn options(i: usize, port: u16) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKm{i};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:127.0.0.1>\r\nFrom: <sip:probe@example.com>;tag=m{i}\r\n\
         Call-ID: metrics-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn missing(what: &str) {
    let msg = format!("{what} is not installed: the metrics text was NOT checked by it");
    assert!(std::env::var("CI").is_err(), "{msg}");
    eprintln!("{msg}");
}

/// Runs `program args…` with `text` on stdin: exit code, stdout and stderr.
fn pipe(program: &str, args: &[&str], text: &str) -> Option<(Option<i32>, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.code(), said))
}

/// The Prometheus Python client's OpenMetrics parser, which is strict
/// (types, suffixes, bucket order, `# EOF`): it must accept the text.
fn check_openmetrics(text: &str) {
    const PARSE: &str = "import sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
print(sum(len(f.samples) for f in parse(sys.stdin.read())))";
    // Debian's Python, which has the package, whatever `python3` is first
    // on the PATH.
    match pipe("/usr/bin/python3", &["-c", PARSE], text) {
        Some((Some(0), out)) => {
            let samples: usize = out.trim().parse().unwrap_or(0);
            assert!(samples > 50, "the parser saw {samples} samples");
        }
        Some((_, out)) if out.contains("No module named") => missing("python3-prometheus-client"),
        Some((_, out)) => panic!("the OpenMetrics parser refused the text:\n{out}\n{text}"),
        None => missing("/usr/bin/python3"),
    }
}

/// `promtool check metrics` (Prometheus's own linter) must parse the text
/// and find nothing wrong but one thing: it reads the classic text format,
/// where a counter's HELP names the sample, so it says "no help text" for
/// each `X_total` whose OpenMetrics family `X` has its HELP. Any other
/// complaint fails.
fn check_promtool(text: &str) {
    let Some((code, said)) = pipe("promtool", &["check", "metrics"], text) else {
        return missing("promtool (Debian: prometheus)");
    };
    assert_ne!(code, Some(1), "promtool could not parse the text:\n{said}\n{text}");
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        let family = line.strip_suffix("_total no help text");
        let explained = family.is_some_and(|f| text.contains(&format!("# HELP {f} ")));
        assert!(explained, "promtool: {line}\n{said}");
    }
}

#[test]
fn metrics_count_what_the_proxy_did_and_promtool_accepts_them() {
    let setup = start();
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    const N: usize = 20;
    for i in 0..N {
        ua.send_to(options(i, setup.sip.port()).as_bytes(), setup.sip).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = ua.recv_from(&mut buf).expect("the keepalive OPTIONS is answered");
        assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    }
    // Two datagrams that are not SIP: dropped, and counted.
    ua.send_to(b"GET / HTTP/1.0\r\n\r\n", setup.sip).unwrap();
    ua.send_to(b"INVITE nonsense\r\n\r\n", setup.sip).unwrap();
    // A reply nobody asked for: a 4xx received, dropped as stray.
    ua.send_to(
        b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nTo: <sip:a@x>;tag=1\r\n\
From: <sip:b@x>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        setup.sip,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let text = loop {
        let text = scrape(&setup);
        if value(&text, "sipc_dropped_total{reason=\"stray\"}") >= 1.0 || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    check_openmetrics(&text);
    check_promtool(&text);

    assert_eq!(value(&text, "sipc_requests_received_total{method=\"OPTIONS\"}"), N as f64);
    assert_eq!(value(&text, "sipc_requests_received_total{method=\"INVITE\"}"), 0.0);
    assert_eq!(value(&text, "sipc_replies_received_total{class=\"4xx\"}"), 1.0);
    assert_eq!(value(&text, "sipc_dropped_total{reason=\"malformed\"}"), 2.0);
    assert_eq!(value(&text, "sipc_dropped_total{reason=\"stray\"}"), 1.0);
    assert_eq!(value(&text, "sipc_replies_sent_total"), N as f64);
    assert_eq!(
        value(&text, "sipc_route_duration_seconds_count{route=\"request_route\"}"),
        N as f64
    );
    assert!(value(&text, "sipc_route_duration_seconds_sum{route=\"request_route\"}") > 0.0);
    assert_eq!(
        value(&text, "sipc_route_duration_seconds_bucket{le=\"+Inf\",route=\"request_route\"}"),
        N as f64
    );
    assert_eq!(value(&text, "sipc_config_generation"), 1.0);
    assert_eq!(value(&text, "sipc_location_aors"), 0.0);
    assert!(value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(value(&text, "process_cpu_seconds_total") > 0.0);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    // A reload shows in the generation and the reload count.
    let status = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["reload", "--control"])
        .arg(&setup.control)
        .arg(&setup.route)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = scrape(&setup);
    assert_eq!(value(&text, "sipc_config_generation"), 2.0);
    assert_eq!(value(&text, "sipc_reloads_total"), 1.0);
    assert_eq!(value(&text, "sipc_reload_failures_total"), 0.0);
    // The request route's times go on across the reload.
    assert_eq!(
        value(&text, "sipc_route_duration_seconds_count{route=\"request_route\"}"),
        N as f64
    );

    let (status, _) = http(setup.metrics, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(setup.metrics, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
}
