//! The media relay builtins (Kamailio's rtpengine module):
//! `rtpengine_offer`, `rtpengine_answer`, `rtpengine_delete`,
//! `rtpengine_manage` and `$rtpengine_result`.
//!
//! Each builds an ng request from the message (its SDP, Call-ID, tags and
//! source) and the flags string ([`crate::rtpengine::flags`]), sends it
//! through the services' [`NgClient`] and, for an offer or answer, puts the
//! SDP rtpengine returns in place of the body (Content-Length follows).
//! The call waits for the reply on the routing thread, bounded by the
//! client's worst case (timeout × tries × instances); why that wait rather
//! than parking the message is in docs/architecture.md ("rtpengine
//! control").
//!
//! Failures never end the route: the builtin returns false, `$rtpengine_result`
//! says why, a log line names the Call-ID, and the configuration decides
//! (reply 503, or go on without the relay).

use std::rc::Rc;

use bytes::Bytes;

use crate::rtpengine::bencode::{Dict, Value};
use crate::rtpengine::flags::{self, Flags};
use crate::rtpengine::{NgClient, NgError};
use crate::sema::builtins::Kinds;
use crate::sip::HeaderName;

use super::RouteCtx;

/// What `$rtpengine_result` reads, in the order of
/// [`RESULT_WORDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaResult {
    /// rtpengine did it.
    Ok,
    /// Nothing to do (`rtpengine_manage` on a message that needs no
    /// command, an INVITE without SDP).
    Nothing,
    /// No SDP body, or one that is not SDP: the offer or answer was skipped.
    NoSdp,
    /// rtpengine answered with an error.
    Error,
    /// The reply was not an ng reply.
    Malformed,
    /// No instance answered.
    Timeout,
    /// No instance is up or none is configured.
    Unavailable,
    /// The flags string (built at run time) has a word rtpengine does not
    /// know.
    BadFlags,
}

/// The values of `$rtpengine_result`.
pub const RESULT_WORDS: &[&str] =
    &["ok", "nothing", "no_sdp", "error", "malformed", "timeout", "unavailable", "bad_flags"];

/// The ng command a builtin sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Offer,
    Answer,
    Delete,
}

impl Op {
    fn command(self) -> &'static str {
        match self {
            Op::Offer => "offer",
            Op::Answer => "answer",
            Op::Delete => "delete",
        }
    }
}

pub fn offer(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    with_flags(ctx, a[0], |ctx, f| run(ctx, Op::Offer, f))
}

pub fn answer(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    with_flags(ctx, a[0], |ctx, f| run(ctx, Op::Answer, f))
}

pub fn delete(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    with_flags(ctx, a[0], |ctx, f| run(ctx, Op::Delete, f))
}

/// `rtpengine_manage(flags)`: the command the message calls for, as
/// Kamailio's `rtpengine_manage` decides it.
///
/// - a request: INVITE or UPDATE with SDP → offer; ACK with SDP → answer
///   (the SDP offer came in the 2xx of an INVITE without one); BYE or
///   CANCEL → delete; anything else → nothing;
/// - a failure route (the transaction failed) → delete;
/// - a reply ≥ 300 → delete; a 1xx/2xx with SDP to an INVITE or UPDATE →
///   answer, or offer when the request carried no offer (late
///   negotiation: this proxy sent no offer for it); otherwise nothing.
pub fn manage(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    with_flags(ctx, a[0], |ctx, f| match decide(ctx) {
        Some(op) => run(ctx, op, f),
        None => {
            ctx.media_result = Some(MediaResult::Nothing);
            1
        }
    })
}

fn decide(ctx: &RouteCtx<'_>) -> Option<Op> {
    if ctx.kind.contains(Kinds::FAILURE) {
        return Some(Op::Delete);
    }
    let msg = ctx.req.msg.original();
    let has_sdp = has_sdp_body(ctx);
    if msg.is_request() {
        return match msg.method_str()? {
            "INVITE" | "UPDATE" if has_sdp => Some(Op::Offer),
            "ACK" if has_sdp => Some(Op::Answer),
            "BYE" | "CANCEL" => Some(Op::Delete),
            _ => None,
        };
    }
    let code = msg.status()?;
    if code >= 300 {
        return Some(Op::Delete);
    }
    let cseq = msg.cseq().ok().flatten()?;
    if !matches!(cseq.method, "INVITE" | "UPDATE") || !has_sdp || code < 101 {
        return None;
    }
    Some(if ctx.req.txn.media_offered { Op::Answer } else { Op::Offer })
}

