//! `dlg_manage`, `set_dlg_profile`, `dlg_profile_size`, `dlg_set_timeout`,
//! `is_known_dlg` and `$dlg_var`/`$dlg_state`/`$dlg_start`: the route's side
//! of [`crate::dialog`].
//!
//! On an initial INVITE the dialog does not exist yet: what the route
//! decides is kept in the transaction scope ([`crate::dialog::Pending`])
//! and becomes the dialog when the request is relayed. Afterwards (replies,
//! failure routes, in-dialog requests) the dialog is found by Call-ID in
//! the server's table; a program run without a server (`sipc test`) has a
//! table of its own, so the same route behaves the same way there.

use super::{ABSENT, RouteCtx};
use crate::dialog::{Dialogs, Pending};

fn dialogs<'c>(ctx: &'c RouteCtx<'_>) -> &'c Dialogs {
    match ctx.req.services.as_deref() {
        Some(s) => &s.dialogs,
        None => &ctx.shared.dialogs,
    }
}

fn call_id(ctx: &RouteCtx<'_>) -> Option<String> {
    ctx.req.msg.original().call_id().ok().flatten().map(str::to_owned)
}

/// An initial INVITE: the request a dialog starts from.
fn is_initial_invite(ctx: &RouteCtx<'_>) -> bool {
    let m = ctx.req.msg.original();
    m.is_request() && m.method_str() == Some("INVITE") && m.to_tag().is_none_or(str::is_empty)
}

/// The dialog the message belongs to, by Call-ID and both tags.
fn known(ctx: &RouteCtx<'_>) -> bool {
    let m = ctx.req.msg.original();
    let (Some(id), Some(from)) = (call_id(ctx), m.from_tag()) else { return false };
    let to = m.to_tag().unwrap_or("");
    dialogs(ctx)
        .with(&id, |d| {
            (*d.from_tag == *from && (d.to_tag.is_empty() || to.is_empty() || *d.to_tag == *to))
                || (*d.from_tag == *to && *d.to_tag == *from)
        })
        .unwrap_or(false)
}

/// The pending dialog of an initial INVITE, made on first use.
fn pending<'c>(ctx: &'c mut RouteCtx<'_>) -> Option<&'c mut Pending> {
    if !is_initial_invite(ctx) {
        return None;
    }
    let masks = ctx.shared.acc_masks;
    Some(
        ctx.req.txn.dialog.get_or_insert_with(|| Box::new(Pending { masks, ..Pending::default() })),
    )
}

pub fn dlg_manage(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    match pending(ctx) {
        Some(p) => {
            p.managed = true;
            1
        }
        None => i64::from(known(ctx)),
    }
}

/// `topology_hide()`: an initial INVITE starts a hidden dialog (and is
/// `dlg_manage()`d); a MESSAGE, OPTIONS or other request outside a dialog
/// is hidden as a transaction. True for an in-dialog request of a hidden
/// dialog (hidden already, on arrival); false for what cannot be hidden
/// (REGISTER, SUBSCRIBE, …).
pub fn topology_hide(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    use crate::proxy::topology::{Hide, can_hide, new_call_id};
    let m = ctx.req.msg.original();
    if m.to_tag().is_some_and(|t| !t.is_empty()) {
        return i64::from(ctx.req.txn.hide.is_some());
    }
    if !m.is_request() || !can_hide(m.method_str().unwrap_or("")) {
        return 0;
    }
    let call_id = match &ctx.req.txn.hide {
        Some(Hide { call_id: Some(c) }) => c.clone(),
        _ => new_call_id(),
    };
    if let Some(p) = pending(ctx) {
        p.managed = true;
        p.hidden = Some(call_id.clone());
    }
    ctx.req.txn.hide = Some(Hide { call_id: Some(call_id) });
    1
}

pub fn is_known_dlg(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    i64::from(known(ctx))
}

fn managed<'c>(ctx: &'c mut RouteCtx<'_>) -> Option<&'c mut Pending> {
    ctx.req.txn.dialog.as_deref_mut().filter(|p| p.managed)
}

pub fn set_dlg_profile(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name: Box<str> = ctx.str(a[0]).into();
    let key: Box<str> = if a[1] == ABSENT { "".into() } else { ctx.str(a[1]).into() };
    match managed(ctx) {
        Some(p) => {
            if !p.profiles.iter().any(|(n, k)| *n == name && *k == key) {
                p.profiles.push((name, key));
            }
            1
        }
        None => 0,
    }
}

pub fn dlg_profile_size(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let key = if a[1] == ABSENT { "" } else { ctx.str(a[1]) };
    i64::from(dialogs(ctx).profile_size(ctx.str(a[0]), key))
}

pub fn dlg_set_timeout(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let secs = u64::try_from(a[0]).unwrap_or(0);
    match managed(ctx) {
        Some(p) if secs > 0 => {
            p.max_ms = Some(secs * 1000);
            1
        }
        _ => 0,
    }
}

pub fn pv_dlg_var(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = ctx.str(a[0]).to_owned();
    if let Some(v) = ctx.req.txn.dialog.as_deref().and_then(|p| p.var(&name)) {
        let v = v.to_owned();
        return ctx.alloc(v);
    }
    let Some(id) = call_id(ctx) else { return ctx.shared.empty };
    let v = dialogs(ctx)
        .with(&id, |d| d.vars.iter().find(|(n, _)| **n == *name).map(|(_, v)| v.to_string()));
    match v.flatten() {
        Some(v) => ctx.alloc(v),
        None => ctx.shared.empty,
    }
}

pub fn set_dlg_var(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let name = ctx.str(a[0]).to_owned();
    let value = ctx.str(a[1]).to_owned();
    if let Some(p) = pending(ctx) {
        p.set_var(&name, &value);
        return 0;
    }
    if let Some(id) = call_id(ctx) {
        dialogs(ctx).set_var(&id, &name, &value);
    }
    0
}

pub fn pv_dlg_state(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(id) = call_id(ctx) else { return ctx.shared.empty };
    match dialogs(ctx).with(&id, |d| d.state.word()) {
        Some(w) => ctx.alloc(w),
        None => ctx.shared.empty,
    }
}

pub fn pv_dlg_start(ctx: &mut RouteCtx<'_>, _: &[i64]) -> i64 {
    let Some(id) = call_id(ctx) else { return 0 };
    dialogs(ctx).with(&id, |d| (d.start_ms / 1000) as i64).unwrap_or(0)
}
