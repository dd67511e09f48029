//! The registrar, location and authentication builtins: `save`, `lookup`,
//! `registered`, `unregister`, `auth_check`, `auth_challenge`,
//! `consume_credentials`.
//!
//! They are thin: the rules live in [`crate::registrar`] and
//! [`crate::auth`], the state in the request's
//! [`crate::proxy::services::Services`]; this module moves values between
//! the message and those. Builtins that can fail for more than one reason
//! return a bool (so `if !lookup(…)` reads naturally, as in kamailio.cfg)
//! and leave the reason in `$lookup_result` / `$auth_result`.
//! Without the services (a program run by tests without a server) they
//! report failure and change nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{AuthRequest, AuthResult};
use crate::proxy::Decision;
use crate::proxy::router::BranchTarget;
use crate::registrar::{Binding, canonical_aor, canonical_aor_parts, contact_values};
use crate::sip::{NameAddr, Uri};

use super::RouteCtx;

/// Unix time in seconds: the registrar's and the nonces' clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn decide(ctx: &mut RouteCtx<'_>, code: u16, reason: &'static str) -> bool {
    if ctx.decision.is_some() {
        tracing::debug!(call_id = ctx.call_id(), "request already handled; reply {code} ignored");
        return false;
    }
    ctx.decision = Some(Decision::Reply { code, reason: reason.into() });
    true
}

fn method(ctx: &RouteCtx<'_>) -> String {
    ctx.req.msg.original().method_str().unwrap_or("").to_owned()
}

/// `save(table)`: apply the REGISTER and reply to it.
pub fn save(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(loc) = ctx.req.services.as_ref().and_then(|s| s.location.clone()) else {
        tracing::debug!(call_id = ctx.call_id(), "save(): no location table is running");
        return 0;
    };
    if method(ctx) != "REGISTER" {
        tracing::warn!(
            call_id = ctx.call_id(),
            "save() called for a {} request; only REGISTER can be saved",
            method(ctx)
        );
        return 0;
    }
    let now = unix_now();
    // `add_path_received()`/`add_path()` before a local save: the binding
    // gets the Path this proxy would have added (its first listen address,
    // over UDP), so nodes sharing the table reach the contact through it.
    let own_path = ctx.req.path.as_deref().and_then(|params| {
        let addr = ctx.shared.local().sockets().first()?;
        let mut uri = String::from("<sip:");
        crate::sip::write::push_socket_addr(&mut uri, *addr);
        uri.push_str(";lr");
        uri.push_str(params);
        uri.push('>');
        Some(uri)
    });
    match loc.register_with_path(
        ctx.req.msg.original(),
        ctx.req.source,
        ctx.req.transport,
        now,
        ctx.req.nat_register,
        own_path.as_deref(),
    ) {
        Ok((_, bindings)) => {
            for v in contact_values(&bindings, now) {
                ctx.req.reply_headers.push(("Contact".into(), v));
            }
            ctx.req.reply_headers.push(("Date".into(), http_date(now)));
            i64::from(decide(ctx, 200, "OK"))
        }
        Err(e) => {
            for (n, v) in e.extra {
                ctx.req.reply_headers.push((n.to_owned(), v));
            }
            decide(ctx, e.code, e.reason);
            0
        }
    }
}

/// The AOR of the current request URI.
fn ruri_aor(ctx: &RouteCtx<'_>) -> Option<String> {
    // An unedited Request-URI was parsed by validation.
    if let Some((text, parts)) = ctx.req.msg.kept_request_uri() {
        return canonical_aor_parts(text, parts);
    }
    canonical_aor(&Uri::parse(ctx.req.msg.request_uri()?).ok()?)
}

