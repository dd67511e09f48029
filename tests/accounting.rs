//! Dialogs and call records through `sipc run examples/accounting.route`
//! on loopback, driven by SIPp (the example, with its ports moved to free
//! ones):
//!
//! - 2,000 calls, 90 % answered, 5 % busy (486) and 5 % cancelled while
//!   ringing: the records per kind are exact, answered calls last the
//!   scenario's pause to within 50 ms, and no dialog is left;
//! - a call over its maximum duration (`dlg_set_timeout`): the proxy sends
//!   BYE to both phones on time, and the record says so;
//! - ten calls from one source at once: the eleventh is refused with the
//!   example's code, and a call that ends makes room again;
//! - a restart (SIGTERM, start again) in the middle of 100 calls: every
//!   call still gets its record;
//! - a config saved (and so reloaded) while 40 calls are up: every call
//!   keeps its dialog and its record, with what the INVITE's program set;
//! - PostgreSQL (a real server on loopback, reached through a relay the
//!   test can cut): records go to its table, are spooled while it cannot
//!   be reached and replayed once it can.
//!
//! Without SIPp, or PostgreSQL for the last, a test says so loudly; under
//! CI (`CI=true`) it fails. Bounded: each test ends within about a minute.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipc::sip::Message;
use support::relay::Relay;
use support::{Reaper, free_udp_port, have_sipp, sipc_status, terminate};

fn sipp_present(test: &str) -> bool {
    if have_sipp() {
        return true;
    }
    let msg = format!("SIPp is not installed: {test} did NOT run");
    assert!(std::env::var("CI").is_err(), "{msg}");
    eprintln!("{msg}");
    false
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp")
}

/// A copy of examples/accounting.route in a directory of its own, with
/// its ports moved and `edits` applied (each `(from, to)` must match).
struct Setup {
    dir: PathBuf,
    route: PathBuf,
    control: PathBuf,
    port: u16,
    media: u16,
}

