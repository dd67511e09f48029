//! Where `sipc run` writes its log and in what shape.
//!
//! - `log_format = "text"` (the default): one human line per event;
//!   `"json"`: one JSON object per line, its fields at the top level
//!   (`timestamp`, `level`, `target`, `message`, `call_id`, …), for Loki,
//!   Elasticsearch or `jq`.
//! - `log_stderror = true` (the default): to stderr, which systemd's
//!   journal or a container runtime collects; `false`: to the local syslog
//!   daemon (`syslog_socket`, default `/dev/log`) with `log_facility` and
//!   `log_name`, as Kamailio does with the same settings. When no syslog
//!   daemon listens there, the log goes to stderr and says why once.
//!
//! Every line written while a message is handled carries its Call-ID
//! (`call_id=…`, or the `call_id` key in JSON), so one call's lines are one
//! search away.
//!
//! The shape and the destination are read at start; the level follows
//! `debug` on reload and `sipc ctl log level` (the filter is a reload layer).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry, reload};

use crate::sema::builtins::syslog_facility as facility;
use crate::sema::ir::{CheckedProgram, Value};

/// Handle to change the level of the installed log.
pub type LevelHandle = reload::Handle<LevelFilter, Registry>;

/// The line format (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The log settings of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSetup {
    pub format: Format,
    /// `Some` to syslog: facility code, tag, socket path.
    pub syslog: Option<(u8, String, PathBuf)>,
}

fn global<'p>(prog: &'p CheckedProgram, name: &str) -> Option<&'p Value> {
    prog.settings.iter().find(|s| s.module.is_empty() && s.name == name).map(|s| &s.value)
}

impl LogSetup {
    /// The setup `prog`'s settings ask for (the checker has vetted the
    /// values; anything else falls back to the default).
    pub fn of(prog: &CheckedProgram) -> LogSetup {
        let format = match global(prog, "log_format") {
            Some(Value::Str(f)) if f == "json" => Format::Json,
            _ => Format::Text,
        };
        let syslog = match global(prog, "log_stderror") {
            Some(Value::Bool(false)) => {
                let fac = match global(prog, "log_facility") {
                    Some(Value::Str(f)) => facility(f).unwrap_or(3),
                    _ => 3,
                };
                let name = match global(prog, "log_name") {
                    Some(Value::Str(n)) => n.clone(),
                    _ => "sipc".to_owned(),
                };
                let socket = match global(prog, "syslog_socket") {
                    Some(Value::Str(p)) => PathBuf::from(p),
                    _ => PathBuf::from("/dev/log"),
                };
                Some((fac, name, socket))
            }
            _ => None,
        };
        LogSetup { format, syslog }
    }
}

/// Installs the process's log as `setup` says, at `level`; the handle
/// changes the level later.
pub fn install(setup: &LogSetup, level: LevelFilter, color: bool) -> LevelHandle {
    let (filter, handle) = reload::Layer::new(level);
    let syslog = setup.syslog.as_ref().and_then(|(facility, name, path)| {
        match Syslog::connect(*facility, name, path) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("sipc: no syslog at {} ({e}); logging to stderr instead", path.display());
                None
            }
        }
    });
    let fmt = tracing_subscriber::fmt::layer();
    let layer: Box<dyn Layer<_> + Send + Sync> = match (setup.format, syslog) {
        // Syslog stamps the time itself; colour codes do not belong there.
        (Format::Text, Some(s)) => fmt.with_writer(s).with_ansi(false).without_time().boxed(),
        (Format::Json, Some(s)) => fmt.json().flatten_event(true).with_writer(s).boxed(),
        (Format::Text, None) => fmt.with_writer(std::io::stderr).with_ansi(color).boxed(),
        (Format::Json, None) => fmt.json().flatten_event(true).with_writer(std::io::stderr).boxed(),
    };
    let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
    handle
}

/// The local syslog daemon, reached over its datagram socket: one
/// datagram per event, `<PRI>TAG[PID]: line`, the priority made of the
/// facility and the event's level (RFC 3164 as glibc's `syslog()` sends
/// it; rsyslog and journald put the time on).
#[derive(Debug, Clone)]
pub struct Syslog {
    sock: Arc<UnixDatagram>,
    facility: u8,
    tag: Arc<str>,
}

impl Syslog {
    pub fn connect(facility: u8, tag: &str, path: &std::path::Path) -> std::io::Result<Syslog> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        let tag = format!("{tag}[{}]", std::process::id());
        Ok(Syslog { sock: Arc::new(sock), facility, tag: tag.into() })
    }
}

/// One event's line on its way to syslog (sent when dropped: the fmt
/// layer writes an event in one or more pieces, then lets go).
#[derive(Debug)]
pub struct SyslogLine {
    syslog: Syslog,
    severity: u8,
    line: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        while self.line.last().is_some_and(|b| b.is_ascii_whitespace()) {
            self.line.pop();
        }
        if self.line.is_empty() {
            return;
        }
        let pri = u16::from(self.syslog.facility) * 8 + u16::from(self.severity);
        let mut dgram = format!("<{pri}>{}: ", self.syslog.tag).into_bytes();
        dgram.extend_from_slice(&self.line);
        // A daemon that is gone or full loses the line, not the proxy's time.
        let _ = self.syslog.sock.send(&dgram);
    }
}

/// Syslog severity of a tracing level (RFC 5424 §6.2.1).
fn severity(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine { syslog: self.clone(), severity: 6, line: Vec::new() }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        SyslogLine { syslog: self.clone(), severity: severity(meta.level()), line: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::{Syslog, SyslogLine};
    use std::io::Write as _;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn facilities_by_kamailio_and_short_names() {
        use crate::sema::builtins::syslog_facility as facility;
        assert_eq!(facility("LOG_LOCAL0"), Some(16));
        assert_eq!(facility("local7"), Some(23));
        assert_eq!(facility("LOG_DAEMON"), Some(3));
        assert_eq!(facility("LOG_NOPE"), None);
    }

    #[test]
    fn a_line_goes_out_as_one_datagram_with_its_priority() {
        let dir = std::env::temp_dir().join(format!("sipc-syslog-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let syslog = Syslog::connect(16, "sipc", &path).unwrap();
        {
            let mut w = SyslogLine { syslog: syslog.clone(), severity: 4, line: Vec::new() };
            w.write_all(b"WARN sipc: over ").unwrap();
            w.write_all(b"the limit\n").unwrap();
        }
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        // local0 (16) * 8 + warning (4) = 132
        assert_eq!(got, format!("<132>sipc[{}]: WARN sipc: over the limit", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
