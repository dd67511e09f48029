//! The `subscriber` table: HA1 hashes (MD5 and SHA-256) per `user@realm`,
//! in the same SQLite database as the location table, cached in memory.
//!
//! Passwords are never stored, only `H(user:realm:password)` for each
//! algorithm (what digest verification needs, RFC 7616 §3.4.2). The route
//! code only reads the cache; a miss asks the database (so a user added
//! with `sipc user add` while the proxy runs works at once), and
//! [`SubscriberStore::reload`] (every 30 s from `sipc run`'s maintenance
//! thread) picks up deletions and password changes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};

use super::digest::{Algorithm, ha1};

/// The HA1 hashes of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl Subscriber {
    pub fn new(user: &str, realm: &str, password: &str) -> Subscriber {
        Subscriber {
            ha1_md5: ha1(Algorithm::Md5, user, realm, password),
            ha1_sha256: ha1(Algorithm::Sha256, user, realm, password),
        }
    }

    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

/// The subscriber table and its cache.
#[derive(Debug)]
pub struct SubscriberStore {
    conn: Option<Mutex<Connection>>,
    cache: RwLock<HashMap<String, Subscriber>>,
}

fn key(user: &str, realm: &str) -> String {
    format!("{user}@{realm}")
}

impl SubscriberStore {
    /// Opens (creating when needed) the table in the database at `path`
    /// and loads it into the cache.
    pub fn open(path: &Path) -> rusqlite::Result<SubscriberStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS subscriber (
                username TEXT NOT NULL,
                realm TEXT NOT NULL,
                ha1 TEXT NOT NULL,
                ha1_sha256 TEXT NOT NULL,
                PRIMARY KEY (username, realm)
            );
            CREATE TABLE IF NOT EXISTS auth_secret (id INTEGER PRIMARY KEY, secret BLOB NOT NULL);",
        )?;
        let store = SubscriberStore { conn: Some(Mutex::new(conn)), cache: RwLock::default() };
        store.reload()?;
        Ok(store)
    }

    /// A store with no database (tests, memory-only servers, and the
    /// cache of a table shared in PostgreSQL, filled by `crate::cluster`).
    pub fn in_memory() -> SubscriberStore {
        SubscriberStore { conn: None, cache: RwLock::default() }
    }

    /// Replaces the cache with `all` (a shared table read whole).
    pub fn replace_cache(&self, all: HashMap<String, Subscriber>) {
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = all;
    }

    /// Sets one user in the cache (`None`: removed), as the shared table
    /// now holds it.
    pub fn set_cached(&self, user_at_realm: &str, s: Option<Subscriber>) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match s {
            Some(s) => cache.insert(user_at_realm.to_owned(), s),
            None => cache.remove(user_at_realm),
        };
    }

    /// The number of users in the cache.
    pub fn cached(&self) -> usize {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The nonce key kept in the database, created on first use.
    pub fn secret(&self) -> rusqlite::Result<Option<[u8; 32]>> {
        let Some(conn) = &self.conn else { return Ok(None) };
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let found: Option<Vec<u8>> = conn
            .query_row("SELECT secret FROM auth_secret WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        if let Some(k) = found.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            return Ok(Some(k));
        }
        let k = *super::nonce::NonceKey::random().bytes();
        conn.execute("INSERT OR REPLACE INTO auth_secret (id, secret) VALUES (1, ?1)", [&k[..]])?;
        Ok(Some(k))
    }

    /// Re-reads the whole table into the cache.
    pub fn reload(&self) -> rusqlite::Result<usize> {
        let Some(conn) = &self.conn else { return Ok(0) };
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT username, realm, ha1, ha1_sha256 FROM subscriber")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                key(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?),
                Subscriber { ha1_md5: r.get(2)?, ha1_sha256: r.get(3)? },
            ))
        })?;
        let fresh: HashMap<String, Subscriber> = rows.collect::<Result<_, _>>()?;
        let n = fresh.len();
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(n)
    }

    /// The user's hashes: from the cache, else from the database.
    pub fn get(&self, user: &str, realm: &str) -> Option<Subscriber> {
        let k = key(user, realm);
        if let Some(s) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&k) {
            return Some(s.clone());
        }
        let conn = self.conn.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        let found = conn
            .prepare_cached(
                "SELECT ha1, ha1_sha256 FROM subscriber WHERE username = ?1 AND realm = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![user, realm], |r| {
                    Ok(Subscriber { ha1_md5: r.get(0)?, ha1_sha256: r.get(1)? })
                })
                .optional()
            })
            .unwrap_or_else(|e| {
                tracing::error!("subscriber lookup failed: {e}");
                None
            })?;
        drop(conn);
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(k, found.clone());
        Some(found)
    }

    /// Adds or replaces a user.
    pub fn put(&self, user: &str, realm: &str, s: Subscriber) -> rusqlite::Result<()> {
        if let Some(conn) = &self.conn {
            conn.lock().unwrap_or_else(|e| e.into_inner()).execute(
                "INSERT OR REPLACE INTO subscriber (username, realm, ha1, ha1_sha256)
                 VALUES (?1, ?2, ?3, ?4)",
                params![user, realm, s.ha1_md5, s.ha1_sha256],
            )?;
        }
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(key(user, realm), s);
        Ok(())
    }

    /// Adds or replaces many users in one transaction.
    pub fn put_many(&self, users: &[(String, String, Subscriber)]) -> rusqlite::Result<()> {
        if let Some(conn) = &self.conn {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO subscriber (username, realm, ha1, ha1_sha256)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (user, realm, s) in users {
                    ins.execute(params![user, realm, s.ha1_md5, s.ha1_sha256])?;
                }
            }
            tx.commit()?;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        for (user, realm, s) in users {
            cache.insert(key(user, realm), s.clone());
        }
        Ok(())
    }

    /// Removes a user; true when it existed.
    pub fn delete(&self, user: &str, realm: &str) -> rusqlite::Result<bool> {
        let mut n = 0;
        if let Some(conn) = &self.conn {
            n = conn.lock().unwrap_or_else(|e| e.into_inner()).execute(
                "DELETE FROM subscriber WHERE username = ?1 AND realm = ?2",
                params![user, realm],
            )?;
        }
        let cached =
            self.cache.write().unwrap_or_else(|e| e.into_inner()).remove(&key(user, realm));
        Ok(n > 0 || cached.is_some())
    }

    /// Every `user@realm`, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.cache.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_persist_and_cache_misses_read_the_database() {
        let dir = std::env::temp_dir().join(format!("sipc-sub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("s.db");
        let _ = std::fs::remove_file(&db);
        let a = SubscriberStore::open(&db).unwrap();
        let b = SubscriberStore::open(&db).unwrap(); // e.g. the running proxy
        a.put("alice", "example.com", Subscriber::new("alice", "example.com", "pw")).unwrap();
        let got = b.get("alice", "example.com").expect("read through on a miss");
        assert_eq!(got.ha1_md5, ha1(Algorithm::Md5, "alice", "example.com", "pw"));
        assert_eq!(a.list(), ["alice@example.com"]);
        assert_eq!(a.secret().unwrap(), b.secret().unwrap(), "one key per database");
        assert!(a.delete("alice", "example.com").unwrap());
        assert_eq!(b.reload().unwrap(), 0);
        assert!(b.get("alice", "example.com").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
