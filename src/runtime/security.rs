//! `within_limit`, `ban`, `is_banned`, `unban`: the route's side of
//! [`crate::security`].
//!
//! The limiters and the ban table are the server's long-lived ones (a
//! program attached to a server shares them with the receive path and
//! with the programs before and after it). A program run without a server
//! (`sipc test`, the evaluator) gets its own, so the same route behaves
//! the same way there.

use std::sync::Arc;
use std::time::Instant;

use super::RouteCtx;
use crate::security::{Bans, Limiter};

/// The ban table this message's routes use.
fn bans<'c>(ctx: &'c RouteCtx<'_>) -> &'c Bans {
    match ctx.req.services.as_deref() {
        Some(s) => &s.bans,
        None => &ctx.shared.bans,
    }
}

/// The limiter of limit `index` (the server's when attached, the
/// program's own otherwise).
fn limiter<'c>(ctx: &'c RouteCtx<'_>, index: i64) -> Option<&'c Limiter> {
    let (spec, cell) = ctx.shared.limits.get(usize::try_from(index).ok()?)?;
    Some(cell.get_or_init(|| Arc::new(Limiter::new(spec.clone()))))
}

pub fn within_limit(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some(limiter) = limiter(ctx, a[0]) else { return 0 };
    let key = ctx.str(a[1]);
    if limiter.check(key) {
        return 1;
    }
    if let Some(for_) = limiter.spec().ban
        && bans(ctx).ban(key, for_, Instant::now())
    {
        tracing::warn!(
            call_id = ctx.call_id(),
            limit = %limiter.spec().name,
            key = %key,
            seconds = for_.as_secs(),
            "banned: over the limit"
        );
    }
    0
}

pub fn ban(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let key = ctx.str(a[0]).trim();
    let ms = u64::try_from(a[1]).unwrap_or(0);
    if key.is_empty() || ms == 0 {
        return 0;
    }
    bans(ctx).ban(key, std::time::Duration::from_millis(ms), Instant::now());
    1
}

pub fn in_acl(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let Some(acl) = usize::try_from(a[0]).ok().and_then(|i| ctx.shared.acls.get(i)) else {
        return 0;
    };
    let ip = if a[1] == super::ABSENT {
        Some(ctx.req.source.ip())
    } else {
        crate::security::acl::parse_net(ctx.str(a[1])).map(|(ip, _)| ip)
    };
    i64::from(ip.is_some_and(|ip| acl.contains(ip)))
}

pub fn is_scanner(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let msg = ctx.req.msg.original();
    let ua = msg.header_value(crate::sip::HeaderName::UserAgent).unwrap_or("");
    let from_name = msg
        .header_value(crate::sip::HeaderName::From)
        .and_then(|f| f.split_once('<').map(|(name, _)| name))
        .unwrap_or("");
    i64::from(ctx.shared.scanners.matches(ua) || ctx.shared.scanners.matches(from_name))
}

pub fn is_banned(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    i64::from(bans(ctx).is_banned(ctx.str(a[0]), Instant::now()))
}

pub fn unban(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    i64::from(bans(ctx).unban(ctx.str(a[0])))
}
