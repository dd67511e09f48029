//! Bans across a restart: `sipc run` writes the bans in force to a table
//! of its SQLite file (`module usrloc { db_path }`, `sipc.db` beside the
//! config) when it stops, and reads back those still running when it
//! starts. A scanner or password guesser banned for an hour stays banned
//! when the proxy is upgraded or restarted in that hour.
//!
//! Deadlines are stored as Unix milliseconds (a monotonic `Instant` means
//! nothing to the next process). Nothing is written, and no file created,
//! when nothing is banned and the file has no ban table.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Bans;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn open(path: &Path) -> Result<rusqlite::Connection, String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS bans (key TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);",
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(conn)
}

/// Replaces the saved bans with those in force now; returns how many.
pub fn save(path: &Path, bans: &Bans) -> Result<usize, String> {
    let entries = bans.entries(Instant::now());
    if entries.is_empty() && !path.exists() {
        return Ok(0);
    }
    let mut conn = open(path)?;
    let now = unix_ms();
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    tx.execute("DELETE FROM bans", []).map_err(|e| e.to_string())?;
    for (key, left) in &entries {
        let until = now + left.as_millis() as u64;
        tx.execute(
            "INSERT OR REPLACE INTO bans (key, until_ms) VALUES (?1, ?2)",
            rusqlite::params![key, until as i64],
        )
        .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(entries.len())
}

/// Bans again what [`save`] wrote and has not run out; returns how many.
pub fn restore(path: &Path, bans: &Bans) -> Result<usize, String> {
    if !path.exists() {
        return Ok(0);
    }
    let conn = open(path)?;
    let now = unix_ms();
    let mut st = conn
        .prepare("SELECT key, until_ms FROM bans WHERE until_ms > ?1")
        .map_err(|e| e.to_string())?;
    let rows = st
        .query_map([now as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| e.to_string())?;
    let at = Instant::now();
    let mut n = 0;
    for row in rows {
        let (key, until) = row.map_err(|e| e.to_string())?;
        let left = Duration::from_millis((until as u64).saturating_sub(now));
        bans.ban(&key, left, at);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_survive_a_save_and_a_restore() {
        let dir = std::env::temp_dir().join(format!("sipc-banstore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sipc.db");
        let empty = Bans::default();
        assert_eq!(save(&path, &empty), Ok(0));
        assert!(!path.exists(), "no file for no bans");
        let bans = Bans::default();
        let now = Instant::now();
        bans.ban("192.0.2.7", Duration::from_secs(3600), now);
        bans.ban("alice@example.com", Duration::from_secs(60), now);
        bans.ban("192.0.2.8", Duration::from_millis(1), now);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(save(&path, &bans), Ok(2), "the expired one is not saved");
        let next = Bans::default();
        assert_eq!(restore(&path, &next), Ok(2));
        assert!(next.is_banned("192.0.2.7", Instant::now()));
        assert!(next.is_banned("alice@example.com", Instant::now()));
        assert!(!next.is_banned("192.0.2.8", Instant::now()));
        let left = next.entries(Instant::now());
        assert!(left[0].1 > Duration::from_secs(3590), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
