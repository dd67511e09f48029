//! Accounting: call detail records (CDRs) of the dialogs
//! ([`crate::dialog`]) and where they are written.
//!
//! A record is made when a dialog ends ([`Cdr::of`]) and handed to
//! [`Accounting::record`], which puts it on a bounded queue and returns at
//! once: routing never waits on storage. One writer thread drains the
//! queue in batches into the backend `module acc { db_url }` names
//! ([`backend`]): an SQLite file (the default, `sqlite:cdr.db` beside the
//! configuration), a JSON-lines file, or PostgreSQL (the shared store of a
//! cluster). A batch the backend refuses (PostgreSQL down, disk full) is
//! appended to a spool file and replayed, oldest first, once the backend
//! takes writes again; on SIGTERM the queue is drained before `sipc run`
//! exits. A record is lost only when the queue is full (counted as
//! `dropped`, and logged).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dialog::{Dialog, uri_of};

pub mod backend;
pub mod writer;

pub use backend::DbUrl;
pub use writer::{AccConfig, AccStats, Accounting};

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CdrKind {
    /// A 2xx answered it (the record is written when it ends).
    Answered,
    /// It ended with a final reply ≥ 300 other than those of a missed call.
    Failed,
    /// Nobody answered: the caller cancelled it, or it ended with 408, 480
    /// or 487.
    Missed,
}

impl CdrKind {
    pub fn word(self) -> &'static str {
        match self {
            CdrKind::Answered => "answered",
            CdrKind::Failed => "failed",
            CdrKind::Missed => "missed",
        }
    }

    pub fn from_word(w: &str) -> Option<CdrKind> {
        match w {
            "answered" => Some(CdrKind::Answered),
            "failed" => Some(CdrKind::Failed),
            "missed" => Some(CdrKind::Missed),
            _ => None,
        }
    }
}

/// One call detail record. Times are seconds since the Unix epoch with
/// millisecond precision; `duration` is from answer to end (0 unanswered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    pub call_id: String,
    pub kind: CdrKind,
    /// The final status of the INVITE (200 for answered calls).
    pub status: u16,
    pub reason: String,
    /// Who ended an answered call: `caller`, `callee`, `timeout` (no
    /// in-dialog request for `default_timeout`) or `max_duration`; empty
    /// for unanswered calls.
    pub hangup: String,
    pub from_tag: String,
    pub to_tag: String,
    pub from_uri: String,
    pub to_uri: String,
    pub ruri: String,
    pub src_ip: String,
    /// Where the answered branch went.
    pub dst: String,
    pub start_time: f64,
    pub answer_time: Option<f64>,
    pub end_time: f64,
    pub duration: f64,
    /// The dialog's variables (`$dlg_var(name) = …` in the routes).
    pub extra: BTreeMap<String, String>,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl Cdr {
    /// The record of dialog `d` ending now (`end_ms`).
    pub fn of(
        d: &Dialog,
        kind: CdrKind,
        status: u16,
        reason: &str,
        hangup: &str,
        end_ms: u64,
    ) -> Cdr {
        let answered = d.answer_ms > 0 && kind == CdrKind::Answered;
        Cdr {
            call_id: d.call_id.to_string(),
            kind,
            status,
            reason: reason.to_owned(),
            hangup: hangup.to_owned(),
            from_tag: d.from_tag.to_string(),
            to_tag: d.to_tag.to_string(),
            from_uri: uri_of(&d.from).to_owned(),
            to_uri: uri_of(&d.to).to_owned(),
            ruri: d.ruri.to_string(),
            src_ip: d.caller.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
            dst: d.dst.to_string(),
            start_time: secs(d.start_ms),
            answer_time: answered.then(|| secs(d.answer_ms)),
            end_time: secs(end_ms),
            duration: if answered { secs(end_ms.saturating_sub(d.answer_ms)) } else { 0.0 },
            extra: d.vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

/// The flag bits that ask for records: `module acc`'s `log_flag`,
/// `failed_transaction_flag` and `log_missed_flag`, or the flags
/// `FLT_ACC`, `FLT_ACCFAILED` and `FLT_ACCMISSED` when those are declared
/// (as default.route does, after kamailio.cfg).
pub fn masks(prog: &crate::sema::ir::CheckedProgram) -> crate::dialog::AccMasks {
    let bit = |setting: &str, default: &str| {
        let name = prog
            .settings
            .iter()
            .find(|s| s.module == "acc" && s.name == setting)
            .and_then(|s| match &s.value {
                crate::sema::ir::Value::Str(v) => Some(v.as_str()),
                _ => None,
            })
            .unwrap_or(default);
        prog.flags.iter().find(|f| f.name == name).map_or(0, |f| 1u64 << f.bit)
    };
    crate::dialog::AccMasks {
        answered: bit("log_flag", "FLT_ACC"),
        failed: bit("failed_transaction_flag", "FLT_ACCFAILED"),
        missed: bit("log_missed_flag", "FLT_ACCMISSED"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_come_out_of_header_values() {
        assert_eq!(uri_of("\"Al\" <sip:al@x;transport=udp>;tag=1"), "sip:al@x;transport=udp");
        assert_eq!(uri_of("sip:bo@y;tag=2"), "sip:bo@y");
    }
}
