//! Topology hiding (`topology_hide()`): each side of a call sees only this
//! proxy, never the addresses behind it on the other side.
//!
//! What would give them away, and what each side sees instead:
//!
//! - **Via**: a forwarded request carries this proxy's Via alone. The
//!   received Vias stay with the transaction, and a reply going back gets
//!   them again from the request it answers, so replies still find their
//!   way (RFC 3261 §16.7 step 3 builds the reply upstream from the
//!   transaction's request, which is what makes this safe). A hop-by-hop
//!   ACK and CANCEL are built from the forwarded copy, so they carry no
//!   more. Hiding therefore needs `relay()`: a request forwarded without
//!   a transaction keeps its Vias (only the end-to-end ACK, which no reply
//!   answers, loses them there).
//! - **Record-Route**: a side sees this proxy's entries and those of its
//!   own side; the other side's entries are kept in the dialog and put in
//!   the Route set of the requests going to that side.
//! - **Contact**: replaced by this proxy's address on the interface the
//!   message leaves on, so in-dialog requests come here; the real Contact
//!   of each side is kept in the dialog and becomes the Request-URI of the
//!   requests going to it.
//! - **Call-ID**: the callee's side sees a random Call-ID of its own; the
//!   dialog table knows the call by both ([`crate::dialog::Dialogs`]).
//!
//! An initial INVITE whose route calls `topology_hide()` starts a hidden
//! dialog (it is `dlg_manage()` as well). Its in-dialog requests, from
//! either side, are rewritten on arrival, before the request route runs
//! ([`restore_request`]): the route sees the request as it will reach the
//! other side (its Call-ID, Request-URI and Route set), and its usual
//! `loose_route()` → `relay()` takes it there. Outside a dialog (MESSAGE,
//! OPTIONS) `topology_hide()` hides the transaction alone. It does nothing
//! for REGISTER (whose Contact is the binding itself) and for requests
//! that start other dialogs (SUBSCRIBE, REFER), whose in-dialog requests
//! no dialog here would route.
//!
//! This is Kamailio's `topos` (state kept in the proxy, here in the dialog
//! table that already survives reloads and restarts) rather than `topoh`
//! (addresses encrypted into the headers): the headers stay short, and
//! nothing an outside party holds can be decrypted into the inside.
//! From and To are the parties' identities and pass unchanged; SDP
//! addresses are the media relay's to rewrite (`rtpengine_manage()`).

use super::transport::Transport;
use crate::dialog::HiddenHop;
use crate::sip::EditedMessage;
use crate::sip::scan::CommaValues;

/// A transaction whose copies hide what is behind this proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hide {
    /// The Call-ID the copies carry (an initial request: a new one); `None`
    /// when the request already carries the receiving side's (an in-dialog
    /// request rewritten on arrival).
    pub call_id: Option<Box<str>>,
}

/// Methods whose requests `topology_hide()` can hide: INVITE starts a
/// hidden dialog, the others are transactions alone.
pub fn can_hide(method: &str) -> bool {
    !matches!(method, "REGISTER" | "SUBSCRIBE" | "REFER" | "PUBLISH" | "NOTIFY" | "ACK" | "CANCEL")
}

/// A Call-ID for the hidden side: 128 random bits, nothing derived from
/// the other side's.
pub fn new_call_id() -> Box<str> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out.into()
}

/// The Contact this proxy puts in place of a hidden side's: its own
/// address on the interface the message leaves on.
pub fn masked_contact(transport: Transport, addr: std::net::SocketAddr) -> String {
    let mut out = String::with_capacity(40);
    out.push_str("<sip:");
    crate::sip::write::push_socket_addr(&mut out, addr);
    match transport {
        Transport::Udp => {}
        Transport::Tcp => out.push_str(";transport=tcp"),
        Transport::Tls => out.push_str(";transport=tls"),
        Transport::Ws => out.push_str(";transport=ws"),
        Transport::Wss => out.push_str(";transport=wss"),
    }
    out.push('>');
    out
}

/// On a copy about to be forwarded, after this proxy's Via and
/// Record-Route were added: the received Vias (unless `keep_vias`) and
/// Record-Routes go, the Call-ID and Contact are replaced.
pub fn hide_request(edit: &mut EditedMessage, hide: &Hide, keep_vias: bool, contact: &str) {
    if !keep_vias {
        edit.remove_received("Via");
    }
    edit.remove_received("Record-Route");
    if let Some(call_id) = &hide.call_id {
        edit.set_header("Call-ID", call_id);
    }
    if edit.current_values("Contact").next().is_some() {
        edit.set_header("Contact", contact);
    }
}

