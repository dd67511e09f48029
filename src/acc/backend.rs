//! Where call records are stored: `module acc { db_url }`.
//!
//! - `sqlite:PATH` (the default, `sqlite:cdr.db`): an SQLite file, PATH
//!   relative to the configuration's directory, WAL journal, one
//!   transaction per batch.
//! - `jsonl:PATH`: one JSON object per line, appended.
//! - `postgres://USER@HOST[:PORT]/DB` (or `postgresql://`): a table in
//!   PostgreSQL, created when missing, one transaction per batch.
//!
//! Every backend keeps the same columns, those of [`Cdr`]; `extra` is a
//! JSON object. `module acc { db_table }` names the table (default `cdr`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Cdr, CdrKind};

/// A parsed `db_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Jsonl(PathBuf),
    Postgres(String),
}

impl DbUrl {
    /// Parses `url`; file paths are taken relative to `base`.
    pub fn parse(url: &str, base: &Path) -> Result<DbUrl, String> {
        if let Some(p) = url.strip_prefix("sqlite:") {
            let p = p.trim_start_matches("//");
            return (!p.is_empty())
                .then(|| DbUrl::Sqlite(base.join(p)))
                .ok_or_else(|| "`sqlite:` needs a file: `sqlite:cdr.db`".into());
        }
        if let Some(p) = url.strip_prefix("jsonl:") {
            return (!p.is_empty())
                .then(|| DbUrl::Jsonl(base.join(p)))
                .ok_or_else(|| "`jsonl:` needs a file: `jsonl:cdr.jsonl`".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_owned()));
        }
        Err(format!(
            "`{url}` is not a CDR store: use `sqlite:FILE`, `jsonl:FILE` or `postgres://USER@HOST/DB`"
        ))
    }

    /// The store without its password, for logs.
    pub fn describe(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DbUrl::Jsonl(p) => format!("jsonl:{}", p.display()),
            DbUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let user = &u[s + 3..at];
                    let user = user.split(':').next().unwrap_or(user);
                    format!("{}{user}@{}", &u[..s + 3], &u[at + 1..])
                }
                _ => u.clone(),
            },
        }
    }
}

/// A checked table name (it is written into SQL).
pub fn table_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!("`{name}` is not a table name (letters, digits and `_`)"))
    }
}

const COLUMNS: &str = "call_id, kind, status, reason, hangup, from_tag, to_tag, from_uri, to_uri, ruri, src_ip, dst, start_time, answer_time, end_time, duration, extra";

/// An open store.
pub enum Backend {
    Sqlite(rusqlite::Connection, String),
    Jsonl(std::fs::File, PathBuf),
    Postgres(Box<postgres::Client>, String),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite(_, t) => write!(f, "Sqlite({t})"),
            Backend::Jsonl(_, p) => write!(f, "Jsonl({})", p.display()),
            Backend::Postgres(_, t) => write!(f, "Postgres({t})"),
        }
    }
}

fn extra_json(c: &Cdr) -> String {
    serde_json::to_string(&c.extra).unwrap_or_else(|_| "{}".into())
}

