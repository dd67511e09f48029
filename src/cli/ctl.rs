//! `sipc ctl`: ask a running proxy, over its control socket (JSON-RPC 2.0,
//! [`crate::reload::rpc`]), what it holds, and change it.
//!
//! ```text
//! sipc ctl stats examples/sbc.route
//! sipc ctl --json location lookup alice@sbc.example.com examples/sbc.route
//! sipc ctl ban add 192.0.2.7 600 --control /run/sipc/ctl.sock
//! ```
//!
//! The proxy is found by its config file, as `sipc reload` finds it (the
//! last argument ending in `.route`), or by `--control`. Output is a table
//! for people, or the JSON result with `--json` for scripts. Exit codes:
//! 0 done, 1 the proxy refused (unknown trunk, a reload that failed …), 2
//! usage, or no proxy answers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::reload::rpc;

#[derive(Debug, Args)]
#[command(after_help = "COMMANDS:
  stats                          counters: requests, replies, drops, transactions, dialogs, bans
  transactions                   live, created and absorbed transactions
  location dump                  every binding
  location lookup AOR            the bindings of one address of record
  location remove AOR [CONTACT]  remove an AOR's bindings, or one of them
  trunks                         each trunk's health and calls
  trunks enable|disable NAME     mark a trunk up, or down (no new calls)
  dialogs                        live dialogs
  dialogs end CALL-ID            end a call (BYE to both sides)
  ban list                       bans in force
  ban add KEY SECONDS            ban an address (or any key)
  ban remove KEY                 lift a ban
  reload                         check and load the config again
  config                         the config serving: path, generation, hash, files
  log level [LEVEL]              show or set the log level (until the next reload)")]
