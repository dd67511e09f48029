//! `module NAME { … }` blocks: the name must be a module sipc has
//! parameters for (even when the block is empty), and the block should
//! configure something the configuration uses.
//!
//! "Uses" is decided the way `sipc run` decides which services to start
//! (see `cli::services`): the location table runs only for a program that
//! calls one of [`LOCATION_FUNCTIONS`], authentication only for one that
//! calls one of [`AUTH_FUNCTIONS`], and TLS material is read for `listen
//! tls` or outgoing TLS (which needs `ca_list`). Modules whose parameters
//! apply to every configuration (`tm`) or are accepted for Kamailio parity
//! (`rr`) are never reported unused.

use std::collections::HashSet;

use super::builtins::{
    AUTH_FUNCTIONS, DIALOG_FUNCTIONS, LOCATION_FUNCTIONS, MEDIA_FUNCTIONS, SETTINGS,
};
use super::check::Checker;
use super::ir::CheckedProgram;
use super::resolve::suggest;
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, Ident, ItemKind};

/// The modules that have parameters, in catalog order.
pub fn known() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in SETTINGS.iter().filter(|s| !s.module.is_empty()) {
        if !out.contains(&s.module) {
            out.push(s.module);
        }
    }
    out
}

/// Reports every block naming an unknown module; returns those names, so
/// their parameters are not reported once more.
pub fn check_names(c: &mut Checker<'_>, blocks: &[(&Ident, &[ast::Setting])]) -> HashSet<String> {
    let known = known();
    let mut unknown = HashSet::new();
    for (name, _) in blocks {
        if known.contains(&name.name.as_str()) {
            continue;
        }
        let help = match suggest(&name.name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "the modules with parameters are {}; the functions of other Kamailio modules are builtins here and need no `module` block",
                join(&known, "and")
            ),
        };
        c.error(
            Diagnostic::new(Code::UnknownSetting, format!("unknown module `{}`", name.name))
                .at(name.span, "sipc has no module of this name")
                .with_help(help),
        );
        unknown.insert(name.name.clone());
    }
    unknown
}

/// The names in backquotes, joined with commas and `last` (`and`, `or`).
fn join(names: &[&str], last: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((end, [])) => end.clone(),
        Some((end, rest)) => format!("{} {last} {end}", rest.join(", ")),
        None => String::new(),
    }
}

/// Warns about each block of a module that nothing in the configuration
/// uses. `listens` are the active `listen` items.
pub fn unused(
    c: &Checker<'_>,
    blocks: &[(&Ident, &[ast::Setting])],
    listens: &[&ast::Item],
    program: &CheckedProgram,
    diags: &mut Vec<Diagnostic>,
) {
    // A misspelt builtin was reported already; the call it meant may be the
    // one that uses the module.
    if c.diags.iter().any(|d| d.code == Code::UnknownFunction) {
        return;
    }
    let location = program.calls_any(LOCATION_FUNCTIONS);
    let auth = program.calls_any(AUTH_FUNCTIONS);
    let media = program.calls_any(MEDIA_FUNCTIONS);
    let dialog = program.calls_any(DIALOG_FUNCTIONS);
    let listen_tls = listens
        .iter()
        .any(|l| matches!(&l.kind, ItemKind::Listen { proto, .. } if proto.name == "tls" || proto.name == "wss"));
    let outgoing_tls = blocks
        .iter()
        .filter(|(m, _)| m.name == "tls")
        .any(|(_, params)| params.iter().any(|p| p.name.name == "ca_list"));
    for (name, _) in blocks {
        let (why, help) = match name.name.as_str() {
            "registrar" if !location => (
                format!("no route calls {}", join(LOCATION_FUNCTIONS, "or")),
                "the registrar runs only for a configuration that saves or looks up registrations: call `save(\"location\")` for REGISTER requests, or remove this block".to_string(),
            ),
            "usrloc" if !location && !auth => {
                let mut both = LOCATION_FUNCTIONS.to_vec();
                both.extend(AUTH_FUNCTIONS);
                (
                    format!("no route calls {}", join(&both, "or")),
                    "the location and subscriber tables are opened only for a configuration that registers or authenticates users: call `save(\"location\")` or `auth_check(…)`, or remove this block".to_string(),
                )
            }
            "nathelper" if !location => (
                format!("no route calls {}", join(LOCATION_FUNCTIONS, "or")),
                "NAT keepalives ping the bindings of the location table, which runs only for a configuration that saves registrations: call `save(\"location\")` for REGISTER requests, or remove this block".to_string(),
            ),
            "auth" if !auth => (
                format!("no route calls {}", join(AUTH_FUNCTIONS, "or")),
                "authentication runs only for a configuration that checks credentials: call `auth_check(…)` and `auth_challenge(…)`, or remove this block".to_string(),
            ),
            "rtpengine" if !media => (
                format!("no route calls {}", join(MEDIA_FUNCTIONS, "or")),
                "the rtpengine client runs only for a configuration that relays media: call `rtpengine_manage()` (or offer/answer/delete), or remove this block".to_string(),
            ),
            "dialog" | "acc" if !dialog => (
                "no route calls `dlg_manage()`".to_string(),
                "dialogs are followed, and call records written, only for the INVITEs whose request route calls `dlg_manage()`: call it for initial INVITEs, or remove this block".to_string(),
            ),
            "tls" if !listen_tls && !outgoing_tls => (
                "there is no `listen tls` or `listen wss`, and no `ca_list` for outgoing TLS".to_string(),
                "the certificate and key serve `listen tls ADDRESS;` and `listen wss ADDRESS;`: add one, or remove this block".to_string(),
            ),
            _ => continue,
        };
        diags.push(
            Diagnostic::new(Code::UnusedModule, format!("`module {}` is never used", name.name))
                .at(name.span, why)
                .with_help(help),
        );
    }
}