thread_local! {
    /// The flags strings this thread parsed last (a config has a handful,
    /// and most are constants): parsing one again allocates its ng values
    /// again, at every call.
    static PARSED: std::cell::RefCell<Vec<(String, Rc<Flags>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How many parsed flags strings a thread keeps.
const PARSED_KEPT: usize = 16;

/// Parses the flags argument (absent: none) and runs `f`; a run-time flags
/// string with an unknown word fails the call.
fn with_flags(
    ctx: &mut RouteCtx<'_>,
    h: i64,
    f: impl FnOnce(&mut RouteCtx<'_>, &Flags) -> i64,
) -> i64 {
    let text = ctx.str(h);
    let cached =
        PARSED.with(|p| p.borrow().iter().find(|(t, _)| t == text).map(|(_, f)| Rc::clone(f)));
    let parsed = match cached {
        Some(f) => f,
        None => match flags::parse(text) {
            Ok(parsed) => {
                let parsed = Rc::new(parsed);
                let text = text.to_owned();
                PARSED.with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() == PARSED_KEPT {
                        p.remove(0);
                    }
                    p.push((text, Rc::clone(&parsed)));
                });
                parsed
            }
            Err(e) => {
                tracing::warn!(call_id = ctx.call_id(), "rtpengine: {e}");
                ctx.media_result = Some(MediaResult::BadFlags);
                return 0;
            }
        },
    };
    f(ctx, &parsed)
}

/// Is the body an SDP body (by Content-Type when there is one)?
fn has_sdp_body(ctx: &RouteCtx<'_>) -> bool {
    let msg = &ctx.req.msg;
    if msg.body().is_empty() {
        return false;
    }
    match msg.first_current(HeaderName::ContentType) {
        Some(ct) => ct.trim().to_ascii_lowercase().starts_with("application/sdp"),
        // RFC 3261 §20.15: a body without a type is not to be guessed at;
        // an SDP one still starts with its version line.
        None => msg.body().starts_with(b"v="),
    }
}

fn run(ctx: &mut RouteCtx<'_>, op: Op, f: &Flags) -> i64 {
    let result = exchange(ctx, op, f);
    let (word, ok) = match &result {
        Ok(()) => (MediaResult::Ok, true),
        Err(r) => (*r, false),
    };
    ctx.media_result = Some(word);
    i64::from(ok)
}

fn exchange(ctx: &mut RouteCtx<'_>, op: Op, f: &Flags) -> Result<(), MediaResult> {
    let call_id = f.call_id.clone().unwrap_or_else(|| ctx.call_id().to_owned());
    let Some(client) = ctx.req.services.as_ref().and_then(|s| s.rtpengine.clone()) else {
        tracing::warn!(%call_id, "rtpengine: {} without `module rtpengine`", op.command());
        return Err(MediaResult::Unavailable);
    };
    let mut d = Dict::command(op.command());
    let sdp = if op == Op::Delete {
        None
    } else {
        let body = ctx.req.msg.body();
        let valid = has_sdp_body(ctx) && crate::sip::Sdp::parse(&body).is_ok();
        if !valid {
            tracing::warn!(
                %call_id,
                "rtpengine: {} skipped: the message has no SDP body",
                op.command()
            );
            return Err(MediaResult::NoSdp);
        }
        Some(body)
    };
    if let Some(body) = &sdp {
        d.insert("sdp", body.as_ref());
    }
    tags(ctx, op, f, &mut d)?;
    if op != Op::Delete {
        let ip = f.received_from.unwrap_or(ctx.req.source.ip());
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        // Written without `fmt` (every offer and answer carries it).
        let mut text = String::with_capacity(39);
        crate::sip::write::push_ip(&mut text, ip);
        d.insert("received-from", Value::List(vec![family.into(), text.into()]));
    }
    if let Some(which) = &f.via_branch {
        if let Some(branch) = via_branch(ctx, which) {
            d.insert("via-branch", branch);
        }
    }
    for (k, v) in f.dict.iter() {
        d.insert(std::str::from_utf8(k).unwrap_or_default(), v.clone());
    }
    let reply = request(&client, &call_id, d).map_err(|e| {
        let word = match &e {
            NgError::Rtpengine { .. } => MediaResult::Error,
            NgError::Malformed { .. } => MediaResult::Malformed,
            NgError::Timeout { .. } | NgError::WaitExpired(_) => MediaResult::Timeout,
            NgError::NoLiveInstance | NgError::Send { .. } => MediaResult::Unavailable,
        };
        tracing::warn!(%call_id, "rtpengine: {} failed: {e}", op.command());
        word
    })?;
    if op == Op::Delete {
        return Ok(());
    }
    let Some(new) = reply.get_bytes("sdp") else {
        tracing::warn!(%call_id, "rtpengine: {} reply has no SDP", op.command());
        return Err(MediaResult::Malformed);
    };
    ctx.req.msg.set_body(Bytes::copy_from_slice(new), None);
    if op == Op::Offer && ctx.req.msg.original().is_request() {
        ctx.req.txn.media_offered = true;
    }
    Ok(())
}

/// The tags of the request, as Kamailio's module puts them: the sender of
/// the SDP is `from-tag`. An offer in a request and any delete: From's tag
/// (and To's for a delete with the `to-tag` flag). An answer in a reply:
/// From then To. An answer in a request (ACK after a late offer) or an
/// offer in a reply: the other way round.
fn tags(ctx: &RouteCtx<'_>, op: Op, f: &Flags, d: &mut Dict) -> Result<(), MediaResult> {
    let msg = ctx.req.msg.original();
    let from = f.from_tag.as_deref().or(msg.from_tag()).unwrap_or("");
    let to = f.to_tag_value.as_deref().or(msg.to_tag());
    let straight = match op {
        Op::Delete => true,
        Op::Offer => msg.is_request(),
        Op::Answer => !msg.is_request(),
    };
    if straight {
        d.insert("from-tag", from);
        let with_to = match op {
            Op::Delete => f.to_tag || f.to_tag_value.is_some(),
            _ => true,
        };
        if let Some(to) = to.filter(|t| with_to && !t.is_empty()) {
            d.insert("to-tag", to);
        }
    } else {
        let Some(to) = to.filter(|t| !t.is_empty()) else {
            tracing::warn!(call_id = ctx.call_id(), "rtpengine: {} needs a To tag", op.command());
            return Err(MediaResult::Error);
        };
        d.insert("from-tag", to);
        d.insert("to-tag", from);
    }
    Ok(())
}

/// `via-branch=1|2|auto`: the branch of the first or second Via (`auto`:
/// the first of a request, the second of a reply).
fn via_branch(ctx: &RouteCtx<'_>, which: &str) -> Option<String> {
    let msg = ctx.req.msg.original();
    let n = match which {
        "1" => 0,
        "2" => 1,
        _ if msg.is_request() => 0,
        _ => 1,
    };
    let via = msg.vias().nth(n)?.ok()?;
    via.branch().map(str::to_owned)
}

/// Sends the request and waits for its reply on this thread
/// ([`NgClient::request_sync`]), at most the client's worst case. On a
/// tokio worker thread (TCP and TLS routing, timers that run failure
/// routes) the wait is announced with `block_in_place`, so the runtime
/// moves its other tasks to another worker meanwhile.
fn request(client: &NgClient, call_id: &str, d: Dict) -> Result<Dict, NgError> {
    // The only key of a reply route code reads besides its result; the
    // statistics of a `delete` reply are checked, not built.
    const KEEP: Option<&[&str]> = Some(&["sdp"]);
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| client.request_sync_keeping(call_id, d, KEEP))
        }
        _ => client.request_sync_keeping(call_id, d, KEEP),
    }
}

/// `$rtpengine_result`.
pub fn pv_result(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    match ctx.media_result {
        Some(r) => ctx.alloc(RESULT_WORDS[r as usize]),
        None => ctx.shared.empty,
    }
}
