//! Rows of a routing table from a SQL query (`table NAME by prefix($rU)
//! from "postgres://…" query "SELECT …" [refresh 30s] [notify "CHANNEL"]`,
//! or `from "sqlite:FILE"`): operators keep routes in the database they
//! already manage, not in files.
//!
//! The query's rows are read when the configuration is compiled, on the
//! thread that compiles it (never a routing worker), and turned into the
//! CSV rows a `from "FILE.csv"` table has: the same checks run on them,
//! and a bad row is reported with its row number as the line. A query
//! that fails, or a row whose column has the wrong type, fails the
//! compilation, so on a reload the previous rows keep serving and the log
//! says why. New rows are picked up by a reload: on `sipc reload`/`sipc
//! ctl reload`, every `refresh` interval when the rows changed (the
//! watcher in `sipc run` runs the query and compares), or on a PostgreSQL
//! notification on `notify`'s channel.
//!
//! Columns, by position: the key (text), the destination (text:
//! `group:NAME`, `trunk:NAME` or a name), then optionally the digits to
//! strip (an integer or NULL) and the prefix to add (text or NULL).

use std::hash::{Hash, Hasher};

/// Where a table's rows come from, when from SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSource {
    /// `postgres://…` or `sqlite:PATH` (PATH relative to the declaring file,
    /// already resolved).
    pub url: String,
    pub query: String,
    /// Run the query this often (ms), reloading when its rows changed.
    pub refresh_ms: Option<u64>,
    /// Reload on a PostgreSQL notification on this channel.
    pub notify: Option<String>,
}

/// Whether `from "…"` names a database rather than a file.
pub fn is_database(from: &str) -> bool {
    crate::cluster::is_postgres_url(from) || from.starts_with("sqlite:")
}

/// A value of a row: text, integer, or NULL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cell {
    Text(String),
    Int(i64),
    Null,
}

const COLUMNS: [&str; 4] = ["key", "destination", "strip", "prefix"];

/// Runs `query` against `url` on a thread of its own (a blocking client
/// must not run inside an async runtime); the rows, or why not.
pub fn fetch(url: &str, query: &str) -> Result<Vec<Vec<Cell>>, String> {
    let (url, query) = (url.to_owned(), query.to_owned());
    std::thread::spawn(move || fetch_here(&url, &query))
        .join()
        .unwrap_or_else(|_| Err("the query's thread failed".into()))
}

fn fetch_here(url: &str, query: &str) -> Result<Vec<Vec<Cell>>, String> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("`{path}`: {e}"))?;
        let mut stmt = conn.prepare(query).map_err(|e| e.to_string())?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                use rusqlite::types::ValueRef;
                cells.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Real(_) => return Err(bad_type(out.len() + 1, i, "a real number")),
                    ValueRef::Blob(_) => return Err(bad_type(out.len() + 1, i, "a blob")),
                });
            }
            out.push(cells);
        }
        return Ok(out);
    }
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("`{}`: {e}", redact(url)))?;
    let rows = client.query(query, &[]).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter().enumerate() {
        let mut cells = Vec::with_capacity(row.len());
        for (i, col) in row.columns().iter().enumerate() {
            use postgres::types::Type;
            let t = col.type_();
            let e = |e: postgres::Error| format!("row {}, column {}: {e}", r + 1, i + 1);
            cells.push(if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::BPCHAR {
                row.try_get::<_, Option<String>>(i).map_err(e)?.map_or(Cell::Null, Cell::Text)
            } else if *t == Type::INT2 {
                row.try_get::<_, Option<i16>>(i)
                    .map_err(e)?
                    .map_or(Cell::Null, |v| Cell::Int(v.into()))
            } else if *t == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map_err(e)?
                    .map_or(Cell::Null, |v| Cell::Int(v.into()))
            } else if *t == Type::INT8 {
                row.try_get::<_, Option<i64>>(i).map_err(e)?.map_or(Cell::Null, Cell::Int)
            } else {
                return Err(bad_type(r + 1, i, &format!("of type {t}")));
            });
        }
        out.push(cells);
    }
    Ok(out)
}

