//! JSON-RPC 2.0 on the control socket: what `sipc ctl` speaks, and what
//! scripts and other tools can speak too (one request per connection, one
//! JSON object on one line each way).
//!
//! ```text
//! → {"jsonrpc":"2.0","id":1,"method":"ban.add","params":{"key":"192.0.2.7","seconds":600}}
//! ← {"jsonrpc":"2.0","id":1,"result":{"banned":"192.0.2.7","seconds":600}}
//! ```
//!
//! Parameters are named (an object). Errors use the JSON-RPC codes:
//! -32700 unparsable, -32600 not a request, -32601 unknown method, -32602
//! bad parameters, and -32000 for a request the proxy cannot carry out
//! (no registrar, unknown trunk, a reload that failed: its diagnostics are
//! the message). docs/operations.md lists the methods.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::Reloader;

/// Every method, with its parameters, for `sipc ctl help` and the
/// unknown-method error.
pub const METHODS: &[(&str, &str)] = &[
    (
        "stats",
        "counters: messages, requests by method, replies by class, drops, transactions, dialogs, bans, reloads",
    ),
    ("transactions", "live, created and absorbed transactions"),
    ("location.dump", "every binding"),
    ("location.lookup", "{aor}: the bindings of one address of record"),
    ("location.remove", "{aor, contact?}: remove an AOR's bindings, or one"),
    ("trunks.list", "each trunk's health and calls"),
    ("trunks.enable", "{name}: mark a trunk up"),
    ("trunks.disable", "{name}: mark a trunk down (no new calls)"),
    ("dialogs.list", "live dialogs"),
    ("dialogs.end", "{call_id}: end a call (BYE to both sides)"),
    ("ban.list", "bans in force and their remaining seconds"),
    ("ban.add", "{key, seconds}: ban an address or any key"),
    ("ban.remove", "{key}: lift a ban"),
    ("reload", "check and load the config again"),
    ("config", "the config serving: path, generation, hash, files"),
    (
        "log.level",
        "{level?}: the log level (error, warn, info, debug, trace); without one, the current",
    ),
];

/// Sets the process's log level (`log.level`); installed by `sipc run`.
pub type LogLevel = Box<dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync>;

static LOG_LEVEL: OnceLock<LogLevel> = OnceLock::new();

/// Installs what `log.level` calls (once per process).
pub fn set_log_level(f: LogLevel) {
    let _ = LOG_LEVEL.set(f);
}

struct Fail(i64, String);

fn bad(msg: impl Into<String>) -> Fail {
    Fail(-32602, msg.into())
}

fn failed(msg: impl Into<String>) -> Fail {
    Fail(-32000, msg.into())
}

fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, Fail> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("parameter `{name}` (a string) is missing")))
}

/// The `aor` parameter (`alice@example.com` or `sip:alice@example.com`),
/// as the location table keys it.
fn aor_param(params: &Map<String, Value>) -> Result<String, Fail> {
    let text = str_param(params, "aor")?;
    let uri = if text.contains(':') { text.to_owned() } else { format!("sip:{text}") };
    crate::sip::Uri::parse(&uri)
        .ok()
        .and_then(|u| crate::registrar::canonical_aor(&u))
        .ok_or_else(|| bad(format!("`{text}` is not a SIP address of record")))
}

/// Answers one JSON-RPC request line.
pub async fn answer(reloader: &Reloader, line: &str) -> String {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return reply(Value::Null, Err(Fail(-32700, format!("not JSON: {e}")))),
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return reply(id, Err(Fail(-32600, "no `method`".into())));
    };
    let empty = Map::new();
    let params = match req.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return reply(id, Err(bad("`params` must be an object (named parameters)"))),
    };
    reply(id, call(reloader, method, params).await)
}

