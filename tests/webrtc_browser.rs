//! WebRTC for real: JsSIP in headless Chromium registers over WebSocket to
//! `sipc run examples/webrtc.route -D OPEN_REGISTRAR` (the example as it
//! ships, beside a certificate made by the command in it), calls a SIPp
//! media server over UDP through rtpengine and receives its echoed audio
//! over DTLS-SRTP, and a second browser calls the first, both receiving
//! audio.
//!
//! Everything runs in a network namespace of its own: headless Chromium
//! gathers no ICE candidates on a host with only loopback, so the
//! namespace has a veth pair with 10.77.0.1 on it, rtpengine's media
//! interface; nothing leaves the namespace. The browsers are driven by
//! `tests/browser/webrtc.mjs` (playwright-core, JsSIP bundled by esbuild;
//! `npm ci` in tests/browser installs them).
//!
//! Without root, `ip`, Chromium, Node.js, the npm packages, rtpengine or
//! SIPp the test says so loudly and passes; under `CI=true` it fails.
//! Bounded: the driver gives up after 80 s, and every process started is
//! killed, the namespace deleted, on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Reaper, must, runs};

const MEDIA_IP: &str = "10.77.0.1";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn skip(why: &str) -> bool {
    let msg = format!("{why}: the WebRTC browser test did NOT run");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("\n*** {msg} ***\n");
    false
}

fn can_run() -> bool {
    for (tool, arg, how) in [
        ("ip", "-V", "apt-get install iproute2"),
        ("openssl", "version", "apt-get install openssl"),
        ("sipp", "-v", "apt-get install sip-tester"),
        ("rtpengine", "--version", "apt-get install rtpengine-daemon"),
        ("chromium", "--version", "apt-get install chromium"),
        ("node", "--version", "apt-get install nodejs npm"),
    ] {
        if !runs(tool, arg) {
            return skip(&format!("`{tool}` is not installed ({how})"));
        }
    }
    if !root().join("tests/browser/node_modules/playwright-core").exists() {
        return skip("the npm packages are not installed (cd tests/browser && npm ci)");
    }
    let probe = format!("sipc-webprobe-{}", std::process::id());
    let out = Command::new("ip").args(["netns", "add", &probe]).output().expect("ip runs");
    if !out.status.success() {
        return skip("`ip netns add` is not permitted (it needs root or CAP_NET_ADMIN)");
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    true
}

/// The namespace and the processes in it; on drop the processes are
/// killed and the namespace deleted.
struct Lab {
    ns: String,
    dir: PathBuf,
    procs: Vec<Reaper>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.procs.clear();
        // Anything still in the namespace (Chromium's helpers, say).
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn new() -> Lab {
        let ns = format!("sipc-web-{}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        must(Command::new("ip").args(["netns", "add", &ns]));
        let lab = Lab { ns, dir, procs: Vec::new() };
        lab.ip("link set lo up");
        lab.ip("link add v0 type veth peer name v1");
        lab.ip(&format!("addr add {MEDIA_IP}/24 dev v0"));
        lab.ip("link set v0 up");
        lab.ip("link set v1 up");
        lab
    }

    fn ip(&self, args: &str) {
        must(Command::new("ip").args(["-n", &self.ns]).args(args.split(' ')));
    }

    /// `PROGRAM` inside the namespace, in the lab's directory.
    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]).current_dir(&self.dir);
        cmd
    }

    /// Starts `cmd`, its output to `log` in the lab's directory.
    fn spawn(&mut self, mut cmd: Command, log: &str) {
        let file = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        self.procs.push(Reaper(child));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Waits (at most 10 s) until something in the namespace listens on
    /// `port` (TCP when `tcp`, else UDP).
    fn wait_bound(&self, port: u16, tcp: bool) {
        let local = format!(":{port:04X} ");
        let table = if tcp { "/proc/net/tcp" } else { "/proc/net/udp" };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = must(self.exec("cat").arg(table));
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains(&local)) {
                return;
            }
            assert!(Instant::now() < deadline, "nothing bound {table} port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn browsers_register_over_websocket_and_talk_through_rtpengine() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    // The example as it ships, with the certificate its comment makes.
    std::fs::copy(root().join("examples/webrtc.route"), lab.dir.join("webrtc.route")).unwrap();
    must(Command::new("openssl").current_dir(&lab.dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        "webrtc-key.pem",
        "-out",
        "webrtc-cert.pem",
    ]));

    let mut rtpengine = lab.exec("rtpengine");
    rtpengine.args(support::rtpengine::args(MEDIA_IP, "127.0.0.1:22222", (40_000, 40_199)));
    lab.spawn(rtpengine, "rtpengine.log");
    let mut uas = lab.exec("sipp");
    uas.args(["-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p", "5080", "-mi", "127.0.0.1"])
        .args(["-nostdin", "-timeout", "120"]);
    lab.spawn(uas, "uas.log");
    let mut sipc = lab.exec(env!("CARGO_BIN_EXE_sipc"));
    sipc.args(["run", "-D", "OPEN_REGISTRAR", "webrtc.route", "--no-watch"])
        .arg("--control")
        .arg(lab.dir.join("control.sock"));
    lab.spawn(sipc, "sipc.log");
    lab.wait_bound(22222, false);
    lab.wait_bound(5080, false);
    lab.wait_bound(8080, true);
    lab.wait_bound(8443, true);

    let mut driver = lab.exec("node");
    driver
        .arg(root().join("tests/browser/webrtc.mjs"))
        .env("WS_URL", "ws://127.0.0.1:8080")
        .env("HOME", &lab.dir);
    let out = driver.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let context = || {
        format!(
            "driver stderr:\n{}\nsipc:\n{}\nrtpengine:\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.log("sipc.log"),
            lab.log("rtpengine.log")
        )
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("the driver printed no result: {stdout}\n{}", context()));
    let result: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("{result:#}");
    assert!(result.get("error").is_none(), "{result:#}\n{}", context());
    let step = |name: &str| {
        result["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {result:#}"))
    };
    // A browser calling the media server: audio over DTLS-SRTP, through
    // rtpengine (its address in the SDP the browser got).
    let svc = step("alice-service");
    assert!(svc["bytes"].as_u64().unwrap_or(0) > 0, "{svc:#}\n{}", context());
    assert_eq!(svc["dtls"], "connected", "{svc:#}");
    let sdp = svc["sdp"].as_str().unwrap_or("");
    assert!(sdp.contains(&format!("c=IN IP4 {MEDIA_IP}")), "rtpengine in the path: {sdp}");
    assert!(sdp.contains("UDP/TLS/RTP/SAVPF") && sdp.contains("a=fingerprint"), "{sdp}");
    // Browser to browser, both ways.
    let call = step("bob-alice");
    assert!(call["bob_bytes"].as_u64().unwrap_or(0) > 0, "{call:#}\n{}", context());
    assert!(call["alice_bytes"].as_u64().unwrap_or(0) > 0, "{call:#}\n{}", context());
    assert_eq!(
        (&call["bob_dtls"], &call["alice_dtls"]),
        (&"connected".into(), &"connected".into())
    );
    step("bob-alice-ended");
}
