//! The BYEs the proxy sends on its own when a dialog's maximum duration or
//! timeout passes: one to each side, each built as that side's peer would
//! send it (From, To and tags swapped for the caller, the CSeq above the
//! highest the peer sent, the Route set on that side of this proxy), and
//! retransmitted over UDP as a UAC's non-INVITE transaction would (Timer E
//! doubling from T1 up to T2) until a final reply or Timer F.
//!
//! Their Via branch starts with [`BRANCH_PREFIX`], by which the core hands
//! their replies here instead of routing them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Dialog, Leg};

/// The Via branch of every BYE a dialog timeout sends.
pub const BRANCH_PREFIX: &str = "z9hG4bKsipcdlg";

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Timer F: 64·T1.
const GIVE_UP: Duration = Duration::from_secs(32);

/// A BYE ready to send: where to and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    pub transport: Box<str>,
    pub to: SocketAddr,
    pub branch: String,
    pub data: String,
}

/// The Record-Route entries of a 2xx split at this proxy's own: the
/// caller's route set (entries below ours, nearest first) and the
/// callee's (entries above ours, nearest first, i.e. reversed).
pub fn split_route_set(
    record_route: &[String],
    is_mine: impl Fn(&str) -> bool,
) -> (Vec<Box<str>>, Vec<Box<str>>) {
    let mine: Vec<usize> = (0..record_route.len()).filter(|&i| is_mine(&record_route[i])).collect();
    let (Some(&first), Some(&last)) = (mine.first(), mine.last()) else {
        return (Vec::new(), record_route.iter().rev().map(|r| r.as_str().into()).collect());
    };
    let callee = record_route[..first].iter().rev().map(|r| r.as_str().into()).collect();
    let caller = record_route[last + 1..].iter().map(|r| r.as_str().into()).collect();
    (caller, callee)
}

/// The address of a `sip:` URI whose host is an IP literal (a Route entry
/// or a Contact), 5060 when no port is given.
fn uri_addr(uri: &str) -> Option<SocketAddr> {
    crate::routing::health::uri_addr(super::uri_of(uri))
}

/// Where a request to `leg` goes: its first Route entry, else the address
/// its messages came from (a NATed device is reachable only there), else
/// its Contact.
fn next_hop(leg: &Leg) -> Option<SocketAddr> {
    match leg.route.first() {
        Some(r) => uri_addr(r),
        None => leg.addr.or_else(|| uri_addr(&leg.contact)),
    }
}

/// The two BYEs that end `d`: to the callee first, then the caller.
/// `local` gives this proxy's address for a Via on a transport towards an
/// address; `why` goes in a Reason header (RFC 3326).
pub fn byes_for(
    d: &Dialog,
    seq: u64,
    local: impl Fn(&str, SocketAddr) -> Option<SocketAddr>,
    why: &str,
) -> Vec<Bye> {
    let mut out = Vec::new();
    // To the callee, as the caller: From is the caller's.
    // A hidden dialog's callee knows it by its own Call-ID.
    let callee_call_id = d.hidden.as_deref().unwrap_or(&d.call_id);
    let sides = [
        (&d.callee, &*d.from, &*d.to, d.caller.cseq, callee_call_id),
        (&d.caller, &*d.to, &*d.from, d.callee.cseq, &*d.call_id),
    ];
    for (i, (leg, from, to, cseq, call_id)) in sides.into_iter().enumerate() {
        if leg.contact.is_empty() {
            continue;
        }
        let Some(to_addr) = next_hop(leg) else { continue };
        let transport: &str = if leg.transport.is_empty() { "udp" } else { &leg.transport };
        let Some(via) = local(transport, to_addr) else { continue };
        let branch = format!("{BRANCH_PREFIX}{seq:x}-{i}");
        let mut m = String::with_capacity(512);
        m.push_str("BYE ");
        m.push_str(leg.contact.trim_matches(['<', '>']));
        m.push_str(" SIP/2.0\r\nVia: SIP/2.0/");
        m.push_str(&transport.to_ascii_uppercase());
        m.push(' ');
        crate::sip::write::push_socket_addr(&mut m, via);
        m.push_str(";branch=");
        m.push_str(&branch);
        m.push_str(";rport\r\nMax-Forwards: 70\r\n");
        for r in &leg.route {
            m.push_str("Route: ");
            m.push_str(r);
            m.push_str("\r\n");
        }
        m.push_str("From: ");
        m.push_str(from);
        m.push_str("\r\nTo: ");
        m.push_str(to);
        m.push_str("\r\nCall-ID: ");
        m.push_str(call_id);
        m.push_str("\r\nCSeq: ");
        crate::sip::write::push_u64(&mut m, u64::from(cseq.saturating_add(1).max(1)));
        m.push_str(" BYE\r\nReason: SIP;cause=200;text=\"");
        m.push_str(why);
        m.push_str("\"\r\nContent-Length: 0\r\n\r\n");
        out.push(Bye { transport: transport.into(), to: to_addr, branch, data: m });
    }
    out
}

struct InFlight {
    bye: Bye,
    sent: Instant,
    next: Instant,
    interval: Duration,
}

/// BYEs sent and not yet answered, by branch.
#[derive(Debug, Default)]
pub struct ByeQueue {
    inflight: Mutex<HashMap<String, InFlight>>,
    seq: AtomicU64,
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub unanswered: AtomicU64,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("branch", &self.bye.branch).finish_non_exhaustive()
    }
}

