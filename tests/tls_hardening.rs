//! `sipc run` with `module tls` hardened: the minimum version, the cipher
//! suites, client certificates (mutual TLS) and a certificate renewed on
//! disk while it serves. Each test starts its own proxy on a free loopback
//! port with certificates made by rcgen, and talks to it with rustls.
//! Bounded: a few seconds each.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::Reaper;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A CA that signs server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    /// A leaf for 127.0.0.1: `(certificate PEM, key PEM)`.
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

struct Proxy {
    dir: PathBuf,
    port: u16,
    _child: Reaper,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sipc run` with `listen tls` and `module tls { … extra }`, serving
/// `(cert, key)`; the CA is in `ca.pem` beside it.
fn serve(name: &str, ca: &Ca, leaf: &(String, String), extra: &str) -> Proxy {
    let dir = std::env::temp_dir().join(format!("sipc-tlsh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &leaf.0).unwrap();
    std::fs::write(dir.join("key.pem"), &leaf.1).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    // A port found free can be taken again before sipc binds it (by another
    // test's proxy: the tests run in parallel); then this sipc exits, and
    // the port answers for the other one. Only a listening sipc of ours
    // counts, and a taken port is tried again with another.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let route = dir.join("tls.route");
        std::fs::write(
            &route,
            format!(
                "listen tls 127.0.0.1:{port};\nmodule tls {{\n    certificate = \"cert.pem\";\n    \
                 private_key = \"key.pem\";\n    ca_list = \"ca.pem\";\n{extra}}}\n\
                 request_route {{\n    reply(200, \"over tls\");\n}}\n"
            ),
        )
        .unwrap();
        let mut child = support::sipc_run(&route, &[], Some(&dir.join("sipc.log")));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.0.try_wait().unwrap().is_some() {
                break; // exited: the port was taken
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Still running a moment later: the listener is ours (a
                // sipc that cannot bind exits at once).
                std::thread::sleep(Duration::from_millis(200));
                if child.0.try_wait().unwrap().is_none() {
                    return Proxy { dir, port, _child: child };
                }
                break;
            }
            assert!(Instant::now() < deadline, "sipc did not listen: {}", log(&dir));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("sipc did not start: {}", log(&dir))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sipc.log")).unwrap_or_default()
}

fn roots(ca: &Ca) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// A client: TLS `versions`, trusting `ca`, with a client certificate
/// when given.
fn client(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: Option<&(String, String)>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca));
    Arc::new(match cert {
        None => b.with_no_client_auth(),
        Some((c, k)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(c.as_bytes()).map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

/// What a connection learned: the reply's status line, the protocol
/// version, the cipher suite and the server's certificate.
#[derive(Debug)]
struct Talk {
    status: String,
    version: String,
    suite: String,
    server_cert: Vec<u8>,
}

async fn talk(port: u16, config: Arc<rustls::ClientConfig>) -> Result<Talk, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into());
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (version, suite, server_cert) = {
        let (_, conn) = tls.get_ref();
        (
            format!("{:?}", conn.protocol_version().unwrap()),
            format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite()),
            conn.peer_certificates().unwrap()[0].to_vec(),
        )
    };
    let req = format!(
        "OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bK-tlsh\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tlsh-{port}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .map_err(|_| "no reply".to_string())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed without a reply".into());
    }
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(Talk { status: text.lines().next().unwrap_or("").to_owned(), version, suite, server_cert })
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_only_refuses_older_clients() {
    let ca = Ca::new();
    let leaf = ca.leaf("sbc.test");
    let p = serve("v13", &ca, &leaf, "    min_version = \"1.3\";\n");
    let old = talk(p.port, client(&ca, &[&rustls::version::TLS12], None)).await;
    assert!(old.is_err(), "a TLS 1.2 client was served: {old:?}");
    let new = talk(p.port, client(&ca, rustls::ALL_VERSIONS, None)).await.unwrap();
    assert_eq!(new.version, "TLSv1_3");
    assert_eq!(new.status, "SIP/2.0 200 over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_cipher_suites_are_accepted() {
    let ca = Ca::new();
    let leaf = ca.leaf("sbc.test");
    let p = serve(
        "suites",
        &ca,
        &leaf,
        "    cipher_suites = \"TLS13_CHACHA20_POLY1305_SHA256 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\";\n",
    );
    let t = talk(p.port, client(&ca, rustls::ALL_VERSIONS, None)).await.unwrap();
    assert_eq!(t.suite, "TLS13_CHACHA20_POLY1305_SHA256");
    // A client offering only AES suites finds nothing in common.
    let mut aes = rustls::crypto::ring::default_provider();
    aes.cipher_suites.retain(|s| format!("{:?}", s.suite()).contains("AES"));
    let aes_only = rustls::ClientConfig::builder_with_provider(Arc::new(aes))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&ca))
        .with_no_client_auth();
    assert!(talk(p.port, Arc::new(aes_only)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let ca = Ca::new();
    let leaf = ca.leaf("sbc.test");
    let p = serve("mtls", &ca, &leaf, "    require_certificate = true;\n");
    let anonymous = talk(p.port, client(&ca, rustls::ALL_VERSIONS, None)).await;
    assert!(anonymous.is_err(), "served without a client certificate: {anonymous:?}");
    let stranger_ca = Ca::new();
    let stranger = stranger_ca.leaf("trunk.other");
    let other = talk(p.port, client(&ca, rustls::ALL_VERSIONS, Some(&stranger))).await;
    assert!(other.is_err(), "served a certificate from another CA: {other:?}");
    let trunk = ca.leaf("trunk.test");
    let t = talk(p.port, client(&ca, rustls::ALL_VERSIONS, Some(&trunk))).await.unwrap();
    assert_eq!(t.status, "SIP/2.0 200 over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_serves_new_connections_without_a_restart() {
    let ca = Ca::new();
    let first = ca.leaf("sbc.test");
    let p = serve("renew", &ca, &first, "");
    // A fresh client each time: a resumed session would not show the
    // server's certificate again.
    let cfg = || client(&ca, rustls::ALL_VERSIONS, None);
    assert_eq!(talk(p.port, cfg()).await.unwrap().server_cert, der(&first.0));
    // A broken file is ignored: the old certificate keeps serving.
    std::fs::write(p.dir.join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(talk(p.port, cfg()).await.unwrap().server_cert, der(&first.0));
    // The renewed pair is served from the next check on.
    let second = ca.leaf("sbc.test");
    std::fs::write(p.dir.join("key.pem"), &second.1).unwrap();
    std::fs::write(p.dir.join("cert.pem"), &second.0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = talk(p.port, cfg()).await.unwrap();
        if t.server_cert == der(&second.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the renewed certificate was not served");
    }
    assert!(
        log(&p.dir).contains("TLS certificate not reloaded, the old one serves"),
        "the broken file is reported: {}",
        log(&p.dir)
    );
}
