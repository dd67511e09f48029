//! Semantic analysis: from parsed files to a [`CheckedProgram`].
//!
//! [`check_path`] and [`check_source`] run the whole front end: load and
//! parse (with includes), expand feature switches, declare routes,
//! constants, flags and tables, lower every route body to the typed IR,
//! then run the whole-program passes (route kinds through the call graph,
//! recursion, lints). Every diagnostic of every stage is returned together,
//! sorted by position.

pub mod builtins;
pub mod callgraph;
pub mod check;
pub mod ir;
pub mod kamailio;
pub mod lints;
pub mod modules;
pub mod regexes;
pub mod resolve;
pub mod routing;
mod routing_table;
pub mod security;
pub mod types;
pub mod values;

use std::collections::HashMap;
use std::path::Path;

use crate::diag::{self, Code, Diagnostic};
use crate::proxy::transport::Transport;
use crate::syntax::ast::{self, ItemKind, RouteKind};
use crate::syntax::span::{SourceMap, Span};
use builtins::Ty;
use check::{Checker, ConstInfo, Named};
pub use ir::CheckedProgram;
use ir::Value;
use resolve::suggest;
pub use resolve::{FsLoader, Loader, NoFiles};

/// Options of one check run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-D NAME` (`None`) and `-D NAME=VALUE` options.
    pub defines: Vec<(String, Option<String>)>,
    /// Turn on every declared feature switch (a `-D` may still turn one off).
    pub all_features: bool,
}

/// Everything a check run produced.
#[derive(Debug)]
pub struct Output {
    pub sources: SourceMap,
    pub program: CheckedProgram,
    pub diagnostics: Vec<Diagnostic>,
    /// `-D` names that match no `const` or `define` of this configuration.
    pub unmatched_defines: Vec<String>,
    /// Names a `-D` option can set: constants and declared feature switches.
    pub define_names: Vec<String>,
}