/// Reports a configuration that calls the rtpengine builtins without
/// saying where rtpengine is (`module rtpengine { instances }`).
pub fn media_needs_instances(
    c: &mut Checker<'_>,
    blocks: &[(&Ident, &[ast::Setting])],
    program: &CheckedProgram,
) {
    let Some(call) = program.first_call_of(MEDIA_FUNCTIONS) else { return };
    // A list that is there but wrong was reported as such.
    let written = blocks
        .iter()
        .filter(|(m, _)| m.name == "rtpengine")
        .any(|(_, params)| params.iter().any(|p| p.name.name == "instances"));
    if written {
        return;
    }
    c.error(
        Diagnostic::new(Code::UnknownSetting, "rtpengine is called but no instance is configured")
            .at(call, "this sends an ng command to rtpengine")
            .with_help(
                "say where rtpengine listens: `module rtpengine { instances = \"udp:127.0.0.1:22222\"; }` (Kamailio: `rtpengine_sock`)",
            ),
    );
}

/// Reports `dlg_manage()` in a configuration that never record-routes:
/// the dialog's ACK, re-INVITEs and BYE would go from phone to phone, and
/// the dialog would never learn that the call ended.
pub fn dialog_needs_record_route(c: &mut Checker<'_>, program: &CheckedProgram) {
    let Some((name, call)) =
        DIALOG_FUNCTIONS.iter().find_map(|f| Some((*f, program.first_call_of(&[f])?)))
    else {
        return;
    };
    if program.calls_any(&["record_route"]) {
        return;
    }
    c.error(
        Diagnostic::new(
            Code::DialogWithoutRecordRoute,
            format!("`{name}()` without `record_route()`"),
        )
        .at(call, "this follows the call as a dialog")
        .with_help(
            "call `record_route()` before relaying the INVITE, so in-dialog requests and the BYE come through the proxy (Kamailio: `record_route()` in route[RELAY] or WITHINDLG)",
        ),
    );
}

/// Checks that each accounting flag setting (`module acc { log_flag =
/// "FLT_ACC"; }`) names a declared flag.
pub fn acc_flags(c: &mut Checker<'_>, blocks: &[(&Ident, &[ast::Setting])]) {
    for (_, params) in blocks.iter().filter(|(m, _)| m.name == "acc") {
        for p in params.iter().filter(|p| ACC_FLAG_SETTINGS.contains(&p.name.name.as_str())) {
            let name = match &p.value.kind {
                ast::ExprKind::Str(lit) if lit.is_plain() => lit.value.clone(),
                ast::ExprKind::Name(id) => id.name.clone(),
                _ => continue,
            };
            if let Some(f) = c.flags.get_mut(&name) {
                f.used = true;
                continue;
            }
            let help = match suggest(&name, c.flags.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("declare it: `flag {name};`"),
            };
            c.error(
                Diagnostic::new(Code::UnknownFlag, format!("unknown flag `{name}`"))
                    .at(p.value.span, "not a declared flag")
                    .with_help(help),
            );
        }
    }
}

/// The `module acc` settings that name a flag.
pub const ACC_FLAG_SETTINGS: &[&str] = &["log_flag", "failed_transaction_flag", "log_missed_flag"];
