//! `sipc run` serving SIP over TLS with the certificate named in the route
//! file (`module tls { … }`), certificates made by rcgen in the test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use rustls_pki_types::ServerName;
use support::{test_pki, tls_client_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipc_run_serves_tls_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("sipc-run-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = test_pki();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let port = 20000 + ((std::process::id() + 7919) % 20000) as u16;
    let route = dir.join("tls.route");
    std::fs::write(
        &route,
        format!(
            "listen tls 127.0.0.1:{port};\nmodule tls {{\n    certificate = \"cert.pem\";\n    \
             private_key = \"key.pem\";\n}}\nrequest_route {{\n    reply(200, \"over tls\");\n}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["run", route.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let connector = tokio_rustls::TlsConnector::from(tls_client_config(&ca));
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < Duration::from_secs(20) && answer.is_empty() {
        let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let local = tcp.local_addr().unwrap();
        let name = ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into());
        let mut tls =
            connector.connect(name, tcp).await.expect("handshake with the configured cert");
        let req = format!(
            "OPTIONS sip:x@127.0.0.1:{port};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKt\r\n\
             Max-Forwards: 70\r\nTo: <sip:x@127.0.0.1>\r\nFrom: <sip:y@127.0.0.1>;tag=1\r\n\
             Call-ID: tls-run\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await {
            answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(answer.starts_with("SIP/2.0 200 over tls"), "{answer:?}");
}