/// An in-dialog request of a hidden dialog, on arrival: it gets the
/// receiving side's Call-ID, its Contact as the Request-URI and its Route
/// set after this proxy's own entries (which route preprocessing then
/// removes, as for any loose-routed request). Returns where to send it
/// when that side has no Route set: the address its messages came from
/// (`$du`), as a proxy-sent BYE would go.
pub fn restore_request(
    edit: &mut EditedMessage,
    hop: &HiddenHop,
    is_own: impl Fn(&str) -> bool,
) -> Option<String> {
    edit.set_header("Call-ID", &hop.call_id);
    edit.set_request_uri(&*hop.contact);
    let mut routes: Vec<String> = edit
        .current_values("Route")
        .flat_map(CommaValues::new)
        .filter_map(Result::ok)
        .map(str::trim)
        .take_while(|v| is_own(v))
        .map(str::to_owned)
        .collect();
    let received_route = edit.current_values("Route").next().is_some();
    routes.extend(hop.route.iter().map(|r| r.to_string()));
    set_list(edit, "Route", &routes);
    if let Some(first) = hop.route.first() {
        // A Route line added to a request that came without one is written
        // out but is not the next hop for the stages after this one: `$du`
        // says it is.
        return (!received_route).then(|| crate::dialog::uri_of(first).to_owned());
    }
    let addr = hop.addr?;
    let mut du = String::with_capacity(40);
    du.push_str("sip:");
    crate::sip::write::push_socket_addr(&mut du, addr);
    if !hop.transport.is_empty() && &*hop.transport != "udp" {
        du.push_str(";transport=");
        du.push_str(&hop.transport);
    }
    Some(du)
}

