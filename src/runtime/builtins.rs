//! The bodies of the runtime functions, as safe Rust over [`RouteCtx`].
//!
//! Each takes the context and its `i64` arguments (see the value encoding
//! in [`super`]) and returns an `i64` (0 for `nothing`). [`super::abi`]
//! wraps each in an `extern "C" fn sipc_rt_*` for the JIT; the evaluator
//! calls them directly. Both go through [`super::abi::guarded`], so the two
//! execution engines share every line of builtin behaviour.

use crate::proxy::Decision;
use crate::sema::ir::Value;
use crate::sip::{HeaderName, Method, NameAddr, Uri, UriParts};

use super::{ABSENT, RouteCtx};

pub type Impl = fn(&mut RouteCtx<'_>, &[i64]) -> i64;

fn b(v: bool) -> i64 {
    v as i64
}

fn s(ctx: &RouteCtx<'_>, h: i64) -> String {
    ctx.str(h).to_owned()
}

/// A string argument that outlives the borrow of `ctx`, for builtins that
/// go on to change the message: a constant (header names, mostly) borrows
/// the program's pool, anything else is copied.
fn arg<'s>(ctx: &RouteCtx<'s>, h: i64) -> std::borrow::Cow<'s, str> {
    let shared: &'s super::Shared = ctx.shared;
    if super::is_const_handle(h) {
        std::borrow::Cow::Borrowed(super::resolve_const(shared, h))
    } else {
        std::borrow::Cow::Owned(ctx.str(h).to_owned())
    }
}

/// Builtins whose behaviour lands with later work, and what brings them.
/// Until then they return false (nothing for `on_*`) without side effects.
/// Empty now; kept so `sipc run` can announce the next ones.
pub const LATER: &[(&str, &str)] = &[];

// ---- internal operations -------------------------------------------------

pub fn str_eq(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    // The constant pool holds each string once, so two constant handles
    // (a result word against a literal, say) are equal exactly when they
    // are the same handle.
    if a[0] == a[1] {
        return 1;
    }
    if super::is_const_handle(a[0]) && super::is_const_handle(a[1]) {
        return 0;
    }
    b(ctx.str(a[0]) == ctx.str(a[1]))
}

pub fn concat(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let mut out = String::with_capacity(ctx.str(a[0]).len() + ctx.str(a[1]).len());
    out.push_str(ctx.str(a[0]));
    out.push_str(ctx.str(a[1]));
    ctx.alloc(out)
}

pub fn int_to_str(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.alloc(a[0].to_string())
}

pub fn bool_to_str(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.alloc(if a[0] != 0 { "true" } else { "false" })
}

/// `s =~ regexes[r]`: on success `$match(N)` are the capture groups.
pub fn regex_match(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let shared = ctx.shared;
    let Some(re) = shared.regexes.get(a[1] as usize) else { return 0 };
    let text = ctx.str(a[0]);
    // Most tests do not match (scanner lists, number plans): find that out
    // without the capture machinery or a copy of the text.
    if !re.is_match(text) {
        return 0;
    }
    let Some(caps) = re.captures(text) else { return 0 };
    let groups: Vec<String> =
        caps.iter().map(|m| m.map_or(String::new(), |m| m.as_str().to_owned())).collect();
    let handles: Vec<i64> = groups.into_iter().map(|g| ctx.alloc(g)).collect();
    ctx.captures = handles;
    1
}

/// Call-depth guard: 1 when another `route(…)` may be entered.
pub fn enter(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    if ctx.depth >= super::MAX_DEPTH {
        tracing::error!(call_id = ctx.call_id(), "route call depth exceeds {}", super::MAX_DEPTH);
        ctx.failed = true;
        return 0;
    }
    ctx.depth += 1;
    1
}

pub fn leave(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.depth = ctx.depth.saturating_sub(1);
    0
}

/// A `while` loop hit `max_while_loops`.
pub fn loop_limit(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    tracing::warn!(
        call_id = ctx.call_id(),
        "while loop stopped after max_while_loops = {}",
        ctx.shared.max_while
    );
    0
}

