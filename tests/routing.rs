//! Routing tables and trunk groups end to end: a compiled config with trunk
//! groups and a prefix table, three answering UAS on loopback, and a UAC
//! placing calls through the proxy.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::ServerHandle;
use sipc::sema::Options;
use sipc::sip::Message;
use support::*;

const ROUTES: &str = r#"
listen udp 127.0.0.1:5999;
module tm {
    t1 = 50ms;
    fr_timer = 1s;
}

trunk pbx "sip:127.0.0.1:9" from 127.0.0.0/8;

trunk_group media strategy round_robin {
    trunk m1 "sip:UAS1";
    trunk m2 "sip:UAS2";
    trunk m3 "sip:UAS3";
}

trunk_group sticky strategy hash(from_user) {
    trunk s1 "sip:UAS1";
    trunk s2 "sip:UAS2";
    trunk s3 "sip:UAS3";
}

trunk_group probed strategy round_robin probe every 400ms down 1 up 1 {
    trunk p1 "sip:UAS1";
    trunk p2 "sip:UAS2";
    trunk p3 "sip:UAS3";
}

trunk_group limited strategy priority {
    trunk l1 "sip:UAS1" priority 1 max_calls 1;
    trunk l2 "sip:UAS2" priority 2;
}

table dial by prefix($rU) {
    "49" => group media strip 2 prefix "0";
    "4930" => trunk m3 strip 4 prefix "030";
}

request_route {
    if is_method("CANCEL") {
        if t_check_trans() {
            relay();
        }
        exit;
    }
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
    append_hf("X-In: $in_trunk\r\n");
    if str_starts_with($rU, "sticky") {
        select(sticky);
    } else if str_starts_with($rU, "probed") {
        select(probed);
    } else if str_starts_with($rU, "markdown") {
        trunk_set_up("m1", false);
        reply(200, "Marked");
        exit;
    } else if str_starts_with($rU, "limited") {
        select(limited);
    } else if str_starts_with($rU, "49") {
        select(dial);
    } else {
        select(media);
    }
    on_failure(failover);
    relay();
}

failure_route failover {
    if t_check_status("5[0-9][0-9]|408") && next_destination() {
        on_failure(failover);
        relay();
    }
}
"#;

/// An INVITE a UAS received: Call-ID, Request-URI user, `X-In`.
#[derive(Debug, Clone)]
struct Seen {
    call_id: String,
    user: String,
    in_trunk: String,
}

/// A UAS that answers every INVITE with `status` (200 by default), BYE and
/// OPTIONS with 200, and records the INVITEs.
struct Uas {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Answer OPTIONS (health probes); false: stay silent to them.
    options: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Uas {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header<'m>(m: &'m Message, name: &'m str) -> Option<&'m str> {
    m.headers_named(name).next().map(|h| m.value_of(h))
}

async fn uas() -> Uas {
    let ua = UdpUa::bind().await;
    let addr = ua.addr;
    let status = Arc::new(AtomicU16::new(200));
    let options = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (st, sn, op) = (Arc::clone(&status), Arc::clone(&seen), Arc::clone(&options));
    let task = tokio::spawn(async move {
        loop {
            let Some((m, from)) = ua.recv_within(Duration::from_secs(60)).await else { continue };
            let code = match m.method_str() {
                Some("INVITE") => {
                    let user = m
                        .request_uri_str()
                        .and_then(|u| {
                            sipc::sip::Uri::parse(u).ok().and_then(|u| u.user.map(str::to_owned))
                        })
                        .unwrap_or_default();
                    sn.lock().unwrap().push(Seen {
                        call_id: m.call_id().ok().flatten().unwrap_or("").to_owned(),
                        user,
                        in_trunk: header(&m, "X-In").unwrap_or("").to_owned(),
                    });
                    st.load(Ordering::Relaxed)
                }
                Some("OPTIONS") if !op.load(Ordering::Relaxed) => continue,
                Some("BYE" | "OPTIONS") => 200,
                _ => continue,
            };
            let reason = if code == 200 { "OK" } else { "Service Unavailable" };
            let reply = response_to(&m, code, reason).replace(
                "Content-Length: 0",
                &format!("Contact: <sip:uas@{addr}>\r\nContent-Length: 0"),
            );
            ua.send(from, &reply).await;
        }
    });
    Uas { addr, status, options, seen, task }
}

struct Bed {
    proxy: ServerHandle,
    px: SocketAddr,
    uac: UdpUa,
    uas: [Uas; 3],
}

async fn bed() -> Bed {
    let uas = [uas().await, uas().await, uas().await];
    let src = ROUTES
        .replace("UAS1", &uas[0].addr.to_string())
        .replace("UAS2", &uas[1].addr.to_string())
        .replace("UAS3", &uas[2].addr.to_string());
    let proxy = serve_source("routing.route", &src, |_, c| c.workers = 2).await;
    let px = proxy.addr(Transport::Udp).unwrap();
    Bed { proxy, px, uac: UdpUa::bind().await, uas }
}

impl Bed {
    /// Places a call to `user` (from `from_user`) and returns the final status.
    async fn call(&self, user: &str, from_user: &str, call_id: &str) -> u16 {
        let inv = request(
            "INVITE",
            &format!("sip:{user}@example.com"),
            &self.uac.via(call_id),
            call_id,
            "",
        )
        .replace("From: <sip:alice@example.com>", &format!("From: <sip:{from_user}@example.com>"));
        self.uac.send(self.px, &inv).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, _) =
                self.uac.recv_within(left).await.unwrap_or_else(|| panic!("{call_id}: no final"));
            if m.call_id().ok().flatten() == Some(call_id) && m.status().is_some_and(|s| s >= 200) {
                return m.status().unwrap();
            }
        }
    }