impl Backend {
    /// Opens (and creates the table of) the store.
    pub fn open(url: &DbUrl, table: &str) -> Result<Backend, String> {
        let table = table_name(table)?;
        match url {
            DbUrl::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
                conn.execute_batch(&format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                     CREATE TABLE IF NOT EXISTS {table} (
                       id INTEGER PRIMARY KEY AUTOINCREMENT,
                       call_id TEXT NOT NULL, kind TEXT NOT NULL, status INTEGER NOT NULL,
                       reason TEXT NOT NULL, hangup TEXT NOT NULL, from_tag TEXT NOT NULL,
                       to_tag TEXT NOT NULL, from_uri TEXT NOT NULL, to_uri TEXT NOT NULL,
                       ruri TEXT NOT NULL, src_ip TEXT NOT NULL, dst TEXT NOT NULL,
                       start_time REAL NOT NULL, answer_time REAL, end_time REAL NOT NULL,
                       duration REAL NOT NULL, extra TEXT NOT NULL);
                     CREATE INDEX IF NOT EXISTS {table}_end ON {table}(end_time);"
                ))
                .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Backend::Sqlite(conn, table))
            }
            DbUrl::Jsonl(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Backend::Jsonl(f, path.clone()))
            }
            DbUrl::Postgres(u) => {
                let mut client = postgres::Client::connect(u, postgres::NoTls)
                    .map_err(|e| format!("{}: {e}", url.describe()))?;
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (
                           id BIGSERIAL PRIMARY KEY,
                           call_id TEXT NOT NULL, kind TEXT NOT NULL, status INTEGER NOT NULL,
                           reason TEXT NOT NULL, hangup TEXT NOT NULL, from_tag TEXT NOT NULL,
                           to_tag TEXT NOT NULL, from_uri TEXT NOT NULL, to_uri TEXT NOT NULL,
                           ruri TEXT NOT NULL, src_ip TEXT NOT NULL, dst TEXT NOT NULL,
                           start_time DOUBLE PRECISION NOT NULL, answer_time DOUBLE PRECISION,
                           end_time DOUBLE PRECISION NOT NULL, duration DOUBLE PRECISION NOT NULL,
                           extra TEXT NOT NULL);
                         CREATE INDEX IF NOT EXISTS {table}_end ON {table}(end_time);"
                    ))
                    .map_err(|e| format!("{}: {e}", url.describe()))?;
                Ok(Backend::Postgres(Box::new(client), table))
            }
        }
    }

    /// Writes `batch` all or nothing.
    pub fn write(&mut self, batch: &[Cdr]) -> Result<(), String> {
        match self {
            Backend::Sqlite(conn, table) => {
                let tx = conn.transaction().map_err(|e| e.to_string())?;
                {
                    let mut st = tx
                        .prepare_cached(&format!(
                            "INSERT INTO {table} ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)"
                        ))
                        .map_err(|e| e.to_string())?;
                    for c in batch {
                        st.execute(rusqlite::params![
                            c.call_id,
                            c.kind.word(),
                            c.status,
                            c.reason,
                            c.hangup,
                            c.from_tag,
                            c.to_tag,
                            c.from_uri,
                            c.to_uri,
                            c.ruri,
                            c.src_ip,
                            c.dst,
                            c.start_time,
                            c.answer_time,
                            c.end_time,
                            c.duration,
                            extra_json(c),
                        ])
                        .map_err(|e| e.to_string())?;
                    }
                }
                tx.commit().map_err(|e| e.to_string())
            }
            Backend::Jsonl(f, _) => {
                let mut buf = Vec::with_capacity(batch.len() * 400);
                for c in batch {
                    serde_json::to_writer(&mut buf, c).map_err(|e| e.to_string())?;
                    buf.push(b'\n');
                }
                f.write_all(&buf).map_err(|e| e.to_string())
            }
            Backend::Postgres(client, table) => {
                let mut tx = client.transaction().map_err(|e| e.to_string())?;
                let st = tx
                    .prepare(&format!(
                        "INSERT INTO {table} ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"
                    ))
                    .map_err(|e| e.to_string())?;
                for c in batch {
                    let status = i32::from(c.status);
                    let extra = extra_json(c);
                    tx.execute(
                        &st,
                        &[
                            &c.call_id,
                            &c.kind.word(),
                            &status,
                            &c.reason,
                            &c.hangup,
                            &c.from_tag,
                            &c.to_tag,
                            &c.from_uri,
                            &c.to_uri,
                            &c.ruri,
                            &c.src_ip,
                            &c.dst,
                            &c.start_time,
                            &c.answer_time,
                            &c.end_time,
                            &c.duration,
                            &extra,
                        ],
                    )
                    .map_err(|e| e.to_string())?;
                }
                tx.commit().map_err(|e| e.to_string())
            }
        }
    }

    /// Whether the store still answers (a PostgreSQL connection can break).
    pub fn is_broken(&self) -> bool {
        match self {
            Backend::Postgres(c, _) => c.is_closed(),
            _ => false,
        }
    }

    /// The records that ended at or after `since` (seconds since the
    /// epoch), oldest first.
    pub fn query(&mut self, since: f64) -> Result<Vec<Cdr>, String> {
        match self {
            Backend::Sqlite(conn, table) => {
                let mut st = conn
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM {table} WHERE end_time >= ?1 ORDER BY end_time, id"
                    ))
                    .map_err(|e| e.to_string())?;
                let rows = st
                    .query_map([since], |r| {
                        Ok(RawRow {
                            call_id: r.get(0)?,
                            kind: r.get(1)?,
                            status: r.get::<_, i64>(2)?,
                            reason: r.get(3)?,
                            hangup: r.get(4)?,
                            from_tag: r.get(5)?,
                            to_tag: r.get(6)?,
                            from_uri: r.get(7)?,
                            to_uri: r.get(8)?,
                            ruri: r.get(9)?,
                            src_ip: r.get(10)?,
                            dst: r.get(11)?,
                            start_time: r.get(12)?,
                            answer_time: r.get(13)?,
                            end_time: r.get(14)?,
                            duration: r.get(15)?,
                            extra: r.get(16)?,
                        })
                    })
                    .map_err(|e| e.to_string())?;
                rows.map(|r| r.map_err(|e| e.to_string()).and_then(RawRow::into_cdr)).collect()
            }
            Backend::Jsonl(_, path) => {
                let text = std::fs::read_to_string(&*path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut out = Vec::new();
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let c: Cdr = serde_json::from_str(line)
                        .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
                    if c.end_time >= since {
                        out.push(c);
                    }
                }
                out.sort_by(|a, b| a.end_time.total_cmp(&b.end_time));
                Ok(out)
            }
            Backend::Postgres(client, table) => {
                let rows = client
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM {table} WHERE end_time >= $1 ORDER BY end_time, id"
                        ),
                        &[&since],
                    )
                    .map_err(|e| e.to_string())?;
                rows.iter()
                    .map(|r| {
                        RawRow {
                            call_id: r.get(0),
                            kind: r.get(1),
                            status: i64::from(r.get::<_, i32>(2)),
                            reason: r.get(3),
                            hangup: r.get(4),
                            from_tag: r.get(5),
                            to_tag: r.get(6),
                            from_uri: r.get(7),
                            to_uri: r.get(8),
                            ruri: r.get(9),
                            src_ip: r.get(10),
                            dst: r.get(11),
                            start_time: r.get(12),
                            answer_time: r.get(13),
                            end_time: r.get(14),
                            duration: r.get(15),
                            extra: r.get(16),
                        }
                        .into_cdr()
                    })
                    .collect()
            }
        }
    }
}