impl Output {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Checks a file on disk (includes are read relative to it). `name` is how
/// the file is called in diagnostics.
pub fn check_path(path: &Path, name: &str, opts: &Options) -> std::io::Result<Output> {
    let text = std::fs::read_to_string(path)?;
    Ok(run(name, path, text, &FsLoader, opts))
}

/// Checks text that is not on disk; `include` always fails.
pub fn check_source(name: &str, text: &str, opts: &Options) -> Output {
    run(name, Path::new(name), text.to_string(), &NoFiles, opts)
}

/// Checks text with a custom loader for includes.
pub fn check_with_loader(
    name: &str,
    path: &Path,
    text: String,
    loader: &dyn Loader,
    opts: &Options,
) -> Output {
    run(name, path, text, loader, opts)
}

fn run(name: &str, path: &Path, text: String, loader: &dyn Loader, opts: &Options) -> Output {
    let mut diags = Vec::new();
    let sources = resolve::load(name, path, text, loader, &mut diags);
    let cli: HashMap<String, Option<String>> = opts.defines.iter().cloned().collect();
    let collected = resolve::expand(&sources, &cli, opts.all_features, &mut diags);
    let mut c = Checker::new(&sources.map, &collected.features);
    // Declarations are checked outside any route.
    c.route = u32::MAX;
    let mut program = CheckedProgram::default();

    for (name, value) in &collected.consts {
        let e = c.expr(value);
        let mut v = types::fold(&e);
        if v.is_none() && e.ty != Ty::Unknown {
            c.error(
                Diagnostic::new(
                    Code::NotConstant,
                    format!("`{}` needs a constant value", name.name),
                )
                .at(value.span, "not known at check time"),
            );
        }
        if let (Some(Some(text)), Some(old_ty)) = (cli.get(&name.name), v.as_ref().map(Value::ty)) {
            v = parse_override(text, old_ty);
            if v.is_none() {
                c.error(
                    Diagnostic::new(
                        Code::BadDefineOption,
                        format!("`-D {}={text}` is not a valid {}", name.name, old_ty.name()),
                    )
                    .at(name.span, format!("declared as {} here", old_ty.name())),
                );
            }
        }
        if let Some(prev) = c.consts.get(&name.name) {
            let prev = prev.span;
            c.error(duplicate("constant", name, prev));
            continue;
        }
        c.consts.insert(name.name.clone(), ConstInfo { value: v, span: name.span, used: false });
    }
    // `-D` options that match nothing here; the caller decides whether that
    // is an error (`sipc check` does when no file of the run matches).
    let unmatched_defines: Vec<String> = opts
        .defines
        .iter()
        .map(|(n, _)| n)
        .filter(|n| {
            !c.consts.contains_key(*n)
                && collected.features.get(*n).is_none_or(|f| f.span.is_none())
        })
        .cloned()
        .collect();
    let mut define_names: Vec<String> = c.consts.keys().cloned().collect();
    define_names.extend(
        collected.features.iter().filter(|(_, f)| f.span.is_some()).map(|(k, _)| k.clone()),
    );

    declare_flags(&mut c, &collected.flags, &mut program);
    for (name, entries) in &collected.tables {
        if let Some(prev) = c.tables.get(&name.name) {
            let prev = prev.span;
            c.error(duplicate("table", name, prev));
            continue;
        }
        let mut table = ir::Table { name: name.name.clone(), entries: Vec::new() };
        for (k, v) in entries.iter() {
            let (ke, ve) = (c.expr(k), c.expr(v));
            match (types::fold(&ke), types::fold(&ve)) {
                (Some(kv), Some(vv)) => table.entries.push((kv, vv)),
                _ => c.error(
                    Diagnostic::new(Code::NotConstant, "table entries must be constants")
                        .at(k.span.to(v.span), "not known at check time"),
                ),
            }
        }
        c.tables.insert(
            name.name.clone(),
            Named { index: program.tables.len() as u32, span: name.span, used: false },
        );
        program.tables.push(table);
    }

    routing::declare(&mut c, &collected.routing, &sources.csv, &mut program);
    security::declare_limits(&mut c, &collected.limits, &mut program);
    security::declare_acls(&mut c, &collected.limits, &sources.csv, &mut program);

    let unknown_modules = modules::check_names(&mut c, &collected.modules);
    for (module, setting) in &collected.settings {
        if module.is_some_and(|m| unknown_modules.contains(&m.name)) {
            continue;
        }
        settings(&mut c, *module, setting, &mut program);
    }
    modules::acc_flags(&mut c, &collected.modules);
    for item in &collected.listens {
        listen(&mut c, item, &mut program);
    }
    for d in &collected.domains {
        let e = c.expr(d);
        match types::fold(&e) {
            Some(Value::Str(s)) => program.domains.push(s),
            _ => c.error(
                Diagnostic::new(Code::TypeMismatch, "a domain is a constant string")
                    .at(d.span, "expected a string like \"example.com\""),
            ),
        }
    }

    // Routes: declare names first so calls can refer forward.
    for def in &collected.routes {
        let id = c.route_defs.len() as u32;
        let key = (def.kind, def.name.as_ref().map(|n| n.name.clone()).unwrap_or_default());
        let singleton = matches!(def.kind, RouteKind::Request | RouteKind::Reply);
        if let Some(&prev) = c.route_names.get(&key) {
            let prev_span = c.route_defs[prev as usize].head;
            let what = if singleton {
                format!("`{}` is defined twice", def.kind.keyword())
            } else {
                format!("{} `{}` is defined twice", def.kind.keyword(), key.1)
            };
            c.error(
                Diagnostic::new(Code::DuplicateDefinition, what)
                    .at(def.head, "defined again here")
                    .with_label(prev_span, "first defined here"),
            );
            continue;
        }
        if def.kind == RouteKind::Event
            && !builtins::EVENTS.iter().any(|(e, _)| *e == key.1)
            && let Some(name) = &def.name
        {
            let known = builtins::EVENTS.iter().map(|(e, _)| *e);
            let d = Diagnostic::new(
                Code::UnknownEvent,
                format!("sipc raises no event `{}`: this route would never run", key.1),
            )
            .at(name.span, "not an event sipc raises");
            let list: Vec<&str> = builtins::EVENTS.iter().map(|(e, _)| *e).collect();
            c.error(match resolve::suggest(&key.1, known) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("the events are: {}", list.join(", "))),
            });
        }
        c.route_names.insert(key, id);
        c.route_defs.push(def);
    }
    let defs = c.route_defs.clone();
    for (i, def) in defs.iter().enumerate() {
        let r = c.route_body(i as u32, def);
        match r.kind {
            RouteKind::Request => program.request_route = Some(i as u32),
            RouteKind::Reply => program.reply_route = Some(i as u32),
            _ => {}
        }
        program.routes.push(r);
    }
    let syntax_errors = diags.iter().any(|d| d.code.id().starts_with("E01"));
    if program.request_route.is_none() && !syntax_errors && !sources.map.files().is_empty() {
        let file = sources.map.get(crate::syntax::span::FileId(0));
        let end = file.text.len();
        c.error(
            Diagnostic::new(
                Code::MissingRequestRoute,
                "no `request_route` in this configuration",
            )
            .at(
                Span::new(crate::syntax::span::FileId(0), end, end),
                "the configuration ends here",
            )
            .with_help(
                "every configuration needs a `request_route { … }` that handles incoming requests",
            ),
        );
    }

    let mut pass_diags = Vec::new();
    let reach = callgraph::analyse(&program.routes, &c.facts, &mut pass_diags);
    lints::run(&c, &program.routes, &reach, &mut pass_diags);
    modules::unused(&c, &collected.modules, &collected.listens, &program, &mut pass_diags);
    modules::media_needs_instances(&mut c, &collected.modules, &program);
    modules::dialog_needs_record_route(&mut c, &program);

    program.msg_vars = std::mem::take(&mut c.msg_vars);
    program.avps = std::mem::take(&mut c.avps);
    program.regexes = std::mem::take(&mut c.regexes);
    diags.append(&mut c.diags);
    diags.append(&mut pass_diags);
    // A tree rebuilt by error recovery is only an approximation of what was
    // meant: report its errors, but not warnings about its shape.
    if diags.iter().any(|d| d.is_error() && d.code.id().starts_with("E01")) {
        diags.retain(Diagnostic::is_error);
    }
    diag::sort(&mut diags);
    diags.dedup();
    drop(c);
    Output { sources: sources.map, program, diagnostics: diags, unmatched_defines, define_names }
}

