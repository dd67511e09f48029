//! The ng client against a real rtpengine (Debian: `rtpengine-daemon`).
//!
//! Each test starts its own rtpengine on loopback: userspace forwarding
//! (`--table=-1`), no config file (`--config-file=none`: the packaged
//! `/etc/rtpengine/rtpengine.conf` and its systemd service play no part),
//! the ng port a free one, media ports from a range of its own. It is
//! killed when the test ends.
//!
//! Without the `rtpengine` binary the tests say so loudly and pass; under
//! `CI=true` they fail (.ci/run installs the package).
//!
//! `round_trip_figures` (ignored by default) prints the p50/p99 round trip
//! of 1,000 `ping`s and 200 `offer` + `delete` pairs, the figures in
//! docs/architecture.md:
//! `cargo test --test rtpengine_ng -- --ignored --nocapture round_trip_figures`.

use std::time::{Duration, Instant};

use sipc::rtpengine::{Dict, InstanceSpec, NgClient, NgError, NgSettings};

mod support;
use support::rtpengine::Rtpengine;

fn start() -> Option<Rtpengine> {
    Rtpengine::start()
}

fn client(rtpe: &Rtpengine) -> NgClient {
    NgClient::new(NgSettings::new(vec![InstanceSpec::new(rtpe.ng, 1)])).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

const CALLER_SDP: &str = "v=0\r\no=caller 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
                          t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const CALLEE_SDP: &str = "v=0\r\no=callee 2 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\n\
                          t=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The connection address and audio port of an SDP body.
fn media(sdp: &str) -> (String, u16) {
    let line = |prefix: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{sdp}"))
    };
    let port = line("m=audio ").split(' ').next().unwrap().parse().unwrap();
    (line("c=IN IP4 ").trim().to_owned(), port)
}

#[test]
fn offer_answer_query_delete_against_rtpengine() {
    let Some(rtpe) = start() else { return };
    let rt = runtime();
    rt.block_on(async {
        let client = client(&rtpe);
        let call = "ng-test-1@192.0.2.10";
        let pong = client.request("", Dict::command("ping")).await.unwrap();
        assert_eq!(pong.get_str("result"), Some("pong"));

        let offer = Dict::command("offer")
            .with("from-tag", "caller-tag")
            .with("sdp", CALLER_SDP)
            .with("replace", ["origin", "session-connection"])
            .with("flags", ["trust-address"]);
        let reply =
            client.request(call, offer).await.unwrap_or_else(|e| panic!("{e}\n{}", rtpe.log()));
        let sdp = reply.get_str("sdp").expect("the offer's reply has an sdp");
        let (addr, port) = media(sdp);
        assert_eq!(addr, "127.0.0.1", "{sdp}");
        assert_ne!(port, 4000);
        assert!((rtpe.ports.0..=rtpe.ports.1).contains(&port), "{port} not in {:?}", rtpe.ports);

        let answer = Dict::command("answer")
            .with("from-tag", "caller-tag")
            .with("to-tag", "callee-tag")
            .with("sdp", CALLEE_SDP)
            .with("flags", ["trust-address"]);
        let reply = client.request(call, answer).await.unwrap();
        let sdp = reply.get_str("sdp").expect("the answer's reply has an sdp");
        let (addr, answer_port) = media(sdp);
        assert_eq!(addr, "127.0.0.1", "{sdp}");
        assert_ne!(answer_port, 5000);
        assert_ne!(answer_port, port);

        let query = client.request(call, Dict::command("query")).await.unwrap();
        assert!(query.get_dict("tags").is_some_and(|t| t.get("caller-tag").is_some()), "{query:?}");

        let delete = Dict::command("delete").with("from-tag", "caller-tag");
        client.request(call, delete).await.unwrap();

        match client.request(call, Dict::command("query")).await {
            Err(NgError::Rtpengine { instance, reason }) => {
                assert_eq!(instance, rtpe.ng);
                assert_eq!(reason, "Unknown call-id");
            }
            other => panic!("query after delete: {other:?}"),
        }
        let stats = &client.stats()[0];
        assert_eq!((stats.sent, stats.replies, stats.errors, stats.timeouts), (6, 6, 1, 0));
        assert!(stats.up);
    });
}