pub fn var_get(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.vars.get(a[0] as usize).copied().unwrap_or(0)
}

pub fn var_set(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    if let Some(slot) = ctx.vars.get_mut(a[0] as usize) {
        *slot = a[1];
    }
    0
}

pub fn avp_get(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.avps.get(a[0] as usize).copied().unwrap_or(ctx.shared.empty)
}

pub fn avp_set(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    if let Some(slot) = ctx.avps.get_mut(a[0] as usize) {
        *slot = a[1];
    }
    0
}

pub fn capture(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.captures.get(a[0] as usize).copied().unwrap_or(ctx.shared.empty)
}

// ---- pseudo-variables ----------------------------------------------------
//
// Getters take `(argument)` (the `$hdr` name handle, or the slot index of
// `$var`/`$avp`/`$match`, else ignored); setters take `(argument, value)`.

/// The handle of a string found in the message: a zero-copy slice when it
/// lies in the received head, else a copy in the arena. `return`s from the
/// enclosing function in the zero-copy case.
macro_rules! share {
    ($ctx:expr, |$m:ident| $e:expr) => {{
        let ctx: &mut RouteCtx<'_> = $ctx;
        let owned = {
            let $m = &ctx.req.msg;
            let found: Option<&str> = $e;
            match found {
                None | Some("") => None,
                Some(s) => match super::head_handle($m.original().head(), s) {
                    Some(h) => return h,
                    None => Some(s.to_owned()),
                },
            }
        };
        match owned {
            Some(s) => ctx.alloc(s),
            None => ctx.shared.empty,
        }
    }};
}

fn ruri(ctx: &RouteCtx<'_>) -> String {
    ctx.req.msg.request_uri().unwrap_or("").to_owned()
}

fn header(ctx: &RouteCtx<'_>, name: &str) -> String {
    ctx.req.msg.current_values(name).next().unwrap_or("").to_owned()
}

/// Byte offset of `part` (a slice of `whole`) in `whole`.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

pub fn pv_ru(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.request_uri())
}

/// A part of the current R-URI (`pick` chooses its byte range), shared
/// zero-copy when the R-URI is unedited.
fn ruri_part(ctx: &mut RouteCtx<'_>, pick: fn(&UriParts) -> Option<(usize, usize)>) -> i64 {
    let owned = {
        let Some(ruri) = ctx.req.msg.request_uri() else { return ctx.shared.empty };
        let parts = ctx.uris.parts(ctx.req.msg.original(), ruri);
        let Some((start, end)) = parts.and_then(pick) else { return ctx.shared.empty };
        let part = &ruri[start..end];
        if part.is_empty() {
            return ctx.shared.empty;
        }
        match super::head_handle(ctx.req.msg.original().head(), part) {
            Some(h) => return h,
            None => part.to_owned(),
        }
    };
    ctx.alloc(owned)
}

pub fn pv_ru_user(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ruri_part(ctx, UriParts::user)
}

pub fn pv_ru_host(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ruri_part(ctx, |p| Some(p.host()))
}

pub fn pv_ru_port(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(ruri) = ctx.req.msg.request_uri() else { return 0 };
    let parts = ctx.uris.parts(ctx.req.msg.original(), ruri);
    parts.map_or(0, |p| i64::from(p.port.unwrap_or(5060)))
}

pub fn set_ru(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let v = s(ctx, a[1]);
    ctx.req.msg.set_request_uri(v);
    0
}

