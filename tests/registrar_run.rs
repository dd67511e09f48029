//! `sipc run` as a child process with a SQLite database in a temp dir:
//! digest authentication of REGISTER (challenge, correct and wrong
//! password with its warn log line on stderr, stale nonce), users managed
//! with `sipc user`, and bindings surviving a restart after SIGTERM (flush
//! on exit) and after SIGKILL (write-behind delay passed). Every wait is
//! bounded; children are killed when a test fails.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sipc::sip::Message;
use support::*;

const ROUTES: &str = r#"
listen udp 127.0.0.1:PORT;
settings {
    debug = 0;            # warn: the auth failure lines
    log_stderror = true;
}
module tm {
    t1 = 50ms;
    fr_timer = 1s;
}
module registrar {
    min_expires = 2s;
}
module usrloc {
    db_path = "sipc.db";  # next to this file
    write_delay = 200ms;
}
module auth {
    nonce_expire = 2s;
}

request_route {
    if is_method("REGISTER") {
        if !auth_check("example.com", "subscriber") {
            auth_challenge("example.com");
            exit;
        }
        consume_credentials();
        if !save("location") {
            reply_error();
        }
        exit;
    }
    if !lookup("location") {
        reply(404, "Not Found");
        exit;
    }
    relay();
}
"#;

/// A `sipc run` child with its stderr in a file; killed when dropped.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits (bounded) for the exit; returns its status code.
    fn signal(&mut self, signal: &str) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "sipc did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        if std::env::var_os("SIPC_KEEP_TEST_DIR").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temp dir with the route file (on a free port) and users alice and bob.
