//! `sipc ctl` against `sipc run` on loopback: each command as an operator
//! types it (tables) or a script does (`--json`), checked against what the
//! proxy holds after real SIP traffic: a registration, a trunk, a call
//! ended from the command line (both phones get a BYE), bans, a reload,
//! the log level; JSON-RPC errors on the raw socket; and the error when no
//! proxy answers. Every wait is bounded (3 s).

mod support;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sipc::sip::Message;
use support::{Reaper, free_udp_port, sipc_run, wait_started};

struct Setup {
    dir: PathBuf,
    route: PathBuf,
    control: PathBuf,
    port: u16,
    _proxy: Reaper,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(uas: u16) -> Setup {
    let dir = std::env::temp_dir().join(format!("sipc-ctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let route = dir.join("ctl.route");
    std::fs::write(
        &route,
        format!(
            r#"listen udp 127.0.0.1:{port};
settings {{ log_stderror = true; dns = false; }}
module usrloc {{ db_mode = 0; }}
trunk media "sip:127.0.0.1:{uas}";
trunk_group media_servers strategy round_robin {{ trunk media; }}

request_route {{
    if is_method("REGISTER") {{
        if !save("location") {{
            reply_error();
        }}
        exit;
    }}
    if has_to_tag() {{
        if loose_route() {{
            relay();
        }}
        exit;
    }}
    if is_method("INVITE") {{
        record_route();
        dlg_manage();
        if !select(media_servers) {{
            reply(503, "Service Unavailable");
            exit;
        }}
        relay();
        exit;
    }}
    reply(404, "Not Here");
}}
"#
        ),
    )
    .unwrap();
    let control = dir.join("control.sock");
    let proxy = sipc_run(&route, &["--control", control.to_str().unwrap()], None);
    wait_started(&control);
    Setup { dir, route, control, port, _proxy: proxy }
}

/// `sipc ctl WORDS… FILE`: exit code, stdout, stderr.
fn ctl(setup: &Setup, words: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .arg("ctl")
        .args(words)
        .arg("--control")
        .arg(&setup.control)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_json(setup: &Setup, words: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(words);
    let (code, out, err) = ctl(setup, &all);
    assert_eq!(code, 0, "sipc ctl {words:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn recv(sock: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).expect("a message within 3 s");
    Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap()
}

fn bind() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// The reply a UAS makes to `req`.
fn answer(req: &Message, code: u16, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {code} OK\r\n");
    for h in req.headers() {
        let (name, value) = (req.name_of(h), req.value_of(h));
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => {
                out += &format!("{name}: {value}\r\n")
            }
            "To" if !value.contains("tag=") => out += &format!("To: {value};tag=uas\r\n"),
            "To" => out += &format!("To: {value}\r\n"),
            _ => {}
        }
    }
    out + &format!("Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn ctl_shows_and_changes_what_the_proxy_holds() {
    let uas = bind();
    let setup = start(uas.local_addr().unwrap().port());
    let proxy = format!("127.0.0.1:{}", setup.port);
    let phone = bind();
    let me = phone.local_addr().unwrap();

    // A registration shows in the location table, and can be removed.
    let register = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg1;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=r1\r\n\
         Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@{me}>\r\nExpires: 600\r\n\
         Content-Length: 0\r\n\r\n"
    );
    phone.send_to(register.as_bytes(), &proxy).unwrap();
    assert_eq!(recv(&phone).status(), Some(200));
    let found = ctl_json(&setup, &["location", "lookup", "alice@example.com"]);
    assert_eq!(found[0]["contact"], format!("sip:alice@{me}"), "{found}");
    assert!(found[0]["expires"].as_u64().unwrap() > 590);
    let (code, table, _) = ctl(&setup, &["location", "dump"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("aor "), "{table}");
    assert!(table.contains(&format!("sip:alice@{me}")), "{table}");
    let removed = ctl_json(&setup, &["location", "remove", "sip:alice@example.com"]);
    assert_eq!(removed["removed"], 1);
    assert_eq!(
        ctl_json(&setup, &["location", "lookup", "alice@example.com"]),
        Value::Array(vec![])
    );

    // A call through the trunk: counted on it, listed as a dialog, and
    // ended from the command line with a BYE to each phone.
    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKinv1;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=c1\r\n\
         Call-ID: ctl-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(invite.as_bytes(), &proxy).unwrap();
    let _trying = recv(&phone);
    let got = recv(&uas);
    let uas_addr = uas.local_addr().unwrap();
    uas.send_to(answer(&got, 200, &format!("sip:bob@{uas_addr}")).as_bytes(), &proxy).unwrap();
    let ok = recv(&phone);
    assert_eq!(ok.status(), Some(200));
    let dialogs = ctl_json(&setup, &["dialogs"]);
    assert_eq!(dialogs[0]["call_id"], "ctl-call-1", "{dialogs}");
    assert_eq!(dialogs[0]["state"], "confirmed");
    let trunks = ctl_json(&setup, &["trunks"]);
    assert_eq!((trunks[0]["name"].as_str(), trunks[0]["calls"].as_u64()), (Some("media"), Some(1)));
    let (code, out, _) = ctl(&setup, &["dialogs", "end", "ctl-call-1"]);
    assert_eq!(code, 0, "{out}");
    let bye_callee = recv(&uas);
    let bye_caller = recv(&phone);
    assert_eq!(
        (bye_callee.method_str(), bye_caller.method_str()),
        (Some("BYE"), Some("BYE")),
        "both phones get a BYE"
    );
    let (code, _, err) = ctl(&setup, &["dialogs", "end", "no-such-call"]);
    assert_eq!(code, 1);
    assert!(err.contains("no dialog with Call-ID `no-such-call`"), "{err}");

    // Trunks: disabled and enabled again; an unknown one is named.
    assert_eq!(ctl_json(&setup, &["trunks", "disable", "media"])["up"], false);
    assert_eq!(ctl_json(&setup, &["trunks"])[0]["up"], false);
    assert_eq!(ctl_json(&setup, &["trunks", "enable", "media"])["up"], true);
    let (code, _, err) = ctl(&setup, &["trunks", "disable", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no trunk `nope` (the trunks are: media)"), "{err}");

    // Bans.
    assert_eq!(ctl(&setup, &["ban", "add", "192.0.2.7", "600"]).0, 0);
    let bans = ctl_json(&setup, &["ban", "list"]);
    assert_eq!(bans[0]["key"], "192.0.2.7", "{bans}");
    assert!(bans[0]["seconds"].as_u64().unwrap() > 590);
    assert_eq!(ctl(&setup, &["ban", "remove", "192.0.2.7"]).0, 0);
    let (code, _, err) = ctl(&setup, &["ban", "remove", "192.0.2.7"]);
    assert_eq!((code, err.trim()), (1, "error: `192.0.2.7` is not banned"));

    // Stats, config, reload, log level.
    let stats = ctl_json(&setup, &["stats"]);
    assert_eq!(stats["requests"]["INVITE"], 1, "{stats}");
    assert_eq!(stats["requests"]["REGISTER"], 1);
    assert_eq!(stats["dialogs"]["answered"], 1);
    let (code, human, _) = ctl(&setup, &["stats"]);
    assert_eq!(code, 0);
    assert!(human.contains("requests:\n") && human.contains("  INVITE: 1\n"), "{human}");
    let config = ctl_json(&setup, &["config"]);
    assert_eq!(config["generation"], 1);
    let file = setup.route.canonicalize().unwrap();
    assert!(config["files"][0].as_str().unwrap().ends_with("ctl.route"), "{config} {file:?}");
    assert_eq!(ctl_json(&setup, &["reload"])["generation"], 2);
    assert_eq!(ctl_json(&setup, &["log", "level", "debug"])["level"], "debug");
    assert_eq!(ctl_json(&setup, &["log", "level"])["level"], "debug");
    let (code, _, err) = ctl(&setup, &["log", "level", "loud"]);
    assert_eq!(code, 1);
    assert!(err.contains("`loud` is not a log level"), "{err}");

    // The raw protocol: JSON-RPC 2.0 errors.
    let raw = |line: &str| -> Value {
        let mut s = std::os::unix::net::UnixStream::connect(&setup.control).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let unknown = raw(r#"{"jsonrpc":"2.0","id":7,"method":"frobnicate"}"#);
    assert_eq!(
        (unknown["id"].as_u64(), unknown["error"]["code"].as_i64()),
        (Some(7), Some(-32601))
    );
    assert_eq!(raw("{not json")["error"]["code"], -32700);
    let positional = raw(r#"{"jsonrpc":"2.0","id":1,"method":"ban.add","params":["x",5]}"#);
    assert_eq!(positional["error"]["code"], -32602);
}

#[test]
fn ctl_without_a_proxy_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["ctl", "stats", "--control"])
        .arg(Path::new("/nonexistent/sipc.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no proxy answers on /nonexistent/sipc.sock"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_sipc")).args(["ctl", "stats"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the config file"));
}