/// Replaces the byte range of the current R-URI that `pick` selects (or
/// inserts at the position it gives) with `with`.
fn edit_ruri(
    ctx: &mut RouteCtx<'_>,
    with: String,
    pick: impl Fn(&Uri<'_>, &str, &str) -> Option<(usize, usize, String)>,
) {
    let cur = ruri(ctx);
    let Ok(u) = Uri::parse(&cur) else { return };
    if let Some((start, end, text)) = pick(&u, &cur, &with) {
        let new = format!("{}{}{}", &cur[..start], text, &cur[end..]);
        ctx.req.msg.set_request_uri(new);
    }
}

pub fn set_ru_user(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let with = s(ctx, a[1]);
    edit_ruri(ctx, with, |u, cur, w| match u.user {
        Some(user) => {
            let start = offset(cur, user);
            if w.is_empty() {
                // drop "user@" (and a password with it)
                let at = cur[start..].find('@').map_or(start + user.len(), |i| start + i + 1);
                Some((start, at, String::new()))
            } else {
                Some((start, start + user.len(), w.to_owned()))
            }
        }
        None if w.is_empty() => None,
        None => {
            let host = offset(cur, u.host_str);
            Some((host, host, format!("{w}@")))
        }
    });
    0
}

pub fn set_ru_host(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let with = s(ctx, a[1]);
    edit_ruri(ctx, with, |u, cur, w| {
        let start = offset(cur, u.host_str);
        Some((start, start + u.host_str.len(), w.to_owned()))
    });
    0
}

pub fn set_ru_port(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let port = a[1];
    edit_ruri(ctx, String::new(), |u, cur, _| {
        let host_end = offset(cur, u.host_str) + u.host_str.len();
        let end = match u.port {
            Some(_) => {
                let digits = cur[host_end + 1..].bytes().take_while(u8::is_ascii_digit).count();
                host_end + 1 + digits
            }
            None => host_end,
        };
        let text = if port <= 0 { String::new() } else { format!(":{port}") };
        Some((host_end, end, text))
    });
    0
}

pub fn pv_du(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let v = ctx.req.destination.clone().unwrap_or_default();
    ctx.alloc(v)
}

pub fn set_du(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let v = s(ctx, a[1]);
    ctx.req.destination = if v.is_empty() { None } else { Some(v) };
    0
}

fn uri_of(m: &crate::sip::EditedMessage, name: HeaderName) -> Option<crate::sip::Uri<'_>> {
    m.first_current(name).and_then(|l| NameAddr::parse(l).ok()).map(|n| n.uri)
}

pub fn pv_fu(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::From).map(|u| u.raw()))
}
pub fn pv_fu_user(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::From).and_then(|u| u.user))
}
pub fn pv_fu_host(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::From).map(|u| u.host_str))
}
pub fn pv_tu(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::To).map(|u| u.raw()))
}
pub fn pv_tu_user(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::To).and_then(|u| u.user))
}
pub fn pv_tu_host(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| uri_of(m, HeaderName::To).map(|u| u.host_str))
}

pub fn pv_si(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let v = ctx.req.source.ip().to_string();
    ctx.alloc(v)
}

pub fn pv_sp(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    i64::from(ctx.req.source.port())
}

pub fn pv_rm(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.original().method_str().or_else(|| m
        .original()
        .cseq()
        .ok()
        .flatten()
        .map(|c| c.method)))
}

/// `$rs`, `$T_reply_code`: request routes see no reply (0).
pub fn pv_zero(_: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    0
}

/// `$rr`, `$Ri`: empty (no reply; the receiving socket is not passed to routes yet).
pub fn pv_empty(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.shared.empty
}

pub fn pv_ci(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.original().call_id().ok().flatten())
}

pub fn pv_ua(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.first_current(HeaderName::UserAgent))
}

pub fn pv_ct(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.first_current(HeaderName::Contact))
}

pub fn pv_cs(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.msg.original().cseq().ok().flatten().map_or(0, |c| i64::from(c.seq))
}

fn credential_param(ctx: &mut RouteCtx<'_>, param: &str) -> i64 {
    let mut line = header(ctx, "Authorization");
    if line.is_empty() {
        line = header(ctx, "Proxy-Authorization");
    }
    let v = line
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| {
            let k = k.trim();
            let k = k.rsplit(' ').next().unwrap_or(k);
            k.eq_ignore_ascii_case(param)
        })
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default();
    ctx.alloc(v)
}

pub fn pv_au(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    credential_param(ctx, "username")
}

pub fn pv_ar(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    credential_param(ctx, "realm")
}