impl Setup {
    fn new(name: &str, edits: &[(&str, &str)]) -> Setup {
        let dir = std::env::temp_dir().join(format!("sipc-acc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (port, media) = (free_udp_port(), free_udp_port());
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/accounting.route");
        let mut text = std::fs::read_to_string(example).unwrap();
        let mut all = vec![
            ("listen udp 127.0.0.1:5060;".to_string(), format!("listen udp 127.0.0.1:{port};")),
            ("\"sip:127.0.0.1:5080\"".to_string(), format!("\"sip:127.0.0.1:{media}\"")),
        ];
        all.extend(edits.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        for (from, to) in all {
            assert!(text.contains(&from), "the example has no `{from}`");
            text = text.replace(&from, &to);
        }
        let route = dir.join("accounting.route");
        std::fs::write(&route, text).unwrap();
        let control = dir.join("control.sock");
        Setup { dir, route, control, port, media }
    }

    fn proxy(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the proxy and waits until it answers on its control socket.
    fn start(&self, log: &str) -> Reaper {
        let child = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("run")
            .arg(&self.route)
            .arg("--control")
            .arg(&self.control)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.dir.join(log)).unwrap()))
            .spawn()
            .unwrap();
        let proxy = Reaper(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sipc_status(&self.control).contains("generation") {
            assert!(Instant::now() < deadline, "sipc did not start: {}", self.log(log));
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn status(&self) -> String {
        sipc_status(&self.control)
    }

    /// Waits until no dialog is live (bounded).
    fn wait_no_dialogs(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status();
            if s.contains("dialogs: 0 live") {
                return;
            }
            assert!(Instant::now() < deadline, "dialogs left:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The records, as `sipc cdr --format json` prints them.
    fn records(&self) -> Vec<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("cdr")
            .arg(&self.route)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "sipc cdr: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A SIPp media server on the media port, running `scenario`.
    fn uas(&self, scenario: &str, extra: &[&str]) -> Reaper {
        Reaper(
            Command::new("sipp")
                .arg("-sf")
                .arg(scenarios().join(scenario))
                .args(["-i", "127.0.0.1", "-p", &self.media.to_string(), "-nostdin", "-trace_err"])
                .args(extra)
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sipp uas starts"),
        )
    }

    /// A SIPp caller running `scenario` against the proxy, until it ends.
    fn uac(&self, scenario: &str, extra: &[&str]) -> Reaper {
        Reaper(
            Command::new("timeout")
                .arg("100")
                .arg("sipp")
                .arg("-sf")
                .arg(scenarios().join(scenario))
                .arg(self.proxy().to_string())
                .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string(), "-nostdin"])
                .args(["-recv_timeout", "20000", "-timeout", "90", "-timeout_error", "-trace_err"])
                .args(extra)
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sipp uac starts"),
        )
    }

    fn errors(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with("_errors.log") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out.chars().take(3000).collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn wait_ok(uac: &mut Reaper, setup: &Setup, what: &str) {
    let status = uac.0.wait().unwrap();
    assert!(status.success(), "{what}: SIPp reported failed calls ({status}):\n{}", setup.errors());
}

fn count(records: &[serde_json::Value], kind: &str) -> usize {
    records.iter().filter(|r| r["kind"] == kind).count()
}

/// Calls of the three kinds at once, each kind from a SIPp caller of its
/// own (a linear scenario each; the media server, uas_mix.xml, answers by
/// the Request-URI user): `answered` calls that last `pause_ms`, `busy`
/// ones answered 486 and `cancelled` ones the caller gives up while they
/// ring, all spread over `secs` seconds. Waits until every caller is done.
fn mix(setup: &Setup, answered: u32, busy: u32, cancelled: u32, secs: u32, pause_ms: u32) {
    let rate = |n: u32| (n / secs).max(1).to_string();
    let (a, b, c) = (answered.to_string(), busy.to_string(), cancelled.to_string());
    let pause = pause_ms.to_string();
    let (ra, rb, rc) = (rate(answered), rate(busy), rate(cancelled));
    let mut callers = vec![(
        "answered",
        setup.uac("uac.xml", &["-s", "answer", "-m", &a, "-r", &ra, "-l", "1000", "-d", &pause]),
    )];
    if busy > 0 {
        callers.push(("busy", setup.uac("uac_busy.xml", &["-s", "busy", "-m", &b, "-r", &rb])));
    }
    if cancelled > 0 {
        callers.push((
            "cancelled",
            setup.uac("uac_cancel.xml", &["-s", "cancel", "-m", &c, "-r", &rc]),
        ));
    }
    for (what, mut caller) in callers {
        wait_ok(&mut caller, setup, what);
    }
}

const NO_CALL_LIMIT: (&str, &str) =
    ("const MAX_CALLS_PER_SOURCE = 10;", "const MAX_CALLS_PER_SOURCE = 100000;");

#[test]
fn two_thousand_calls_give_exact_records_per_kind() {
    if !sipp_present("the 2,000-call accounting test") {
        return;
    }
    let setup = Setup::new("mix", &[NO_CALL_LIMIT]);
    let mut proxy = setup.start("sipc.log");
    let _uas = setup.uas("uas_mix.xml", &[]);
    mix(&setup, 1800, 100, 100, 10, 300);
    setup.wait_no_dialogs();
    let status = setup.status();
    assert!(
        status.contains("2000 created, 1800 answered, 200 failed, 1800 ended by BYE"),
        "{status}"
    );
    terminate(&mut proxy);
    let records = setup.records();
    assert_eq!(records.len(), 2000, "one record per call");
    assert_eq!(count(&records, "answered"), 1800);
    assert_eq!(count(&records, "failed"), 100);
    assert_eq!(count(&records, "missed"), 100);
    for r in &records {
        match r["kind"].as_str().unwrap() {
            "answered" => {
                assert_eq!(r["status"], 200);
                assert_eq!(r["hangup"], "caller");
                let d = r["duration"].as_f64().unwrap();
                // SIPp hangs up 300 ms after the 200: never sooner, but
                // on a loaded two-core machine its BYE can come late.
                assert!((0.25..=0.8).contains(&d), "duration {d} of {r}");
                assert_eq!(r["dst"], format!("udp:127.0.0.1:{}", setup.media));
                assert_eq!(r["extra"]["dialed"], "answer");
            }
            "failed" => {
                assert_eq!(r["status"], 486);
                assert_eq!(r["reason"], "Busy Here");
                assert_eq!(r["duration"], 0.0);
            }
            _ => assert_eq!(r["status"], 487),
        }
        assert_eq!(r["src_ip"], "127.0.0.1");
    }
    let csv = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .arg("cdr")
        .arg(&setup.route)
        .args(["--format", "csv", "--since", "1h"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout).lines().count(),
        2001,
        "a header and 2,000 rows"
    );
}

#[test]
fn a_call_past_its_maximum_duration_gets_bye_on_both_sides() {
    if !sipp_present("the maximum duration test") {
        return;
    }
    let setup = Setup::new(
        "maxdur",
        &[("    dlg_manage();\n", "    dlg_manage();\n    dlg_set_timeout(1);\n")],
    );
    let mut proxy = setup.start("sipc.log");
    let mut uas = setup.uas("uas_wait_bye.xml", &["-m", "1"]);
    let started = Instant::now();
    let mut uac = setup.uac("uac_wait_bye.xml", &["-m", "1"]);
    // Each side completes its call only when it got the proxy's BYE.
    wait_ok(&mut uac, &setup, "the caller");
    let uas_done = uas.0.wait().unwrap();
    assert!(uas_done.success(), "the callee got no BYE: {}", setup.errors());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the BYEs came after {took:?}");
    setup.wait_no_dialogs();
    assert!(setup.status().contains("1 timed out"), "{}", setup.status());
    terminate(&mut proxy);
    let records = setup.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["kind"], "answered");
    assert_eq!(r["hangup"], "max_duration");
    let d = r["duration"].as_f64().unwrap();
    assert!((1.0..1.1).contains(&d), "ended after {d} s");
}

/// A request within the dialog a 2xx set up, along its Record-Route.
fn in_dialog(method: &str, ok: &Message, cseq: u32, ua: &UdpSocket) -> String {
    let contact = ok.header_value(sipc::sip::HeaderName::Contact).unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap();
    let rr = ok.header_value(sipc::sip::HeaderName::RecordRoute).unwrap();
    let from = ok.header_value(sipc::sip::HeaderName::From).unwrap();
    let to = ok.header_value(sipc::sip::HeaderName::To).unwrap();
    let call_id = ok.call_id().unwrap().unwrap();
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{method}-{call_id}-{cseq}\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        ua.local_addr().unwrap()
    )
}

/// Sends an INVITE and returns its final reply.
fn call(ua: &UdpSocket, proxy: SocketAddr, n: u32) -> Message {
    let me = ua.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:media@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-limit-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{me}>;tag=c{n}\r\nTo: <sip:media@{proxy}>\r\n\
         Call-ID: limit-{n}-{}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nContent-Length: 0\r\n\r\n",
        std::process::id()
    );
    ua.send_to(invite.as_bytes(), proxy).unwrap();
    final_reply(ua, "INVITE")
}

fn final_reply(ua: &UdpSocket, method: &str) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    loop {
        assert!(Instant::now() < deadline, "no final reply to the {method}");
        let Ok((n, _)) = ua.recv_from(&mut buf) else { continue };
        let m = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
        let is_it = m.cseq().ok().flatten().is_some_and(|c| c.method == method);
        if is_it && m.status().is_some_and(|c| c >= 200) {
            return m;
        }
    }
}

#[test]
fn the_eleventh_concurrent_call_from_one_source_is_refused() {
    if !sipp_present("the call limit test") {
        return;
    }
    let setup = Setup::new("limit", &[]);
    let _proxy = setup.start("sipc.log");
    let _uas = setup.uas("uas_wait_bye.xml", &[]);
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut answered = Vec::new();
    for n in 1..=10 {
        let ok = call(&ua, setup.proxy(), n);
        assert_eq!(ok.status(), Some(200), "call {n}");
        ua.send_to(in_dialog("ACK", &ok, 1, &ua).as_bytes(), setup.proxy()).unwrap();
        answered.push(ok);
    }
    assert!(setup.status().contains("dialogs: 10 live"), "{}", setup.status());
    let refused = call(&ua, setup.proxy(), 11);
    assert_eq!(refused.status(), Some(486), "the eleventh call");
    assert_eq!(refused.reason(), Some("Too Many Calls"));
    // One call ends: there is room for one more.
    ua.send_to(in_dialog("BYE", &answered[0], 2, &ua).as_bytes(), setup.proxy()).unwrap();
    assert_eq!(final_reply(&ua, "BYE").status(), Some(200));
    assert!(setup.status().contains("dialogs: 9 live"), "{}", setup.status());
    assert_eq!(call(&ua, setup.proxy(), 12).status(), Some(200), "a call after one ended");
}

#[test]
fn a_restart_during_calls_loses_no_record() {
    if !sipp_present("the restart test") {
        return;
    }
    let setup = Setup::new("restart", &[NO_CALL_LIMIT]);
    let mut proxy = setup.start("sipc1.log");
    let _uas = setup.uas("uas_mix.xml", &[]);
    let mut uac = setup.uac("uac.xml", &["-s", "answer", "-m", "100", "-r", "50", "-d", "6000"]);
    // Every call is answered within 2 s; the restart (the old process
    // waits up to 2 s for its transactions, the new one starts) comes
    // before any ends.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(setup.status().contains("dialogs: 100 live"), "{}", setup.status());
    terminate(&mut proxy);
    assert!(setup.dir.join("dialogs.json").exists(), "the live dialogs were saved");
    let _proxy = setup.start("sipc2.log");
    assert!(
        setup.log("sipc2.log").contains("100 live dialogs restored"),
        "{}",
        setup.log("sipc2.log")
    );
    wait_ok(&mut uac, &setup, "calls across a restart");
    setup.wait_no_dialogs();
    let records = setup.records();
    assert_eq!(records.len(), 100, "a record for every call");
    assert_eq!(count(&records, "answered"), 100);
    for r in &records {
        let d = r["duration"].as_f64().unwrap();
        assert!((d - 6.0).abs() <= 0.05, "duration {d} of {r}");
    }
}

#[test]
fn calls_keep_their_dialogs_across_a_reload() {
    if !sipp_present("the reload test") {
        return;
    }
    let setup = Setup::new("reload", &[NO_CALL_LIMIT]);
    let _proxy = setup.start("sipc.log");
    let _uas = setup.uas("uas_mix.xml", &[]);
    let mut uac = setup.uac("uac.xml", &["-s", "answer", "-m", "40", "-r", "40", "-d", "2000"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(setup.status().contains("dialogs: 40 live"), "{}", setup.status());
    // An edited config is loaded while every call is up: the new program
    // routes their BYEs, and the dialogs (outside any program) remain.
    let text = std::fs::read_to_string(&setup.route).unwrap();
    std::fs::write(
        &setup.route,
        text.replace("$dlg_var(dialed) = $rU;", "$dlg_var(dialed) = \"v2\";"),
    )
    .unwrap();
    // Saving reloads it (the proxy watches its files).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !setup.status().contains("generation: 2") {
        assert!(Instant::now() < deadline, "not reloaded: {}", setup.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_ok(&mut uac, &setup, "calls across a reload");
    setup.wait_no_dialogs();
    let records = setup.records();
    assert_eq!(records.len(), 40, "a record for every call");
    for r in &records {
        assert_eq!(r["kind"], "answered");
        assert_eq!(r["extra"]["dialed"], "answer", "kept from the INVITE's program");
        let d = r["duration"].as_f64().unwrap();
        assert!((d - 2.0).abs() <= 0.05, "duration {d} of {r}");
    }
}

/// The PostgreSQL server the tests use: `SIPC_TEST_PG`, else the
/// `postgres` user on 127.0.0.1:5432 (`.ci/run` makes sure there is one).
fn pg_url(host_port: &str) -> String {
    match std::env::var("SIPC_TEST_PG") {
        Ok(u) => u.replace("127.0.0.1:5432", host_port),
        Err(_) => format!("postgres://postgres:postgres@{host_port}/postgres"),
    }
}

#[test]
fn postgres_takes_every_record_even_across_an_outage() {
    if !sipp_present("the PostgreSQL accounting test") {
        return;
    }
    let direct = pg_url("127.0.0.1:5432");
    let mut db = match postgres::Client::connect(&direct, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("no PostgreSQL at {direct} ({e}): the PostgreSQL test did NOT run");
            assert!(std::env::var("CI").is_err(), "{msg}");
            eprintln!("{msg}");
            return;
        }
    };
    let table = format!("cdr_test_{}", std::process::id());
    db.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).unwrap();
    let relay = Relay::start("127.0.0.1:5432".parse().unwrap());
    let url = pg_url(&relay.addr.to_string());
    let setup = Setup::new(
        "pg",
        &[
            NO_CALL_LIMIT,
            (
                "db_url = \"sqlite:accounting-cdr.db\";",
                &format!("db_url = \"{url}\";\n    db_table = \"{table}\";"),
            ),
        ],
    );
    let mut proxy = setup.start("sipc.log");
    let _uas = setup.uas("uas_mix.xml", &[]);
    let count_rows = |db: &mut postgres::Client| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0)
    };
    // Up: 100 calls straight into the table.
    mix(&setup, 90, 5, 5, 1, 100);
    setup.wait_no_dialogs();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_rows(&mut db) < 100 {
        assert!(Instant::now() < deadline, "{}", setup.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Down: 60 more calls are spooled.
    relay.cut();
    mix(&setup, 54, 3, 3, 1, 100);
    setup.wait_no_dialogs();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !setup.status().contains("60 in spool") {
        assert!(Instant::now() < deadline, "{}", setup.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count_rows(&mut db), 100);
    // Back: the spool is replayed.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while count_rows(&mut db) < 160 {
        assert!(Instant::now() < deadline, "not replayed: {}", setup.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(setup.status().contains("0 in spool"), "{}", setup.status());
    terminate(&mut proxy);
    assert_eq!(count_rows(&mut db), 160, "each record once");
    let records = setup.records();
    assert_eq!(records.len(), 160);
    assert_eq!(count(&records, "answered"), 144);
    assert_eq!(count(&records, "failed"), 8);
    assert_eq!(count(&records, "missed"), 8);
    db.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).unwrap();
}
