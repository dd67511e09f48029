//! Requests on their way through: the checks of RFC 3261 §16.3, route
//! preprocessing (§16.4), and preparing the forwarded copy (§16.6), plus
//! RFC 3581's `received`/`rport` on arrival.
//!
//! The route program decides *whether* and *where* to forward; these
//! functions do what RFC 3261 requires whatever it decides, recording edits
//! on an [`EditedMessage`].

use crate::sip::write::{push_ip, push_u16};
use std::net::SocketAddr;

use super::LocalIdentity;
use super::branch::{MAGIC_COOKIE, is_loop, push_stateless_branch};
use crate::sip::{EditedMessage, HeaderName, Host, Message, NameAddr, Scheme, Uri, Via};

/// A request the proxy refuses, with what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub reason: &'static str,
    pub extra: Vec<(&'static str, String)>,
}

impl Reject {
    pub fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason, extra: Vec::new() }
    }
}

/// Where a message goes next, before name resolution: an IP literal host is
/// used directly; a name goes through RFC 3263 resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    pub host: String,
    /// `None`: not given, resolution (SRV) or the transport's default decides.
    pub port: Option<u16>,
    /// Lowercase transport: `udp`, `tcp`, `tls`, `ws`, `wss`, `sctp`
    /// (the known ones without an allocation).
    pub transport: std::borrow::Cow<'static, str>,
    /// The transport was given (a `transport` parameter, `sips:`, a Via),
    /// not defaulted: RFC 3263 then skips NAPTR.
    pub explicit_transport: bool,
    /// `host` as an address when it is an IP literal, parsed once where the
    /// hop is made: [`NextHop::socket_addr`] is asked several times per
    /// forwarded request.
    pub(crate) ip: Option<std::net::IpAddr>,
}

impl NextHop {
    /// The next hop a SIP URI names: `maddr` over the host, the `transport`
    /// parameter, TLS for `sips:` (RFC 3263 §4.1). `None` for other schemes.
    pub fn from_uri(uri: &Uri<'_>) -> Option<NextHop> {
        Some(Self::of(uri.host?, uri.port, uri.scheme == Scheme::Sips, uri.params))
    }

    /// [`NextHop::from_uri`] for a URI kept as parts of `text` (the
    /// Request-URI validation parsed), without parsing it again.
    pub fn from_parts(text: &str, parts: &crate::sip::UriParts) -> Option<NextHop> {
        if parts.host_kind == crate::sip::HostKind::None {
            return None;
        }
        let (start, end) = parts.host();
        let host = Host::parse(text.get(start..end)?).ok()?;
        Some(Self::of(host, parts.port, parts.sips, parts.params(text)))
    }

    fn of(host: Host<'_>, port: Option<u16>, sips: bool, params: crate::sip::Params<'_>) -> Self {
        let (host, ip) = match params.get("maddr").flatten() {
            Some(m) => (m.to_owned(), Host::parse(m).ok().and_then(|h| h.ip())),
            None => (host.text(), host.ip()),
        };
        let (transport, explicit_transport) = match (sips, params.get("transport").flatten()) {
            (true, _) => ("tls".into(), true),
            (_, Some(t)) => (transport_name(t), true),
            (_, None) => ("udp".into(), false),
        };
        NextHop { host, port, transport, explicit_transport, ip }
    }

    /// The port to use when the URI gave none and no SRV lookup applies.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match &*self.transport {
            "tls" | "wss" => 5061,
            _ => 5060,
        })
    }

    /// The socket address, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, self.port_or_default()))
    }
}

/// A transport token, lowercase: the known ones borrowed, others copied.
pub fn transport_name(token: &str) -> std::borrow::Cow<'static, str> {
    const KNOWN: [&str; 6] = ["udp", "tcp", "tls", "ws", "wss", "sctp"];
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(token)) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(token.to_ascii_lowercase()),
    }
}