fn bad_type(row: usize, col: usize, what: &str) -> String {
    let name = COLUMNS.get(col).copied().unwrap_or("extra");
    format!("row {row}, column {} ({name}): {what}, expected text or an integer", col + 1)
}

/// The rows as the CSV text of a `from "FILE.csv"` table, one line per
/// row (so a row's number is its line), after checking each column's
/// type against what the table declares.
pub fn to_csv(rows: &[Vec<Cell>]) -> Result<String, String> {
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        let n = r + 1;
        if row.len() < 2 || row.len() > 4 {
            return Err(format!(
                "row {n}: {} columns; a table's query gives key, destination[, strip[, prefix]]",
                row.len()
            ));
        }
        let text = |i: usize, required: bool| -> Result<String, String> {
            let v = match &row[i] {
                Cell::Text(t) => t.clone(),
                Cell::Null if !required => String::new(),
                Cell::Null => {
                    return Err(format!("row {n}, column {} ({}): NULL", i + 1, COLUMNS[i]));
                }
                Cell::Int(_) => {
                    return Err(format!(
                        "row {n}, column {} ({}): an integer, expected text{}",
                        i + 1,
                        COLUMNS[i],
                        if i == 0 { " (a number loses its leading zeros: cast it)" } else { "" }
                    ));
                }
            };
            if v.contains([',', '\n', '\r']) {
                return Err(format!(
                    "row {n}, column {} ({}): `{v}` contains a comma or a line break",
                    i + 1,
                    COLUMNS[i]
                ));
            }
            Ok(v)
        };
        let key = text(0, true)?;
        let dest = text(1, true)?;
        out.push_str(&key);
        out.push(',');
        out.push_str(&dest);
        if let Some(strip) = row.get(2) {
            out.push(',');
            match strip {
                Cell::Int(v) => out.push_str(&v.to_string()),
                Cell::Null => {}
                Cell::Text(_) => {
                    return Err(format!("row {n}, column 3 (strip): text, expected an integer"));
                }
            }
        }
        if row.len() > 3 {
            out.push(',');
            out.push_str(&text(3, false)?);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The rows of an ACL's query (one column: an address or network) as the
/// lines of an address file.
pub fn to_lines(rows: &[Vec<Cell>]) -> Result<String, String> {
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        match row.as_slice() {
            [Cell::Text(t)] if !t.contains(['\n', '\r']) => {
                out.push_str(t);
                out.push('\n');
            }
            [_] => {
                return Err(format!(
                    "row {}, column 1: expected an address or network as text",
                    r + 1
                ));
            }
            _ => {
                return Err(format!(
                    "row {}: {} columns; an address group's query gives one",
                    r + 1,
                    row.len()
                ));
            }
        }
    }
    Ok(out)
}

/// A hash of the rows, to tell whether they changed.
pub fn digest(rows: &[Vec<Cell>]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rows.hash(&mut h);
    h.finish()
}

/// `url` without its password, for messages and file names.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_csv_and_bad_columns_are_named() {
        let rows = vec![
            vec![
                Cell::Text("0086".into()),
                Cell::Text("group:cn".into()),
                Cell::Int(4),
                Cell::Text("+86".into()),
            ],
            vec![Cell::Text("".into()), Cell::Text("trunk:pbx".into()), Cell::Null, Cell::Null],
        ];
        assert_eq!(to_csv(&rows).unwrap(), "0086,group:cn,4,+86\n,trunk:pbx,,\n");
        let bad = vec![vec![Cell::Int(86), Cell::Text("cn".into())]];
        assert!(to_csv(&bad).unwrap_err().starts_with("row 1, column 1 (key): an integer"));
        let bad = vec![
            vec![Cell::Text("1".into()), Cell::Text("cn".into())],
            vec![Cell::Text("2".into()), Cell::Text("cn".into()), Cell::Text("x".into())],
        ];
        assert_eq!(to_csv(&bad).unwrap_err(), "row 2, column 3 (strip): text, expected an integer");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