fn reply(id: Value, result: Result<Value, Fail>) -> String {
    let v = match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(Fail(code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    };
    let mut s = v.to_string();
    s.push('\n');
    s
}

async fn call(r: &Reloader, method: &str, p: &Map<String, Value>) -> Result<Value, Fail> {
    let core = r.core();
    let services = core.services();
    let now = crate::runtime::registrar::unix_now();
    match method {
        "stats" => Ok(stats(r)),
        "transactions" => {
            let s = &core.stats;
            Ok(json!({
                "live": core.transactions(),
                "created": s.transactions.load(Ordering::Relaxed),
                "absorbed": s.absorbed.load(Ordering::Relaxed),
            }))
        }
        "location.dump" | "location.lookup" => {
            let loc = services.location.as_ref().ok_or_else(|| failed("no registrar runs"))?;
            let mut out = Vec::new();
            let mut add = |aor: &str, b: &crate::registrar::Binding| {
                out.push(json!({
                    "aor": aor,
                    "contact": b.contact,
                    "expires": b.expires_at.saturating_sub(now),
                    "received": b.received.map(|a| a.to_string()),
                    "transport": b.transport.name(),
                    "path": b.path,
                    "instance": b.instance,
                }));
            };
            if method == "location.dump" {
                loc.for_each_live(now, add);
            } else {
                let aor = aor_param(p)?;
                for b in loc.lookup(&aor, now) {
                    add(&aor, &b);
                }
            }
            Ok(Value::Array(out))
        }
        "location.remove" => {
            let loc = services.location.as_ref().ok_or_else(|| failed("no registrar runs"))?;
            let aor = aor_param(p)?;
            let removed = match p.get("contact").and_then(Value::as_str) {
                Some(c) => usize::from(loc.remove_contact(&aor, c)),
                None => loc.remove(&aor),
            };
            Ok(json!({"aor": aor, "removed": removed}))
        }
        "trunks.list" => Ok(Value::Array(
            services
                .trunks
                .all()
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "uri": t.uri,
                        "up": t.is_up(),
                        "calls": t.calls.load(Ordering::Relaxed),
                        "active": t.active.load(Ordering::Relaxed),
                        "answered": t.answered.load(Ordering::Relaxed),
                        "failed": t.failed.load(Ordering::Relaxed),
                    })
                })
                .collect(),
        )),
        "trunks.enable" | "trunks.disable" => {
            let name = str_param(p, "name")?;
            let trunks = services.trunks.all();
            let t = trunks.iter().find(|t| t.name == name).ok_or_else(|| {
                let names: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
                failed(format!("no trunk `{name}` (the trunks are: {})", names.join(", ")))
            })?;
            let up = method == "trunks.enable";
            t.set_up(up);
            Ok(json!({"name": name, "up": up}))
        }
        "dialogs.list" => Ok(Value::Array(
            services
                .dialogs
                .all()
                .iter()
                .map(|d| {
                    json!({
                        "call_id": d.call_id,
                        "state": d.state.word(),
                        "from": d.from,
                        "to": d.to,
                        "start": d.start_ms / 1000,
                        "answer": (d.answer_ms > 0).then_some(d.answer_ms / 1000),
                        "hidden": d.hidden.is_some(),
                    })
                })
                .collect(),
        )),
        "dialogs.end" => {
            let call_id = str_param(p, "call_id")?;
            if !services.dialogs.end_at(call_id, crate::dialog::now_ms()) {
                return Err(failed(format!("no dialog with Call-ID `{call_id}`")));
            }
            Ok(json!({"call_id": call_id, "ending": true}))
        }
        "ban.list" => Ok(Value::Array(
            services
                .bans
                .entries(Instant::now())
                .into_iter()
                .map(|(key, left)| json!({"key": key, "seconds": left.as_secs()}))
                .collect(),
        )),
        "ban.add" => {
            let key = str_param(p, "key")?;
            let secs = p
                .get("seconds")
                .and_then(Value::as_u64)
                .filter(|s| (1..=365 * 86_400).contains(s))
                .ok_or_else(|| bad("`seconds` must be a whole number from 1 to 31536000"))?;
            services.bans.ban(key, Duration::from_secs(secs), Instant::now());
            Ok(json!({"banned": key, "seconds": secs}))
        }
        "ban.remove" => {
            let key = str_param(p, "key")?;
            if !services.bans.unban(key) {
                return Err(failed(format!("`{key}` is not banned")));
            }
            Ok(json!({"unbanned": key}))
        }
        "reload" => match r.reload("sipc ctl reload").await {
            Ok(summary) => Ok(json!({"generation": r.generation(), "summary": summary})),
            Err(diagnostics) => Err(failed(diagnostics)),
        },
        "config" => {
            let files: Vec<String> =
                r.files().borrow().iter().map(|f| f.display().to_string()).collect();
            Ok(json!({
                "path": r.path().display().to_string(),
                "generation": r.generation(),
                "hash": format!("{:016x}", r.hash()),
                "files": files,
            }))
        }
        "log.level" => {
            let set = LOG_LEVEL.get().ok_or_else(|| failed("the log level is fixed here"))?;
            let level = p.get("level").and_then(Value::as_str);
            set(level).map(|now| json!({"level": now})).map_err(bad)
        }
        other => {
            let names: Vec<&str> = METHODS.iter().map(|(n, _)| *n).collect();
            Err(Fail(
                -32601,
                format!("no method `{other}` (the methods are: {})", names.join(", ")),
            ))
        }
    }
}

fn stats(r: &Reloader) -> Value {
    let core = r.core();
    let s = &core.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut requests = Map::new();
    for m in crate::metrics::METHOD_LIST {
        let n = load(&s.requests_by_method[m as usize]);
        requests.insert(m.as_str().unwrap_or("other").to_owned(), n.into());
    }
    let mut replies = Map::new();
    for (i, c) in s.replies_by_class.iter().enumerate() {
        replies.insert(format!("{}xx", i + 1), load(c).into());
    }
    let services = core.services();
    let d = &services.dialogs;
    let (reloads, failures) = r.counts();
    json!({
        "received": load(&s.received),
        "requests": requests,
        "replies": replies,
        "forwarded_requests": load(&s.forwarded_requests),
        "forwarded_replies": load(&s.forwarded_responses),
        "replied": load(&s.replied),
        "dropped": crate::metrics::drops(core)
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), Value::from(*n)))
            .collect::<Map<String, Value>>(),
        "send_errors": load(&s.send_errors),
        "transactions": {"live": core.transactions(), "created": load(&s.transactions)},
        "dialogs": {
            "live": d.len(),
            "created": load(&d.stats.created),
            "answered": load(&d.stats.answered),
            "failed": load(&d.stats.failed),
            "ended": load(&d.stats.ended),
            "timed_out": load(&d.stats.timed_out),
        },
        "bans": services.bans.len(),
        "generation": r.generation(),
        "reloads": reloads,
        "reload_failures": failures,
    })
}

/// Sends one JSON-RPC request to the control socket at `path`; the result,
/// or the error's message.
pub fn request(
    path: &std::path::Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> std::io::Result<Result<Value, String>> {
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let reply = super::control::request_raw(path, &line, timeout)?;
    let v: Value = serde_json::from_str(reply.trim())
        .map_err(|e| std::io::Error::other(format!("the proxy's reply is not JSON: {e}")))?;
    if let Some(r) = v.get("result") {
        return Ok(Ok(r.clone()));
    }
    let msg = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the proxy answered neither a result nor an error");
    Ok(Err(msg.to_owned()))
}
