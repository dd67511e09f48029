//! The stateless proxy core end to end: real SIP over loopback sockets,
//! a UAC and a UAS from tests/support, a Rust router steering the core.

mod support;

use std::path::Path;

use sipc::proxy::Transport;
use sipc::sip::HeaderName;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_forwarded_and_response_routed_back() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let p = proxy(TestRouter { target: Some(uas.addr), tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();

    uac.send(px, &request("INVITE", "sip:bob@example.com", &uac.via("c1"), "call-1", "")).await;
    let (req, from) = uas.recv().await.expect("UAS got the INVITE");
    assert_eq!(from, px);
    assert_eq!(req.request_uri_str(), Some("sip:bob@example.com"));
    assert_eq!(req.max_forwards().unwrap(), Some(69));
    let vias: Vec<_> = req.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert!(vias[0].has_rfc3261_branch());
    assert_eq!(vias[0].host.to_string(), "127.0.0.1");
    assert_eq!(vias[0].port, Some(px.port()));
    assert_eq!(vias[1].received(), Some("127.0.0.1"), "received added (RFC 3581)");
    assert_eq!(vias[1].rport(), Some(Some(uac.addr.port())));
    assert_eq!(req.header_count(HeaderName::RecordRoute), 0);

    uas.send(from, &response_to(&req, 180, "Ringing")).await;
    uas.send(from, &response_to(&req, 200, "OK")).await;
    for code in [180, 200] {
        let (resp, _) = uac.recv().await.expect("UAC got the response");
        assert_eq!(resp.status(), Some(code));
        assert_eq!(resp.vias().count(), 1, "the proxy's Via is gone");
        assert_eq!(resp.to().unwrap().unwrap().tag(), Some("uas1"));
    }

    // A retransmission is forwarded with the same branch (RFC 3261 §16.11).
    uac.send(px, &request("INVITE", "sip:bob@example.com", &uac.via("c1"), "call-1", "")).await;
    let (again, _) = uas.recv().await.unwrap();
    assert_eq!(again.via().unwrap().unwrap().branch(), req.via().unwrap().unwrap().branch());
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_forwards_zero_gets_483_and_loops_get_482() {
    let uac = UdpUa::bind().await;
    let p = proxy(TestRouter { target: None, tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();
    let req = request("OPTIONS", "sip:bob@example.com", &uac.via("m0"), "mf0", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    uac.send(px, &req).await;
    let (resp, _) = uac.recv().await.unwrap();
    assert_eq!((resp.status(), resp.reason()), (Some(483), Some("Too Many Hops")));
    assert!(resp.to().unwrap().unwrap().tag().is_some());

    // The R-URI names the proxy itself and nothing changes it: the request
    // comes back with the proxy's own Via and the same loop hash.
    let ruri = format!("sip:bob@{px}");
    uac.send(px, &request("OPTIONS", &ruri, &uac.via("lp"), "loop-1", "")).await;
    let (resp, _) = uac.recv().await.expect("an answer to the looping request");
    assert_eq!(resp.status(), Some(482));
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_replies_and_drops() {
    let uac = UdpUa::bind().await;
    let p = proxy(TestRouter { target: None, tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();
    uac.send(px, &request("INVITE", "sip:reply404@example.com", &uac.via("r4"), "r404", "")).await;
    let (resp, _) = uac.recv().await.unwrap();
    assert_eq!((resp.status(), resp.reason()), (Some(404), Some("Not Here")));
    uac.send(px, &request("INVITE", "sip:drop@example.com", &uac.via("dr"), "drop", "")).await;
    assert!(uac.recv_within(std::time::Duration::from_millis(300)).await.is_none());
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_and_strict_routing() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let p = proxy(TestRouter { target: None, tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();
    // Loose: our Route entry is consumed, the next one is followed.
    let routes = format!("Route: <sip:{px};lr>, <sip:{};lr>\r\n", uas.addr);
    uac.send(px, &request("BYE", "sip:bob@192.0.2.50", &uac.via("lr"), "lr-1", &routes)).await;
    let (req, _) = uas.recv().await.expect("BYE followed the route set");
    assert_eq!(req.request_uri_str(), Some("sip:bob@192.0.2.50"));
    let left: Vec<_> = req.routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    assert_eq!(left, [format!("sip:{};lr", uas.addr)]);

    // Strict next hop (no lr): it becomes the R-URI; the old R-URI moves to the end.
    let routes = format!("Route: <sip:{}>\r\n", uas.addr);
    uac.send(px, &request("BYE", "sip:bob@192.0.2.50", &uac.via("sr"), "sr-1", &routes)).await;
    let (req, _) = uas.recv().await.expect("BYE sent to the strict router");
    assert_eq!(req.request_uri_str(), Some(format!("sip:{}", uas.addr).as_str()));
    let left: Vec<_> = req.routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    assert_eq!(left, ["sip:bob@192.0.2.50"]);
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_route_on_udp_and_udp_to_tcp() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let tcp_uas = TcpUa::bind().await;
    let p = proxy(TestRouter { target: Some(uas.addr), tcp_target: Some(tcp_uas.addr) }).await;
    let (px, pt) = (p.addr(Transport::Udp).unwrap(), p.addr(Transport::Tcp).unwrap());

    uac.send(px, &request("INVITE", "sip:rr@example.com", &uac.via("rr1"), "rr-1", "")).await;
    let (req, _) = uas.recv().await.unwrap();
    let rr: Vec<_> = req.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    assert_eq!(rr, [format!("sip:{px};lr")]);

    uac.send(px, &request("INVITE", "sip:rrtcp@example.com", &uac.via("rr2"), "rr-2", "")).await;
    let req = tcp_uas.recv().await.expect("INVITE arrived over TCP");
    let rr: Vec<_> = req.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
    assert_eq!(rr, [format!("sip:{pt};transport=tcp;lr"), format!("sip:{px};lr")], "double RR");
    let top = req.via().unwrap().unwrap();
    assert_eq!((top.transport, top.port), ("TCP", Some(pt.port())));

    // The UAS answers on the same connection; the proxy routes it back over UDP.
    tcp_uas.send(&response_to(&req, 200, "OK")).await;
    let (resp, _) = uac.recv().await.expect("200 relayed from TCP to UDP");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().count(), 1);
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_naming_the_fault() {
    let uac = UdpUa::bind().await;
    let p = proxy(TestRouter { target: None, tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();
    let req = request("OPTIONS", "sip:bob@example.com", &uac.via("b1"), "bad-1", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 300");
    uac.send(px, &req).await;
    let (resp, _) = uac.recv().await.unwrap();
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.reason(), Some("Bad Request (malformed Max-Forwards header)"));
    let req = request("OPTIONS", "sip:bob@example.com", &uac.via("b2"), "bad-2", "")
        .replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    uac.send(px, &req).await;
    assert_eq!(uac.recv().await.unwrap().0.status(), Some(505));
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_every_invalid_message_and_still_answers() {
    let uac = UdpUa::bind().await;
    let p = proxy(TestRouter { target: None, tcp_target: None }).await;
    let px = p.addr(Transport::Udp).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dat") {
            uac.send_bytes(px, &std::fs::read(&path).unwrap()).await;
            n += 1;
        }
    }
    for junk in
        [&b""[..], b"\r\n\r\n", b"\x00\xff\xfe garbage", b"INVITE", b"SIP/2.0 200 OK\r\n\r\n"]
    {
        uac.send_bytes(px, junk).await;
    }
    assert_eq!(n, 50);
    // Drain whatever the torture messages produced, then check it still serves.
    while uac.recv_within(std::time::Duration::from_millis(300)).await.is_some() {}
    uac.send(px, &request("OPTIONS", "sip:reply404@example.com", &uac.via("alive"), "alive", ""))
        .await;
    let (resp, _) = uac.recv().await.expect("proxy still answers");
    assert_eq!(resp.status(), Some(404));
    assert!(p.core.stats.dropped_malformed.load(std::sync::atomic::Ordering::Relaxed) > 10);
    p.stop(std::time::Duration::from_secs(1)).await;
}

/// A proxy with one UDP receive thread, answering 503 to requests that
/// waited longer than `max_wait` in its socket.
async fn one_udp_worker(max_wait: std::time::Duration) -> sipc::proxy::server::ServerHandle {
    proxy_with(TestRouter { target: None, tcp_target: None }, |c| {
        c.workers = 1;
        c.udp_max_wait = max_wait;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_503_with_retry_after() {
    let uac = UdpUa::bind().await;
    // Each "slow" request takes 50 ms to route: the third waits 100 ms.
    let p = one_udp_worker(std::time::Duration::from_millis(60)).await;
    let px = p.addr(Transport::Udp).unwrap();
    for i in 0..20 {
        uac.send(
            px,
            &request(
                "OPTIONS",
                "sip:slow@example.com",
                &uac.via(&format!("s{i}")),
                &format!("slow-{i}"),
                "",
            ),
        )
        .await;
    }
    let (mut slow, mut busy) = (0, 0);
    while let Some((resp, _)) = uac.recv_within(std::time::Duration::from_secs(2)).await {
        match resp.status() {
            Some(404) => slow += 1,
            Some(503) => {
                assert_eq!(resp.header_value(sipc::sip::HeaderName::Other), Some("5"));
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(slow + busy, 20, "every request answered");
    assert!(busy >= 10, "the queue held at most a few: {slow} routed, {busy} refused");
    assert!(slow >= 1);
    assert_eq!(p.core.stats.dropped_overload.load(std::sync::atomic::Ordering::Relaxed), busy);
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_over_a_socket_group_and_a_prompt_stop() {
    let uas = UdpUa::bind().await;
    let p = proxy_with(TestRouter { target: Some(uas.addr), tcp_target: None }, |c| c.workers = 4)
        .await;
    let px = p.addr(Transport::Udp).unwrap();
    // Sixteen callers: the kernel spreads them over the four sockets.
    let mut uacs = Vec::new();
    for _ in 0..16 {
        uacs.push(UdpUa::bind().await);
    }
    for (i, uac) in uacs.iter().enumerate() {
        let via = uac.via(&format!("g{i}"));
        uac.send(px, &request("OPTIONS", "sip:bob@example.com", &via, &format!("g-{i}"), "")).await;
    }
    let mut forwarded = 0;
    while let Some((req, from)) = uas.recv_within(std::time::Duration::from_secs(2)).await {
        forwarded += 1;
        uas.send(from, &response_to(&req, 200, "OK")).await;
        if forwarded == 16 {
            break;
        }
    }
    assert_eq!(forwarded, 16);
    for uac in &uacs {
        let (resp, _) = uac.recv_within(std::time::Duration::from_secs(2)).await.expect("200");
        assert_eq!(resp.status(), Some(200));
    }
    let started = std::time::Instant::now();
    p.stop(std::time::Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "the receive threads stop when asked, not at the grace deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_one_message_leaves_the_socket_serving() {
    let uac = UdpUa::bind().await;
    // One worker: the panicking message and the next share the thread. The
    // panic hook may take a while (a backtrace under RUST_BACKTRACE): no
    // overload answer for the message queued behind it.
    let p = one_udp_worker(std::time::Duration::from_secs(30)).await;
    let px = p.addr(Transport::Udp).unwrap();
    uac.send(px, &request("OPTIONS", "sip:panic@example.com", &uac.via("p1"), "p-1", "")).await;
    uac.send(px, &request("OPTIONS", "sip:reply404@example.com", &uac.via("p2"), "p-2", "")).await;
    let (resp, _) = uac.recv().await.expect("the next message is still answered");
    assert_eq!((resp.status(), resp.call_id().unwrap()), (Some(404), Some("p-2")));
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_udp_request_and_response() {
    let (uac, uas) = (UdpUa::bind_at("[::1]:0").await, UdpUa::bind_at("[::1]:0").await);
    let p = proxy_with(TestRouter { target: Some(uas.addr), tcp_target: None }, |c| {
        c.listens.push(sipc::proxy::server::ListenSpec {
            transport: Transport::Udp,
            addr: "[::1]:0".parse().unwrap(),
        });
    })
    .await;
    let px = p.bound.iter().find(|(t, a)| *t == Transport::Udp && a.is_ipv6()).unwrap().1;
    uac.send(px, &request("OPTIONS", "sip:bob@example.com", &uac.via("v6"), "v6-1", "")).await;
    let (req, from) = uas.recv().await.expect("forwarded over IPv6");
    let sent_by = |v: sipc::sip::Via<'_>| match v.host {
        sipc::sip::Host::V6(ip) => std::net::SocketAddr::from((ip, v.port.unwrap_or(5060))),
        other => panic!("not an IPv6 sent-by: {other:?}"),
    };
    let vias: Vec<_> = req.vias().map(|v| sent_by(v.unwrap())).collect();
    assert_eq!(vias, [px, uac.addr], "our [::1] Via on top");
    uas.send(from, &response_to(&req, 200, "OK")).await;
    let (resp, _) = uac.recv().await.expect("routed back by Via");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().count(), 1);
    p.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_limited() {
    let p =
        proxy_with(TestRouter { target: None, tcp_target: None }, |c| c.max_tcp_connections = 1)
            .await;
    let pt = p.addr(Transport::Tcp).unwrap();
    let mut first = tokio::net::TcpStream::connect(pt).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(pt).await.unwrap();
    let req = |b: &str| {
        request(
            "OPTIONS",
            "sip:reply404@example.com",
            &format!("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{b}"),
            b,
            "",
        )
    };
    use tokio::io::AsyncWriteExt;
    first.write_all(req("t1").as_bytes()).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let resp = read_message(&mut first, &mut buf).await.expect("first connection served");
    assert_eq!(resp.status(), Some(404));
    let _ = second.write_all(req("t2").as_bytes()).await;
    let mut buf = bytes::BytesMut::new();
    assert!(read_message(&mut second, &mut buf).await.is_none(), "second connection refused");
    p.stop(std::time::Duration::from_secs(1)).await;
}
