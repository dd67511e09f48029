//! The log of `sipc run`, read the way an operator's tools read it: JSON
//! lines parsed by a JSON parser, syslog datagrams taken off a socket
//! where a syslog daemon would listen. Every line written while a message
//! is handled carries its Call-ID. Bounded: every wait is a few seconds.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{free_udp_port, sipc_run, wait_started};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipc-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A route that logs each request with its method and source, answers
/// OPTIONS, and sends anything else to a next hop that refuses it.
fn config(port: u16, settings: &str) -> String {
    format!(
        r#"listen udp 127.0.0.1:{port};
settings {{ dns = false; {settings} }}

request_route {{
    log("info", "routing $rm from $si");
    if is_method("OPTIONS") {{
        reply(200, "OK");
        exit;
    }}
    log("warn", "no route for $rm");
    reply(404, "Not Here");
}}
"#
    )
}

fn options(me: SocketAddr, proxy: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{proxy}>\r\nFrom: <sip:ops@example.com>;tag=t1\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends the traffic the tests log: an OPTIONS, a MESSAGE (404), a
/// request whose CSeq names another method (refused before any route:
/// 400), each answered, and a datagram shorter than its Content-Length
/// (dropped unparsed).
fn traffic(port: u16) {
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = phone.local_addr().unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let message = options(me, proxy, "log-call-2").replace("OPTIONS", "MESSAGE");
    let bad = options(me, proxy, "log-call-3").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let cut = options(me, proxy, "log-call-4").replace("Content-Length: 0", "Content-Length: 99");
    phone.send_to(cut.as_bytes(), proxy).unwrap();
    for (msg, status) in [(options(me, proxy, "log-call-1"), "200"), (message, "404"), (bad, "400")]
    {
        phone.send_to(msg.as_bytes(), proxy).unwrap();
        let mut buf = [0u8; 4096];
        let n = phone.recv(&mut buf).expect("an answer within 3 s");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with(&format!("SIP/2.0 {status}")), "{got}");
    }
}

/// `sipc run` of `config(port, settings)` in `dir`, its stderr in
/// `dir/stderr.log`, once it serves; and its UDP port.
fn serve(dir: &Path, name: &str, settings: &str) -> (support::Reaper, u16) {
    let port = free_udp_port();
    let route = dir.join(format!("{name}.route"));
    std::fs::write(&route, config(port, settings)).unwrap();
    let control = dir.join("control.sock");
    let err = dir.join("stderr.log");
    let proxy = sipc_run(&route, &["--control", control.to_str().unwrap()], Some(&err));
    wait_started(&control);
    (proxy, port)
}

/// Serves, sends [`traffic`], stops; what the proxy wrote on stderr.
fn stderr_after_traffic(dir: &Path, name: &str, settings: &str) -> String {
    let (proxy, port) = serve(dir, name, settings);
    traffic(port);
    std::thread::sleep(Duration::from_millis(200));
    drop(proxy);
    std::fs::read_to_string(dir.join("stderr.log")).unwrap()
}

#[test]
fn json_lines_carry_the_call_id_as_a_key() {
    let dir = temp_dir("json");
    let text = stderr_after_traffic(&dir, "json", r#"debug = 3; log_format = "json";"#);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with(msg)))
            .unwrap_or_else(|| panic!("no line `{msg}` in:\n{text}"))
    };
    let first = find("routing OPTIONS from 127.0.0.1");
    assert_eq!(first["call_id"], "log-call-1", "{first}");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "sipc::route");
    assert!(first["timestamp"].is_string());
    let warn = find("no route for MESSAGE");
    assert_eq!((&warn["call_id"], &warn["level"]), (&"log-call-2".into(), &"WARN".into()));
    let bad = find("malformed message");
    assert_eq!(bad["call_id"], "log-call-3", "{bad}");
    let cut = find("dropped unparseable message");
    assert_eq!(cut["call_id"], "log-call-4", "{cut}");
    assert_eq!(cut["level"], "DEBUG");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Datagrams on `sock` until none comes for 300 ms (at most 3 s).
fn datagrams(sock: &UnixDatagram) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn to_syslog_with_facility_name_and_severity() {
    let dir = temp_dir("syslog");
    let sock_path = dir.join("log.sock");
    let syslog = UnixDatagram::bind(&sock_path).unwrap();
    let settings = format!(
        r#"debug = 2; log_stderror = false; log_facility = "LOG_LOCAL3"; log_name = "edge"; syslog_socket = "{}";"#,
        sock_path.display()
    );
    let (proxy, port) = serve(&dir, "syslog", &settings);
    traffic(port);
    let got = datagrams(&syslog);
    let pid = proxy.0.id();
    drop(proxy);

    // local3 (19) * 8 + informational (6) = 158; warning (4): 156.
    let info = format!("<158>edge[{pid}]: ");
    let line = got
        .iter()
        .find(|l| l.contains("routing OPTIONS from 127.0.0.1"))
        .unwrap_or_else(|| panic!("no route line in {got:#?}"));
    assert!(line.starts_with(&info), "{line}");
    assert!(
        line.contains("call_id=\"log-call-1\"") || line.contains("call_id=log-call-1"),
        "{line}"
    );
    assert!(!line.contains('\x1b'), "no colour codes: {line:?}");
    let warn = got.iter().find(|l| l.contains("no route for MESSAGE")).expect("the warning");
    assert!(warn.starts_with(&format!("<156>edge[{pid}]: ")), "{warn}");
    // Nothing of it went to stderr.
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(!stderr.contains("routing OPTIONS"), "{stderr}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

#[test]
fn without_a_syslog_daemon_the_log_goes_to_stderr_and_says_so() {
    let dir = temp_dir("nosyslog");
    let settings = format!(
        r#"debug = 2; log_stderror = false; syslog_socket = "{}";"#,
        dir.join("nobody.sock").display()
    );
    let stderr = stderr_after_traffic(&dir, "nosyslog", &settings);
    assert!(stderr.contains("no syslog at"), "{stderr}");
    assert!(stderr.contains("routing OPTIONS from 127.0.0.1"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
