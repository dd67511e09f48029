//! `sipc dump sip FILE`: what the parser made of a message, for debugging
//! captures and torture tests.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;

use super::{Contact, Message};

/// Renders a parsed message as an indented report.
pub fn render(msg: &Message) -> String {
    let mut o = String::new();
    match (msg.method_str(), msg.request_uri_str()) {
        (Some(m), Some(u)) => writeln!(o, "request {m} {u}").unwrap(),
        _ => writeln!(o, "response {} {:?}", msg.status().unwrap_or(0), msg.reason().unwrap_or(""))
            .unwrap(),
    }
    if let Ok(Some(u)) = msg.request_uri() {
        writeln!(
            o,
            "  request-uri: scheme={:?} user={:?} host={:?} port={:?} params={:?}",
            u.scheme,
            u.user,
            u.host_str,
            u.port,
            u.params.as_str()
        )
        .unwrap();
    }
    writeln!(o, "headers ({}):", msg.headers().len()).unwrap();
    for h in msg.headers() {
        writeln!(
            o,
            "  {:<18} {:?} = {:?}",
            format!("{:?}", h.name),
            msg.name_of(h),
            msg.value_of(h)
        )
        .unwrap();
    }
    writeln!(o, "typed:").unwrap();
    for v in msg.vias() {
        match v {
            Ok(v) => writeln!(
                o,
                "  via: {} {}:{} branch={:?} rport={:?} received={:?}",
                v.transport,
                v.host,
                v.port_or_default(),
                v.branch(),
                v.rport(),
                v.received()
            )
            .unwrap(),
            Err(e) => writeln!(o, "  via: error: {e}").unwrap(),
        }
    }
    for (label, na) in [("from", msg.from()), ("to", msg.to())] {
        match na {
            Ok(Some(n)) => writeln!(o, "  {label}: uri={} tag={:?}", n.uri, n.tag()).unwrap(),
            Ok(None) => {}
            Err(e) => writeln!(o, "  {label}: error: {e}").unwrap(),
        }
    }
    writeln!(o, "  call-id: {:?}", msg.call_id()).unwrap();
    writeln!(o, "  cseq: {:?}", msg.cseq()).unwrap();
    writeln!(o, "  max-forwards: {:?}", msg.max_forwards()).unwrap();
    for c in msg.contacts() {
        match c {
            Ok(Contact::Star) => writeln!(o, "  contact: *").unwrap(),
            Ok(c @ Contact::Addr(n)) => {
                writeln!(o, "  contact: {} expires={:?} q={:?}", n.uri, c.expires(), c.q()).unwrap()
            }
            Err(e) => writeln!(o, "  contact: error: {e}").unwrap(),
        }
    }
    for r in msg.routes() {
        writeln!(o, "  route: {:?}", r.map(|r| r.uri.raw())).unwrap();
    }
    writeln!(o, "  content-type: {:?}", msg.content_type()).unwrap();
    writeln!(o, "body: {} bytes", msg.body_len()).unwrap();
    match msg.check() {
        Ok(()) => writeln!(o, "valid for proxying").unwrap(),
        Err(e) => writeln!(o, "invalid for proxying ({}): {e}", e.status_code()).unwrap(),
    }
    o
}

/// Reads, parses and prints a message file. Exit 0 parsed and valid, 1 malformed, 2 unreadable.
pub fn dump_file(path: &Path) -> ExitCode {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    match Message::parse(Bytes::from(bytes)) {
        Ok(msg) => {
            print!("{}", render(&msg));
            if msg.check().is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}
