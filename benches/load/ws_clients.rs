//! Many SIP-over-WebSocket clients at once, for benches/ws_scale.sh: each
//! opens a connection (WS, or WSS trusting `--ca`), asks for the `sip`
//! subprotocol and registers as a browser does (`.invalid` Via and
//! Contact), then stays connected, answering pings, until stdin closes.
//! With a `tls://` (or `tcp://`) URL the clients speak SIP straight over
//! TLS (or TCP) instead, messages framed by their Content-Length, as a
//! desk phone on a connection does.
//!
//! Driven over stdin and stdout, so a script can read the proxy's CPU
//! between phases:
//!
//! 1. at start: connect and register every client (`--parallel` at a
//!    time); prints `registered N SECONDS`;
//! 2. on a `refresh` line: every client registers again over its open
//!    connection; prints `refreshed N SECONDS`;
//! 3. on a `call N` line: N clients each make a call to `sip:service@…`
//!    (INVITE, ACK to the 200, BYE), one after another per client, all
//!    clients at once; prints `called N FAILED SECONDS`;
//! 4. on end of input: exits (the connections close).
//!
//! Usage: ws_clients ws://|wss://|tls://|tcp://IP:PORT/ COUNT
//!        [--from 127.0.0.2-127.0.0.11] [--ca FILE] [--domain D] [--parallel 256]
//! Built as an example: `cargo build --release --example ws_clients`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use sipc::sip::{Frame, ParseLimits, frame_stream};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};
use tokio::net::TcpSocket;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// A client's connection: WebSocket, or SIP straight over TLS or TCP.
enum Conn {
    Ws(Box<Ws>),
    Stream { io: Box<dyn Io>, buf: Vec<u8> },
}

impl Conn {
    async fn send(&mut self, msg: String) -> bool {
        match self {
            Conn::Ws(ws) => ws.send(Message::text(msg)).await.is_ok(),
            Conn::Stream { io, .. } => {
                io.write_all(msg.as_bytes()).await.is_ok() && io.flush().await.is_ok()
            }
        }
    }

    /// The next SIP message (pings and keepalive CRLFs skipped); `None`
    /// when the connection closed or failed.
    async fn next_message(&mut self) -> Option<String> {
        match self {
            Conn::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
                    Ok(Message::Binary(b)) => {
                        return Some(String::from_utf8_lossy(&b).into_owned());
                    }
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
            Conn::Stream { io, buf } => loop {
                // The proxy's own stream framing (RFC 3261 §18.3).
                match frame_stream(buf, &ParseLimits::default()) {
                    Frame::Message(len) => {
                        let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
                        buf.drain(..len);
                        return Some(msg);
                    }
                    Frame::KeepAlive(len) => {
                        buf.drain(..len);
                        continue;
                    }
                    Frame::Invalid(_) => return None,
                    Frame::Incomplete => {}
                }
                let mut chunk = [0u8; 4096];
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            },
        }
    }
}