impl ByeQueue {
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Notes `bye` as sent now (over UDP it is resent until answered).
    pub fn sent(&self, bye: Bye, now: Instant) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if &*bye.transport != "udp" {
            return; // a reliable transport retransmits for us
        }
        let f = InFlight { bye, sent: now, next: now + T1, interval: T1 };
        self.inflight.lock().unwrap_or_else(|e| e.into_inner()).insert(f.bye.branch.clone(), f);
    }

    /// A reply to one of our BYEs (by its Via branch) with `code`.
    pub fn reply(&self, branch: &str, code: u16) {
        if code < 200 {
            return;
        }
        let removed =
            self.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(branch).is_some();
        if removed {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When [`ByeQueue::due`] next has something to do: the earliest
    /// resend or give-up of a BYE in flight; `None` with none.
    pub fn next_due(&self) -> Option<Instant> {
        let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|f| f.next.min(f.sent + GIVE_UP)).min()
    }

    /// The BYEs to send again now; those unanswered after Timer F are
    /// given up.
    pub fn due(&self, now: Instant) -> Vec<Bye> {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        map.retain(|_, f| {
            if now.duration_since(f.sent) >= GIVE_UP {
                self.unanswered.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if now >= f.next {
                f.interval = (f.interval * 2).min(T2);
                f.next = now + f.interval;
                out.push(f.bye.clone());
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::{AccMasks, State};

    #[test]
    fn route_sets_split_at_our_entries() {
        let rr: Vec<String> =
            ["<sip:p3;lr>", "<sip:p2;lr>", "<sip:me;lr>", "<sip:me2;lr>", "<sip:p1;lr>"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let (caller, callee) = split_route_set(&rr, |r| r.contains("me"));
        assert_eq!(caller, vec![Box::from("<sip:p1;lr>")]);
        assert_eq!(callee, vec![Box::from("<sip:p2;lr>"), Box::from("<sip:p3;lr>")]);
    }

    #[test]
    fn each_side_gets_a_bye_from_its_peer() {
        let d = Dialog {
            id: 1,
            state: State::Confirmed,
            call_id: "cid".into(),
            from_tag: "ft".into(),
            to_tag: "tt".into(),
            from: "<sip:a@x>;tag=ft".into(),
            to: "<sip:b@x>;tag=tt".into(),
            ruri: "sip:b@x".into(),
            caller: Leg {
                transport: "udp".into(),
                addr: Some("127.0.0.2:5070".parse().unwrap()),
                contact: "<sip:a@127.0.0.2:5070>".into(),
                route: vec![],
                cseq: 1,
            },
            callee: Leg {
                transport: "udp".into(),
                addr: Some("127.0.0.3:5080".parse().unwrap()),
                contact: "<sip:b@127.0.0.3:5080>".into(),
                route: vec![],
                cseq: 0,
            },
            dst: "".into(),
            start_ms: 0,
            answer_ms: 1,
            flags: 0,
            masks: AccMasks::default(),
            vars: vec![],
            profiles: vec![],
            max_ms: None,
            deadline_ms: 0,
            hidden: None,
        };
        let local = |_: &str, _: SocketAddr| Some("127.0.0.1:5060".parse().unwrap());
        let byes = byes_for(&d, 7, local, "Call duration limit");
        assert_eq!(byes.len(), 2);
        assert_eq!(byes[0].to, "127.0.0.3:5080".parse().unwrap());
        assert!(byes[0].data.starts_with("BYE sip:b@127.0.0.3:5080 SIP/2.0\r\n"));
        assert!(byes[0].data.contains("From: <sip:a@x>;tag=ft\r\nTo: <sip:b@x>;tag=tt\r\n"));
        assert!(byes[0].data.contains("CSeq: 2 BYE"));
        assert!(byes[1].data.contains("From: <sip:b@x>;tag=tt\r\nTo: <sip:a@x>;tag=ft\r\n"));
        assert!(byes[1].data.contains("CSeq: 1 BYE"));
        assert_eq!(byes[1].to, "127.0.0.2:5070".parse().unwrap());
        let mut m = crate::sip::Message::parse(bytes::Bytes::from(byes[0].data.clone())).unwrap();
        m.validate().unwrap();
        // Hidden: the callee gets the Call-ID it knows, the caller its own.
        let hidden = Dialog { hidden: Some("sipc-th-1".into()), ..d };
        let byes = byes_for(&hidden, 8, local, "Dialog timeout");
        assert!(byes[0].data.contains("\r\nCall-ID: sipc-th-1\r\n"));
        assert!(byes[1].data.contains("\r\nCall-ID: cid\r\n"));
    }

    #[test]
    fn udp_byes_are_resent_until_answered() {
        let q = ByeQueue::default();
        let t0 = Instant::now();
        let bye = Bye {
            transport: "udp".into(),
            to: "127.0.0.1:1".parse().unwrap(),
            branch: "b1".into(),
            data: String::new(),
        };
        q.sent(bye, t0);
        assert!(q.due(t0).is_empty());
        assert_eq!(q.due(t0 + T1).len(), 1);
        assert!(q.due(t0 + T1 + Duration::from_millis(100)).is_empty());
        q.reply("b1", 200);
        assert!(q.due(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(q.answered.load(Ordering::Relaxed), 1);
    }
}
