//! SIPp (Debian `sip-tester`) against `sipc run` with digest-authenticated
//! registration: 1,000 users created with `sipc user import`, each
//! REGISTERs through a 401 challenge (tests/data/sipp/reg_auth.xml, SIPp's
//! `[authentication]` from the `-inf` CSV), then 1,000 calls to those users
//! reach the SIPp UAS they registered (uac_reg.xml). Every registration
//! and call must succeed (SIPp exits non-zero otherwise).
//!
//! Ports 5260 (proxy), 5270 (UAC), 5280 (UAS): no other test binds them
//! (tests/sipp_interop.rs uses 5060/5070/5080). SIPp 3.6 answers only the
//! first challenge and knows only MD5, so the config offers MD5 alone
//! (`module auth { algorithms = "MD5"; }`). Without sipp the test says so
//! loudly; under CI it fails.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use std::time::{Duration, Instant};
use support::{Reaper, have_sipp};

const USERS: u32 = 1000;

const ROUTES: &str = r#"
listen udp 127.0.0.1:5260;
settings {
    debug = -1;
    log_stderror = true;
}
module tm {
    fr_timer = 5s;
    fr_inv_timer = 30s;
}
module usrloc {
    db_path = "sipc.db";
}
module auth {
    algorithms = "MD5";
}

request_route {
    if !maxfwd_ok(10) {
        reply(483, "Too Many Hops");
        exit;
    }
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
            if t_check_trans() {
                relay();
            }
            exit;
        }
        reply(404, "Not here");
        exit;
    }
    if is_method("REGISTER") {
        if !auth_check("", "subscriber") {
            auth_challenge("");
            exit;
        }
        if !save("location") {
            reply_error();
        }
        exit;
    }
    if is_method("INVITE|SUBSCRIBE") {
        record_route();
    }
    if !lookup("location") {
        reply(404, "Not Found");
        exit;
    }
    relay();
}
"#;

fn sipp(dir: &Path, scenario: &str, csv: &str, calls: u32) -> std::process::ExitStatus {
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp").join(scenario);
    Command::new("timeout")
        .arg("60")
        .arg("sipp")
        .arg("-sf")
        .arg(scen)
        .args(["127.0.0.1:5260", "-i", "127.0.0.1", "-p", "5270", "-nostdin"])
        .arg("-inf")
        .arg(dir.join(csv))
        .args(["-r", "250", "-m", &calls.to_string(), "-l", "1000"])
        .args(["-recv_timeout", "10000", "-timeout", "50", "-timeout_error", "-trace_err"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp runs")
}

#[test]
fn sipp_registers_1000_users_with_digest_then_calls_them() {
    if !have_sipp() {
        let msg = "SIPp is not installed (apt-get install sip-tester): the SIPp registrar test did NOT run";
        assert!(std::env::var("CI").is_err(), "{msg}");
        eprintln!("\n*** {msg} ***\n");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sipc-sipp-reg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("registrar.route"), ROUTES).unwrap();
    let (mut users, mut reg, mut calls) =
        (String::new(), "SEQUENTIAL\n".to_owned(), "SEQUENTIAL\n".to_owned());
    for i in 0..USERS {
        users += &format!("user{i}@127.0.0.1;pw-{i}\n");
        reg += &format!(
            "user{i};[authentication username=user{i} password=pw-{i}];127.0.0.1:5280;127.0.0.1\n"
        );
        calls += &format!("user{i}\n");
    }
    std::fs::write(dir.join("reg.csv"), reg).unwrap();
    std::fs::write(dir.join("calls.csv"), calls).unwrap();
    let mut import = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["user", "import", "--db"])
        .arg(dir.join("sipc.db"))
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(users.as_bytes()).unwrap();
    assert!(import.wait().unwrap().success());

    let _proxy = Reaper(
        Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("run")
            .arg(dir.join("registrar.route"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipc starts"),
    );
    let uas_scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/uas.xml");
    let _uas = Reaper(
        Command::new("sipp")
            .arg("-sf")
            .arg(uas_scen)
            .args(["-i", "127.0.0.1", "-p", "5280", "-nostdin"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    );
    // Bounded wait until the proxy answers (404: nobody registered yet).
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(20) && !up {
        let port = probe.local_addr().unwrap().port();
        let n = started.elapsed().as_millis();
        let opt = format!(
            "OPTIONS sip:probe@127.0.0.1:5260 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKp{n}\r\n\
             Max-Forwards: 70\r\nTo: <sip:probe@127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n\
             Call-ID: probe-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = probe.send_to(opt.as_bytes(), "127.0.0.1:5260");
        let mut buf = [0u8; 4096];
        up = probe.recv_from(&mut buf).is_ok();
    }
    assert!(up, "sipc did not answer on 127.0.0.1:5260 within 20 s");

    let t = Instant::now();
    let status = sipp(&dir, "reg_auth.xml", "reg.csv", USERS);
    assert!(status.success(), "SIPp reported failed registrations (exit {status})");
    eprintln!("{USERS} digest registrations in {:?}", t.elapsed());
    let t = Instant::now();
    let status = sipp(&dir, "uac_reg.xml", "calls.csv", USERS);
    assert!(status.success(), "SIPp reported failed calls to registered users (exit {status})");
    eprintln!("{USERS} calls to registered users in {:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