    /// Which UAS got the INVITE of `call_id` last, and what it saw.
    fn who_got(&self, call_id: &str) -> Option<(usize, Seen)> {
        let mut found = None;
        for (i, u) in self.uas.iter().enumerate() {
            if let Some(s) = u.seen.lock().unwrap().iter().rev().find(|s| s.call_id == call_id) {
                found = Some((i, s.clone()));
            }
        }
        found
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_calls_evenly() {
    let b = bed().await;
    for n in 0..30 {
        assert_eq!(b.call("bob", "alice", &format!("rr-{n}")).await, 200);
    }
    let counts: Vec<usize> = b.uas.iter().map(|u| u.seen.lock().unwrap().len()).collect();
    assert_eq!(counts, vec![10, 10, 10]);
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_fails_over_in_the_same_call() {
    let b = bed().await;
    b.uas[0].status.store(503, Ordering::Relaxed);
    assert_eq!(b.call("limited", "alice", "fo-1").await, 200, "the second member answered");
    assert_eq!(b.uas[0].seen.lock().unwrap().len(), 1, "tried the first member first");
    assert_eq!(b.who_got("fo-1").map(|(i, _)| i), Some(1));
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_at_its_call_limit_is_skipped() {
    let b = bed().await;
    // l1 (max_calls 1) takes the first call, which stays up (no BYE).
    assert_eq!(b.call("limited", "alice", "lim-1").await, 200);
    assert_eq!(b.who_got("lim-1").map(|(i, _)| i), Some(0));
    assert_eq!(b.call("limited", "alice", "lim-2").await, 200);
    assert_eq!(b.who_got("lim-2").map(|(i, _)| i), Some(1), "l1 is full: l2");
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_keeps_a_caller_on_one_member() {
    let b = bed().await;
    let mut by_caller: HashMap<&str, Vec<usize>> = HashMap::new();
    for caller in ["alice", "bob", "carol", "dave"] {
        for n in 0..4 {
            let call_id = format!("hash-{caller}-{n}");
            assert_eq!(b.call("sticky", caller, &call_id).await, 200);
            by_caller.entry(caller).or_default().push(b.who_got(&call_id).unwrap().0);
        }
    }
    for (caller, members) in &by_caller {
        assert!(members.windows(2).all(|w| w[0] == w[1]), "{caller} moved: {members:?}");
    }
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_prefix_wins_and_the_number_is_translated() {
    let b = bed().await;
    assert_eq!(b.call("4930123456", "alice", "pfx-1").await, 200);
    let (member, seen) = b.who_got("pfx-1").unwrap();
    assert_eq!((member, seen.user.as_str()), (2, "030123456"), "4930 → trunk m3, 030…");
    assert_eq!(b.call("49891234", "alice", "pfx-2").await, 200);
    let (_, seen) = b.who_got("pfx-2").unwrap();
    assert_eq!(seen.user, "0891234", "49 → group media, strip 2, prefix 0");
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_trunk_is_identified_by_source_address() {
    let b = bed().await;
    assert_eq!(b.call("bob", "alice", "in-1").await, 200);
    let (_, seen) = b.who_got("in-1").unwrap();
    assert_eq!(seen.in_trunk, "pbx");
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_answering_probes_gets_no_calls_until_it_answers() {
    let b = bed().await;
    assert_eq!(b.call("probed", "alice", "pr-0").await, 200); // starts probing
    b.uas[0].options.store(false, Ordering::Relaxed);
    // Two probe intervals (400 ms each, ±15 %, a probe fails after 200 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for n in 1..=9 {
        let call_id = format!("pr-down-{n}");
        assert_eq!(b.call("probed", "alice", &call_id).await, 200);
        assert_ne!(b.who_got(&call_id).unwrap().0, 0, "{call_id} went to the silent member");
    }
    b.uas[0].options.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut members = std::collections::BTreeSet::new();
    for n in 1..=9 {
        let call_id = format!("pr-up-{n}");
        assert_eq!(b.call("probed", "alice", &call_id).await, 200);
        members.insert(b.who_got(&call_id).unwrap().0);
    }
    assert!(members.contains(&0), "the member is back: {members:?}");
    b.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_edits_a_group_keeps_the_health_of_unchanged_trunks() {
    let b = bed().await;
    let dir = std::env::temp_dir().join(format!("sipc-routing-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routing.route");
    let src = ROUTES
        .replace("UAS1", &b.uas[0].addr.to_string())
        .replace("UAS2", &b.uas[1].addr.to_string())
        .replace("UAS3", &b.uas[2].addr.to_string());
    std::fs::write(&path, &src).unwrap();
    let first = sipc::reload::build(&path, &Options::default()).unwrap();
    b.proxy.core.set_router(first.program.clone());
    first.program.set_local(b.proxy.core.local.clone());
    let reloader = sipc::reload::Reloader::new(
        &path,
        Options::default(),
        Arc::clone(&b.proxy.core),
        &first,
        None,
    );
    // m1 is marked down from a route.
    assert_eq!(b.call("markdown", "alice", "mark-1").await, 200);
    // The group changes (strategy and member order); m1 is the same trunk.
    let edited = src.replace(
        "trunk_group media strategy round_robin {",
        "trunk_group media strategy weighted {",
    );
    std::fs::write(&path, edited).unwrap();
    reloader.reload("test").await.expect("the edited config loads");
    for n in 0..9 {
        let call_id = format!("after-reload-{n}");
        assert_eq!(b.call("bob", "alice", &call_id).await, 200);
        assert_ne!(b.who_got(&call_id).unwrap().0, 0, "m1 is still down after the reload");
    }
    let _ = std::fs::remove_dir_all(&dir);
    b.proxy.stop(Duration::from_secs(1)).await;
}