pub fn pv_ml(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.msg.original().as_bytes().len() as i64
}

pub fn pv_proto(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let v = ctx.req.transport.via_token().to_ascii_lowercase();
    ctx.alloc(v)
}

pub fn pv_hdr(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = arg(ctx, a[0]);
    share!(ctx, |m| m.current_values(&name).next())
}

// ---- functions -----------------------------------------------------------

/// Max-Forwards is decremented by the core when it forwards (RFC 3261
/// §16.6 step 3) and 0 is already answered 483 before routing; this only
/// reports whether the request may still be forwarded. A value above
/// `limit` is not lowered (the core owns the header).
pub fn maxfwd_ok(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.msg.original().max_forwards().ok().flatten() != Some(0))
}

/// The core validated the message (400 with the fault named) before routing.
pub fn sanity_check(_: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    1
}

pub fn is_method(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let m = ctx.req.msg.original().method_str().unwrap_or("");
    b(ctx.str(a[0]).split('|').any(|x| x.trim() == m))
}

/// The method set a constant `is_method` argument names, as a mask of
/// [`Method::bit`]s; `None` when it names an extension method (which only
/// the string comparison of [`is_method`] can test).
pub fn method_mask(list: &str) -> Option<u32> {
    list.split('|')
        .map(|m| match Method::from_token(m.trim()) {
            Method::Extension => None,
            m => Some(m.bit()),
        })
        .try_fold(0, |acc, bit| bit.map(|b| acc | b))
}

/// `is_method(LIST)` with a constant LIST of standard methods, compiled to
/// a mask ([`method_mask`]): the same answer as [`is_method`] without
/// splitting and comparing strings on every message.
pub fn is_method_in(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let bit = ctx.req.msg.original().method().map_or(0, Method::bit);
    b(i64::from(bit) & a[0] != 0)
}

pub fn is_myself(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let shared = ctx.shared;
    let text = super::resolve(ctx.req, shared, &ctx.strings, a[0]);
    b(ctx.uris.is_local(ctx.req.msg.original(), text, shared.local()))
}

pub fn has_to_tag(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.msg.original().to_tag().is_some())
}

/// The core has already done RFC 3261 §16.4 (this proxy's own Route
/// entries are removed before routing); `loose_route()` is true when the
/// request arrived with a Route header, i.e. it follows a route set.
pub fn loose_route(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.msg.original().headers_named("Route").next().is_some())
}

/// `hep_capture(on)`: see [`crate::proxy::hep`].
pub fn hep_capture(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.req.capture = Some(a[0] != 0);
    b(ctx.req.services.as_deref().is_some_and(|s| s.hep.is_some()))
}

pub fn record_route(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.record_route = true;
    1
}

/// For a CANCEL: the INVITE it cancels has a transaction. Other requests
/// reach the routes only when they are not retransmissions (the transaction
/// layer absorbs those first), so this is false for them.
pub fn t_check_trans(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.txn.exists)
}
/// Always false: a retransmission never reaches a route (see `t_check_trans`).
pub fn t_precheck_trans(_: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    0
}
pub fn t_is_canceled(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.txn.canceled)
}
/// Matches the reply being handled (onreply routes) or the winning reply
/// (failure routes) against the regex.
pub fn t_check_status(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let code = reply_code(ctx);
    let shared = ctx.shared;
    b(shared.regexes.get(a[0] as usize).is_some_and(|re| re.is_match(&code.to_string())))
}
pub fn t_branch_timeout(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.txn.branch_timeout)
}
/// Adds a branch for parallel forking: `uri`, or the current R-URI.
pub fn append_branch(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let uri = if a[0] == ABSENT { String::new() } else { s(ctx, a[0]) };
    let uri = if uri.is_empty() { ruri(ctx) } else { uri };
    if Uri::parse(&uri).is_err() {
        return 0;
    }
    ctx.req.txn.branches.push(crate::proxy::router::BranchTarget::uri(uri));
    1
}