/// A reply on its way back up a hidden transaction (this proxy's Via
/// already off): the Vias and Call-ID of `request` (the request as it
/// arrived) come back, the Record-Route set is this proxy's entries
/// followed by those `request` carried (the receiving side's own), and a
/// Contact becomes `contact`.
pub fn restore_reply(
    edit: &mut EditedMessage,
    request: &EditedMessage,
    is_own: impl Fn(&str) -> bool,
    contact: &str,
) {
    let vias: Vec<String> = request.current_values("Via").map(str::to_owned).collect();
    set_list(edit, "Via", &vias);
    if let Ok(Some(call_id)) = request.original().call_id() {
        edit.set_header("Call-ID", call_id);
    }
    let values = |e: &EditedMessage| -> Vec<String> {
        e.current_values("Record-Route")
            .flat_map(CommaValues::new)
            .filter_map(Result::ok)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let rr = values(edit);
    if !rr.is_empty() {
        let mut set: Vec<String> = rr.into_iter().filter(|v| is_own(v)).collect();
        set.extend(values(request));
        set_list(edit, "Record-Route", &set);
    }
    if edit.current_values("Contact").next().is_some() {
        edit.set_header("Contact", contact);
    }
}

/// Sets a list header to `values` on one line, in place of the first
/// received one (so the stages after this one read it as received), or
/// removes it when there are none.
fn set_list(edit: &mut EditedMessage, name: &str, values: &[String]) {
    if values.is_empty() {
        edit.remove_all(name);
    } else {
        edit.set_header(name, &values.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Message;
    use bytes::Bytes;

    fn edit(text: &str) -> EditedMessage {
        EditedMessage::new(Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap())
    }

    fn out(e: &EditedMessage) -> Message {
        let mut m = Message::parse(e.serialize()).unwrap();
        m.validate().unwrap();
        m
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKinner;received=10.0.0.7\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa\n\
Record-Route: <sip:10.0.0.7;lr>\n\
Max-Forwards: 69\n\
To: <sip:bob@example.com>\n\
From: <sip:alice@example.com>;tag=a1\n\
Call-ID: inside-1@10.0.0.5\n\
CSeq: 1 INVITE\n\
Contact: <sip:alice@10.0.0.5:5062>;expires=60\n\
Content-Length: 0\n\n";

    fn own(v: &str) -> bool {
        v.contains("127.0.0.1")
    }

    #[test]
    fn a_forwarded_copy_carries_only_this_proxy() {
        let mut e = edit(INVITE);
        e.insert_first("Record-Route", "<sip:127.0.0.1;lr>");
        e.insert_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours");
        let hide = Hide { call_id: Some("c0ffee".into()) };
        hide_request(&mut e, &hide, false, "<sip:127.0.0.1:5060>");
        let m = out(&e);
        let text = String::from_utf8_lossy(m.as_bytes()).into_owned();
        assert!(!text.contains("10.0.0."), "{text}");
        assert_eq!(m.vias().count(), 1);
        assert_eq!(m.call_id().unwrap(), Some("c0ffee"));
        assert_eq!(m.record_routes().count(), 1);
        assert_eq!(m.header_value(crate::sip::HeaderName::Contact), Some("<sip:127.0.0.1:5060>"));
    }

    #[test]
    fn a_reply_gets_the_request_back() {
        let mut req = edit(INVITE);
        req.replace_first_value(
            "Via",
            "SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKinner;received=10.0.0.7;rport=5060",
        );
        // As the callee answered the hidden copy, this proxy's Via removed.
        let mut reply = edit(
            "SIP/2.0 200 OK\n\
Record-Route: <sip:192.0.2.9;lr>, <sip:127.0.0.1;lr>\n\
To: <sip:bob@example.com>;tag=b1\n\
From: <sip:alice@example.com>;tag=a1\n\
Call-ID: c0ffee\n\
CSeq: 1 INVITE\n\
Contact: <sip:bob@192.0.2.50>\n\
Content-Length: 0\n\n",
        );
        restore_reply(&mut reply, &req, own, "<sip:127.0.0.1:5060>");
        let m = out(&reply);
        let text = String::from_utf8_lossy(m.as_bytes()).into_owned();
        assert!(!text.contains("192.0.2."), "{text}");
        let vias: Vec<_> = m.vias().map(|v| v.unwrap().branch().unwrap().to_owned()).collect();
        assert_eq!(vias, ["z9hG4bKinner", "z9hG4bKa"]);
        assert_eq!(m.via().unwrap().unwrap().rport(), Some(Some(5060)));
        assert_eq!(m.call_id().unwrap(), Some("inside-1@10.0.0.5"));
        let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(rr, ["sip:127.0.0.1;lr", "sip:10.0.0.7;lr"]);
    }

    #[test]
    fn an_in_dialog_request_goes_where_the_other_side_is() {
        let mut e = edit(
            "BYE sip:127.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKbye\n\
Route: <sip:127.0.0.1;lr>\n\
Max-Forwards: 70\n\
From: <sip:bob@example.com>;tag=b1\n\
To: <sip:alice@example.com>;tag=a1\n\
Call-ID: c0ffee\n\
CSeq: 1 BYE\n\
Content-Length: 0\n\n",
        );
        let hop = HiddenHop {
            from: crate::dialog::Side::Callee,
            call_id: "inside-1@10.0.0.5".into(),
            contact: "sip:alice@10.0.0.5:5062".into(),
            route: vec!["<sip:10.0.0.7;lr>".into()],
            addr: Some("10.0.0.7:5060".parse().unwrap()),
            transport: "udp".into(),
        };
        assert_eq!(restore_request(&mut e, &hop, own), None, "the Route set leads there");
        let m = out(&e);
        assert_eq!(m.request_uri_str(), Some("sip:alice@10.0.0.5:5062"));
        assert_eq!(m.call_id().unwrap(), Some("inside-1@10.0.0.5"));
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri.raw().to_owned()).collect();
        assert_eq!(routes, ["sip:127.0.0.1;lr", "sip:10.0.0.7;lr"]);
        let direct = HiddenHop { route: vec![], transport: "tcp".into(), ..hop };
        let mut e2 = EditedMessage::new(m);
        assert_eq!(
            restore_request(&mut e2, &direct, own).as_deref(),
            Some("sip:10.0.0.7:5060;transport=tcp")
        );
        // Sent straight to the Contact, without the proxy's Route entry.
        let mut bare = edit(
            "BYE sip:127.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKbye\n\
From: <sip:bob@example.com>;tag=b1\n\
To: <sip:alice@example.com>;tag=a1\n\
Call-ID: c0ffee\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\n",
        );
        let routed = HiddenHop { route: vec!["<sip:10.0.0.7;lr>".into()], ..direct };
        assert_eq!(restore_request(&mut bare, &routed, own).as_deref(), Some("sip:10.0.0.7;lr"));
        assert_eq!(out(&bare).routes().count(), 1);
    }

    #[test]
    fn call_ids_are_new_and_which_methods_hide() {
        let (a, b) = (new_call_id(), new_call_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(can_hide("INVITE") && can_hide("MESSAGE") && can_hide("OPTIONS"));
        assert!(!can_hide("REGISTER") && !can_hide("SUBSCRIBE"));
        assert_eq!(
            masked_contact(Transport::Tcp, "127.0.0.1:5060".parse().unwrap()),
            "<sip:127.0.0.1:5060;transport=tcp>"
        );
    }
}