/// §16.3: Max-Forwards (483), loops (482), Proxy-Require (420).
pub fn check_request(
    msg: &Message,
    local: &LocalIdentity,
    supported: &[&str],
) -> Result<(), Reject> {
    if msg.max_forwards().ok().flatten() == Some(0) {
        return Err(Reject::new(483, "Too Many Hops"));
    }
    if is_loop(msg, local) {
        return Err(Reject::new(482, "Loop Detected"));
    }
    let unsupported: Vec<&str> = msg
        .list_values(crate::sip::HeaderName::ProxyRequire)
        .filter_map(Result::ok)
        .filter(|o| !o.is_empty() && !supported.iter().any(|s| s.eq_ignore_ascii_case(o)))
        .collect();
    if !unsupported.is_empty() {
        let mut r = Reject::new(420, "Bad Extension");
        r.extra.push(("Unsupported", unsupported.join(", ")));
        return Err(r);
    }
    Ok(())
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: records where the request really came
/// from in its top Via: `received` when the sent-by host is not the source
/// address (always, when `rport` was asked for), and the source port in an
/// empty `rport`.
pub fn apply_received(edit: &mut EditedMessage, source: SocketAddr) {
    mark_source(edit, source, false);
}

/// `force_rport()`: the top Via is treated as if it carried an empty
/// `rport` (RFC 3581 §4), so it gets `received` and `rport` set to the
/// source address and port; a response routed back by this Via then goes
/// to the port the request came from rather than the Via's sent-by port.
pub fn force_rport(edit: &mut EditedMessage, source: SocketAddr) {
    mark_source(edit, source, true);
}

fn mark_source(edit: &mut EditedMessage, source: SocketAddr, force_rport: bool) {
    // The received top Via is the one to extend: unless its line was
    // edited, as validation parsed it (once).
    let via = match edit.first_line_edited(HeaderName::Via) {
        true => edit.first_value_str(HeaderName::Via).and_then(|text| Via::parse(text).ok()),
        false => edit.original().via().ok().flatten(),
    };
    let Some(via) = via else { return };
    let wants_rport = force_rport || via.rport().is_some();
    let same_host = via.host.ip() == Some(source.ip());
    if same_host && !wants_rport {
        return;
    }
    let mut value = String::with_capacity(via.params.as_str().len() + via.transport.len() + 96);
    value.push_str("SIP/2.0/");
    value.push_str(via.transport);
    value.push(' ');
    via.host.push_to(&mut value);
    if let Some(p) = via.port {
        value.push(':');
        push_u16(&mut value, p);
    }
    for (name, v) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        value.push(';');
        value.push_str(name);
        if let Some(v) = v {
            value.push('=');
            value.push_str(v);
        }
    }
    value.push_str(";received=");
    push_ip(&mut value, source.ip());
    if wants_rport {
        value.push_str(";rport=");
        push_u16(&mut value, source.port());
    }
    edit.replace_first_value("Via", &value);
}

/// What route preprocessing (§16.4) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePreprocess {
    /// No Route header named this proxy.
    Untouched,
    /// This proxy's own Route entries (one, or two after double
    /// record-routing) were removed: a loose-routed in-dialog request.
    Consumed(usize),
    /// The Request-URI was this proxy (a strict router upstream): it was
    /// replaced by the last Route value, which was removed.
    StrictFixup,
}