struct Opts {
    url: String,
    addr: SocketAddr,
    secure: bool,
    /// `ws`, `tls` or `tcp`: how the clients speak, and what their Via and
    /// Contact say.
    transport: &'static str,
    count: usize,
    from: Vec<Ipv4Addr>,
    ca: Option<String>,
    domain: String,
    parallel: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: ws_clients URL COUNT [options]")?;
    let count = args.next().and_then(|c| c.parse().ok()).ok_or("COUNT: a number")?;
    let (scheme, rest) = url.split_once("://").ok_or("URL: SCHEME://IP:PORT/")?;
    let (secure, transport) = match scheme {
        "ws" => (false, "ws"),
        "wss" => (true, "ws"),
        "tls" => (true, "tls"),
        "tcp" => (false, "tcp"),
        _ => return Err("URL: ws://, wss://, tls:// or tcp://IP:PORT/".into()),
    };
    let addr = rest.trim_end_matches('/').parse().map_err(|_| "URL: an IP address and port")?;
    let mut o = Opts {
        url: url.clone(),
        addr,
        secure,
        transport,
        count,
        from: vec![Ipv4Addr::LOCALHOST],
        ca: None,
        domain: "example.com".into(),
        parallel: 256,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--from" => {
                let (a, b) = value.split_once('-').unwrap_or((&value, &value));
                let (a, b): (Ipv4Addr, Ipv4Addr) =
                    (a.parse().map_err(|_| "--from")?, b.parse().map_err(|_| "--from")?);
                o.from = (u32::from(a)..=u32::from(b)).map(Ipv4Addr::from).collect();
            }
            "--ca" => o.ca = Some(value),
            "--domain" => o.domain = value,
            "--parallel" => o.parallel = value.parse().map_err(|_| "--parallel")?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn tls_connector(ca: Option<&str>) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem =
        std::fs::read(ca.ok_or("wss:// and tls:// need --ca FILE")?).map_err(|e| e.to_string())?;
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn connect(
    o: &Opts,
    tls: Option<&tokio_rustls::TlsConnector>,
    i: usize,
) -> Result<Conn, String> {
    let from = o.from[i % o.from.len()];
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::new(IpAddr::V4(from), 0)).map_err(|e| e.to_string())?;
    let tcp = sock.connect(o.addr).await.map_err(|e| format!("connect: {e}"))?;
    let io: Box<dyn Io> = match tls {
        Some(c) => {
            let name = rustls_pki_types::ServerName::IpAddress(o.addr.ip().into());
            Box::new(c.connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?)
        }
        None => Box::new(tcp),
    };
    if o.transport != "ws" {
        return Ok(Conn::Stream { io, buf: Vec::new() });
    }
    let mut req = o.url.as_str().into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let (ws, _) =
        tokio_tungstenite::client_async(req, io).await.map_err(|e| format!("upgrade: {e}"))?;
    Ok(Conn::Ws(Box::new(ws)))
}

/// Sends `msg` and returns the first final reply (`None` after 10 s
/// without a message, or when the connection closed).
async fn transact(conn: &mut Conn, msg: String) -> Option<String> {
    if !conn.send(msg).await {
        return None;
    }
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), conn.next_message()).await.ok()??;
        if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
            return Some(m);
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

struct Client {
    conn: Conn,
    /// `ws`, `tls` or `tcp`.
    transport: &'static str,
    user: String,
    host: String,
    cseq: u32,
}

impl Client {
    fn via(&self, tag: &str) -> String {
        format!(
            "SIP/2.0/{} {}.invalid;branch=z9hG4bK{}{}",
            self.transport.to_ascii_uppercase(),
            self.host,
            self.user,
            tag
        )
    }

    async fn register(&mut self, domain: &str) -> bool {
        self.cseq += 1;
        let msg = format!(
            "REGISTER sip:{domain} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             To: <sip:{u}@{domain}>\r\nFrom: <sip:{u}@{domain}>;tag=r{u}\r\nCall-ID: reg-{u}\r\n\
             CSeq: {c} REGISTER\r\nContact: <sip:{u}@{h}.invalid;transport={t}>;expires=3600\r\n\
             Content-Length: 0\r\n\r\n",
            self.via(&format!("r{}", self.cseq)),
            u = self.user,
            h = self.host,
            c = self.cseq,
            t = self.transport,
        );
        transact(&mut self.conn, msg).await.is_some_and(|r| r.starts_with("SIP/2.0 200"))
    }