/// The status of the reply in reply routes, the winning one in failure routes.
fn reply_code(ctx: &RouteCtx<'_>) -> u16 {
    ctx.req.msg.original().status().unwrap_or(ctx.req.txn.reply_code)
}

/// `$rs` and `$T_reply_code`.
pub fn pv_rs(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    i64::from(reply_code(ctx))
}

/// `$rr`: the reason phrase of the reply.
pub fn pv_rr(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    share!(ctx, |m| m.original().reason())
}
/// `on_failure(NAME)`: the argument is the route's index.
pub fn arm_failure(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.req.txn.on_failure = u32::try_from(a[0]).ok();
    0
}
pub fn arm_reply(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.req.txn.on_reply = u32::try_from(a[0]).ok();
    0
}
pub fn arm_branch(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.req.txn.on_branch = u32::try_from(a[0]).ok();
    0
}

fn decide(ctx: &mut RouteCtx<'_>, d: Decision) -> i64 {
    if ctx.decision.is_some() {
        tracing::debug!(call_id = ctx.call_id(), "request already handled; {d:?} ignored");
        return 0;
    }
    ctx.decision = Some(d);
    1
}

fn set_destination(ctx: &mut RouteCtx<'_>, a: i64) {
    if a != ABSENT {
        let d = s(ctx, a);
        if !d.is_empty() {
            ctx.req.destination = Some(d);
        }
    }
}

/// `forward()`: stateless forwarding.
pub fn forward(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    set_destination(ctx, a[0]);
    decide(ctx, Decision::Forward)
}

/// `relay()`: stateful forwarding through a transaction.
pub fn relay(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    set_destination(ctx, a[0]);
    decide(ctx, Decision::Relay)
}

pub fn reply(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let code = a[0].clamp(100, 699) as u16;
    let reason = ctx.shared.reason(ctx.req, &ctx.strings, a[1]);
    decide(ctx, Decision::Reply { code, reason })
}

pub fn reply_error(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    decide(ctx, Decision::Reply { code: 500, reason: "Server Internal Error".into() })
}

pub fn is_present_hf(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = arg(ctx, a[0]);
    b(ctx.req.msg.current_values(&name).next().is_some())
}

/// `"Name: value\r\n"` (the line end is optional).
pub fn append_hf(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let line = arg(ctx, a[0]);
    let mut ok = false;
    for l in line.split("\r\n").flat_map(|l| l.split('\n')).filter(|l| !l.trim().is_empty()) {
        let Some((name, value)) = l.split_once(':') else { return 0 };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic()) {
            return 0;
        }
        ctx.req.msg.append(name, value.trim());
        ok = true;
    }
    b(ok)
}

pub fn remove_hf(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = arg(ctx, a[0]);
    ctx.req.msg.remove_all(&name) as i64
}

pub fn replace_hf(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let (name, value) = (arg(ctx, a[0]), arg(ctx, a[1]));
    ctx.req.msg.set_header(&name, &value);
    1
}

pub fn str_len(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.str(a[0]).len() as i64
}

pub fn str_lower(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let v = ctx.str(a[0]).to_ascii_lowercase();
    ctx.alloc(v)
}

pub fn str_upper(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let v = ctx.str(a[0]).to_ascii_uppercase();
    ctx.alloc(v)
}

/// Byte-based and clamped; a cut through a UTF-8 sequence is replaced by U+FFFD.
pub fn str_substr(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let bytes = ctx.str(a[0]).as_bytes();
    let start = a[1].clamp(0, bytes.len() as i64) as usize;
    let len = a[2].clamp(0, (bytes.len() - start) as i64) as usize;
    let v = String::from_utf8_lossy(&bytes[start..start + len]).into_owned();
    ctx.alloc(v)
}

pub fn str_contains(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    b(ctx.str(a[0]).contains(ctx.str(a[1])))
}

pub fn str_starts_with(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    b(ctx.str(a[0]).starts_with(ctx.str(a[1])))
}

pub fn to_int(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.str(a[0]).trim().parse().unwrap_or(0)
}

