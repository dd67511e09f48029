//! `sipc trace FILE [--call-id ID] [--where CONDITION] [--count N] [--seconds S]`
//!
//! Asks a running `sipc run FILE` (over its control socket) to trace the
//! messages that match, and prints each one's trace as it comes: the routes
//! run, each statement with the values it read, conditions, values written,
//! and the decision. Messages that do not match are routed by the serving
//! program as usual. Exit codes: 0 the trace ran (until `--count` traces,
//! `--seconds`, or the proxy ended it), 1 the proxy refused it (a condition
//! that does not check, a trace already running), 2 no proxy answers.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::reload::trace::TraceSpec;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The config file the proxy was started with (names its control socket).
    pub file: Option<PathBuf>,
    /// The control socket (as given to `sipc run --control`).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Trace only messages with this Call-ID.
    #[arg(long, value_name = "ID")]
    pub call_id: Option<String>,
    /// Trace only messages for which this condition holds, in the route
    /// language: `--where '$fU == "alice" && is_method("INVITE")'`.
    #[arg(long = "where", value_name = "CONDITION")]
    pub condition: Option<String>,
    /// Stop after this many traced messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
}

pub fn run(args: TraceArgs) -> ExitCode {
    let path = match (&args.control, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => crate::reload::control::default_path(f),
        (None, None) => {
            eprintln!("error: name the config file (`sipc trace FILE`) or `--control PATH`");
            return ExitCode::from(2);
        }
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: no sipc answers on {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let spec = TraceSpec { call_id: args.call_id.clone(), condition: args.condition.clone() };
    let request = format!("trace {}\n", serde_json::to_string(&spec).unwrap_or_default());
    if let Err(e) = stream.write_all(request.as_bytes()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut reader = match stream.try_clone() {
        Ok(s) => BufReader::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Building the traced program takes a moment; a refusal comes at once.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() || first.trim() != "ok" {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        eprint!("{rest}");
        return ExitCode::from(1);
    }
    eprintln!("tracing; stop with Ctrl-C");
    let mut stdout = std::io::stdout().lock();
    let mut traced = 0u64;
    loop {
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => break,
            },
            None => Duration::from_secs(3600),
        };
        let _ = stream.set_read_timeout(Some(wait));
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                let _ = stdout.write_all(line.as_bytes());
                let _ = stdout.flush();
                if line.starts_with("=> ") {
                    traced += 1;
                    if args.count.is_some_and(|n| traced >= n) {
                        break;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if deadline.is_some() {
                    continue;
                }
            }
            Err(_) => break,
        }
    }
    // Closing the connection ends the trace on the proxy.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    ExitCode::SUCCESS
}
