//! NAT traversal for real: Linux network namespaces stand for the internet,
//! a home router and a phone behind it, and `sipc run` serves a config
//! derived from `examples/nat-rtpengine.route` across them.
//!
//! ```text
//!  lan (the phone)            nat (the router)                wan (the internet)
//!  192.168.77.2 ── eth0 ─── down0 192.168.77.1                sipc 203.0.113.1:5060
//!  default via .1                 up0 203.0.113.2 ──── wan0   rtpengine --interface=203.0.113.1
//!                                 masquerade, UDP ports       callers 203.0.113.10
//!                                 40000–49999, UDP mappings   media server 127.0.0.1:5080
//!                                 forgotten after 5 s
//! ```
//!
//! The router masquerades to ports other than the phone's, as real NATs
//! do, and forgets an idle UDP mapping after 5 s (conntrack timeouts set in
//! its namespace only). Each test builds its own three namespaces (names
//! carry the process id), starts rtpengine and sipc inside `wan`, and on
//! drop kills every process left in them and deletes them.
//!
//! - A SIPp phone registers with its private Contact: the binding's
//!   `received` in sipc's location store is the NAT's public address and
//!   the very port the router's conntrack table mapped the phone to; a SIPp
//!   caller on the wan then calls the phone and the call completes (INVITE
//!   through the mapping, in-dialog ACK and BYE through the Contact alias).
//! - NAT keepalives: with CRLF pings every 2 s the mapping outlives the
//!   router's 5 s timeout and a call 8 s after the registration still
//!   reaches the phone; the control, without pings, shows the mapping gone
//!   after the same wait, the phone never sees the INVITE and the caller
//!   gets 408.
//! - A real softphone: baresip behind the NAT registers with digest
//!   authentication (401, then 200), calls the media server through sipc
//!   and rtpengine (rtpengine's address in the SDP the media server sees,
//!   RTP counted by rtpengine on both legs, the phone's at the NAT's public
//!   address), and auto-answers a call from a SIPp caller on the wan.
//!
//! Every process and wait is bounded. Without root (or CAP_NET_ADMIN) or
//! without `ip`, `sysctl`, nftables or iptables, SIPp, rtpengine or (for
//! the softphone) baresip, the tests say so loudly and pass; under
//! `CI=true` they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::{Reaper, must, runs};

/// The proxy's address on the "internet".
const PROXY_IP: &str = "203.0.113.1";
/// Callers on the internet.
const CALLER_IP: &str = "203.0.113.10";
/// The router's public address: what the proxy sees phones come from.
const NAT_PUBLIC: &str = "203.0.113.2";
const NAT_LAN: &str = "192.168.77.1";
const PHONE_IP: &str = "192.168.77.2";
/// The ports the router maps phones to.
const NAT_PORTS: (u16, u16) = (40_000, 49_999);
/// The router's UDP timeouts (seconds): a mapping idle this long is gone.
const NAT_UDP_TIMEOUT: u64 = 5;
/// rtpengine's media ports.
const MEDIA: (u16, u16) = (30_000, 30_099);

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scenario(name: &str) -> PathBuf {
    root().join("tests/data/sipp").join(name)
}

/// Says loudly that the tests did not run and why; fails under `CI=true`.
fn skip(why: &str) -> bool {
    let msg = format!("{why}: the NAT namespace tests did NOT run");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("\n*** {msg} ***\n");
    false
}