fn target(b: &Binding, local: &crate::proxy::LocalIdentity) -> BranchTarget {
    // A Path leads through the edge proxy; else a NATed contact is
    // reached at the address its REGISTER came from.
    let mut destination = if b.path.is_empty() { b.received_uri() } else { None };
    let mut route = b.path.clone();
    // A Path this proxy wrote itself with `add_path_received()` (a
    // connection-bound registration, in a cluster whose nodes share the
    // location table): the request goes straight to the connection the
    // `received` names, not through this proxy a second time.
    let own = route.first().and_then(|first| {
        let na = NameAddr::parse(first).ok()?;
        if !local.is_local_uri(&na.uri) {
            return None;
        }
        let r = na.uri.params.get("received").flatten()?;
        Some(String::from_utf8_lossy(&crate::sip::scan::percent_decode(r)).into_owned())
    });
    if let Some(received) = own {
        route.remove(0);
        destination = Some(received);
    }
    // Through a Path the request goes to its first hop (`$du`), as
    // Kamailio's lookup() sets the destination to the first Path URI.
    if destination.is_none() {
        destination =
            route.first().and_then(|r| NameAddr::parse(r).ok()).map(|n| n.uri.raw().to_owned());
    }
    BranchTarget { uri: b.contact.clone(), destination, route }
}

/// The outcome of `lookup()`, read as `$lookup_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    Found,
    NotFound,
    MethodNotAllowed,
    Error,
}

impl LookupResult {
    /// The value of `$lookup_result`.
    pub fn as_str(self) -> &'static str {
        RESULT_WORDS[self as usize]
    }
}

/// `lookup(table)`: see the catalog entry.
pub fn lookup(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let result = lookup_into(ctx);
    ctx.lookup_result = Some(result);
    i64::from(result == LookupResult::Found)
}

fn lookup_into(ctx: &mut RouteCtx<'_>) -> LookupResult {
    let Some(loc) = ctx.req.services.as_ref().and_then(|s| s.location.clone()) else {
        tracing::debug!(call_id = ctx.call_id(), "lookup(): no location table is running");
        return LookupResult::Error;
    };
    let Some(aor) = ruri_aor(ctx) else { return LookupResult::Error };
    let found = loc.lookup(&aor, unix_now());
    if found.is_empty() {
        return LookupResult::NotFound;
    }
    let m = method(ctx);
    let allowed: Vec<Binding> = found.into_iter().filter(|b| b.allows(&m)).collect();
    let Some(best) = allowed.first() else { return LookupResult::MethodNotAllowed };
    let q = |b: &Binding| b.q.unwrap_or(1000);
    let local = ctx.shared.local();
    let main = target(best, local);
    ctx.req.msg.set_request_uri(main.uri);
    ctx.req.destination = main.destination;
    for r in main.route.iter().rev() {
        ctx.req.msg.insert_first("Route", r);
    }
    let mut serial: Vec<Vec<BranchTarget>> = Vec::new();
    let mut group_q = q(best);
    for b in &allowed[1..] {
        if q(b) == q(best) {
            ctx.req.txn.branches.push(target(b, local));
        } else {
            if serial.is_empty() || q(b) != group_q {
                serial.push(Vec::new());
                group_q = q(b);
            }
            if let Some(g) = serial.last_mut() {
                g.push(target(b, local));
            }
        }
    }
    ctx.req.txn.serial = serial;
    LookupResult::Found
}

/// `registered(table)`.
pub fn registered(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(loc) = ctx.req.services.as_ref().and_then(|s| s.location.clone()) else { return 0 };
    i64::from(ruri_aor(ctx).is_some_and(|aor| !loc.lookup(&aor, unix_now()).is_empty()))
}

/// `unregister(table, aor)`.
pub fn unregister(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some(loc) = ctx.req.services.as_ref().and_then(|s| s.location.clone()) else { return 0 };
    let text = ctx.str(a[1]).to_owned();
    let aor = Uri::parse(&text).ok().and_then(|u| canonical_aor(&u));
    i64::from(aor.is_some_and(|aor| loc.remove(&aor) > 0))
}

fn user_of(ctx: &RouteCtx<'_>, header: &str) -> Option<String> {
    let v = ctx.req.msg.current_values(header).next()?;
    NameAddr::parse(v).ok()?.uri.user.map(str::to_owned)
}

/// The realm argument, else `module auth { realm }`, else the From host.
fn realm(ctx: &RouteCtx<'_>, arg: i64, default: Option<&str>) -> String {
    let given = ctx.str(arg);
    if !given.is_empty() {
        return given.to_owned();
    }
    if let Some(d) = default {
        return d.to_owned();
    }
    ctx.req
        .msg
        .current_values("From")
        .next()
        .and_then(|v| NameAddr::parse(v).ok().map(|n| n.uri.host_str.to_owned()))
        .unwrap_or_default()
}

