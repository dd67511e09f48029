//! A real rtpengine (Debian: `rtpengine-daemon`) for tests, on loopback:
//! userspace forwarding (`--table=-1`), no config file
//! (`--config-file=none`: the packaged `/etc/rtpengine/rtpengine.conf` and
//! its systemd service play no part), an ng port and a media port range of
//! its own. Killed on drop.
//!
//! Without the `rtpengine` binary [`have_rtpengine`] says so loudly and
//! returns false; under `CI=true` it fails (.ci/run installs the package).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running rtpengine; killed on drop.
pub struct Rtpengine {
    pub child: Child,
    pub ng: SocketAddr,
    pub ports: (u16, u16),
    pub log: PathBuf,
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn have_rtpengine() -> bool {
    let found = Command::new("rtpengine")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let msg = "rtpengine is not installed (apt-get install rtpengine-daemon): \
                   the rtpengine tests did NOT run";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("\n*** {msg} ***\n");
    }
    found
}

impl Rtpengine {
    /// Starts rtpengine on a free ng port with a media range of its own.
    pub fn start() -> Option<Rtpengine> {
        let ng = {
            let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        // Media ports below the kernel's ephemeral range, 100 per instance;
        // rtpengine skips ports that another process holds.
        let base = 20_000 + (ng.port() % 90) * 100;
        Rtpengine::start_at(ng, (base, base + 99))
    }

    /// Starts rtpengine with its ng socket at `ng` and media ports in
    /// `ports`, and waits (at most 10 s) until it answers `ping`.
    pub fn start_at(ng: SocketAddr, ports: (u16, u16)) -> Option<Rtpengine> {
        if !have_rtpengine() {
            return None;
        }
        let log = std::env::temp_dir().join(format!(
            "sipc-rtpengine-{}-{}.log",
            std::process::id(),
            ng.port()
        ));
        let child = spawn(ng, ports, &log);
        let mut rtpe = Rtpengine { child, ng, ports, log };
        rtpe.wait_ready();
        Some(rtpe)
    }

    /// Kills it and starts it again on the same sockets (its sessions are
    /// gone), appending to the same log.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.ng, self.ports, &self.log);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 256];
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rtpengine exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "rtpengine never answered ping:\n{}", self.log());
            sock.send_to(b"wait d7:command4:pinge", self.ng).unwrap();
            if let Ok(n) = sock.recv(&mut buf)
                && buf[..n] == *b"wait d6:result4:ponge"
            {
                return;
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one ng command (a bencoded dictionary) and returns the
    /// reply's dictionary text, waiting at most 2 s.
    pub fn command(&self, dict: &str) -> String {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let cookie = format!("t{}", std::process::id());
        sock.send_to(format!("{cookie} {dict}").as_bytes(), self.ng).unwrap();
        let mut buf = vec![0u8; 65_536];
        let n = sock.recv(&mut buf).expect("rtpengine answers");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.strip_prefix(&format!("{cookie} ")).unwrap_or(&text).to_owned()
    }

    /// The Call-IDs rtpengine holds a session for (ng `list`).
    pub fn calls(&self) -> Vec<String> {
        let reply = self.command("d7:command4:list5:limiti100ee");
        let value = sipc::rtpengine::bencode::decode_dict(reply.as_bytes())
            .unwrap_or_else(|e| panic!("list reply {reply:?}: {e}"));
        value
            .get_list("calls")
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

/// rtpengine's arguments for the tests: no config file, userspace
/// forwarding, in the foreground logging to stderr at info (its final
/// packet counts), media on `interface` in `ports`, the ng socket at `ng`,
/// sessions deleted at once.
pub fn args(interface: &str, ng: &str, ports: (u16, u16)) -> Vec<String> {
    [
        "--config-file=none",
        "--table=-1",
        "--foreground",
        "--log-stderr",
        "--log-level=6",
        &format!("--interface={interface}"),
        &format!("--listen-ng={ng}"),
        &format!("--port-min={}", ports.0),
        &format!("--port-max={}", ports.1),
        "--delete-delay=0",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn spawn(ng: SocketAddr, ports: (u16, u16), log: &PathBuf) -> Child {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new("rtpengine")
        .args(args("127.0.0.1", &ng.to_string(), ports))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("rtpengine starts")
}
