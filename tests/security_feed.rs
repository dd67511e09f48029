//! A blocklist fetched over HTTPS (`blocklist feed from "https://…"
//! refresh 1s key "…"`) from a local HTTPS server on loopback (rustls, a
//! certificate made by rcgen, trusted through `module security { feed_ca
//! }`): the proxy sends the key, an address the feed lists is dropped
//! before parsing while another source is served, and a change to the
//! feed takes effect at the next refresh, with no reload. Bounded: about
//! 5 s.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use support::{free_udp_port, sipc_run, test_pki, wait_started};

const KEY: &str = "s3cret-feed-key";

/// What the feed server saw and serves.
#[derive(Default)]
struct Feed {
    body: String,
    authorizations: Vec<String>,
}

/// An HTTPS server on loopback answering every GET with the feed's body
/// (401 without the key).
fn feed_server(cert: &str, key: &str, feed: Arc<Mutex<Feed>>) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut auth = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Authorization:") {
                        auth = v.trim().to_owned();
                    }
                }
                let (status, body) = {
                    let mut f = feed.lock().unwrap();
                    f.authorizations.push(auth.clone());
                    if auth == format!("Bearer {KEY}") {
                        ("200 OK", f.body.clone())
                    } else {
                        ("401 Unauthorized", String::new())
                    }
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    addr
}

fn options(from: &str, proxy: SocketAddr, n: u32) -> Option<u16> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-feed-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:p@{me}>;tag=f{n}\r\nTo: <sip:{proxy}>\r\n\
         Call-ID: feed-{n}-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        std::process::id()
    );
    s.send_to(msg.as_bytes(), proxy).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = s.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..len]).split(' ').nth(1)?.parse().ok()
}

#[test]
fn a_blocklist_feed_is_fetched_with_its_key_and_followed_without_a_reload() {
    let dir = std::env::temp_dir().join(format!("sipc-feed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = test_pki();
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    let feed =
        Arc::new(Mutex::new(Feed { body: "# a feed\n192.0.2.1\n".into(), ..Feed::default() }));
    let server = feed_server(&cert, &key, Arc::clone(&feed));
    let port = free_udp_port();
    let file = dir.join("feed.route");
    std::fs::write(
        &file,
        format!(
            "listen udp 127.0.0.1:{port};\nmodule security {{\n    feed_ca = \"ca.pem\";\n}}\n\
             blocklist feed from \"https://127.0.0.1:{}/banned\" refresh 1s key \"{KEY}\";\n\
             request_route {{\n    reply(200, \"OK\");\n}}\n",
            server.port()
        ),
    )
    .unwrap();
    let control = dir.join("control.sock");
    let _proxy =
        sipc_run(&file, &["--control", control.to_str().unwrap()], Some(&dir.join("sipc.log")));
    wait_started(&control);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // Fetched, with the key; 127.0.0.2 is not listed yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while feed.lock().unwrap().authorizations.is_empty() {
        assert!(Instant::now() < deadline, "the feed was never fetched");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(feed.lock().unwrap().authorizations[0], format!("Bearer {KEY}"));
    assert_eq!(options("127.0.0.2", proxy, 1), Some(200));

    // The feed lists 127.0.0.2: dropped from the next refresh on.
    feed.lock().unwrap().body = "192.0.2.1\n127.0.0.2\n".into();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 2;
    while options("127.0.0.2", proxy, n).is_some() {
        assert!(Instant::now() < deadline, "the feed's new entry was never applied");
        n += 1;
    }
    assert_eq!(options("127.0.0.3", proxy, 100), Some(200), "others are served");

    // Taken off the feed: answered again.
    feed.lock().unwrap().body = "192.0.2.1\n".into();
    let deadline = Instant::now() + Duration::from_secs(5);
    while options("127.0.0.2", proxy, n) != Some(200) {
        assert!(Instant::now() < deadline, "the removed entry stayed");
        n += 1;
    }
    let log = std::fs::read_to_string(dir.join("sipc.log")).unwrap_or_default();
    assert!(!log.contains(KEY), "the key is never logged: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}