fn duplicate(what: &str, name: &ast::Ident, prev: Span) -> Diagnostic {
    Diagnostic::new(Code::DuplicateDefinition, format!("{what} `{}` is defined twice", name.name))
        .at(name.span, "defined again here")
        .with_label(prev, "first defined here")
}

/// Parses a `-D NAME=VALUE` override as the constant's declared type.
fn parse_override(text: &str, ty: Ty) -> Option<Value> {
    match ty {
        Ty::Int => text.parse().ok().map(Value::Int),
        Ty::Bool => match text {
            "true" | "1" | "yes" | "on" => Some(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Some(Value::Bool(false)),
            _ => None,
        },
        Ty::Str => Some(Value::Str(text.to_string())),
        Ty::Duration => crate::syntax::literal::duration_ms(text).map(Value::Duration),
        Ty::Addr => {
            crate::syntax::literal::check_address(text).ok().map(|_| Value::Addr(text.to_string()))
        }
        Ty::Void | Ty::Unknown => None,
    }
}

fn declare_flags(
    c: &mut Checker<'_>,
    flags: &[(&ast::Ident, Option<&ast::Expr>)],
    program: &mut CheckedProgram,
) {
    let mut taken: Vec<u32> = Vec::new();
    let mut pending = Vec::new();
    for (name, value) in flags {
        if let Some(prev) = c.flags.get(&name.name) {
            let prev = prev.span;
            c.error(duplicate("flag", name, prev));
            continue;
        }
        let bit = match value {
            Some(e) => {
                let x = c.expr(e);
                match types::fold(&x) {
                    Some(Value::Int(v)) if (0..32).contains(&v) => Some(v as u32),
                    _ => {
                        c.error(
                            Diagnostic::new(
                                Code::OutOfRange,
                                "a flag number is a constant int in 0..=31",
                            )
                            .at(e.span, "expected 0..=31"),
                        );
                        None
                    }
                }
            }
            None => None,
        };
        if let Some(b) = bit {
            taken.push(b);
        }
        c.flags.insert(
            name.name.clone(),
            Named { index: program.flags.len() as u32, span: name.span, used: false },
        );
        pending.push(bit);
        program.flags.push(ir::Flag { name: name.name.clone(), bit: 0 });
    }
    let mut next = 0u32;
    for (flag, bit) in program.flags.iter_mut().zip(pending) {
        flag.bit = match bit {
            Some(b) => b,
            None => {
                while taken.contains(&next) {
                    next += 1;
                }
                taken.push(next);
                next
            }
        };
    }
}

fn settings(
    c: &mut Checker<'_>,
    module: Option<&ast::Ident>,
    s: &ast::Setting,
    program: &mut CheckedProgram,
) {
    // Unknown modules were reported by `modules::check_names`.
    let module_name = module.map(|m| m.name.as_str()).unwrap_or("");
    let Some(def) = builtins::setting(module_name, &s.name.name) else {
        let names = builtins::SETTINGS.iter().filter(|d| d.module == module_name).map(|d| d.name);
        let what = if module_name.is_empty() {
            format!("unknown setting `{}`", s.name.name)
        } else {
            format!("unknown parameter `{}` of module `{module_name}`", s.name.name)
        };
        let mut d =
            Diagnostic::new(Code::UnknownSetting, what).at(s.name.span, "not in the catalog");
        if let Some(sug) = suggest(&s.name.name, names) {
            d = d.with_help(format!("did you mean `{sug}`?"));
        }
        c.error(d);
        return;
    };
    let e = c.expr(&s.value);
    if !c.expect_ty(&e, def.ty, None) {
        return;
    }
    match types::fold(&e) {
        Some(value) if !setting_value_ok(c, module_name, def.name, &value, s.value.span) => {}
        Some(value) => program.settings.push(ir::SettingValue {
            module: module_name.to_string(),
            name: def.name.to_string(),
            value,
        }),
        None if e.ty == Ty::Unknown => {}
        None => c.error(
            Diagnostic::new(Code::NotConstant, "a setting needs a constant value")
                .at(s.value.span, "not known at check time"),
        ),
    }
}

/// Checks the values of settings that accept fewer values than their type
/// (reported E0303, or E0312 for a URI); true when the value is fine.
fn setting_value_ok(
    c: &mut Checker<'_>,
    module: &str,
    name: &str,
    value: &Value,
    span: Span,
) -> bool {
    let bad = match (module, name, value) {
        ("nathelper", "ping_method", Value::Str(m)) if m != "options" && m != "crlf" => {
            Diagnostic::new(Code::OutOfRange, format!("unknown ping method `{m}`"))
                .at(span, "not a ping method")
                .with_help("use \"options\" (an OPTIONS request) or \"crlf\" (a CRLFCRLF datagram)")
        }
        ("nathelper", "max_failures", Value::Int(n)) if *n < 0 => Diagnostic::new(
            Code::OutOfRange,
            format!("`max_failures` cannot be {n}"),
        )
        .at(span, "expected 0 or more")
        .with_help(
            "0 keeps bindings whatever their pings do; N removes one after N failed pings in a row",
        ),
        ("nathelper", "sipping_from", Value::Str(u))
            if !matches!(
                crate::sip::Uri::scheme_of(u),
                crate::sip::Scheme::Sip | crate::sip::Scheme::Sips
            ) || crate::sip::Uri::parse(u).is_err() =>
        {
            Diagnostic::new(Code::InvalidUri, format!("`sipping_from` is not a SIP URI: `{u}`"))
                .at(span, "not a SIP URI")
                .with_help("write a SIP URI, e.g. \"sip:pinger@example.com\"")
        }
        ("rtpengine", "instances", Value::Str(list)) => {
            let problem = if list.split_whitespace().next().is_none() {
                Some("no instance".to_owned())
            } else {
                list.split_whitespace()
                    .find_map(|w| w.parse::<crate::rtpengine::InstanceSpec>().err())
            };
            let Some(problem) = problem else { return true };
            Diagnostic::new(Code::OutOfRange, format!("bad rtpengine instance list: {problem}"))
                .at(span, "not a list of rtpengine ng sockets")
                .with_help("write `udp:IP:PORT` or `udp6:[IP]:PORT`, with `=WEIGHT` if wanted, separated by spaces: \"udp:127.0.0.1:22222 udp:127.0.0.2:22222=2\"")
        }
        ("", "log_format", Value::Str(f)) if f != "text" && f != "json" => {
            Diagnostic::new(Code::OutOfRange, format!("unknown log format `{f}`"))
                .at(span, "not a log format")
                .with_help("use \"text\" (human lines) or \"json\" (one JSON object per line)")
        }
        ("", "log_facility", Value::Str(f)) if builtins::syslog_facility(f).is_none() => {
            let names = builtins::SYSLOG_FACILITIES.iter().map(|(n, _)| *n);
            let bare = f.to_ascii_lowercase();
            let bare = bare.strip_prefix("log_").unwrap_or(&bare).to_owned();
            let help = match suggest(&bare, names) {
                Some(s) => format!("did you mean \"LOG_{}\"?", s.to_ascii_uppercase()),
                None => "use a syslog facility: \"LOG_DAEMON\", \"LOG_LOCAL0\" … \"LOG_LOCAL7\", \"LOG_USER\"".to_owned(),
            };
            Diagnostic::new(Code::OutOfRange, format!("unknown syslog facility `{f}`"))
                .at(span, "not a facility")
                .with_help(help)
        }
        ("hep", "destination", Value::Str(d))
            if d.strip_prefix("tcp:")
                .or_else(|| d.strip_prefix("udp:"))
                .unwrap_or(d)
                .parse::<std::net::SocketAddr>()
                .is_err() =>
        {
            Diagnostic::new(Code::OutOfRange, format!("bad HEP destination `{d}`"))
                .at(span, "not `udp:IP:PORT` or `tcp:IP:PORT`")
                .with_help("write the collector's address, e.g. \"udp:127.0.0.1:9060\" or \"tcp:127.0.0.1:9061\"")
        }
        ("tm", "trying_delay", Value::Duration(ms)) if !(0..=200).contains(ms) => Diagnostic::new(
            Code::OutOfRange,
            format!("`trying_delay` cannot be {ms} ms"),
        )
        .at(span, "expected 0 to 200 ms")
        .with_help(
            "RFC 3261 §17.2.1 gives an INVITE's 100 Trying at most 200 ms; 0 sends it at once",
        ),
        ("rtpengine", "retries", Value::Int(n)) if !(0..=10).contains(n) => {
            Diagnostic::new(Code::OutOfRange, format!("`retries` cannot be {n}"))
                .at(span, "expected 0..=10")
                .with_help("each retry waits `timeout` again on an instance that may be gone")
        }
        _ => return true,
    };
    c.error(bad);
    false
}

/// SIP transports by name; `sipc run` serves the ones [`Transport`] has.
const TRANSPORTS: &[&str] = &["udp", "tcp", "tls", "ws", "wss", "sctp"];

fn listen(c: &mut Checker<'_>, item: &ast::Item, program: &mut CheckedProgram) {
    let ItemKind::Listen { proto, addr, advertise } = &item.kind else {
        return;
    };
    if Transport::from_name(&proto.name).is_none() {
        let served = Transport::ALL.map(Transport::name);
        let d = if TRANSPORTS.contains(&proto.name.as_str()) {
            Diagnostic::new(
                Code::UnservedTransport,
                format!("`sipc run` does not serve `listen {}`", proto.name),
            )
            .at(proto.span, "not served")
            .with_help(format!(
                "`sipc run` serves {}: listen on one of those",
                Transport::served_list()
            ))
        } else {
            let help = match suggest(&proto.name, served.into_iter()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("`sipc run` serves {}", Transport::served_list()),
            };
            Diagnostic::new(Code::UnknownSetting, format!("unknown transport `{}`", proto.name))
                .at(proto.span, "not a transport")
                .with_help(help)
        };
        c.error(d);
        return;
    }
    let a = c.expr(addr);
    let adv = advertise.as_ref().map(|e| c.expr(e));
    if let Some(av) = types::fold(&a) {
        program.listens.push(ir::Listen {
            proto: proto.name.clone(),
            addr: av,
            advertise: adv.as_ref().and_then(types::fold),
        });
    }
}
