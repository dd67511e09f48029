//! `sipc cdr FILE.route`: the call records of the store the configuration
//! writes to (`module acc { db_url }`), as CSV or one JSON array.
//!
//! `--since` takes seconds since the Unix epoch (`1767225600`), a UTC date
//! or date and time (`2026-12-03`, `2026-12-03T10:00:00`), or a duration
//! back from now (`15m`, `2h`, `7d`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::acc::Cdr;
use crate::acc::backend::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct CdrArgs {
    /// The configuration whose call records to list.
    pub file: PathBuf,
    /// Only records of calls that ended at or after this time.
    #[arg(long)]
    pub since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Set a define switch, as for `sipc run` (`-D NAME[=VALUE]`).
    #[arg(short = 'D', long = "define", value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `--since` as seconds since the epoch; `now` for relative durations.
pub fn parse_since(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    if let Some(ms) = crate::syntax::literal::duration_ms(s) {
        return Ok(now - ms as f64 / 1000.0);
    }
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let time = time.trim_end_matches('Z');
    let d: Vec<i64> =
        date.split('-').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad(s))?;
    let t: Vec<i64> =
        time.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad(s))?;
    match (d.as_slice(), t.as_slice()) {
        ([y, m, day], [hh, mm, rest @ ..])
            if (1..=12).contains(m) && (1..=31).contains(day) && *hh < 24 && *mm < 60 =>
        {
            let ss = rest.first().copied().unwrap_or(0);
            Ok((days_from_civil(*y, *m, *day) * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
        }
        _ => Err(bad(s)),
    }
}

fn bad(s: &str) -> String {
    format!(
        "`--since {s}`: expected seconds since the epoch, a date (2026-12-03[T10:00:00]) or a duration (15m)"
    )
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The records as CSV with a header line; `extra` as a JSON object.
pub fn to_csv(records: &[Cdr]) -> String {
    let mut out = String::from(
        "call_id,kind,status,reason,hangup,from_tag,to_tag,from_uri,to_uri,ruri,src_ip,dst,start_time,answer_time,end_time,duration,extra\n",
    );
    for c in records {
        let fields = [
            c.call_id.clone(),
            c.kind.word().to_owned(),
            c.status.to_string(),
            c.reason.clone(),
            c.hangup.clone(),
            c.from_tag.clone(),
            c.to_tag.clone(),
            c.from_uri.clone(),
            c.to_uri.clone(),
            c.ruri.clone(),
            c.src_ip.clone(),
            c.dst.clone(),
            format!("{:.3}", c.start_time),
            c.answer_time.map(|a| format!("{a:.3}")).unwrap_or_default(),
            format!("{:.3}", c.end_time),
            format!("{:.3}", c.duration),
            serde_json::to_string(&c.extra).unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push('\n');
    }
    out
}

pub fn run(args: CdrArgs) -> ExitCode {
    match list(&args) {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn list(args: &CdrArgs) -> Result<String, String> {
    let name = args.file.to_string_lossy().into_owned();
    let out = super::check::load_for(&args.file, &args.define)?;
    let base = args.file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    if !super::services::uses_accounting(&out.program) {
        return Err(format!(
            "`{name}` writes no call records: it needs `dlg_manage()` and a flag that asks for them (`FLT_ACC`, or `module acc {{ log_flag }}`)"
        ));
    }
    let config = super::services::acc_config(&out.program, &base)?;
    let now = crate::dialog::now_ms() as f64 / 1000.0;
    let since = match &args.since {
        Some(s) => parse_since(s, now)?,
        None => f64::MIN,
    };
    if let crate::acc::DbUrl::Sqlite(p) | crate::acc::DbUrl::Jsonl(p) = &config.url
        && !p.exists()
    {
        return Err(format!("{}: no records yet (the file does not exist)", p.display()));
    }
    let mut backend = Backend::open(&config.url, &config.table)?;
    let records = backend.query(since)?;
    Ok(match args.format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&records).map_err(|e| e.to_string())?;
            s.push('\n');
            s
        }
        Format::Csv => to_csv(&records),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_epochs_dates_and_durations() {
        assert_eq!(parse_since("1767225600", 0.0), Ok(1_767_225_600.0));
        assert_eq!(parse_since("2026-01-01", 0.0), Ok(1_767_225_600.0));
        assert_eq!(parse_since("2026-01-01T01:00:30Z", 0.0), Ok(1_767_229_230.0));
        assert_eq!(parse_since("15m", 1000.0), Ok(100.0));
        assert!(parse_since("yesterday", 0.0).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut s = String::new();
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "\"a,\"\"b\"\"\"");
    }
}