/// `auth_check(realm, table)`.
pub fn auth_check(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some(auth) = ctx.req.services.as_ref().and_then(|s| s.auth.clone()) else {
        tracing::debug!(call_id = ctx.call_id(), "auth_check(): no subscriber table is open");
        ctx.auth_result = Some(AuthResult::Invalid);
        return 0;
    };
    let realm = realm(ctx, a[0], auth.default_realm.as_deref());
    let m = method(ctx);
    let register = m == "REGISTER";
    let (header, identity_header) =
        if register { ("Authorization", "To") } else { ("Proxy-Authorization", "From") };
    let identity = user_of(ctx, identity_header);
    let req = AuthRequest {
        method: &m,
        credentials: ctx.req.msg.current_values(header).collect(),
        identity: identity.as_deref(),
        source: ctx.req.source.ip(),
    };
    let result = auth.check(&req, &realm, unix_now());
    ctx.auth_result = Some(result);
    i64::from(result == AuthResult::Ok)
}

/// `auth_challenge(realm)`.
pub fn auth_challenge(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some(auth) = ctx.req.services.as_ref().and_then(|s| s.auth.clone()) else {
        tracing::debug!(call_id = ctx.call_id(), "auth_challenge(): no subscriber table is open");
        return 0;
    };
    let realm = realm(ctx, a[0], auth.default_realm.as_deref());
    let stale = ctx.auth_result == Some(AuthResult::StaleNonce);
    let (code, reason, header) = if method(ctx) == "REGISTER" {
        (401, "Unauthorized", "WWW-Authenticate")
    } else {
        (407, "Proxy Authentication Required", "Proxy-Authenticate")
    };
    for v in auth.challenge(&realm, stale, unix_now()) {
        ctx.req.reply_headers.push((header.to_owned(), v));
    }
    i64::from(decide(ctx, code, reason))
}

/// `consume_credentials()`.
pub fn consume_credentials(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let n = ctx.req.msg.remove_all("Authorization") + ctx.req.msg.remove_all("Proxy-Authorization");
    i64::from(n > 0)
}

/// Every value `$lookup_result` and `$auth_result` take: interned in the
/// program's constant pool, so reading them copies nothing. The
/// [`LookupResult`]s in order, then the [`AuthResult`]s in order
/// ([`result_word`]).
pub const RESULT_WORDS: &[&str] = &[
    "found",
    "not_found",
    "method_not_allowed",
    "error",
    "ok",
    "no_credentials",
    "wrong_password",
    "stale_nonce",
    "unknown_user",
    "user_mismatch",
    "invalid",
];

/// How many words of [`RESULT_WORDS`] are [`LookupResult`]s.
const LOOKUP_WORDS: usize = 4;

/// The index of an auth result in [`RESULT_WORDS`].
fn auth_word(a: AuthResult) -> usize {
    LOOKUP_WORDS + a as usize
}

/// The constant handle of a result word ("" before the builtin ran).
fn word(ctx: &RouteCtx<'_>, index: Option<usize>) -> i64 {
    index.map_or(ctx.shared.empty, |i| ctx.shared.result_word(i))
}

pub fn pv_lookup_result(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    word(ctx, ctx.lookup_result.map(|r| r as usize))
}

pub fn pv_auth_result(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    word(ctx, ctx.auth_result.map(auth_word))
}

/// RFC 1123 date (RFC 3261 §20.17), e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn http_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WD[(days.rem_euclid(7)) as usize],
        MO[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn result_words_name_every_result_at_its_index() {
        use super::{LookupResult, RESULT_WORDS, auth_word};
        use crate::auth::AuthResult::*;
        let lookups = [
            LookupResult::Found,
            LookupResult::NotFound,
            LookupResult::MethodNotAllowed,
            LookupResult::Error,
        ];
        for r in lookups {
            assert_eq!(RESULT_WORDS[r as usize], r.as_str());
        }
        assert_eq!(LookupResult::MethodNotAllowed.as_str(), "method_not_allowed");
        let auths =
            [Ok, NoCredentials, WrongPassword, StaleNonce, UnknownUser, UserMismatch, Invalid];
        for r in auths {
            assert_eq!(RESULT_WORDS[auth_word(r)], r.as_str());
        }
        assert_eq!(RESULT_WORDS.len(), lookups.len() + auths.len());
    }

    #[test]
    fn dates() {
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(super::http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(super::http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
