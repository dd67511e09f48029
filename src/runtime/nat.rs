//! The NAT traversal builtins (Kamailio's nathelper): `nat_uac_test`,
//! `fix_nated_contact`, `fix_nated_register`, `add_rcv_param`,
//! `set_contact_alias`, `handle_ruri_alias`.
//!
//! The text edits and address rules are in [`crate::proxy::nat`]; these
//! apply them to the message being routed, with its source address (in
//! reply routes the message is the reply and the source the address it
//! came from).

use std::net::SocketAddr;

use crate::proxy::Transport;
use crate::proxy::nat;
use crate::sip::HeaderName;

use super::RouteCtx;

fn b(v: bool) -> i64 {
    v as i64
}

/// The bits of `nat_uac_test`'s argument, in the order of
/// [`crate::sema::builtins::NAT_TESTS`].
const PRIVATE_CONTACT: i64 = 1;
const VIA_IP_DIFFERS: i64 = 2;
const PRIVATE_VIA: i64 = 4;
const PRIVATE_SDP: i64 = 8;
const VIA_PORT_DIFFERS: i64 = 16;
const PRIVATE_SOURCE: i64 = 32;
const WEBSOCKET: i64 = 64;

/// `nat_uac_test(CHECKS)`: the argument is the bit set of the named checks.
pub fn nat_uac_test(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let mask = a[0];
    let source = ctx.req.source;
    let msg = &ctx.req.msg;
    let is_request = msg.original().is_request();
    if mask & PRIVATE_SOURCE != 0 && nat::is_private(source.ip()) {
        return 1;
    }
    if mask & WEBSOCKET != 0 && ctx.req.transport.is_websocket() {
        return 1;
    }
    if mask & PRIVATE_CONTACT != 0 {
        let private = msg
            .first_current(HeaderName::Contact)
            .and_then(nat::contact_ip)
            .is_some_and(nat::is_private);
        if private {
            return 1;
        }
    }
    // A reply's top Via (this proxy's own is already removed) is not the
    // sender's: the Via checks are for requests.
    if is_request && mask & (VIA_IP_DIFFERS | PRIVATE_VIA | VIA_PORT_DIFFERS) != 0 {
        if let Ok(Some(via)) = msg.original().via() {
            let ip = via.host.ip();
            if mask & VIA_IP_DIFFERS != 0 && ip != Some(source.ip()) {
                return 1;
            }
            if mask & PRIVATE_VIA != 0 && ip.is_some_and(nat::is_private) {
                return 1;
            }
            let default = if via.transport.eq_ignore_ascii_case("TLS") { 5061 } else { 5060 };
            if mask & VIA_PORT_DIFFERS != 0 && via.port.unwrap_or(default) != source.port() {
                return 1;
            }
        }
    }
    if mask & PRIVATE_SDP != 0 && nat::sdp_has_private_address(&msg.body()) {
        return 1;
    }
    0
}

/// Replaces the first Contact value with what `edit` makes of it.
fn edit_contact(
    ctx: &mut RouteCtx<'_>,
    edit: fn(&str, SocketAddr, Transport) -> Option<String>,
) -> i64 {
    let Some(first) = ctx.req.msg.first_value("Contact") else { return 0 };
    let Some(new) = edit(&first, ctx.req.source, ctx.req.transport) else { return 0 };
    b(ctx.req.msg.replace_first_value("Contact", &new))
}

pub fn fix_nated_contact(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    edit_contact(ctx, nat::fix_contact)
}

pub fn set_contact_alias(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    edit_contact(ctx, nat::alias_contact)
}

fn is_register(ctx: &RouteCtx<'_>) -> bool {
    ctx.req.msg.original().method_str() == Some("REGISTER")
}

pub fn fix_nated_register(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    if !is_register(ctx) {
        return 0;
    }
    ctx.req.nat_register = true;
    1
}

pub fn add_rcv_param(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    if is_register(ctx) {
        ctx.req.nat_register = true;
    }
    edit_contact(ctx, nat::rcv_param_contact)
}

