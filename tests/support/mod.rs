//! A small SIP user agent for scenario tests: UDP or TCP on loopback
//! ephemeral ports, sending hand-written requests and receiving parsed
//! messages with a timeout. Every wait is bounded.

#![allow(dead_code)]

pub mod relay;
pub mod rtpengine;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sipc::proxy::server::{ListenSpec, ServerConfig, ServerHandle, start};
use sipc::proxy::{Decision, RequestContext, Router, Transport};
use sipc::sip::{Frame, Message, ParseLimits, frame_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

pub const WAIT: Duration = Duration::from_secs(3);

/// A UDP user agent.
pub struct UdpUa {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
}

impl UdpUa {
    pub async fn bind() -> UdpUa {
        UdpUa::bind_at("127.0.0.1:0").await
    }

    /// A user agent on another loopback address (`[::1]:0` for IPv6).
    pub async fn bind_at(addr: &str) -> UdpUa {
        let sock = UdpSocket::bind(addr).await.unwrap();
        let addr = sock.local_addr().unwrap();
        UdpUa { sock, addr }
    }

    pub async fn send(&self, to: SocketAddr, text: &str) {
        self.send_bytes(to, text.as_bytes()).await;
    }

    pub async fn send_bytes(&self, to: SocketAddr, data: &[u8]) {
        self.sock.send_to(data, to).await.unwrap();
    }

    /// The next message, or `None` after `WAIT`.
    pub async fn recv(&self) -> Option<(Message, SocketAddr)> {
        self.recv_within(WAIT).await
    }

    pub async fn recv_within(&self, wait: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) =
            tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await.ok()?.ok()?;
        Some((
            Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("proxy sent valid SIP"),
            from,
        ))
    }

    pub fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch=z9hG4bK{branch};rport", self.addr)
    }
}

/// A TCP user agent listening for one inbound connection.
pub struct TcpUa {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    conn: Mutex<Option<(TcpStream, BytesMut)>>,
}

impl TcpUa {
    pub async fn bind() -> TcpUa {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        TcpUa { listener, addr, conn: Mutex::new(None) }
    }

    /// Receives the next message on the (first accepted) connection.
    pub async fn recv(&self) -> Option<Message> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            let (s, _) = tokio::time::timeout(WAIT, self.listener.accept()).await.ok()?.ok()?;
            *guard = Some((s, BytesMut::new()));
        }
        let (stream, buf) = guard.as_mut().unwrap();
        read_message(stream, buf).await
    }

    /// Writes on the accepted connection.
    pub async fn send(&self, text: &str) {
        let mut guard = self.conn.lock().await;
        let (stream, _) = guard.as_mut().expect("a connection was accepted");
        stream.write_all(text.as_bytes()).await.unwrap();
    }
}

