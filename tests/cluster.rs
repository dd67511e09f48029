//! A cluster of `sipc run` processes, each `examples/cluster.route` with
//! its own loopback address (127.0.0.x:5060), sharing one location table
//! in a real PostgreSQL server: a phone registers through one node and is
//! called through another, over UDP directly and over TCP through the node
//! that holds its connection; a binding removed on one node goes from the
//! other; PostgreSQL cut away mid-traffic, the nodes keep routing and
//! catch up. Under `CI=true` a missing PostgreSQL fails the tests
//! (`.ci/run` makes sure one runs). Every wait is bounded; children are
//! killed when a test fails.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sipc::sip::Message;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const DOMAIN: &str = "cluster.example.com";

/// The PostgreSQL server the tests use: `SIPC_TEST_PG`, else the
/// `postgres` user on 127.0.0.1:5432.
fn pg_url() -> String {
    std::env::var("SIPC_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server the tests use: `SIPC_TEST_REDIS`, else 127.0.0.1:6379.
fn redis_url() -> String {
    std::env::var("SIPC_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the Redis server answers a PING; says so when it does not (and
/// fails under CI).
fn have_redis() -> bool {
    let addr = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let ok = (|| {
        let mut s = std::net::TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        use std::io::{Read, Write};
        s.write_all(b"PING\r\n").ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    })()
    .is_some();
    if !ok {
        let msg = format!("no Redis at {addr}: the cluster test did NOT run");
        assert!(std::env::var("CI").is_err(), "{msg}");
        eprintln!("{msg}");
    }
    ok
}

/// Runs `f` with a client of the test server, on a thread of its own (the
/// blocking client runs a runtime, which cannot nest in the tests' one).
fn with_pg<T: Send + 'static>(
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        let mut c =
            postgres::Client::connect(&pg_url(), postgres::NoTls).map_err(|e| e.to_string())?;
        Ok(f(&mut c))
    })
    .join()
    .unwrap()
}

/// Whether the test server answers; says so when it does not (and fails
/// under CI).
fn have_pg() -> bool {
    match with_pg(|_| ()) {
        Ok(()) => true,
        Err(e) => {
            let msg = format!("no PostgreSQL at {} ({e}): the cluster test did NOT run", pg_url());
            assert!(std::env::var("CI").is_err(), "{msg}");
            eprintln!("{msg}");
            false
        }
    }
}

/// A temp dir and a table of the test's own, both removed at the end.
struct Scratch {
    dir: PathBuf,
    table: String,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sipc-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let table = format!("loc_{name}_{}", std::process::id());
        let s = Scratch { dir, table };
        s.drop_table();
        s
    }

    /// The test's subscriber table.
    fn users(&self) -> String {
        format!("{}_users", self.table)
    }

    /// The test's call-record table.
    fn cdrs(&self) -> String {
        format!("{}_cdr", self.table)
    }

    fn drop_table(&self) {
        let sql = format!(
            "DROP TABLE IF EXISTS {t}; DROP TABLE IF EXISTS {u}; DROP TABLE IF EXISTS {u}_secret;
             DROP TABLE IF EXISTS {t}_cdr;
             DROP FUNCTION IF EXISTS {u}_notify();
             DELETE FROM sipc_schema WHERE name IN ('{t}', '{u}')",
            t = self.table,
            u = self.users()
        );
        let _ = with_pg(move |db| db.batch_execute(&sql).is_ok());
    }

    /// The rows of `aor` in the shared table.
    fn rows(&self, aor: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {} WHERE aor = $1", self.table);
        let aor = aor.to_owned();
        with_pg(move |db| db.query_one(&sql, &[&aor]).unwrap().get(0)).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("SIPC_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        self.drop_table();
    }
}

/// One node: `examples/cluster.route` on `ip`:5060.
struct Node {
    _proc: Reaper,
    ip: &'static str,
    control: PathBuf,
    log: PathBuf,
}

impl Node {
    fn start(s: &Scratch, ip: &'static str, db: &str) -> Node {
        Node::start_with(s, ip, db, &redis_url(), true)
    }

    /// Started with the PostgreSQL and Redis servers named; the Redis
    /// keys under the test's own prefix, the subscriber table the test's
    /// own; registering without a password when `open`.
    fn start_with(s: &Scratch, ip: &'static str, db: &str, redis: &str, open: bool) -> Node {
        Node::start_defined(s, ip, db, redis, open, &[])
    }

    /// [`Node::start_with`] with more `-D` switches.
    fn start_defined(
        s: &Scratch,
        ip: &'static str,
        db: &str,
        redis: &str,
        open: bool,
        defines: &[String],
    ) -> Node {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster.route");
        let control = s.dir.join(format!("{ip}.sock"));
        let log = s.dir.join(format!("{ip}.log"));
        let node = format!("NODE={ip}");
        let db = format!("DB={db}");
        let table = format!("TABLE={}", s.table);
        let redis = format!("REDIS={redis}");
        let prefix = format!("PREFIX={}", s.table);
        let cdrs = format!("CDRS={}", s.cdrs());
        let mut args: Vec<&str> = Vec::new();
        for d in defines {
            args.extend(["-D", d.as_str()]);
        }
        // USERS is declared only where the registrar authenticates.
        let users = if open { "OPEN_REGISTRAR".to_owned() } else { format!("USERS={}", s.users()) };
        let proc = sipc_run(
            &file,
            &[
                "-D",
                &users,
                "-D",
                &node,
                "-D",
                &db,
                "-D",
                &table,
                "-D",
                &redis,
                "-D",
                &prefix,
                "-D",
                &cdrs,
                "--control",
                control.to_str().unwrap(),
                "--no-watch",
            ]
            .into_iter()
            .chain(args)
            .collect::<Vec<_>>(),
            Some(&log),
        );
        wait_started(&control);
        Node { _proc: proc, ip, control, log }
    }

    fn addr(&self) -> SocketAddr {
        format!("{}:5060", self.ip).parse().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `sipc ctl WORDS…` on this node: its output.
    fn ctl(&self, words: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .args(["ctl", "--control"])
            .arg(&self.control)
            .args(words)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// This node's Prometheus metrics (`module metrics`, on its address).
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect((self.ip, 9090)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.ip).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// `sipc ctl location lookup AOR` on this node: its in-memory view.
    fn lookup(&self, aor: &str) -> String {
        self.ctl(&["location", "lookup", aor])
    }

    /// Waits (bounded) until `sipc ctl ban list` shows `key` (or, with
    /// `present` false, no longer does); returns how long it took.
    fn wait_ban(&self, key: &str, present: bool) -> Duration {
        let start = Instant::now();
        loop {
            if self.ctl(&["ban", "list"]).contains(key) == present {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}: ban of {key} present={present} not seen within 10 s\n{}",
                self.ip,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (bounded) until this node's memory holds `contact` for `aor`
    /// (or, with `present` false, no longer does); returns how long it took.
    fn wait_binding(&self, aor: &str, contact: &str, present: bool) -> Duration {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        loop {
            if self.lookup(aor).contains(contact) == present {
                return start.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{}: binding {contact} of {aor} present={present} not seen within 10 s\n{}\n{}",
                self.ip,
                self.lookup(aor),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Registers `user` at `contact` from `ua` through `node`; asserts the 200.
async fn register_udp(ua: &UdpUa, node: &Node, user: &str, cseq: u32, expires: u32) -> String {
    let contact = format!("sip:{user}@{}", ua.addr);
    let via = ua.via(&format!("r{user}{cseq}"));
    let call_id = format!("reg-{user}-{}", ua.addr.port());
    ua.send(node.addr(), &register(&via, user, &contact, &call_id, cseq, expires)).await;
    let ok = next_udp(ua, "reply to REGISTER", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200), "{user} through {}", node.ip);
    contact
}

/// Carol calls `callee` through `node`; the INVITE must reach `at`, which
/// answers 200; carol must get it.
async fn call_udp(carol: &UdpUa, node: &Node, callee: &str, at: &UdpUa, call_id: &str) {
    carol.send(node.addr(), &invite(&carol.via(call_id), &carol.addr, callee, call_id)).await;
    let inv = next_udp(at, "INVITE", |m| {
        m.method_str() == Some("INVITE") && m.call_id().ok().flatten() == Some(call_id)
    })
    .await;
    at.send(node.addr(), &response_to(&inv, 200, "OK")).await;
    let ok = next_udp(carol, "200", |m| m.status() == Some(200)).await;
    assert_eq!(ok.call_id().unwrap(), Some(call_id));
}

fn register(
    via: &str,
    user: &str,
    contact: &str,
    call_id: &str,
    cseq: u32,
    expires: u32,
) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         To: <sip:{user}@{DOMAIN}>\r\nFrom: <sip:{user}@{DOMAIN}>;tag=r{cseq}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\n\
         Expires: {expires}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn invite(via: &str, caller: &SocketAddr, callee: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:{callee}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         To: <sip:{callee}@{DOMAIN}>\r\nFrom: <sip:carol@{DOMAIN}>;tag=c1\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{caller}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The next message `want` accepts (others skipped), within 5 s.
async fn next_udp(ua: &UdpUa, what: &str, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ua.recv_within(deadline.saturating_duration_since(Instant::now())).await {
            Some((m, _)) if want(&m) => return m,
            Some(_) => continue,
            None => panic!("{what}: nothing arrived"),
        }
    }
}

async fn next_tcp(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    what: &str,
    want: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        match read_message(s, buf).await {
            Some(m) if want(&m) => return m,
            Some(_) => continue,
            None => panic!("{what}: the connection closed or went quiet"),
        }
    }
}

fn vias(m: &Message) -> Vec<String> {
    m.headers_named("Via").map(|h| m.value_of(h).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_through_one_node_call_through_the_other() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("calls");
    let a = Node::start(&s, "127.0.0.12", &pg_url());
    let b = Node::start(&s, "127.0.0.13", &pg_url());

    // Alice registers over UDP through A: B knows her within a notification.
    let alice = UdpUa::bind().await;
    let alice_uri = format!("sip:alice@{}", alice.addr);
    let aor = format!("sip:alice@{DOMAIN}");
    alice
        .send(a.addr(), &register(&alice.via("ra1"), "alice", &alice_uri, "reg-alice", 1, 600))
        .await;
    let ok = next_udp(&alice, "200 to REGISTER", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200));
    let seen = b.wait_binding(&aor, &alice_uri, true);
    eprintln!("a binding written on A was in B's memory after {seen:?}");
    assert_eq!(s.rows(&aor), 1);

    // Carol calls her through B: B sends the INVITE straight to her.
    let carol = UdpUa::bind().await;
    carol.send(b.addr(), &invite(&carol.via("inv1"), &carol.addr, "alice", "call-1")).await;
    let inv = next_udp(&alice, "INVITE at alice", |m| m.method_str() == Some("INVITE")).await;
    let v = vias(&inv);
    assert_eq!(v.len(), 2, "B and carol only: {v:?}");
    assert!(v[0].contains("127.0.0.13:5060"), "{v:?}");
    alice.send(b.addr(), &response_to(&inv, 200, "OK")).await;
    let ok = next_udp(&carol, "200 at carol", |m| m.status() == Some(200)).await;
    assert_eq!(ok.call_id().unwrap(), Some("call-1"));

    // Dave registers over TCP through A: reached only over his connection,
    // so a call through B goes B → A → his connection.
    let mut dave = TcpStream::connect(a.addr()).await.unwrap();
    let dave_addr = dave.local_addr().unwrap();
    let mut dave_buf = BytesMut::new();
    let dave_uri = format!("sip:dave@{dave_addr};transport=tcp");
    let via = format!("SIP/2.0/TCP {dave_addr};branch=z9hG4bKrd1");
    dave.write_all(register(&via, "dave", &dave_uri, "reg-dave", 1, 600).as_bytes()).await.unwrap();
    let ok = next_tcp(&mut dave, &mut dave_buf, "200 to dave", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let dave_aor = format!("sip:dave@{DOMAIN}");
    b.wait_binding(&dave_aor, &dave_uri, true);
    carol.send(b.addr(), &invite(&carol.via("inv2"), &carol.addr, "dave", "call-2")).await;
    let inv =
        next_tcp(&mut dave, &mut dave_buf, "INVITE at dave", |m| m.method_str() == Some("INVITE"))
            .await;
    let v = vias(&inv);
    assert_eq!(v.len(), 3, "A, B and carol: {v:?}");
    assert!(v[0].contains("127.0.0.12:5060") && v[1].contains("127.0.0.13:5060"), "{v:?}");
    dave.write_all(response_to(&inv, 200, "OK").as_bytes()).await.unwrap();
    let ok = next_udp(&carol, "200 from dave at carol", |m| m.status() == Some(200)).await;
    assert_eq!(ok.call_id().unwrap(), Some("call-2"));

    // A call to dave through A itself goes straight over his connection.
    carol.send(a.addr(), &invite(&carol.via("inv3"), &carol.addr, "dave", "call-3")).await;
    let inv = next_tcp(&mut dave, &mut dave_buf, "INVITE via A at dave", |m| {
        m.method_str() == Some("INVITE") && m.call_id().ok().flatten() == Some("call-3")
    })
    .await;
    assert_eq!(vias(&inv).len(), 2, "A and carol: {:?}", vias(&inv));

    // Alice unregisters through B: gone from A's memory and from the table.
    alice
        .send(b.addr(), &register(&alice.via("ra2"), "alice", &alice_uri, "reg-alice", 2, 0))
        .await;
    let ok = next_udp(&alice, "200 to un-REGISTER", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200));
    a.wait_binding(&aor, &alice_uri, false);
    assert_eq!(s.rows(&aor), 0);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_the_nodes_route_from_memory_and_catch_up() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("outage");
    let relay = support::relay::Relay::start("127.0.0.1:5432".parse().unwrap());
    let db = pg_url().replace("127.0.0.1:5432", &relay.addr.to_string());
    let a = Node::start(&s, "127.0.0.14", &db);
    let b = Node::start(&s, "127.0.0.15", &db);
    let (alice, bob, erin, carol) =
        (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let alice_uri = register_udp(&alice, &a, "alice", 1, 600).await;
    b.wait_binding(&format!("sip:alice@{DOMAIN}"), &alice_uri, true);

    // PostgreSQL goes away: both nodes keep serving what they know and
    // accept new registrations.
    relay.cut();
    let bob_uri = register_udp(&bob, &a, "bob", 1, 600).await;
    let erin_uri = register_udp(&erin, &b, "erin", 1, 600).await;
    call_udp(&carol, &b, "alice", &alice, "outage-1").await;
    call_udp(&carol, &a, "bob", &bob, "outage-2").await;
    call_udp(&carol, &b, "erin", &erin, "outage-3").await;
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.rows(&format!("sip:bob@{DOMAIN}")), 0, "written while cut?");

    // Back: each node writes what it kept, and reads what the other wrote.
    relay.restore();
    let back = Instant::now();
    b.wait_binding(&format!("sip:bob@{DOMAIN}"), &bob_uri, true);
    a.wait_binding(&format!("sip:erin@{DOMAIN}"), &erin_uri, true);
    eprintln!("both nodes complete {:?} after PostgreSQL came back", back.elapsed());
    assert_eq!(s.rows(&format!("sip:bob@{DOMAIN}")), 1);
    assert_eq!(s.rows(&format!("sip:erin@{DOMAIN}")), 1);
    call_udp(&carol, &b, "bob", &bob, "after-1").await;
    call_udp(&carol, &a, "erin", &erin, "after-2").await;
    assert!(a.log().contains("cannot write to the shared table"), "{}", a.log());
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dies_and_the_others_serve_its_users() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("failover");
    let a = Node::start(&s, "127.0.0.16", &pg_url());
    let b = Node::start(&s, "127.0.0.17", &pg_url());
    let (alice, carol) = (UdpUa::bind().await, UdpUa::bind().await);
    let alice_uri = register_udp(&alice, &a, "alice", 1, 600).await;
    b.wait_binding(&format!("sip:alice@{DOMAIN}"), &alice_uri, true);

    // Dave is on a TCP connection to A, as an RFC 5626 flow.
    let instance = "\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\"";
    let dave_register = |conn: &TcpStream, cseq: u32| {
        let addr = conn.local_addr().unwrap();
        let via = format!("SIP/2.0/TCP {addr};branch=z9hG4bKdave{cseq}");
        let contact = format!("sip:dave@{addr};transport=tcp");
        register(&via, "dave", &contact, "reg-dave", cseq, 600).replace(
            &format!("Contact: <{contact}>"),
            &format!("Contact: <{contact}>;+sip.instance={instance};reg-id=1"),
        )
    };
    let mut dave = TcpStream::connect(a.addr()).await.unwrap();
    let mut buf = BytesMut::new();
    dave.write_all(dave_register(&dave, 1).as_bytes()).await.unwrap();
    let ok = next_tcp(&mut dave, &mut buf, "200 to dave", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200));
    let dave_aor = format!("sip:dave@{DOMAIN}");
    b.wait_binding(&dave_aor, "127.0.0.16:5060", true);

    // A dies.
    let Node { _proc: mut proc, .. } = a;
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();

    // Alice, on UDP, is called through B at once.
    call_udp(&carol, &b, "alice", &alice, "failover-1").await;

    // Dave's flow broke: he connects to B and registers again (same
    // instance and reg-id: the binding is replaced, RFC 5626 §4.2).
    let mut dave = TcpStream::connect(b.addr()).await.unwrap();
    let mut buf = BytesMut::new();
    dave.write_all(dave_register(&dave, 2).as_bytes()).await.unwrap();
    let ok = next_tcp(&mut dave, &mut buf, "200 to dave on B", |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.headers_named("Contact").count(), 1, "the flow replaced: {ok:?}");
    carol.send(b.addr(), &invite(&carol.via("fo2"), &carol.addr, "dave", "failover-2")).await;
    let inv =
        next_tcp(&mut dave, &mut buf, "INVITE at dave on B", |m| m.method_str() == Some("INVITE"))
            .await;
    assert_eq!(vias(&inv).len(), 2, "B and carol: {:?}", vias(&inv));
    dave.write_all(response_to(&inv, 200, "OK").as_bytes()).await.unwrap();
    let ok = next_udp(&carol, "200 from dave", |m| m.status() == Some(200)).await;
    assert_eq!(ok.call_id().unwrap(), Some("failover-2"));
    assert_eq!(s.rows(&dave_aor), 1, "one binding for the one flow");
}

/// Sends `n` OPTIONS for the node itself from `ua` to each of `nodes` in
/// turn, one every millisecond; returns how many got a 200 within a
/// second of the last.
async fn flood(ua: &UdpUa, nodes: &[&Node], n: usize) -> usize {
    let tag = ua.addr.port();
    let sent = std::sync::atomic::AtomicBool::new(false);
    // Replies are read while sending: a few hundred would overflow the
    // socket's receive buffer.
    let send = async {
        for i in 0..n {
            for node in nodes {
                let via = ua.via(&format!("fl{tag}-{i}-{}", node.ip));
                let call_id = format!("flood-{tag}-{i}-{}", node.ip);
                let req = request("OPTIONS", &format!("sip:{}:5060", node.ip), &via, &call_id, "");
                ua.send(node.addr(), &req).await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let receive = async {
        let mut ok = 0;
        loop {
            match ua.recv_within(Duration::from_secs(1)).await {
                Some((m, _)) => ok += usize::from(m.status() == Some(200)),
                None if sent.load(std::sync::atomic::Ordering::SeqCst) => return ok,
                None => {}
            }
        }
    };
    tokio::join!(send, receive).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_limits_hold_across_nodes() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("counters");
    let a = Node::start(&s, "127.0.0.18", &pg_url());
    let b = Node::start(&s, "127.0.0.19", &pg_url());

    // 150 OPTIONS to each node from one source: alone, each node would
    // let through its burst of 100 and what refills (50/s); together they
    // hold the source to about one burst.
    let flooder = UdpUa::bind_at("127.0.0.50:0").await;
    let start = Instant::now();
    let through = flood(&flooder, &[&a, &b], 150).await;
    // The flood's own time, without the second of quiet that ends it.
    let took = start.elapsed().saturating_sub(Duration::from_secs(1)).as_secs_f64();
    eprintln!(
        "a source sending 300 requests to two nodes in {took:.2} s got {through} through (limit: burst 100, 50/s)"
    );
    // The burst, what refilled, and what the other node let through in
    // the last exchange interval (100 ms): well under the 200 two nodes
    // counting alone let through (redis_away_each_node_counts_alone).
    let allowed = 100.0 + 50.0 * took + 70.0;
    assert!(through >= 100 && (through as f64) <= allowed, "{through} let through, {allowed}");
    // Over the limit, it is banned, on both nodes.
    a.wait_ban("127.0.0.50", true);
    b.wait_ban("127.0.0.50", true);
    assert_eq!(flood(&flooder, &[&a, &b], 1).await, 0, "banned everywhere");
    let other = UdpUa::bind_at("127.0.0.51:0").await;
    assert_eq!(flood(&other, &[&a, &b], 1).await, 2, "others are served");

    // A ban set by hand on one node holds on the other within a second.
    a.ctl(&["ban", "add", "127.0.0.52", "60"]);
    let took = b.wait_ban("127.0.0.52", true);
    eprintln!("a ban set on A held on B after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let banned = UdpUa::bind_at("127.0.0.52:0").await;
    assert_eq!(flood(&banned, &[&b], 1).await, 0);
    b.ctl(&["ban", "remove", "127.0.0.52"]);
    a.wait_ban("127.0.0.52", false);

    // A node started later reads the bans in force.
    let c = Node::start(&s, "127.0.0.20", &pg_url());
    c.wait_ban("127.0.0.50", true);
    assert!(!c.ctl(&["ban", "list"]).contains("127.0.0.52"), "lifted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_each_node_counts_alone() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("noredis");
    let host_port = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = support::relay::Relay::start(host_port.parse().unwrap());
    let redis = format!("redis://{}", relay.addr);
    let a = Node::start_with(&s, "127.0.0.21", &pg_url(), &redis, true);
    let b = Node::start_with(&s, "127.0.0.22", &pg_url(), &redis, true);
    assert!(a.metrics().contains("sipc_cluster_redis_up 1"), "{}", a.metrics());
    relay.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.log().contains("Redis unreachable") {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(a.metrics().contains("sipc_cluster_redis_up 0"), "{}", a.metrics());
    // Each node still limits, alone: 150 to each, each lets its burst
    // (and what refills) through.
    let flooder = UdpUa::bind_at("127.0.0.53:0").await;
    let through = flood(&flooder, &[&a, &b], 150).await;
    eprintln!("with Redis away, two nodes let {through} of 300 through");
    assert!(through >= 200, "{through}: each node lets its burst through");
    a.wait_ban("127.0.0.53", true);
    b.wait_ban("127.0.0.53", true);
    // Back: the nodes say so and share again.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.log().contains("Redis answers again") && b.log().contains("Redis answers again")) {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    a.ctl(&["ban", "add", "127.0.0.54", "60"]);
    b.wait_ban("127.0.0.54", true);
    assert!(a.metrics().contains("sipc_cluster_redis_up 1"), "{}", a.metrics());
}

/// `sipc user ARGS… --db PG --table TABLE`, with `stdin` as its input.
fn sipc_user(args: &[&str], table: &str, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .arg("user")
        .args(args)
        .args(["--db", &pg_url(), "--table", table])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sipc user {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A REGISTER from `ua` for `user` through `node`, with `auth` lines;
/// returns the final reply.
async fn register_auth(ua: &UdpUa, node: &Node, user: &str, cseq: u32, auth: &str) -> Message {
    let contact = format!("sip:{user}@{}", ua.addr);
    let via = ua.via(&format!("ra{user}{cseq}"));
    let call_id = format!("reg-auth-{user}-{}", ua.addr.port());
    let req = register(&via, user, &contact, &call_id, cseq, 600)
        .replace("Content-Length: 0", &format!("{auth}Content-Length: 0"));
    ua.send(node.addr(), &req).await;
    next_udp(ua, "reply to REGISTER", |m| m.status().is_some_and(|c| c >= 200)).await
}

fn challenge(m: &Message) -> String {
    m.headers_named("WWW-Authenticate").map(|h| m.value_of(h).to_owned()).next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_in_the_shared_table_authenticate_on_every_node() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("users");
    let users = s.users();
    // The table exists before the nodes start: `sipc user` creates it.
    sipc_user(&["add", &format!("alice@{DOMAIN}"), "--password-stdin"], &users, "wonderland\n");
    let a = Node::start_with(&s, "127.0.0.23", &pg_url(), &redis_url(), false);
    let b = Node::start_with(&s, "127.0.0.24", &pg_url(), &redis_url(), false);
    let ua = UdpUa::bind().await;
    let uri = format!("sip:{DOMAIN}");

    // Challenged by A, answered to B: the nonce key is the cluster's.
    let ch = register_auth(&ua, &a, "alice", 1, "").await;
    assert_eq!(ch.status(), Some(401));
    let auth = digest_authorization(&challenge(&ch), "alice", DOMAIN, "wonderland", &uri);
    let ok = register_auth(&ua, &b, "alice", 2, &auth).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    // A user added while the nodes run authenticates on both at once.
    sipc_user(&["add", &format!("bob@{DOMAIN}"), "--password-stdin"], &users, "builder\n");
    let added = Instant::now();
    let bob = UdpUa::bind().await;
    loop {
        let ch = register_auth(&bob, &b, "bob", 1, "").await;
        let auth = digest_authorization(&challenge(&ch), "bob", DOMAIN, "builder", &uri);
        if register_auth(&bob, &b, "bob", 2, &auth).await.status() == Some(200) {
            break;
        }
        assert!(added.elapsed() < Duration::from_secs(5), "bob not accepted on B");
    }
    eprintln!("a user added with `sipc user` was accepted by B after {:?}", added.elapsed());

    // Deleted: refused on both within a second.
    sipc_user(&["del", &format!("alice@{DOMAIN}")], &users, "");
    let deleted = Instant::now();
    for node in [&a, &b] {
        loop {
            let ch = register_auth(&ua, node, "alice", 3, "").await;
            let auth = digest_authorization(&challenge(&ch), "alice", DOMAIN, "wonderland", &uri);
            if register_auth(&ua, node, "alice", 4, &auth).await.status() != Some(200) {
                break;
            }
            assert!(
                deleted.elapsed() < Duration::from_secs(1),
                "alice still accepted on {}",
                node.ip
            );
        }
    }
    let listed = sipc_user(&["list"], &users, "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), format!("bob@{DOMAIN}\n"));
}

/// A node whose table `outbound` takes its rows from PostgreSQL.
fn sql_table_node(s: &Scratch, ip: &'static str, routes: &str, gw_a: u16, gw_b: u16) -> Node {
    let file = s.dir.join(format!("{ip}.route"));
    std::fs::write(
        &file,
        format!(
            r#"listen udp {ip}:5060;
settings {{ log_stderror = true; }}
trunk gw_a "sip:127.0.0.1:{gw_a}";
trunk gw_b "sip:127.0.0.1:{gw_b}";
table outbound by prefix($rU) from "{db}" query "SELECT prefix, gateway FROM {routes}" refresh 1s notify "{routes}" {{
}}
request_route {{
    if select(outbound) {{
        relay();
        exit;
    }}
    reply(404, "No Route");
}}
"#,
            db = pg_url()
        ),
    )
    .unwrap();
    let control = s.dir.join(format!("{ip}.sock"));
    let log = s.dir.join(format!("{ip}.log"));
    let proc = sipc_run(&file, &["--control", control.to_str().unwrap(), "--no-watch"], Some(&log));
    wait_started(&control);
    Node { _proc: proc, ip, control, log }
}

/// Where an OPTIONS for `number` through `node` goes: the gateway that
/// gets it, or `None` (404).
async fn routed_to(
    caller: &UdpUa,
    node: &Node,
    number: &str,
    gws: &[&UdpUa],
    n: u32,
) -> Option<usize> {
    let call_id = format!("route-{}-{n}", node.ip);
    let req =
        request("OPTIONS", &format!("sip:{number}@{DOMAIN}"), &caller.via(&call_id), &call_id, "");
    caller.send(node.addr(), &req).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        // Everything waiting on each socket, answers to earlier requests
        // included, before the next.
        for (i, gw) in gws.iter().enumerate() {
            while let Some((m, _)) = gw.recv_within(Duration::from_millis(2)).await {
                if m.call_id().ok().flatten() == Some(call_id.as_str()) {
                    gw.send(node.addr(), &response_to(&m, 200, "OK")).await;
                    return Some(i);
                }
            }
        }
        while let Some((m, _)) = caller.recv_within(Duration::from_millis(2)).await {
            if m.call_id().ok().flatten() == Some(call_id.as_str()) {
                match m.status() {
                    Some(404) => return None,
                    Some(s) if s >= 300 => panic!("{number} through {}: {s}", node.ip),
                    _ => {}
                }
            }
        }
    }
    panic!("{number} through {}: neither routed nor refused\n{}", node.ip, node.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_table_fed_by_postgres_follows_its_rows_on_every_node() {
    if !have_pg() {
        return;
    }
    let s = Scratch::new("routes");
    let routes = format!("{}_routes", s.table);
    let sql = format!(
        "DROP TABLE IF EXISTS {routes}; CREATE TABLE {routes} (prefix TEXT PRIMARY KEY, gateway TEXT NOT NULL);
         INSERT INTO {routes} VALUES ('49', 'trunk:gw_a'), ('33', 'gw_a')"
    );
    with_pg(move |db| db.batch_execute(&sql).unwrap()).unwrap();
    let (gw_a, gw_b, caller) = (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let (pa, pb) = (gw_a.addr.port(), gw_b.addr.port());
    let a = sql_table_node(&s, "127.0.0.25", &routes, pa, pb);
    let b = sql_table_node(&s, "127.0.0.26", &routes, pa, pb);
    let gws = [&gw_a, &gw_b];
    assert_eq!(routed_to(&caller, &a, "4930123", &gws, 1).await, Some(0));
    assert_eq!(routed_to(&caller, &b, "4930123", &gws, 2).await, Some(0));
    assert_eq!(routed_to(&caller, &a, "1555", &gws, 3).await, None);

    // The operator moves Germany to gw_b and tells the nodes.
    let sql =
        format!("UPDATE {routes} SET gateway = 'trunk:gw_b' WHERE prefix = '49'; NOTIFY {routes}");
    with_pg(move |db| db.batch_execute(&sql).unwrap()).unwrap();
    let changed = Instant::now();
    let mut n = 10;
    for node in [&a, &b] {
        while routed_to(&caller, node, "4930123", &gws, n).await != Some(1) {
            n += 1;
            assert!(changed.elapsed() < Duration::from_secs(3), "{}", node.log());
        }
    }
    eprintln!("both nodes routed by the new row {:?} after the UPDATE", changed.elapsed());

    // A bad row (a trunk nobody declared): the rows before it keep serving,
    // and the log names the row.
    let sql =
        format!("UPDATE {routes} SET gateway = 'trunk:nope' WHERE prefix = '33'; NOTIFY {routes}");
    with_pg(move |db| db.batch_execute(&sql).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.log().contains("keeps serving") {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(a.log().contains("nope"), "{}", a.log());
    // (Numbers past those of the loop above: a reused Call-ID and branch
    // would be a retransmission.)
    assert_eq!(routed_to(&caller, &a, "4930123", &gws, n + 1).await, Some(1));
    assert_eq!(routed_to(&caller, &a, "3312", &gws, n + 2).await, Some(0));
    let sql = format!("DROP TABLE IF EXISTS {routes}");
    with_pg(move |db| db.batch_execute(&sql).unwrap()).unwrap();
}

#[test]
fn a_routing_table_fed_by_sqlite_is_checked_row_by_row() {
    let s = Scratch::new("sqlite");
    let db = s.dir.join("routes.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE routes (prefix, gateway TEXT, strip INTEGER);
         INSERT INTO routes VALUES ('49', 'gw', 2), ('', 'trunk:gw', NULL);
         CREATE TABLE peers (net TEXT);
         INSERT INTO peers VALUES ('10.0.0.0/8'), ('192.0.2.7');",
    )
    .unwrap();
    let file = s.dir.join("t.route");
    std::fs::write(
        &file,
        r#"listen udp 127.0.0.1:5060;
trunk gw "sip:127.0.0.1:5080";
table outbound by prefix($rU) from "sqlite:routes.db" query "SELECT prefix, gateway, strip FROM routes ORDER BY prefix" {
}
acl peers from "sqlite:routes.db" query "SELECT net FROM peers ORDER BY net";
request_route {
    if !in_acl(peers) {
        drop;
    }
    if select(outbound) {
        relay();
    }
}
"#,
    )
    .unwrap();
    let check = || {
        let out =
            Command::new(env!("CARGO_BIN_EXE_sipc")).arg("check").arg(&file).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = check();
    assert!(ok, "{err}");
    // A number where the key's text belongs: refused, with the row.
    conn.execute("INSERT INTO routes VALUES (33, 'gw', 0)", []).unwrap();
    let (ok, err) = check();
    assert!(!ok);
    assert!(err.contains("row 1, column 1 (key): an integer"), "{err}");
    // A destination nobody declared: the row is shown as the line.
    conn.execute("UPDATE routes SET prefix = '33', gateway = 'trunk:nope' WHERE strip = 0", [])
        .unwrap();
    let (ok, err) = check();
    assert!(!ok);
    assert!(err.contains("cannot find trunk `nope`") && err.contains("(query):2"), "{err}");
    conn.execute("UPDATE routes SET gateway = 'gw' WHERE strip = 0", []).unwrap();
    assert!(check().0);
    // The address group's rows are checked as an address file's lines.
    conn.execute("INSERT INTO peers VALUES ('not-an-address')", []).unwrap();
    let (ok, err) = check();
    assert!(!ok);
    assert!(err.contains("not-an-address") && err.contains("(query):3"), "{err}");
}

/// Carol's BYE for the call `call_id` answered by `answer` (the 200 she
/// got): to the callee's contact, along the Record-Route set.
fn bye(carol: &UdpUa, answer: &Message, callee: &SocketAddr, call_id: &str) -> String {
    let mut route: Vec<String> =
        answer.headers_named("Record-Route").map(|h| answer.value_of(h).to_owned()).collect();
    route.reverse();
    format!(
        "BYE sip:alice@{callee} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nRoute: {}\r\n\
         To: <sip:alice@{DOMAIN}>;tag=uas1\r\nFrom: <sip:carol@{DOMAIN}>;tag=c1\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        carol.via(&format!("bye-{call_id}")),
        route.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_and_recorded_by_the_cluster() {
    if !have_pg() || !have_redis() {
        return;
    }
    let s = Scratch::new("calls2");
    let two = vec!["MAX_CALLS=2".to_owned()];
    let a = Node::start_defined(&s, "127.0.0.27", &pg_url(), &redis_url(), true, &two);
    let b = Node::start_defined(&s, "127.0.0.28", &pg_url(), &redis_url(), true, &two);
    let (alice, carol) = (UdpUa::bind().await, UdpUa::bind().await);
    let alice_uri = register_udp(&alice, &a, "alice", 1, 600).await;
    b.wait_binding(&format!("sip:alice@{DOMAIN}"), &alice_uri, true);

    // Carol's two calls at once, one through each node: her limit.
    let mut answers = Vec::new();
    for (node, call_id) in [(&a, "cl-1"), (&b, "cl-2")] {
        carol.send(node.addr(), &invite(&carol.via(call_id), &carol.addr, "alice", call_id)).await;
        let inv = next_udp(&alice, "INVITE", |m| m.call_id().ok().flatten() == Some(call_id)).await;
        alice.send(node.addr(), &response_to(&inv, 200, "OK")).await;
        answers.push(next_udp(&carol, "200", |m| m.status() == Some(200)).await);
    }
    // A third, through either node, once the nodes have told each other.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for (node, call_id) in [(&a, "cl-3"), (&b, "cl-4")] {
        carol.send(node.addr(), &invite(&carol.via(call_id), &carol.addr, "alice", call_id)).await;
        let r = next_udp(&carol, "refusal", |m| m.status().is_some_and(|c| c >= 300)).await;
        assert_eq!(r.status(), Some(486), "{} counts the other node's call", node.ip);
    }
    // Hung up: both records in the one table, written by each node.
    for ((node, answer), call_id) in [&a, &b].into_iter().zip(&answers).zip(["cl-1", "cl-2"]) {
        carol.send(node.addr(), &bye(&carol, answer, &alice.addr, call_id)).await;
        let m = next_udp(&alice, "BYE", |m| m.method_str() == Some("BYE")).await;
        alice.send(node.addr(), &response_to(&m, 200, "OK")).await;
        next_udp(&carol, "200 to BYE", |m| m.status() == Some(200)).await;
    }
    let sql = format!(
        "SELECT call_id || ':' || kind FROM {} WHERE call_id LIKE 'cl-%' ORDER BY call_id",
        s.cdrs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sql = sql.clone();
        let rows = with_pg(move |db| {
            db.query(&sql, &[]).map(|r| r.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
        })
        .unwrap();
        match rows {
            // The refused calls were never followed: no record.
            Ok(r) if r.len() >= 2 => {
                assert_eq!(r, ["cl-1:answered", "cl-2:answered"]);
                break;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "records: {rows:?}\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The calls ended: carol may call again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    carol.send(b.addr(), &invite(&carol.via("cl-5"), &carol.addr, "alice", "cl-5")).await;
    next_udp(&alice, "INVITE after hang-up", |m| m.call_id().ok().flatten() == Some("cl-5")).await;
}