pub struct CtlArgs {
    /// The command and its arguments, then the config file the proxy was
    /// started with (unless `--control` names its socket).
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// The control socket (as given to `sipc run --control`).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The JSON-RPC method and parameters for the command words.
fn method(words: &[&str]) -> Result<(&'static str, Value), String> {
    let n = |i: usize| words.get(i).copied();
    let arity = |want: usize, usage: &str| {
        if words.len() == want { Ok(()) } else { Err(format!("usage: sipc ctl {usage}")) }
    };
    Ok(match words {
        ["stats"] => ("stats", json!({})),
        ["transactions"] => ("transactions", json!({})),
        ["location", "dump"] => ("location.dump", json!({})),
        ["location", "lookup", ..] => {
            arity(3, "location lookup AOR")?;
            ("location.lookup", json!({"aor": n(2)}))
        }
        ["location", "remove", ..] => match words.len() {
            3 => ("location.remove", json!({"aor": n(2)})),
            4 => ("location.remove", json!({"aor": n(2), "contact": n(3)})),
            _ => return Err("usage: sipc ctl location remove AOR [CONTACT]".into()),
        },
        ["trunks"] | ["trunks", "list"] => ("trunks.list", json!({})),
        ["trunks", "enable" | "disable", ..] => {
            arity(3, "trunks enable|disable NAME")?;
            let m = if words[1] == "enable" { "trunks.enable" } else { "trunks.disable" };
            (m, json!({"name": n(2)}))
        }
        ["dialogs"] | ["dialogs", "list"] => ("dialogs.list", json!({})),
        ["dialogs", "end", ..] => {
            arity(3, "dialogs end CALL-ID")?;
            ("dialogs.end", json!({"call_id": n(2)}))
        }
        ["ban"] | ["ban", "list"] => ("ban.list", json!({})),
        ["ban", "add", ..] => {
            arity(4, "ban add KEY SECONDS")?;
            let secs: u64 = words[3]
                .parse()
                .map_err(|_| format!("`{}` is not a number of seconds", words[3]))?;
            ("ban.add", json!({"key": n(2), "seconds": secs}))
        }
        ["ban", "remove", ..] => {
            arity(3, "ban remove KEY")?;
            ("ban.remove", json!({"key": n(2)}))
        }
        ["reload"] => ("reload", json!({})),
        ["config"] => ("config", json!({})),
        ["log", "level"] => ("log.level", json!({})),
        ["log", "level", level] => ("log.level", json!({"level": level})),
        _ => {
            return Err(format!(
                "unknown command `{}` (see `sipc ctl --help` for the commands)",
                words.join(" ")
            ));
        }
    })
}

pub fn run(args: CtlArgs) -> ExitCode {
    let mut words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let file = match words.last() {
        Some(w) if w.ends_with(".route") && words.len() > 1 => words.pop().map(PathBuf::from),
        _ => None,
    };
    let path = match (&args.control, &file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => crate::reload::control::default_path(f),
        (None, None) => {
            eprintln!(
                "error: name the config file the proxy runs (`sipc ctl {} FILE.route`) or `--control PATH`",
                words.join(" ")
            );
            return ExitCode::from(2);
        }
    };
    let (method, params) = match method(&words) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = if method == "reload" { 60 } else { 10 };
    match rpc::request(&path, method, params, Duration::from_secs(timeout)) {
        Err(e) => {
            eprintln!("error: no proxy answers on {}: {e}", path.display());
            ExitCode::from(2)
        }
        Ok(Err(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Ok(Ok(result)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
            } else {
                print!("{}", human(method, &result));
            }
            ExitCode::SUCCESS
        }
    }
}

/// A value as a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Rows of objects as an aligned table with `columns` as its header.
fn table(rows: &[Value], columns: &[&str]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r.get(*c).unwrap_or(&Value::Null))).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| cells.iter().map(|r| r[i].len()).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let mut line = |values: Vec<&str>| {
        let parts: Vec<String> =
            values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(columns.to_vec());
    for r in &cells {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A nested object as `key: value` lines, sub-objects indented.
fn fields(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else {
        out.push_str(&format!("{}{}\n", " ".repeat(indent), cell(v)));
        return;
    };
    for (k, v) in m {
        match v {
            Value::Object(_) => {
                out.push_str(&format!("{}{k}:\n", " ".repeat(indent)));
                fields(v, indent + 2, out);
            }
            _ => out.push_str(&format!("{}{k}: {}\n", " ".repeat(indent), cell(v))),
        }
    }
}

fn human(method: &str, result: &Value) -> String {
    let rows = result.as_array().map(Vec::as_slice).unwrap_or_default();
    match method {
        "location.dump" | "location.lookup" => {
            table(rows, &["aor", "contact", "expires", "received", "transport", "path"])
        }
        "trunks.list" => {
            table(rows, &["name", "uri", "up", "calls", "active", "answered", "failed"])
        }
        "dialogs.list" => table(rows, &["call_id", "state", "from", "to", "start", "answer"]),
        "ban.list" => table(rows, &["key", "seconds"]),
        _ => {
            let mut out = String::new();
            fields(result, 0, &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_methods() {
        assert_eq!(method(&["stats"]).unwrap().0, "stats");
        assert_eq!(
            method(&["ban", "add", "192.0.2.7", "600"]).unwrap(),
            ("ban.add", json!({"key": "192.0.2.7", "seconds": 600}))
        );
        assert_eq!(
            method(&["location", "remove", "a@x", "sip:a@192.0.2.1"]).unwrap().1,
            json!({"aor": "a@x", "contact": "sip:a@192.0.2.1"})
        );
        assert!(method(&["ban", "add", "192.0.2.7"]).unwrap_err().contains("usage"));
        assert!(method(&["ban", "add", "x", "soon"]).unwrap_err().contains("seconds"));
        assert!(method(&["frobnicate"]).unwrap_err().contains("unknown command"));
    }

    #[test]
    fn tables_align_their_columns() {
        let rows =
            vec![json!({"key": "192.0.2.7", "seconds": 600}), json!({"key": "x", "seconds": 5})];
        assert_eq!(
            table(&rows, &["key", "seconds"]),
            "key        seconds\n192.0.2.7  600\nx          5\n"
        );
        assert_eq!(table(&[], &["key"]), "(none)\n");
        let mut out = String::new();
        fields(&json!({"a": 1, "b": {"c": "d"}}), 0, &mut out);
        assert_eq!(out, "a: 1\nb:\n  c: d\n");
    }
}