/// §16.4: strict-router compatibility, then removal of this proxy's Route
/// entries from the top of the route set. Returns what it did and, when a
/// removed entry carries a `received` parameter (a Path this proxy wrote
/// with `add_path_received()`, RFC 3327), the address in it, unescaped: the
/// request goes there (`$du`), as Kamailio's path module does on
/// `loose_route()`.
pub fn preprocess_routes(
    edit: &mut EditedMessage,
    local: &LocalIdentity,
) -> (RoutePreprocess, Option<String>) {
    // An unedited Request-URI was parsed by validation: its parts answer.
    let ruri_local = || match edit.kept_request_uri() {
        Some((text, parts)) => local.is_local_uri_parts(text, parts),
        None => edit
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| local.is_local_uri(&u)),
    };
    // The Route set is copied out only in the rare strict-router case.
    if edit.current_values("Route").next().is_some() && ruri_local() {
        let routes: Vec<String> = edit.current_values("Route").flat_map(split_values).collect();
        let last =
            routes.last().and_then(|r| NameAddr::parse(r).ok().map(|n| n.uri.raw().to_owned()));
        if let Some(last) = last {
            edit.set_request_uri(last);
            set_route_set(edit, &routes[..routes.len() - 1]);
            return (RoutePreprocess::StrictFixup, None);
        }
    }
    let mut consumed = 0;
    let mut received = None;
    while consumed < 2 {
        let ours = edit.first_value_str(HeaderName::Route).and_then(|first| {
            // The received first Route (our own entry on every in-dialog
            // request) was parsed by validation.
            if let Some((uri, parts, params)) = edit.original().kept_first_route(first) {
                return local
                    .is_local_uri_parts(uri, parts)
                    .then(|| params.get("received").flatten().map(unescape));
            }
            let entry = NameAddr::parse(first).ok()?;
            local
                .is_local_uri(&entry.uri)
                .then(|| entry.uri.params.get("received").flatten().map(unescape))
        });
        let Some(path_received) = ours else { break };
        if path_received.is_some() {
            received = path_received;
        }
        edit.remove_top(HeaderName::Route);
        consumed += 1;
    }
    let what = if consumed == 0 {
        RoutePreprocess::Untouched
    } else {
        RoutePreprocess::Consumed(consumed)
    };
    (what, received)
}

/// `%XX` escapes decoded (RFC 3261 §25.1 `escaped`; a malformed escape is
/// kept as it is).
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::sip::scan::percent_decode(s)).into_owned()
}

/// The `received` parameter `add_path_received()` puts on the Path URI:
/// the source address as a SIP URI, its `;transport=` escaped (the value
/// sits inside another URI's parameter), as Kamailio's path module writes it.
pub fn path_received_param(source: SocketAddr, transport: super::Transport) -> String {
    let mut out = String::with_capacity(48);
    out.push_str(";received=sip:");
    crate::sip::write::push_socket_addr(&mut out, source);
    match transport {
        super::Transport::Udp => {}
        super::Transport::Tcp => out.push_str("%3Btransport%3Dtcp"),
        super::Transport::Tls => out.push_str("%3Btransport%3Dtls"),
        super::Transport::Ws => out.push_str("%3Btransport%3Dws"),
        super::Transport::Wss => out.push_str("%3Btransport%3Dwss"),
    }
    out
}

