//! SIP over TLS through the proxy (RFC 3261 §26.2), with certificates made
//! in the test by rcgen: a private CA signs a leaf for 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use sipc::proxy::server::ListenSpec;
use sipc::proxy::tls::TlsMaterial;
use sipc::proxy::{Decision, RequestContext, Router, Transport};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    material: TlsMaterial,
    ca_pem: String,
}

fn pki() -> Pki {
    let (cert, key, ca) = test_pki();
    Pki {
        material: TlsMaterial {
            cert_chain_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
            ca_pem: Some(ca.clone().into_bytes()),
            ..TlsMaterial::default()
        },
        ca_pem: ca,
    }
}

/// Forwards `tls…` users over TLS to `tls_target`, everything else to `udp_target`.
struct TlsRouter {
    udp_target: Option<SocketAddr>,
    tls_target: Option<SocketAddr>,
}

impl Router for TlsRouter {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        let tls = ctx.msg.request_uri().is_some_and(|u| u.starts_with("sip:tls"));
        ctx.record_route = true;
        ctx.destination = match (tls, self.tls_target, self.udp_target) {
            (true, Some(t), _) => Some(format!("sip:{t};transport=tls")),
            (false, _, Some(u)) => Some(format!("sip:{u}")),
            _ => None,
        };
        Decision::Forward
    }
}

async fn tls_proxy(pki: &Pki, router: TlsRouter) -> sipc::proxy::server::ServerHandle {
    let material = pki.material.clone();
    proxy_with(router, move |c| {
        c.listens
            .push(ListenSpec { transport: Transport::Tls, addr: "127.0.0.1:0".parse().unwrap() });
        c.tls = Some(material);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_through_the_proxy_to_udp() {
    let pki = pki();
    let uas = UdpUa::bind().await;
    let p = tls_proxy(&pki, TlsRouter { udp_target: Some(uas.addr), tls_target: None }).await;
    let ptls = p.addr(Transport::Tls).unwrap();

    let connector = tokio_rustls::TlsConnector::from(tls_client_config(&pki.ca_pem));
    let tcp = TcpStream::connect(ptls).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = connector.connect(ServerName::IpAddress(ptls.ip().into()), tcp).await.unwrap();
    let via = format!("SIP/2.0/TLS {local};branch=z9hG4bKtls1");
    tls.write_all(request("INVITE", "sip:bob@example.com", &via, "tls-1", "").as_bytes())
        .await
        .unwrap();

    let (req, from) = uas.recv().await.expect("INVITE relayed from TLS to UDP");
    let rr: Vec<_> = req.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    let px = p.addr(Transport::Udp).unwrap();
    assert_eq!(rr, [format!("sip:{px};lr"), format!("sip:{ptls};transport=tls;lr")], "double RR");
    uas.send(from, &response_to(&req, 200, "OK")).await;

    let mut buf = BytesMut::new();
    let resp = read_tls(&mut tls, &mut buf).await.expect("200 back over the TLS connection");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().count(), 1);
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_through_the_proxy_to_a_tls_server() {
    let pki = pki();
    let uac = UdpUa::bind().await;
    // A TLS UAS with the same leaf certificate.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uas_addr = listener.local_addr().unwrap();
    let acceptor = sipc::proxy::tls::acceptor(&pki.material).unwrap();
    let p = tls_proxy(&pki, TlsRouter { udp_target: None, tls_target: Some(uas_addr) }).await;
    let px = p.addr(Transport::Udp).unwrap();

    uac.send(px, &request("OPTIONS", "sip:tls@example.com", &uac.via("u2t"), "u2t-1", "")).await;
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut tls = acceptor.accept(tcp).await.expect("proxy verified our certificate and connected");
    let mut buf = BytesMut::new();
    let req = read_tls(&mut tls, &mut buf).await.expect("OPTIONS over TLS");
    let top = req.via().unwrap().unwrap();
    assert_eq!((top.transport, top.port), ("TLS", Some(p.addr(Transport::Tls).unwrap().port())));
    tls.write_all(response_to(&req, 200, "OK").as_bytes()).await.unwrap();
    let (resp, _) = uac.recv().await.expect("200 relayed from TLS to UDP");
    assert_eq!(resp.status(), Some(200));
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listen_without_a_certificate_is_refused() {
    let err = sipc::proxy::server::start(
        sipc::proxy::server::ServerConfig::new(vec![ListenSpec {
            transport: Transport::Tls,
            addr: "127.0.0.1:0".parse().unwrap(),
        }]),
        Arc::new(TlsRouter { udp_target: None, tls_target: None }),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let bad = TlsMaterial {
        cert_chain_pem: b"junk".to_vec(),
        key_pem: b"junk".to_vec(),
        ..TlsMaterial::default()
    };
    assert!(sipc::proxy::tls::acceptor(&bad).is_err());
    let _ = PrivateKeyDer::from_pem_slice(pki().material.key_pem.as_slice()).unwrap();
}

/// Reads one framed message from any async stream.
async fn read_tls<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
) -> Option<sipc::sip::Message> {
    use tokio::io::AsyncReadExt;
    let limits = sipc::sip::ParseLimits::default();
    loop {
        match sipc::sip::frame_stream(buf, &limits) {
            sipc::sip::Frame::Message(len) => {
                return Some(sipc::sip::Message::parse(buf.split_to(len).freeze()).unwrap());
            }
            sipc::sip::Frame::KeepAlive(len) => {
                let _ = buf.split_to(len);
                continue;
            }
            sipc::sip::Frame::Invalid(e) => panic!("bad framing: {e}"),
            sipc::sip::Frame::Incomplete => {}
        }
        let n = tokio::time::timeout(WAIT, s.read_buf(buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
    }
}