pub fn handle_ruri_alias(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(ruri) = ctx.req.msg.request_uri() else { return 0 };
    let Some((addr, t, rest)) = nat::take_alias(ruri) else { return 0 };
    ctx.req.msg.set_request_uri(rest);
    ctx.req.destination = Some(nat::next_hop_uri(addr, t));
    1
}

#[cfg(test)]
mod tests {
    use crate::proxy::{RequestContext, Transport};
    use crate::runtime::{RouteCtx, Shared};
    use crate::sema::builtins::NAT_TESTS;
    use crate::sema::ir::CheckedProgram;
    use crate::sip::{EditedMessage, Message};

    fn req(via: &str, contact: &str, source: &str) -> RequestContext {
        let text = format!(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKn\r\n\
             To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\nCall-ID: n\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@{contact}>\r\nContent-Length: 0\r\n\r\n"
        );
        RequestContext::new(
            EditedMessage::new(Message::parse(bytes::Bytes::from(text)).unwrap()),
            source.parse().unwrap(),
            Transport::Udp,
        )
    }

    /// Which of the named checks fire, one at a time.
    fn fired(r: &mut RequestContext) -> Vec<&'static str> {
        let shared = Shared::new(&CheckedProgram::default()).unwrap();
        let mut ctx = RouteCtx::new(r, &shared);
        NAT_TESTS
            .iter()
            .enumerate()
            .filter(|(i, _)| super::nat_uac_test(&mut ctx, &[1 << i]) == 1)
            .map(|(_, n)| *n)
            .collect()
    }

    #[test]
    fn each_check_alone() {
        // The checker passes a word set as a u8 mask.
        assert!(NAT_TESTS.len() <= 8);
        // A phone behind NAT: private Via and Contact, another source.
        let mut r = req("192.168.1.20:5060", "192.168.1.20:5060", "203.0.113.7:40000");
        assert_eq!(
            fired(&mut r),
            ["private_contact", "via_ip_differs", "private_via", "via_port_differs"]
        );
        // A public phone whose packets come from where it says.
        let mut r = req("203.0.113.7:5070", "203.0.113.7:5070", "203.0.113.7:5070");
        assert!(fired(&mut r).is_empty());
        // Only the port was rewritten (a NAT that keeps the address), and
        // the default Via port is 5060.
        let mut r = req("203.0.113.7", "203.0.113.7", "203.0.113.7:40000");
        assert_eq!(fired(&mut r), ["via_port_differs"]);
        // A private source (a UA in the proxy's own LAN).
        let mut r = req("10.0.0.5:5060", "10.0.0.5:5060", "10.0.0.5:5060");
        assert_eq!(fired(&mut r), ["private_contact", "private_via", "private_source"]);
        // A Via host name is never the source address.
        let mut r = req("pc.example.com:5060", "203.0.113.7:5060", "203.0.113.7:5060");
        assert_eq!(fired(&mut r), ["via_ip_differs"]);
        // A browser over a WebSocket.
        let mut r = req("df7jal23ls0d.invalid", "df7jal23ls0d.invalid", "203.0.113.7:50123");
        r.transport = Transport::Ws;
        assert_eq!(fired(&mut r), ["via_ip_differs", "via_port_differs", "websocket"]);
    }

    #[test]
    fn handle_ruri_alias_sets_the_destination() {
        let mut r = req("203.0.113.7:5060", "203.0.113.7:5060", "203.0.113.7:5060");
        r.msg.set_request_uri("sip:bob@192.168.1.30:5060;alias=198.51.100.4~41000~2");
        let shared = Shared::new(&CheckedProgram::default()).unwrap();
        let mut ctx = RouteCtx::new(&mut r, &shared);
        assert_eq!(super::handle_ruri_alias(&mut ctx, &[]), 1);
        assert_eq!(super::handle_ruri_alias(&mut ctx, &[]), 0, "the alias is gone");
        drop(ctx);
        assert_eq!(r.msg.request_uri(), Some("sip:bob@192.168.1.30:5060"));
        assert_eq!(r.destination.as_deref(), Some("sip:198.51.100.4:41000;transport=tcp"));
    }
}