pub fn log(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let msg = ctx.str(a[1]);
    let call_id = ctx.call_id();
    match a[0] {
        0 => tracing::error!(target: "sipc::route", call_id, "{msg}"),
        1 => tracing::warn!(target: "sipc::route", call_id, "{msg}"),
        2 | 3 => tracing::info!(target: "sipc::route", call_id, "{msg}"),
        _ => tracing::debug!(target: "sipc::route", call_id, "{msg}"),
    }
    0
}

fn bit(a: i64) -> u64 {
    1u64 << (a.clamp(0, 63) as u32)
}

pub fn setflag(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.flags |= bit(a[0]);
    0
}

pub fn resetflag(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    ctx.flags &= !bit(a[0]);
    0
}

pub fn isflagset(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    b(ctx.flags & bit(a[0]) != 0)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Addr(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Duration(d) => format!("{d}ms"),
    }
}

fn table_find(ctx: &RouteCtx<'_>, a: &[i64]) -> Option<String> {
    let key = ctx.str(a[1]);
    let table = ctx.shared.tables.get(a[0] as usize)?;
    table.iter().find(|(k, _)| value_text(k) == key).map(|(_, v)| value_text(v))
}

pub fn table_get(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let v = table_find(ctx, a).unwrap_or_default();
    ctx.alloc(v)
}

pub fn table_has(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    b(table_find(ctx, a).is_some())
}

// ---- Kamailio default-config builtins -------------------------------------

/// `force_rport()`: the top Via gets `received` and `rport` from the
/// source, and a transaction made for the request replies to the source
/// port (see [`crate::proxy::request::force_rport`]).
pub fn force_rport(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let source = ctx.req.source;
    crate::proxy::request::force_rport(&mut ctx.req.msg, source);
    ctx.req.force_rport = true;
    0
}

/// `set_reply_no_connect()`: replies only on an open connection.
pub fn set_reply_no_connect(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.reply_no_connect = true;
    0
}

pub fn is_request(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.req.msg.original().is_request())
}

pub fn is_reply(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(!ctx.req.msg.original().is_request())
}

/// `is_first_hop()`: one Via on a request; on a reply (whose Via of this
/// proxy is already removed), no Record-Route or a top one naming this
/// proxy.
pub fn is_first_hop(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let msg = &ctx.req.msg;
    if msg.original().is_request() {
        let vias = msg
            .current_values("Via")
            .flat_map(crate::sip::scan::CommaValues::new)
            .filter(|v| v.as_ref().is_ok_and(|v| !v.is_empty()))
            .take(2)
            .count();
        return b(vias == 1);
    }
    let Some(top) = msg.first_value("Record-Route") else { return 1 };
    let shared = ctx.shared;
    b(NameAddr::parse(&top).is_ok_and(|n| shared.local().is_local_uri(&n.uri)))
}

/// `t_newtran()`: a final reply of the request route goes through a
/// server transaction (see `Core::reply_in_txn`).
pub fn t_newtran(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.txn.newtran = true;
    1
}

/// `t_is_set(HOOK)`: the argument is the index into
/// [`crate::sema::builtins::HOOK_KINDS`].
pub fn t_is_set(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let txn = &ctx.req.txn;
    b(match a[0] {
        0 => txn.on_failure.is_some(),
        1 => txn.on_branch.is_some(),
        2 => txn.on_reply.is_some(),
        _ => false,
    })
}

pub fn t_is_branch_route(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    b(ctx.kind == crate::sema::builtins::Kinds::BRANCH)
}

/// `$T_branch_idx`.
pub fn pv_branch_idx(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    i64::from(ctx.req.txn.branch_index)
}

/// `add_path()`: a Path naming this proxy is added when the request leaves.
pub fn add_path(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    ctx.req.path = Some(String::new());
    1
}

/// `add_path_received()`: as `add_path()`, with the source as `received`.
pub fn add_path_received(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let param = crate::proxy::request::path_received_param(ctx.req.source, ctx.req.transport);
    ctx.req.path = Some(param);
    1
}