fn setup(name: &str) -> (Dir, PathBuf, SocketAddr) {
    let dir = std::env::temp_dir().join(format!("sipc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let file = dir.join("registrar.route");
    std::fs::write(&file, ROUTES.replace("PORT", &port.to_string())).unwrap();
    let db = dir.join("sipc.db");
    for (user, pw) in [("alice", "wonderland"), ("bob", "builder")] {
        let mut add = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .args(["user", "add", &format!("{user}@example.com"), "--password-stdin", "--db"])
            .arg(&db)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        add.stdin.take().unwrap().write_all(format!("{pw}\n").as_bytes()).unwrap();
        assert!(add.wait().unwrap().success());
    }
    let list = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["user", "list", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice@example.com\nbob@example.com\n");
    (Dir(dir), file, format!("127.0.0.1:{port}").parse().unwrap())
}

fn spawn(file: &Path, n: u32) -> Proxy {
    let log = file.with_file_name(format!("stderr-{n}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .arg("run")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sipc starts");
    Proxy { child, log }
}

async fn next(ua: &UdpUa, what: &str, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ua.recv_within(left).await {
            Some((m, _)) if want(&m) => return m,
            Some(_) => continue,
            None => panic!("{what}: nothing arrived"),
        }
    }
}

/// Waits (bounded) until the proxy answers a probe (only its reply counts:
/// the socket may still hold retransmissions from an earlier process).
async fn wait_up(ua: &UdpUa, px: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        let call_id = format!("up-{}-{n}", ua.addr.port());
        let probe =
            request("OPTIONS", "sip:nobody@example.com", &ua.via(&format!("up{n}")), &call_id, "");
        ua.send(px, &probe).await;
        let until = Instant::now() + Duration::from_millis(200);
        while let Some((m, _)) =
            ua.recv_within(until.saturating_duration_since(Instant::now())).await
        {
            if m.call_id().ok().flatten() == Some(call_id.as_str()) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "sipc did not answer within 20 s");
    }
}

fn register(ua: &UdpUa, user: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
         To: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=t{cseq}\r\n\
         Call-ID: reg-{user}-{}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{}>\r\n\
         Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
        ua.via(&format!("{user}{cseq}")),
        ua.addr.port(),
        ua.addr
    )
}

/// The Authorization line answering `challenge` (a WWW-Authenticate value).
fn authorization(challenge: &str, user: &str, password: &str) -> String {
    digest_authorization(challenge, user, "example.com", password, "sip:example.com")
}

fn challenges(m: &Message) -> Vec<String> {
    m.headers_named("WWW-Authenticate").map(|h| m.value_of(h).to_owned()).collect()
}

/// REGISTER, 401, REGISTER with credentials (the challenge's first
/// algorithm, or `pick`), returns the final reply.
async fn register_with_auth(
    ua: &UdpUa,
    px: SocketAddr,
    user: &str,
    password: &str,
    pick: usize,
) -> Message {
    ua.send(px, &register(ua, user, 1, "")).await;
    let ch = next(ua, "401", |m| m.status() == Some(401)).await;
    let offered = challenges(&ch);
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"));
    ua.send(px, &register(ua, user, 2, &authorization(&offered[pick], user, password))).await;
    next(ua, "final reply", |m| m.status().is_some_and(|s| s >= 200)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_register_wrong_password_and_stale_nonce() {
    let (_dir, file, px) = setup("auth");
    let proxy = spawn(&file, 1);
    let ua = UdpUa::bind().await;
    wait_up(&ua, px).await;

    let ok = register_with_auth(&ua, px, "alice", "wonderland", 0).await;
    assert_eq!(ok.status(), Some(200), "SHA-256");
    assert!(ok.headers_named("Contact").next().is_some());
    let ok = register_with_auth(&ua, px, "alice", "wonderland", 1).await;
    assert_eq!(ok.status(), Some(200), "MD5");

    let bad = register_with_auth(&ua, px, "bob", "guess", 0).await;
    assert_eq!(bad.status(), Some(401), "a wrong password is challenged again");
    let nobody = register_with_auth(&ua, px, "mallory", "x", 1).await;
    assert_eq!(nobody.status(), Some(401));

    // Stale: answer a challenge after its nonce expired (nonce_expire = 2s).
    ua.send(px, &register(&ua, "alice", 1, "")).await;
    let ch = next(&ua, "401", |m| m.status() == Some(401)).await;
    assert!(!challenges(&ch)[0].contains("stale"));
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let late = authorization(&challenges(&ch)[0], "alice", "wonderland");
    ua.send(px, &register(&ua, "alice", 2, &late)).await;
    let again = next(&ua, "401 stale", |m| m.status() == Some(401)).await;
    assert!(
        challenges(&again).iter().all(|c| c.ends_with("stale=true")),
        "{:?}",
        challenges(&again)
    );

    let log = proxy.log();
    assert!(
        log.contains(r#"auth failed: user="bob@example.com" ip=127.0.0.1 reason=wrong_password"#),
        "{log}"
    );
    assert!(
        log.contains(r#"auth failed: user="mallory@example.com" ip=127.0.0.1 reason=unknown_user"#),
        "{log}"
    );
    assert!(
        !log.contains("alice@example.com"),
        "successes and stale nonces are not warnings: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_survive_sigterm_and_sigkill() {
    let (_dir, file, px) = setup("restart");
    let (ua, alice, bob) = (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let mut proxy = spawn(&file, 1);
    wait_up(&ua, px).await;
    assert_eq!(register_with_auth(&alice, px, "alice", "wonderland", 0).await.status(), Some(200));
    // SIGTERM right away: the pending write is flushed on the way out.
    assert_eq!(proxy.signal("-TERM"), Some(0));
    drop(proxy);

    let mut proxy = spawn(&file, 2);
    wait_up(&ua, px).await;
    let call = |user: &str, n: u32| {
        request(
            "INVITE",
            &format!("sip:{user}@example.com"),
            &ua.via(&format!("c{n}")),
            &format!("call-{n}"),
            "",
        )
    };
    ua.send(px, &call("alice", 1)).await;
    let inv =
        next(&alice, "INVITE at alice after SIGTERM", |m| m.method_str() == Some("INVITE")).await;
    alice.send(px, &response_to(&inv, 486, "Busy Here")).await;

    assert_eq!(register_with_auth(&bob, px, "bob", "builder", 1).await.status(), Some(200));
    // Past the write-behind delay (200 ms), then no chance to flush.
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.signal("-KILL");
    drop(proxy);

    let _proxy = spawn(&file, 3);
    wait_up(&ua, px).await;
    ua.send(px, &call("bob", 2)).await;
    let inv = next(&bob, "INVITE at bob after SIGKILL", |m| m.method_str() == Some("INVITE")).await;
    bob.send(px, &response_to(&inv, 486, "Busy Here")).await;
    ua.send(px, &call("alice", 3)).await;
    next(&alice, "alice still there too", |m| m.method_str() == Some("INVITE")).await;
}