#[test]
fn an_answer_for_an_unknown_call_is_rtpengines_error() {
    let Some(rtpe) = start() else { return };
    let rt = runtime();
    let client = rt.block_on(async { client(&rtpe) });
    // The synchronous path a routing thread would take.
    let answer =
        Dict::command("answer").with("from-tag", "f").with("to-tag", "t").with("sdp", CALLEE_SDP);
    let err = client.request_blocking("nobody@x", answer, Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(&err, NgError::Rtpengine { reason, .. } if reason == "Unknown call-id"),
        "{err}"
    );
}

#[test]
fn a_killed_rtpengine_is_marked_down_and_a_restarted_one_up() {
    let Some(mut rtpe) = start() else { return };
    let rt = runtime();
    rt.block_on(async {
        let mut settings = NgSettings::new(vec![InstanceSpec::new(rtpe.ng, 1)]);
        settings.timeout = Duration::from_millis(100);
        settings.ping_interval = Duration::from_millis(100);
        let client = NgClient::new(settings).unwrap();
        client.request("", Dict::command("ping")).await.unwrap();
        rtpe.child.kill().unwrap();
        rtpe.child.wait().unwrap();
        let err = client.request("c", Dict::command("query")).await.unwrap_err();
        assert_eq!(err, NgError::Timeout { tried: vec![rtpe.ng] });
        assert!(!client.stats()[0].up);
        assert_eq!(client.request("c", Dict::command("query")).await, Err(NgError::NoLiveInstance));
        // Started again on the same port: the pinger finds it.
        rtpe.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.stats()[0].up {
            assert!(Instant::now() < deadline, "never up again:\n{}", rtpe.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.request("", Dict::command("ping")).await.unwrap();
    });
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn micros(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

#[test]
#[ignore = "prints timings: cargo test --test rtpengine_ng -- --ignored --nocapture"]
fn round_trip_figures() {
    let Some(rtpe) = start() else { return };
    let rt = runtime();
    let client = rt.block_on(async { client(&rtpe) });
    let mut rows = Vec::new();

    let pings = rt.block_on(async {
        let mut t = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let start = Instant::now();
            client.request("", Dict::command("ping")).await.unwrap();
            t.push(start.elapsed());
        }
        t
    });
    rows.push(("ping, async request (1,000)", percentiles(pings)));

    let c = client.clone();
    let blocking = std::thread::spawn(move || {
        (0..1_000)
            .map(|_| {
                let start = Instant::now();
                c.request_blocking("", Dict::command("ping"), Duration::from_secs(2)).unwrap();
                start.elapsed()
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    rows.push(("ping, request_blocking from a plain thread (1,000)", percentiles(blocking)));

    let (offers, deletes, pairs) = rt.block_on(async {
        let (mut o, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new());
        for n in 0..200 {
            let call = format!("figures-{n}@192.0.2.10");
            let offer = Dict::command("offer").with("from-tag", "ft").with("sdp", CALLER_SDP);
            let start = Instant::now();
            client.request(&call, offer).await.unwrap();
            let mid = Instant::now();
            client.request(&call, Dict::command("delete").with("from-tag", "ft")).await.unwrap();
            let end = Instant::now();
            o.push(mid - start);
            d.push(end - mid);
            p.push(end - start);
        }
        (o, d, p)
    });
    rows.push(("offer (200)", percentiles(offers)));
    rows.push(("delete (200)", percentiles(deletes)));
    rows.push(("offer + delete pair (200)", percentiles(pairs)));

    println!("\n| round trip to rtpengine on loopback | p50 | p99 |\n|---|---|---|");
    for (what, (p50, p99)) in rows {
        println!("| {what} | {} | {} |", micros(p50), micros(p99));
    }
    let s = &client.stats()[0];
    assert_eq!((s.timeouts, s.errors), (0, 0));
}