/// A row as the SQL stores return it.
struct RawRow {
    call_id: String,
    kind: String,
    status: i64,
    reason: String,
    hangup: String,
    from_tag: String,
    to_tag: String,
    from_uri: String,
    to_uri: String,
    ruri: String,
    src_ip: String,
    dst: String,
    start_time: f64,
    answer_time: Option<f64>,
    end_time: f64,
    duration: f64,
    extra: String,
}

impl RawRow {
    fn into_cdr(self) -> Result<Cdr, String> {
        Ok(Cdr {
            kind: CdrKind::from_word(&self.kind)
                .ok_or_else(|| format!("record of {}: kind `{}`", self.call_id, self.kind))?,
            call_id: self.call_id,
            status: u16::try_from(self.status).unwrap_or(0),
            reason: self.reason,
            hangup: self.hangup,
            from_tag: self.from_tag,
            to_tag: self.to_tag,
            from_uri: self.from_uri,
            to_uri: self.to_uri,
            ruri: self.ruri,
            src_ip: self.src_ip,
            dst: self.dst,
            start_time: self.start_time,
            answer_time: self.answer_time,
            end_time: self.end_time,
            duration: self.duration,
            extra: serde_json::from_str(&self.extra).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr(id: &str, end: f64) -> Cdr {
        Cdr {
            call_id: id.into(),
            kind: CdrKind::Answered,
            status: 200,
            reason: "OK".into(),
            hangup: "caller".into(),
            from_tag: "f".into(),
            to_tag: "t".into(),
            from_uri: "sip:a@x".into(),
            to_uri: "sip:b@x".into(),
            ruri: "sip:b@x".into(),
            src_ip: "127.0.0.2".into(),
            dst: "udp:127.0.0.1:5080".into(),
            start_time: end - 3.0,
            answer_time: Some(end - 2.0),
            end_time: end,
            duration: 2.0,
            extra: [("src".to_string(), "1.2.3.4".to_string())].into(),
        }
    }

    #[test]
    fn urls_parse_and_hide_passwords() {
        let base = Path::new("/etc/sipc");
        assert_eq!(
            DbUrl::parse("sqlite:cdr.db", base),
            Ok(DbUrl::Sqlite("/etc/sipc/cdr.db".into()))
        );
        assert_eq!(
            DbUrl::parse("jsonl:/var/log/cdr.jsonl", base),
            Ok(DbUrl::Jsonl("/var/log/cdr.jsonl".into()))
        );
        let pg = DbUrl::parse("postgres://acc:secret@127.0.0.1/test", base).unwrap();
        assert_eq!(pg.describe(), "postgres://acc@127.0.0.1/test");
        assert!(DbUrl::parse("mysql://x", base).is_err());
        assert!(table_name("cdr; drop table x").is_err());
    }

    #[test]
    fn sqlite_and_jsonl_store_and_return_records() {
        let dir = std::env::temp_dir().join(format!("sipc-acc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for url in ["sqlite:t.db", "jsonl:t.jsonl"] {
            let url = DbUrl::parse(url, &dir).unwrap();
            let mut b = Backend::open(&url, "cdr").unwrap();
            b.write(&[cdr("a", 100.0), cdr("b", 200.0)]).unwrap();
            let all = b.query(0.0).unwrap();
            assert_eq!(all, vec![cdr("a", 100.0), cdr("b", 200.0)], "{url:?}");
            assert_eq!(b.query(150.0).unwrap().len(), 1);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
