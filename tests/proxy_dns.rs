//! Host-name next hops resolved the RFC 3263 way inside the running proxy,
//! with fixed DNS records standing in for a server.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sipc::proxy::resolve::{Dns, DnsFuture, Naptr, Srv};
use sipc::proxy::{Decision, RequestContext, Router, Transport};
use support::*;

/// `_sip._udp.uas.test` points at the UAS; nothing else exists.
struct Zone {
    uas: SocketAddr,
}

impl Dns for Zone {
    fn naptr<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Vec<Naptr>> {
        Box::pin(async { Vec::new() })
    }
    fn srv<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Srv>> {
        let port = self.uas.port();
        Box::pin(async move {
            match name {
                "_sip._udp.uas.test" => {
                    vec![Srv { priority: 1, weight: 1, port, target: "host.uas.test.".into() }]
                }
                _ => Vec::new(),
            }
        })
    }
    fn ips<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        let ip = self.uas.ip();
        Box::pin(async move { if name == "host.uas.test" { vec![ip] } else { Vec::new() } })
    }
}

/// Sends everything to the host named by the Request-URI user (`uas.test`, …).
struct ByName;

impl Router for ByName {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        let user = ctx
            .msg
            .request_uri()
            .and_then(|u| sipc::sip::Uri::parse(u).ok().and_then(|u| u.user.map(str::to_owned)));
        ctx.destination = user.map(|u| format!("sip:{u}"));
        Decision::Forward
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_lead_to_the_uas_and_unknown_names_get_503() {
    let (uac, uas) = (UdpUa::bind().await, UdpUa::bind().await);
    let zone: Arc<dyn Dns> = Arc::new(Zone { uas: uas.addr });
    let p = proxy_with(ByName, move |c| c.dns = Some(zone)).await;
    let px = p.addr(Transport::Udp).unwrap();

    uac.send(px, &request("OPTIONS", "sip:uas.test@example.com", &uac.via("d1"), "dns-1", ""))
        .await;
    let (req, from) = uas.recv().await.expect("resolved through SRV and A");
    assert_eq!(req.via().unwrap().unwrap().transport, "UDP");
    uas.send(from, &response_to(&req, 200, "OK")).await;
    assert_eq!(uac.recv().await.unwrap().0.status(), Some(200));

    uac.send(px, &request("OPTIONS", "sip:nowhere.test@example.com", &uac.via("d2"), "dns-2", ""))
        .await;
    let (resp, _) = uac.recv().await.expect("an answer for the unresolvable name");
    assert_eq!((resp.status(), resp.reason()), (Some(503), Some("Cannot Resolve Destination")));
    p.stop(std::time::Duration::from_secs(1)).await;
}