/// Reads one framed message from a stream.
pub async fn read_message(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
    let limits = ParseLimits::default();
    loop {
        match frame_stream(buf, &limits) {
            Frame::Message(len) => {
                return Some(Message::parse(buf.split_to(len).freeze()).unwrap());
            }
            Frame::KeepAlive(len) => {
                let _ = buf.split_to(len);
                continue;
            }
            Frame::Invalid(e) => panic!("bad framing from proxy: {e}"),
            Frame::Incomplete => {}
        }
        let n = tokio::time::timeout(WAIT, stream.read_buf(buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
    }
}

/// A request with the usual headers; `extra` lines go before Content-Length.
pub fn request(method: &str, ruri: &str, via: &str, call_id: &str, extra: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// A response to `req` with the given status, as a UAS writes it.
pub fn response_to(req: &Message, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        let name = req.name_of(h);
        if ["Via", "v", "From", "f", "Call-ID", "i", "CSeq", "Record-Route"].contains(&name) {
            out += &format!("{name}: {}\r\n", req.value_of(h));
        }
        if name == "To" || name == "t" {
            out += &format!("To: {};tag=uas1\r\n", req.value_of(h));
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A router for tests, steered by the Request-URI user:
/// `reply404…` answers 404, `drop…` drops, `rr…` record-routes, `tcp…`
/// forwards over TCP to `tcp_target`; everything else goes to `target`
/// (or follows its Route set / R-URI when `target` is `None`).
pub struct TestRouter {
    pub target: Option<SocketAddr>,
    pub tcp_target: Option<SocketAddr>,
}

impl Router for TestRouter {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        let user = ctx
            .msg
            .request_uri()
            .and_then(|u| sipc::sip::Uri::parse(u).ok().and_then(|u| u.user.map(str::to_owned)))
            .unwrap_or_default();
        if user.starts_with("reply404") {
            return Decision::Reply { code: 404, reason: "Not Here".into() };
        }
        if user.starts_with("drop") {
            return Decision::Drop;
        }
        if user.starts_with("panic") {
            // Stands for a bug on one message's path.
            panic!("the test router panics on {user}");
        }
        if user.starts_with("slow") {
            // Stands for expensive routing logic, to fill the queues.
            std::thread::sleep(std::time::Duration::from_millis(50));
            return Decision::Reply { code: 404, reason: "Slowly Not Here".into() };
        }
        if user.starts_with("rr") {
            ctx.record_route = true;
        }
        if user.starts_with("tcp") || user.starts_with("rrtcp") {
            ctx.record_route = user.starts_with("rr");
            ctx.destination = self.tcp_target.map(|a| format!("sip:{a};transport=tcp"));
        } else if let Some(t) = self.target {
            if ctx.msg.original().routes().next().is_none() {
                ctx.destination = Some(format!("sip:{t}"));
            }
        }
        Decision::Forward
    }
}

/// Starts a proxy on loopback UDP and TCP ephemeral ports.
pub async fn proxy(router: impl Router) -> ServerHandle {
    proxy_with(router, |_| {}).await
}

/// Starts a proxy with a configuration adjusted by `tune`.
pub async fn proxy_with(router: impl Router, tune: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig::new(vec![
        ListenSpec { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() },
        ListenSpec { transport: Transport::Tcp, addr: "127.0.0.1:0".parse().unwrap() },
    ]);
    config.workers = 2;
    tune(&mut config);
    start(config, Arc::new(router)).await.unwrap()
}

/// A private CA and a leaf certificate for 127.0.0.1 (and `localhost`),
/// made by rcgen: `(leaf PEM, leaf key PEM, CA PEM)`.
pub fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (leaf.pem(), leaf_key.serialize_pem(), ca.pem())
}

/// A TLS client configuration trusting `ca_pem`.
pub fn tls_client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Kills a child process (a proxy, a SIPp) when dropped, so a failing
/// assertion cleans up.
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sipc run FILE ARGS…` (the test build of the binary) as a child that is
/// killed when dropped; its stdout discarded, its stderr written to
/// `stderr` (`None`: discarded).
pub fn sipc_run(file: &std::path::Path, args: &[&str], stderr: Option<&std::path::Path>) -> Reaper {
    use std::process::{Command, Stdio};
    let err = match stderr {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    Reaper(
        Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("run")
            .arg(file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

/// What `sipc reload --status` prints for the proxy with control socket
/// `control`.
pub fn sipc_status(control: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["reload", "--status", "--control"])
        .arg(control)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (bounded) until the proxy with control socket `control` answers,
/// i.e. has loaded its config and bound its sockets.
pub fn wait_started(control: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !sipc_status(control).contains("generation") {
        assert!(std::time::Instant::now() < deadline, "sipc did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then waits (bounded) for the proxy to write what it holds
/// (locations, dialogs, bans, call records) and exit.
pub fn terminate(proxy: &mut Reaper) {
    let pid = proxy.0.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proxy.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "sipc did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether SIPp (Debian `sip-tester`) is installed.
pub fn have_sipp() -> bool {
    use std::process::{Command, Stdio};
    Command::new("sipp").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Checks and compiles route source `src` (named `name` in diagnostics),
/// then serves it with its `listen` items rebound to ephemeral ports;
/// `tune` adjusts the configuration (workers, services …) before the start.
pub async fn serve_source(
    name: &str,
    src: &str,
    tune: impl FnOnce(&sipc::sema::CheckedProgram, &mut ServerConfig),
) -> ServerHandle {
    use sipc::sema::{self, Options};
    let out = sema::check_source(name, src, &Options::default());
    assert_eq!(out.errors(), 0, "{}", sipc::cli::check::render_plain(&out));
    let program = Arc::new(sipc::codegen::Program::compile(&out.program).unwrap());
    let mut config = sipc::cli::run::server_config(&out.program).unwrap();
    for l in &mut config.listens {
        l.addr.set_port(0);
    }
    tune(&out.program, &mut config);
    let handle = start(config, program.clone()).await.unwrap();
    program.set_local(handle.core.local.clone());
    handle
}

/// Whether `program ARG` runs (it is installed).
pub fn runs(program: &str, arg: &str) -> bool {
    use std::process::{Command, Stdio};
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Runs a command to completion; panics with its output unless it succeeds.
pub fn must(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Authorization line (with its CRLF) answering `challenge` (a
/// WWW-Authenticate value) for a REGISTER to `uri`, with the algorithm
/// the challenge names.
pub fn digest_authorization(
    challenge: &str,
    user: &str,
    realm: &str,
    password: &str,
    uri: &str,
) -> String {
    use sipc::auth::digest::{self, Algorithm, Credentials};
    let param = |name: &str| {
        challenge
            .split(&format!("{name}="))
            .nth(1)
            .map(|v| v.trim_start_matches('"').split(['"', ',']).next().unwrap().to_owned())
    };
    let alg = Algorithm::parse(param("algorithm").as_deref()).unwrap();
    let nonce = param("nonce").unwrap();
    let c = Credentials {
        username: user,
        realm,
        nonce: &nonce,
        uri,
        qop: Some("auth"),
        nc: Some("00000001"),
        cnonce: Some("0a4f113b"),
        ..Credentials::default()
    };
    let ha1 = digest::ha1(alg, user, realm, password);
    let response = digest::response(alg, &ha1, &c, "REGISTER");
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, \
         cnonce=\"0a4f113b\"\r\n",
        alg.name()
    )
}