fn split_values(line: &str) -> Vec<String> {
    crate::sip::scan::CommaValues::new(line)
        .filter_map(Result::ok)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn set_route_set(edit: &mut EditedMessage, routes: &[String]) {
    edit.remove_all("Route");
    if !routes.is_empty() {
        edit.insert_first("Route", &routes.join(", "));
    }
}

/// The forwarding decisions the route program made.
#[derive(Debug, Clone, Default)]
pub struct Forward<'a> {
    /// `$du`: send here instead of following the Route set or the R-URI.
    pub destination: Option<&'a str>,
    /// `record_route()` was called: add the Record-Route values of [`HopHeaders`].
    pub record_route: bool,
    /// `add_path()`/`add_path_received()` was called: add the Path value of
    /// [`HopHeaders`] (these are its parameters after `lr`).
    pub path: Option<&'a str>,
    /// The transaction part of the Via branch of a stateful branch and the
    /// request's [`loop_hash`](super::branch::loop_hash) (once per transaction); `None` for
    /// stateless forwarding, whose branch is a hash (§16.11).
    pub branch: Option<(&'a str, u64)>,
    /// Topology hiding: the copy carries only this proxy (see
    /// [`super::topology`]).
    pub hide: Option<&'a super::topology::Hide>,
}

const UNSUPPORTED_SCHEME: Reject =
    Reject { code: 416, reason: "Unsupported URI Scheme", extra: Vec::new() };

/// The next hop [`prepare_forward`] will choose, without editing anything:
/// `$du`, else the first Route entry, else the Request-URI. Used to start
/// name resolution before the forwarding edits are made.
pub fn next_hop(edit: &EditedMessage, fwd: &Forward<'_>) -> Result<NextHop, Reject> {
    let first_route = || {
        edit.current_values("Route")
            .flat_map(split_values)
            .next()
            .and_then(|r| NameAddr::parse(&r).ok().map(|n| n.uri.raw().to_owned()))
    };
    let route;
    let target = match fwd.destination {
        Some(d) => d,
        None => {
            route = first_route();
            match (route.as_deref(), edit.kept_request_uri()) {
                (Some(r), _) => r,
                // An unedited Request-URI was parsed by validation.
                (None, Some((text, parts))) => {
                    return NextHop::from_parts(text, parts).ok_or(UNSUPPORTED_SCHEME);
                }
                (None, None) => edit.request_uri().unwrap_or_default(),
            }
        }
    };
    let uri = Uri::parse(target).map_err(|_| Reject::new(400, "Bad Destination"))?;
    NextHop::from_uri(&uri).ok_or(UNSUPPORTED_SCHEME)
}

/// What the proxy adds to a request it forwards over a given next hop: its
/// Via sent-by (`SIP/2.0/UDP host:port`), the Record-Route values (two
/// when the request changes transport or interface, RFC 5658) and the Path
/// value naming the interface it leaves on (RFC 3327).
#[derive(Debug, Clone, Default)]
pub struct HopHeaders {
    pub via_sent_by: String,
    pub record_routes: Vec<String>,
    pub path: Option<String>,
}

/// §16.6 steps 3–8 on the copy being forwarded to `hop` (what [`next_hop`]
/// found for this `edit` and `fwd`, before any of these edits): Max-Forwards,
/// strict-route postprocessing, then (from `headers`, which sees the hop)
/// Record-Route and this proxy's Via with a branch from
/// [`push_stateless_branch`].
pub fn prepare_forward(
    edit: &mut EditedMessage,
    fwd: &Forward<'_>,
    hop: &NextHop,
    headers: impl FnOnce(&NextHop) -> Result<HopHeaders, Reject>,
) -> Result<(), Reject> {
    let mf = edit.original().max_forwards().ok().flatten();
    let mut digits = [0; 20];
    let mf = u64::from(mf.map_or(70, |m| m.saturating_sub(1)));
    edit.set_header("Max-Forwards", crate::sip::write::decimal(mf, &mut digits));
    // Step 6: a strict router next (first Route without `lr`) gets the R-URI
    // as its Request-URI, and the original R-URI goes to the end of the set.
    // (It is also the hop: `next_hop` takes the first Route.)
    let first = edit.first_value("Route");
    if let Some(first) = first.as_deref().and_then(|r| NameAddr::parse(r).ok())
        && !first.uri.is_loose_router()
    {
        let routes: Vec<String> = edit.current_values("Route").flat_map(split_values).collect();
        let old_ruri = edit.request_uri().unwrap_or_default().to_owned();
        let strict = first.uri.raw().to_owned();
        let mut rest: Vec<String> = routes[1..].to_vec();
        rest.push(format!("<{old_ruri}>"));
        edit.set_request_uri(strict);
        set_route_set(edit, &rest);
    }
    let added = headers(hop)?;
    if fwd.record_route {
        for rr in &added.record_routes {
            edit.insert_first("Record-Route", rr);
        }
    }
    if let Some(path) = &added.path {
        // RFC 3327 §5.1: the proxy's own entry goes on top of the Path set.
        edit.insert_first("Path", path);
    }
    let mut via = added.via_sent_by;
    via.push_str(";branch=");
    match fwd.branch {
        Some((part, hash)) => {
            via.push_str(MAGIC_COOKIE);
            via.push_str(part);
            via.push('.');
            super::branch::push_hex16(&mut via, hash);
        }
        None => {
            push_stateless_branch(&mut via, edit.original(), edit.request_uri().unwrap_or_default())
        }
    }
    edit.insert_first("Via", &via);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn local() -> LocalIdentity {
        let mut l = LocalIdentity::new();
        l.add_socket("127.0.0.1:5060".parse().unwrap());
        l
    }

    fn edit(text: &str) -> EditedMessage {
        EditedMessage::new(Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap())
    }

    fn out(e: &EditedMessage) -> Message {
        let m = Message::parse(e.serialize()).unwrap();
        m.check().unwrap();
        m
    }

    /// The next hop of an unedited Request-URI, read from what validation
    /// kept, is the one parsing the URI gives.
    #[test]
    fn a_kept_request_uri_gives_the_parsed_next_hop() {
        for ruri in [
            "sip:127.0.0.1:5080;transport=UDP",
            "sip:bob@192.0.2.9",
            "sips:bob@example.com",
            "sip:bob@Example.COM:5070;transport=tcp;lr",
            "sip:bob@192.0.2.9;maddr=198.51.100.7;transport=xyz",
            "sip:[2001:db8::1]:5062;maddr=example.net",
            "sip:bob@host;transport=\"quoted\"",
            "tel:+15551234",
        ] {
            let mut msg = Message::parse(Bytes::from(format!(
                "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )))
            .unwrap();
            msg.validate().unwrap();
            let parts = msg.kept_request_uri_parts().unwrap();
            let parsed = Uri::parse(ruri).ok().and_then(|u| NextHop::from_uri(&u));
            assert_eq!(NextHop::from_parts(ruri, parts), parsed, "{ruri}");
            let e = EditedMessage::new(msg);
            let fwd = Forward {
                destination: None,
                record_route: false,
                path: None,
                branch: None,
                hide: None,
            };
            assert_eq!(next_hop(&e, &fwd).ok(), parsed, "{ruri}");
        }
    }

    fn udp(_: &NextHop) -> Result<HopHeaders, Reject> {
        Ok(HopHeaders {
            via_sent_by: "SIP/2.0/UDP 127.0.0.1:5060".into(),
            record_routes: vec![],
            path: None,
        })
    }

    const TAIL: &str = "To: <sip:b@example.com>\nFrom: <sip:a@example.com>;tag=1\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n";

    #[test]
    fn checks_max_forwards_and_proxy_require() {
        let m = |extra: &str| {
            let text = format!(
                "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n{extra}{TAIL}"
            );
            Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
        };
        assert_eq!(check_request(&m("Max-Forwards: 0\n"), &local(), &[]).unwrap_err().code, 483);
        assert!(check_request(&m("Max-Forwards: 1\n"), &local(), &[]).is_ok());
        let r = check_request(&m("Proxy-Require: foo, bar\n"), &local(), &["bar"]).unwrap_err();
        assert_eq!((r.code, r.extra.clone()), (420, vec![("Unsupported", "foo".to_owned())]));
    }

    #[test]
    fn received_and_rport() {
        let mut e = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKa\n{TAIL}"
        ));
        apply_received(&mut e, "198.51.100.1:40000".parse().unwrap());
        let via = out(&e).via().unwrap().unwrap().params.as_str().to_owned();
        assert_eq!(via, ";branch=z9hG4bKa;received=198.51.100.1;rport=40000");
        let mut same = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa\n{TAIL}"
        ));
        apply_received(&mut same, "10.0.0.5:5062".parse().unwrap());
        assert!(same.is_unchanged(), "nothing to add when sent-by is the source");
    }

    #[test]
    fn force_rport_sets_received_and_rport() {
        // Same host as the source, no rport asked for: force_rport adds both.
        let mut e = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa\n{TAIL}"
        ));
        apply_received(&mut e, "10.0.0.5:40000".parse().unwrap());
        assert!(e.is_unchanged());
        force_rport(&mut e, "10.0.0.5:40000".parse().unwrap());
        let via = out(&e).via().unwrap().unwrap().params.as_str().to_owned();
        assert_eq!(via, ";branch=z9hG4bKa;received=10.0.0.5;rport=40000");
        // After `received` was added on arrival: replaced, not repeated.
        let mut e = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa\n{TAIL}"
        ));
        let source = "198.51.100.1:40000".parse().unwrap();
        apply_received(&mut e, source);
        force_rport(&mut e, source);
        let m = out(&e);
        let via = m.via().unwrap().unwrap();
        assert_eq!(via.params.as_str(), ";branch=z9hG4bKa;received=198.51.100.1;rport=40000");
        assert_eq!(crate::proxy::response::response_target(&via).port, Some(40000));
    }

    #[test]
    fn force_rport_extends_the_top_via_as_it_stands() {
        let text = format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa\n{TAIL}"
        );
        let source = "10.0.0.5:40000".parse().unwrap();
        // Another header edited first: the received Via is still the one.
        let mut e = edit(&text);
        e.set_header("Max-Forwards", "69");
        force_rport(&mut e, source);
        let via = out(&e).via().unwrap().unwrap().params.as_str().to_owned();
        assert_eq!(via, ";branch=z9hG4bKa;received=10.0.0.5;rport=40000");
        // The Via itself edited: the edited one is extended.
        let mut e = edit(&text);
        e.replace_first_value("Via", "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKb");
        force_rport(&mut e, source);
        let via = out(&e).via().unwrap().unwrap().params.as_str().to_owned();
        assert_eq!(via, ";branch=z9hG4bKb;received=10.0.0.5;rport=40000");
    }

    #[test]
    fn path_received_is_written_escaped_and_read_back_as_the_destination() {
        let udp =
            path_received_param("198.51.100.1:4000".parse().unwrap(), super::super::Transport::Udp);
        assert_eq!(udp, ";received=sip:198.51.100.1:4000");
        let tcp = path_received_param(
            "[2001:db8::1]:4000".parse().unwrap(),
            super::super::Transport::Tcp,
        );
        assert_eq!(tcp, ";received=sip:[2001:db8::1]:4000%3Btransport%3Dtcp");
        let mut e = edit(&format!(
            "INVITE sip:alice@10.0.0.99 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n\
             Route: <sip:127.0.0.1:5060;lr{tcp}>\n{TAIL}"
        ));
        let (what, received) = preprocess_routes(&mut e, &local());
        assert_eq!(what, RoutePreprocess::Consumed(1));
        assert_eq!(received.as_deref(), Some("sip:[2001:db8::1]:4000;transport=tcp"));
        assert_eq!(unescape("a%3b%3Dz%zz%4"), "a;=z%zz%4");
    }

    #[test]
    fn a_path_goes_on_top_of_the_path_set() {
        let mut e = edit(&format!(
            "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n\
             Path: <sip:edge2.example.com;lr>\n{}",
            TAIL.replace("1 INVITE", "1 REGISTER")
        ));
        let fwd =
            Forward { destination: Some("sip:192.0.2.50"), path: Some(""), ..Forward::default() };
        let hop = next_hop(&e, &fwd).unwrap();
        prepare_forward(&mut e, &fwd, &hop, |_| {
            Ok(HopHeaders {
                via_sent_by: "SIP/2.0/UDP 127.0.0.1:5060".into(),
                record_routes: vec![],
                path: Some("<sip:127.0.0.1:5060;lr>".into()),
            })
        })
        .unwrap();
        let m = out(&e);
        let paths: Vec<_> = m.paths().map(|p| p.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(paths, ["sip:127.0.0.1:5060;lr", "sip:edge2.example.com;lr"]);
    }

    #[test]
    fn loose_routing_removes_our_routes() {
        let mut e = edit(&format!(
            "BYE sip:b@192.0.2.50 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n\
             Route: <sip:127.0.0.1;lr>, <sip:127.0.0.1:5060;transport=tcp;lr>\nRoute: <sip:192.0.2.9;lr>\n{}",
            TAIL.replace("1 INVITE", "2 BYE")
        ));
        assert_eq!(preprocess_routes(&mut e, &local()), (RoutePreprocess::Consumed(2), None));
        let hop = next_hop(&e, &Forward::default()).unwrap();
        assert_eq!((hop.host.as_str(), hop.port), ("192.0.2.9", None));
        prepare_forward(&mut e, &Forward::default(), &hop, udp).unwrap();
        let m = out(&e);
        assert_eq!(m.routes().count(), 1);
        assert_eq!(m.request_uri_str(), Some("sip:b@192.0.2.50"));
        assert_eq!(m.vias().count(), 2);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
    }

    #[test]
    fn strict_router_upstream_and_downstream() {
        // Upstream strict router put our URI in the R-URI (§16.4).
        let mut e = edit(&format!(
            "INVITE sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n\
             Max-Forwards: 10\nRoute: <sip:192.0.2.9;lr>, <sip:b@192.0.2.50>\n{TAIL}"
        ));
        assert_eq!(preprocess_routes(&mut e, &local()), (RoutePreprocess::StrictFixup, None));
        assert_eq!(e.request_uri(), Some("sip:b@192.0.2.50"));
        // Downstream strict router (no lr): it becomes the R-URI (§16.6 step 6).
        let mut e = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n\
             Max-Forwards: 10\nRoute: <sip:strict.example.com>, <sip:next.example.com;lr>\n{TAIL}"
        ));
        let hop = next_hop(&e, &Forward::default()).unwrap();
        assert_eq!(hop.host, "strict.example.com");
        prepare_forward(&mut e, &Forward::default(), &hop, udp).unwrap();
        let m = out(&e);
        assert_eq!(m.request_uri_str(), Some("sip:strict.example.com"));
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(routes, ["sip:next.example.com;lr", "sip:b@example.com"]);
        assert_eq!(m.max_forwards().unwrap(), Some(9));
    }

    #[test]
    fn destination_record_route_and_branch() {
        let mut e = edit(&format!(
            "INVITE sip:b@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n{TAIL}"
        ));
        let fwd = Forward {
            destination: Some("sip:127.0.0.1:5080;transport=tcp"),
            record_route: true,
            path: None,
            branch: None,
            hide: None,
        };
        let hop = next_hop(&e, &fwd).unwrap();
        prepare_forward(&mut e, &fwd, &hop, |hop| {
            assert_eq!(hop.transport, "tcp");
            Ok(HopHeaders {
                via_sent_by: "SIP/2.0/TCP 127.0.0.1:5060".into(),
                record_routes: vec![
                    "<sip:127.0.0.1;transport=tcp;lr>".into(),
                    "<sip:127.0.0.1;lr>".into(),
                ],
                path: None,
            })
        })
        .unwrap();
        assert_eq!(hop.socket_addr(), Some("127.0.0.1:5080".parse().unwrap()));
        assert_eq!(hop.transport, "tcp");
        let m = out(&e);
        let top = m.via().unwrap().unwrap();
        assert!(top.has_rfc3261_branch());
        assert_eq!(top.transport, "TCP");
        let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(
            rr,
            ["sip:127.0.0.1;transport=tcp;lr", "sip:127.0.0.1;lr"],
            "outbound-facing on top"
        );
        let tel = edit(&format!(
            "INVITE tel:+123 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\n{TAIL}"
        ));
        assert_eq!(next_hop(&tel, &Forward::default()).unwrap_err().code, 416);
    }
}