    /// One call to `service`: INVITE, ACK to the 200, BYE.
    async fn call(&mut self, domain: &str, n: usize) -> bool {
        // Unique across runs: a SIPp UAS serving several runs keeps the
        // Call-IDs it has seen, and would not answer one again.
        let call_id = format!("call-{}-{}-{n}", std::process::id(), self.user);
        let contact =
            format!("<sip:{}@{}.invalid;transport={}>", self.user, self.host, self.transport);
        let invite = format!(
            "INVITE sip:service@{domain} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             To: <sip:service@{domain}>\r\nFrom: <sip:{u}@{domain}>;tag=c{n}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n",
            self.via(&format!("i{n}")),
            u = self.user,
        );
        let Some(ok) = transact(&mut self.conn, invite).await else { return false };
        if !ok.starts_with("SIP/2.0 200") {
            return false;
        }
        let to = header(&ok, "To").first().map(|s| s.to_string()).unwrap_or_default();
        let target = header(&ok, "Contact")
            .first()
            .map(|c| c.trim_matches(['<', '>']).to_owned())
            .unwrap_or_default();
        let mut routes: Vec<&str> =
            header(&ok, "Record-Route").into_iter().flat_map(|v| v.split(',')).collect();
        routes.reverse();
        let route: String = routes.iter().map(|r| format!("Route: {}\r\n", r.trim())).collect();
        let (via_a, via_b) = (self.via(&format!("a{n}")), self.via(&format!("b{n}")));
        let user = &self.user;
        let in_dialog = |method: &str, cseq: u32, via: &str| {
            format!(
                "{method} {target} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n{route}\
                 To: {to}\r\nFrom: <sip:{u}@{domain}>;tag=c{n}\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
                via,
                u = user,
            )
        };
        let ack = in_dialog("ACK", 1, &via_a);
        let bye = in_dialog("BYE", 2, &via_b);
        if !self.conn.send(ack).await {
            return false;
        }
        transact(&mut self.conn, bye).await.is_some_and(|r| r.starts_with("SIP/2.0 200"))
    }
}

#[tokio::main]
async fn main() {
    let o = match parse_args() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("ws_clients: {e}");
            std::process::exit(2);
        }
    };
    let tls = if o.secure {
        match tls_connector(o.ca.as_deref()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                eprintln!("ws_clients: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(o.parallel));
    let mut joins = Vec::with_capacity(o.count);
    for i in 0..o.count {
        let (o, tls, gate) = (Arc::clone(&o), tls.clone(), Arc::clone(&gate));
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            let conn =
                connect(&o, tls.as_deref(), i).await.map_err(|e| eprintln!("{i}: {e}")).ok()?;
            let transport = o.transport;
            let mut c =
                Client { conn, transport, user: format!("u{i}"), host: format!("h{i}"), cseq: 0 };
            c.register(&o.domain).await.then_some(c)
        }));
    }
    let mut clients = Vec::with_capacity(o.count);
    for j in joins {
        if let Ok(Some(c)) = j.await {
            clients.push(Arc::new(Mutex::new(c)));
        }
    }
    println!("registered {} {:.3}", clients.len(), started.elapsed().as_secs_f64());
    // Idle connections keep answering pings (and notice a close).
    let mut idle = spawn_idle(&clients);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        idle.iter().for_each(tokio::task::JoinHandle::abort);
        let t = Instant::now();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("refresh") => {
                let ok = run_all(
                    &clients,
                    clients.len(),
                    |c, d| Box::pin(async move { c.register(&d).await }),
                    &o.domain,
                )
                .await;
                println!("refreshed {ok} {:.3}", t.elapsed().as_secs_f64());
            }
            Some("call") => {
                let n: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
                let take = clients.len().min(n);
                let ok = run_all(
                    &clients,
                    take,
                    |c, d| Box::pin(async move { c.call(&d, 1).await }),
                    &o.domain,
                )
                .await;
                println!("called {take} {} {:.3}", take - ok, t.elapsed().as_secs_f64());
            }
            _ => println!("? refresh | call N"),
        }
        idle = spawn_idle(&clients);
    }
}

type Job = for<'a> fn(
    &'a mut Client,
    String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

/// Runs `job` on the first `take` clients at once; how many succeeded.
async fn run_all(clients: &[Arc<Mutex<Client>>], take: usize, job: Job, domain: &str) -> usize {
    let mut joins = Vec::with_capacity(take);
    for c in clients.iter().take(take) {
        let (c, d) = (Arc::clone(c), domain.to_owned());
        joins.push(tokio::spawn(async move {
            let mut c = c.lock().await;
            job(&mut c, d).await
        }));
    }
    let mut ok = 0;
    for j in joins {
        ok += usize::from(matches!(j.await, Ok(true)));
    }
    ok
}

/// A reader per idle client, so pings get their pongs (and keepalive
/// CRLFs are read).
fn spawn_idle(clients: &[Arc<Mutex<Client>>]) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .iter()
        .map(|c| {
            let c = Arc::clone(c);
            tokio::spawn(async move {
                let mut c = c.lock().await;
                while c.conn.next_message().await.is_some() {}
            })
        })
        .collect()
}