/// Whether the tools are installed and namespaces can be made here.
fn can_run(baresip: bool) -> bool {
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("sysctl", "-V", "procps"),
        ("sipp", "-v", "sip-tester"),
        ("rtpengine", "--version", "rtpengine-daemon"),
    ] {
        if !runs(tool, arg) {
            return skip(&format!("`{tool}` is not installed (apt-get install {package})"));
        }
    }
    if !runs("nft", "--version") && !runs("iptables", "--version") {
        return skip("neither nft nor iptables is installed (apt-get install nftables)");
    }
    if baresip && !runs("baresip", "-h") {
        return skip("baresip is not installed (apt-get install baresip-core)");
    }
    let probe =
        format!("sipc-probe-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let out = Command::new("ip").args(["netns", "add", &probe]).output().expect("ip runs");
    if !out.status.success() {
        return skip(&format!(
            "`ip netns add` is not permitted ({}); it needs root or CAP_NET_ADMIN",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    true
}

/// The three namespaces of one test; on drop every process still in them
/// is killed and they are deleted (with their veth pairs).
struct Net {
    wan: String,
    nat: String,
    lan: String,
    dir: PathBuf,
}

impl Net {
    fn new(label: &str) -> Net {
        let base = format!("sipc{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(format!("sipc-natns-{base}-{label}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let net = Net {
            wan: format!("{base}-wan"),
            nat: format!("{base}-nat"),
            lan: format!("{base}-lan"),
            dir,
        };
        for ns in [&net.wan, &net.nat, &net.lan] {
            must(Command::new("ip").args(["netns", "add", ns]));
            net.ip(ns, "link set lo up");
        }
        // Cables: wan0 (wan) ── up0 (nat), down0 (nat) ── eth0 (lan),
        // each end made in its namespace.
        must(
            Command::new("ip")
                .args(["link", "add", "wan0", "netns", &net.wan])
                .args(["type", "veth", "peer", "name", "up0", "netns", &net.nat]),
        );
        must(
            Command::new("ip")
                .args(["link", "add", "down0", "netns", &net.nat])
                .args(["type", "veth", "peer", "name", "eth0", "netns", &net.lan]),
        );
        let (wan, nat, lan) = (&net.wan, &net.nat, &net.lan);
        net.ip(wan, &format!("addr add {PROXY_IP}/24 dev wan0"));
        net.ip(wan, &format!("addr add {CALLER_IP}/24 dev wan0"));
        net.ip(wan, "link set wan0 up");
        net.ip(nat, &format!("addr add {NAT_PUBLIC}/24 dev up0"));
        net.ip(nat, "link set up0 up");
        net.ip(nat, &format!("addr add {NAT_LAN}/24 dev down0"));
        net.ip(nat, "link set down0 up");
        net.ip(lan, &format!("addr add {PHONE_IP}/24 dev eth0"));
        net.ip(lan, "link set eth0 up");
        net.ip(lan, &format!("route add default via {NAT_LAN}"));
        net.masquerade();
        must(net.exec(nat, "sysctl").args(["-w", "net.ipv4.ip_forward=1"]));
        // After the NAT rule: conntrack is on in this namespace from then on.
        must(net.exec(nat, "sysctl").args([
            "-w",
            &format!("net.netfilter.nf_conntrack_udp_timeout={NAT_UDP_TIMEOUT}"),
            &format!("net.netfilter.nf_conntrack_udp_timeout_stream={NAT_UDP_TIMEOUT}"),
        ]));
        net
    }

    /// `ip -n NS ARGS…`
    fn ip(&self, ns: &str, args: &str) {
        must(Command::new("ip").args(["-n", ns]).args(args.split(' ')));
    }

    /// `ip netns exec NS PROGRAM`: the program itself runs in the
    /// namespace (`ip` execs it), so killing the child kills the program.
    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).current_dir(&self.dir);
        cmd
    }

    /// Source NAT out of the router's wan side to ports of its own choice
    /// (`NAT_PORTS`), nftables or else iptables.
    fn masquerade(&self) {
        let ports = format!("{}-{}", NAT_PORTS.0, NAT_PORTS.1);
        if runs("nft", "--version") {
            let rules = format!(
                "table ip nat {{\n chain postrouting {{\n  type nat hook postrouting priority 100;\n  \
                 oifname \"up0\" meta l4proto udp masquerade to :{ports}\n  \
                 oifname \"up0\" masquerade\n }}\n}}\n"
            );
            let file = self.dir.join("nat.nft");
            std::fs::write(&file, rules).unwrap();
            must(self.exec(&self.nat, "nft").arg("-f").arg(&file));
        } else {
            must(self.exec(&self.nat, "iptables").args([
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "up0",
                "-p",
                "udp",
                "-j",
                "MASQUERADE",
                "--to-ports",
                &ports,
            ]));
            must(self.exec(&self.nat, "iptables").args([
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "up0",
                "-j",
                "MASQUERADE",
            ]));
        }
    }

    /// The public port the router maps the phone's `PHONE_IP:5060` to
    /// towards the proxy, if it holds such a mapping now.
    fn phone_mapping(&self) -> Option<u16> {
        let out = must(self.exec(&self.nat, "cat").arg("/proc/net/nf_conntrack"));
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        let original = format!("src={PHONE_IP} dst={PROXY_IP} sport=5060 dport=5060 ");
        let line = table.lines().find(|l| l.contains(" udp ") && l.contains(&original))?;
        // The reply tuple (the second): proxy → router's public address.
        let reply = &line[line.find(&original)? + original.len()..];
        let dport = reply.split_whitespace().find_map(|f| f.strip_prefix("dport="))?;
        dport.parse().ok()
    }

    /// Waits (at most 5 s) until a UDP socket in `ns` is bound to `port`.
    fn wait_bound(&self, ns: &str, port: u16) {
        let local = format!(":{port:04X}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = must(self.exec(ns, "cat").arg("/proc/net/udp"));
            let table = String::from_utf8_lossy(&out.stdout).into_owned();
            // Rows: `sl local_address rem_address …`, addresses in hex.
            if table
                .lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(&local)))
            {
                return;
            }
            assert!(Instant::now() < deadline, "nothing bound to UDP port {port} in {ns}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.lan, &self.nat, &self.wan] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits (at most `wait`) until `file` contains `text`; panics with
/// `context()` otherwise, or at once if `child` exits first.
fn wait_for_text(
    file: &Path,
    text: &str,
    wait: Duration,
    child: &mut Child,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + wait;
    loop {
        if std::fs::read_to_string(file).unwrap_or_default().contains(text) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited ({status}) before {text:?}:\n{}", context());
        }
        assert!(Instant::now() < deadline, "no {text:?} within {wait:?}:\n{}", context());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// rtpengine and sipc running in the wan namespace.
struct Wan {
    _proxy: Reaper,
    _rtpengine: Reaper,
    proxy_log: PathBuf,
    rtpengine_log: PathBuf,
}

impl Wan {
    /// Starts rtpengine on the proxy's address (ng on 127.0.0.1:22222, the
    /// example's) and then `sipc run` with `config`; returns once sipc
    /// listens.
    fn start(net: &Net, config: &str) -> Wan {
        let rtpengine_log = net.path("rtpengine.log");
        let mut rtpengine = net
            .exec(&net.wan, "rtpengine")
            .args(support::rtpengine::args(PROXY_IP, "127.0.0.1:22222", MEDIA))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&rtpengine_log).unwrap())
            .spawn()
            .expect("rtpengine starts");
        wait_for_text(
            &rtpengine_log,
            "Startup complete",
            Duration::from_secs(10),
            &mut rtpengine,
            || read(&rtpengine_log),
        );
        let rtpengine = Reaper(rtpengine);

        let config_path = net.path("nat.route");
        std::fs::write(&config_path, config).unwrap();
        let proxy_log = net.path("sipc.log");
        let mut proxy = net
            .exec(&net.wan, env!("CARGO_BIN_EXE_sipc"))
            .args(["run", "-v", "--no-watch"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&proxy_log).unwrap())
            .spawn()
            .expect("sipc starts");
        let listening = format!("listening on udp {PROXY_IP}:5060");
        wait_for_text(&proxy_log, &listening, Duration::from_secs(30), &mut proxy, || {
            read(&proxy_log)
        });
        Wan { _proxy: Reaper(proxy), _rtpengine: rtpengine, proxy_log, rtpengine_log }
    }

    fn log(&self) -> String {
        read(&self.proxy_log)
    }

    fn logs(&self) -> String {
        format!("--- sipc\n{}\n--- rtpengine\n{}", self.log(), read(&self.rtpengine_log))
    }
}

/// What a test changes in the example besides its address.
struct Config {
    /// CRLF keepalives at this interval; `None`: no keepalives.
    keepalive: Option<&'static str>,
    /// Digest authentication of REGISTERs and of calls from local users.
    auth: bool,
}

/// The example, listening on the proxy's public address, its bindings
/// written to `dir/sipc.db` (where the test reads them), non-INVITE and
/// unanswered INVITE transactions timing out after 4 s (Timer B/F), so a
/// call that cannot reach its callee fails within the test's bounds.
fn config(dir: &Path, c: &Config) -> String {
    let mut src = std::fs::read_to_string(root().join("examples/nat-rtpengine.route")).unwrap();
    let mut replace = |from: &str, to: &str| {
        assert!(src.contains(from), "the example no longer has {from:?}");
        src = src.replacen(from, to, 1);
    };
    replace("listen udp 127.0.0.1:5060;", &format!("listen udp {PROXY_IP}:5060;"));
    replace("fr_timer = 30s;", "fr_timer = 4s;");
    let db = dir.join("sipc.db");
    replace(
        "module usrloc {\n    db_mode = 0;\n}",
        &format!("module usrloc {{\n    db_path = \"{}\";\n    db_mode = 2;\n}}", db.display()),
    );
    match c.keepalive {
        Some(every) => replace(
            "natping_interval = 30s;",
            &format!("natping_interval = {every};\n    ping_method = \"crlf\";"),
        ),
        None => replace("natping_interval = 30s;", "natping_interval = 0s;"),
    }
    if c.auth {
        // sipc offers SHA-256 first by default; Debian's baresip 1.0
        // (libre) then gives up ("Register: Function not implemented")
        // instead of taking the MD5 challenge that follows.
        replace(
            "module rtpengine {",
            "module auth {\n    algorithms = \"MD5\";\n}\n\nmodule rtpengine {",
        );
        replace("    route(WITHINDLG);\n", "    route(WITHINDLG);\n    route(AUTH);\n");
        src.push_str(
            r#"
# REGISTERs and calls from local users authenticate (examples/default.route's
# route AUTH with WITH_AUTH); the log lines are what the test reads.
route AUTH {
    if is_method("REGISTER") || is_myself($fu) {
        if !auth_check($fd, "subscriber") {
            log(info, "auth: challenging $rm from $fu: $auth_result");
            auth_challenge($fd);
            exit;
        }
        log(info, "auth: $rm from $fu authenticated");
        if !is_method("REGISTER") {
            consume_credentials();
        }
    }
}
"#,
        );
    }
    src
}

/// The `received` address of the bindings whose Contact names `contact`,
/// from sipc's location store (written behind within a second); waits at
/// most 5 s for one.
fn stored_received(net: &Net, contact: &str) -> String {
    let db = net.path("sipc.db");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|conn| {
                    conn.query_row(
                        "SELECT received FROM location WHERE contact LIKE ?1",
                        [format!("%{contact}%")],
                        |r| r.get::<_, Option<String>>(0),
                    )
                });
        if let Ok(Some(received)) = found {
            return received;
        }
        assert!(Instant::now() < deadline, "no binding for {contact} in {}", db.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The phone (SIPp in lan at `PHONE_IP:5060`) registers as `phone`;
/// bounded to 15 s.
fn phone_registers(net: &Net) -> ExitStatus {
    net.exec(&net.lan, "timeout")
        .args(["15", "sipp", &format!("{PROXY_IP}:5060")])
        .arg("-sf")
        .arg(scenario("phone_register.xml"))
        .args(["-s", "phone", "-i", PHONE_IP, "-p", "5060", "-m", "1", "-nostdin"])
        .args(["-timeout", "10", "-timeout_error", "-trace_msg", "-message_file"])
        .arg(net.path("register.msg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp runs")
}

/// The phone answering one call from the port it registered from (gives
/// up after `give_up` seconds).
fn phone_answers(net: &Net, give_up: u32) -> Reaper {
    Reaper(
        net.exec(&net.lan, "sipp")
            .arg("-sf")
            .arg(scenario("phone_answer.xml"))
            .args(["-s", "phone", "-i", PHONE_IP, "-p", "5060", "-mp", "18000", "-m", "1"])
            .args(["-nostdin", "-timeout", &give_up.to_string(), "-timeout_error"])
            .args(["-trace_msg", "-message_file"])
            .arg(net.path("phone.msg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp phone starts"),
    )
}

/// A SIPp caller on the internet calls `user` at the proxy (one call,
/// bounded to 40 s); its messages go to `caller.msg`.
fn caller_calls(net: &Net, user: &str) -> ExitStatus {
    net.exec(&net.wan, "timeout")
        .args(["40", "sipp", &format!("{PROXY_IP}:5060")])
        .arg("-sf")
        .arg(scenario("uac.xml"))
        .args(["-s", user, "-i", CALLER_IP, "-p", "5070", "-mp", "16000", "-m", "1"])
        .args(["-d", "1000", "-nostdin", "-recv_timeout", "15000"])
        .args(["-timeout", "30", "-timeout_error", "-trace_msg", "-message_file"])
        .arg(net.path("caller.msg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp caller runs")
}

/// Waits at most `wait` for a child to exit.
fn exit_within(child: &mut Reaper, wait: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The first lines of a SIPp message log (requests and status lines).
fn start_lines(messages: &str) -> Vec<&str> {
    messages
        .lines()
        .filter(|l| l.starts_with("SIP/2.0 ") || l.split(' ').nth(2) == Some("SIP/2.0"))
        .collect()
}

/// Registers the SIPp phone and checks its binding: the `received` sipc
/// stored is the public address and port the router mapped the phone's
/// REGISTER to. Returns that port.
fn register_phone(net: &Net, wan: &Wan) -> u16 {
    let status = phone_registers(net);
    assert!(status.success(), "REGISTER failed ({status}):\n{}", wan.logs());
    let port = net.phone_mapping().expect("the router maps the phone after its REGISTER");
    assert!((NAT_PORTS.0..=NAT_PORTS.1).contains(&port), "mapped to {port}");
    let received = stored_received(net, &format!("{PHONE_IP}:5060"));
    assert_eq!(received, format!("sip:{NAT_PUBLIC}:{port}"), "the binding's received");
    port
}

/// After the phone was registered: it answers a call from the wan, which
/// completes; the in-dialog requests went through the alias of the
/// router's mapping.
fn call_reaches_phone(net: &Net, wan: &Wan, port: u16) {
    let mut phone = phone_answers(net, 30);
    // The proxy would resend an INVITE that found the port closed, but the
    // test should not lean on that.
    net.wait_bound(&net.lan, 5060);
    let status = caller_calls(net, "phone");
    let caller = read(&net.path("caller.msg"));
    let phone_msgs = read(&net.path("phone.msg"));
    assert!(
        status.success(),
        "the call failed ({status}):\n--- caller\n{caller}\n--- phone\n{phone_msgs}\n{}",
        wan.logs()
    );
    let phone_status = exit_within(&mut phone, Duration::from_secs(10));
    assert!(
        phone_status.is_some_and(|s| s.success()),
        "the phone's side: {phone_status:?}\n{}",
        read(&net.path("phone.msg"))
    );
    let phone_msgs = read(&net.path("phone.msg"));
    let seen = start_lines(&phone_msgs);
    for start in ["INVITE sip:phone@", "ACK sip:phone@", "BYE sip:phone@"] {
        assert!(seen.iter().any(|l| l.starts_with(start)), "the phone saw {seen:?}");
    }
    let alias = format!("alias={NAT_PUBLIC}~{port}~1");
    assert!(
        start_lines(&caller).iter().any(|l| l.starts_with("BYE ") && l.contains(&alias)),
        "the caller's BYE went to the alias {alias}:\n{caller}"
    );
}

#[test]
fn a_phone_behind_nat_registers_its_private_contact_and_is_called_from_outside() {
    if !can_run(false) {
        return;
    }
    let net = Net::new("call");
    let wan = Wan::start(&net, &config(&net.dir, &Config { keepalive: None, auth: false }));
    let port = register_phone(&net, &wan);
    call_reaches_phone(&net, &wan, port);
}

/// How long the phone stays idle after registering: longer than the
/// router's UDP timeout.
const IDLE: Duration = Duration::from_secs(NAT_UDP_TIMEOUT + 3);

#[test]
fn keepalives_keep_a_phone_behind_nat_reachable_past_the_nat_timeout() {
    if !can_run(false) {
        return;
    }
    let net = Net::new("keepalive");
    let wan = Wan::start(&net, &config(&net.dir, &Config { keepalive: Some("2s"), auth: false }));
    let port = register_phone(&net, &wan);
    std::thread::sleep(IDLE);
    assert_eq!(net.phone_mapping(), Some(port), "the pings kept the router's mapping");
    call_reaches_phone(&net, &wan, port);
}

/// The control of the test above: the same wait without keepalives loses
/// the phone.
#[test]
fn without_keepalives_the_nat_forgets_the_phone_and_its_call_fails() {
    if !can_run(false) {
        return;
    }
    let net = Net::new("control");
    let wan = Wan::start(&net, &config(&net.dir, &Config { keepalive: None, auth: false }));
    register_phone(&net, &wan);
    let mut phone = phone_answers(&net, 30);
    std::thread::sleep(IDLE);
    assert_eq!(net.phone_mapping(), None, "the router still maps the phone");
    let status = caller_calls(&net, "phone");
    assert!(!status.success(), "the call went through without a NAT mapping");
    let caller = read(&net.path("caller.msg"));
    assert!(
        start_lines(&caller).contains(&"SIP/2.0 408 Request Timeout"),
        "the caller got no 408:\n{caller}\n{}",
        wan.logs()
    );
    // The INVITE died at the router: the phone never saw it.
    assert!(exit_within(&mut phone, Duration::from_millis(100)).is_none());
    drop(phone);
    let seen = read(&net.path("phone.msg"));
    assert!(!seen.contains("INVITE sip:"), "the phone got the INVITE:\n{seen}");
}

/// baresip in the lan namespace, its commands written to its stdin (its
/// `stdio` module), its output (with `-s`: every SIP message) in a file.
struct Baresip {
    child: Reaper,
    out: PathBuf,
}

impl Baresip {
    fn start(net: &Net) -> Baresip {
        let conf = net.path("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        // Headless: a 440 Hz tone as the microphone (ausine makes only
        // 48 kHz stereo; baresip resamples to G.711), /dev/null as the
        // speaker, commands on stdin.
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method\tepoll\nsip_listen\t{PHONE_IP}:5060\n\
                 audio_player\taufile,/dev/null\naudio_alert\taufile,/dev/null\n\
                 audio_source\tausine,440\nausrc_srate\t48000\nauplay_srate\t48000\n\
                 ausrc_channels\t2\nauplay_channels\t2\n\
                 module_path\t/usr/lib/baresip/modules\nmodule\tstdio.so\nmodule\tg711.so\n\
                 module\tausine.so\nmodule\taufile.so\nmodule_app\taccount.so\n\
                 module_app\tmenu.so\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("accounts"),
            format!(
                "<sip:alice@{PROXY_IP};transport=udp>;auth_pass=secret;answermode=auto;regint=600\n"
            ),
        )
        .unwrap();
        let out = net.path("baresip.out");
        let file = std::fs::File::create(&out).unwrap();
        let child = net
            .exec(&net.lan, "baresip")
            .arg("-s")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("baresip starts");
        Baresip { child: Reaper(child), out }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.0.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn output(&self) -> String {
        read(&self.out)
    }

    /// Waits (at most `wait`) for `text` in baresip's output.
    fn wait_for(&mut self, text: &str, wait: Duration, wan: &Wan) {
        let out = self.out.clone();
        wait_for_text(&self.out, text, wait, &mut self.child.0, || {
            format!("--- baresip\n{}\n{}", read(&out), wan.logs())
        });
    }
}

/// The packet counts of rtpengine's "Final packet stats" for the RTP ports
/// whose peer address contains `peer`.
fn final_rtp_packets(log: &str, peer: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("--------- Port") && !l.contains("(RTCP)"))
        .filter(|l| l.split(" <> ").nth(1).is_some_and(|p| p.trim_start().starts_with(peer)))
        .filter_map(|l| {
            let p = l.split(", ").find(|f| f.ends_with(" p"))?;
            p.trim_end_matches(" p").trim().parse().ok()
        })
        .collect()
}

#[test]
fn baresip_behind_nat_registers_with_digest_calls_out_and_answers_a_call() {
    if !can_run(true) {
        return;
    }
    let net = Net::new("baresip");
    let cfg = config(&net.dir, &Config { keepalive: Some("2s"), auth: true });
    // The subscriber, in the database the config names.
    let mut add = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["user", "add", &format!("alice@{PROXY_IP}"), "--password-stdin", "--db"])
        .arg(net.path("sipc.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipc user add runs");
    add.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let wan = Wan::start(&net, &cfg);
    // The media server stand-in: SIPp echoing RTP at 127.0.0.1:5080.
    let _media_server = Reaper(
        net.exec(&net.wan, "sipp")
            .arg("-sf")
            .arg(scenario("uas.xml"))
            .args(["-i", "127.0.0.1", "-p", "5080", "-mp", "17000", "-rtp_echo", "-m", "1"])
            .args(["-nostdin", "-timeout", "60", "-trace_msg", "-message_file"])
            .arg(net.path("media.msg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp media server starts"),
    );

    // Registration: challenged (401), then accepted with credentials.
    let mut phone = Baresip::start(&net);
    phone.wait_for("registered successfully", Duration::from_secs(15), &wan);
    let out = phone.output();
    let challenge = out.find("SIP/2.0 401 ").expect("baresip was challenged");
    assert!(out[challenge..].contains("SIP/2.0 200 OK"), "no 200 after the 401:\n{out}");
    let log = wan.log();
    let user = format!("sip:alice@{PROXY_IP}");
    let logged = |what: &str, word: &str| {
        log.lines().any(|l| l.contains(&format!("auth: {what} from {user}")) && l.contains(word))
    };
    assert!(logged("challenging REGISTER", "no_credentials"), "{log}");
    assert!(logged("REGISTER", "authenticated"), "{log}");
    let received = stored_received(&net, &format!("@{PHONE_IP}:5060"));
    assert!(received.starts_with(&format!("sip:{NAT_PUBLIC}:")), "alice's received: {received}");

    // An outgoing call to the media server, through rtpengine, for 3 s.
    phone.command(&format!("/dial sip:ivr@{PROXY_IP}"));
    phone.wait_for("Call established", Duration::from_secs(15), &wan);
    std::thread::sleep(Duration::from_secs(3));
    phone.command("/hangup");
    phone.wait_for("Call with sip:ivr@", Duration::from_secs(10), &wan);
    let log = wan.log();
    assert!(
        log.lines().any(
            |l| l.contains(&format!("auth: INVITE from {user}")) && l.contains("authenticated")
        ),
        "{log}"
    );
    let media = read(&net.path("media.msg"));
    let invite = &media[media.find("INVITE sip:").expect("the media server got the INVITE")..];
    let sdp_addr = invite.lines().find_map(|l| l.strip_prefix("c=IN IP4 "));
    assert_eq!(sdp_addr, Some(PROXY_IP), "the media server was offered\n{invite}");
    let port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("an m=audio line");
    assert!((MEDIA.0..=MEDIA.1).contains(&port), "offered port {port}, not rtpengine's");
    // rtpengine's counts when the BYE deleted the call: the phone's RTP
    // came from the router's public address, the media server echoed it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let rtpengine_log = loop {
        let log = read(&wan.rtpengine_log);
        // rtpengine logs the counts, then answers the delete.
        if log.contains("Replying to 'delete'") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let from_phone = final_rtp_packets(&rtpengine_log, NAT_PUBLIC);
    let from_server = final_rtp_packets(&rtpengine_log, "127.0.0.1");
    assert!(
        from_phone.iter().any(|&p| p >= 20) && from_server.iter().any(|&p| p >= 20),
        "RTP on both legs: phone {from_phone:?}, media server {from_server:?}\n{rtpengine_log}"
    );

    // An incoming call from the internet: baresip answers by itself.
    let status = caller_calls(&net, "alice");
    let caller = read(&net.path("caller.msg"));
    assert!(status.success(), "the call to alice failed ({status}):\n{caller}\n{}", wan.logs());
    let alias = format!(";alias={NAT_PUBLIC}~");
    assert!(
        start_lines(&caller).iter().any(|l| l.starts_with("BYE ") && l.contains(&alias)),
        "the caller's BYE did not go to baresip's alias:\n{caller}"
    );
    phone.wait_for("Call with sip:sipp@", Duration::from_secs(10), &wan);
    phone.command("/quit");
    let _ = exit_within(&mut phone.child, Duration::from_secs(5));
}
