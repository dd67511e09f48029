//! Persistence of the location table: SQLite (bundled, WAL), written behind.
//!
//! The in-memory table stays the only thing the hot path touches. Every
//! change to an AOR marks it dirty; a background thread writes the dirty
//! AORs' complete binding sets in one transaction every `delay` (so a burst
//! of re-REGISTERs costs one write per AOR), and [`Persister::stop`] writes
//! the rest. Write-behind rather than write-through: a REGISTER must not
//! wait for a disk sync, and losing at most `delay` of refreshes after a
//! crash (SIGKILL) costs only re-registrations the devices send anyway.
//! Times are Unix seconds, so bindings keep their expiry across restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Binding, Location};
use crate::proxy::Transport;

/// A SQLite database holding the location table.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating when needed) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS location (
                aor TEXT NOT NULL,
                contact TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                q INTEGER,
                call_id TEXT NOT NULL,
                cseq INTEGER NOT NULL,
                path TEXT NOT NULL,
                received TEXT,
                instance TEXT,
                reg_id INTEGER,
                methods INTEGER,
                PRIMARY KEY (aor, contact)
            );
            CREATE INDEX IF NOT EXISTS location_expiry ON location (expires_at);",
        )?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    /// Replaces the stored bindings of each AOR given (an empty set deletes it).
    pub fn write(&self, aors: &HashMap<String, Vec<Binding>>) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM location WHERE aor = ?1")?;
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO location
                 (aor, contact, expires_at, q, call_id, cseq, path, received, instance, reg_id, methods)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for (aor, bindings) in aors {
                del.execute([aor])?;
                for b in bindings {
                    ins.execute(params![
                        aor,
                        b.contact,
                        b.expires_at as i64,
                        b.q.map(i64::from),
                        b.call_id,
                        i64::from(b.cseq),
                        b.path.join("\n"),
                        b.received_uri(),
                        b.instance,
                        b.reg_id.map(i64::from),
                        b.methods.map(i64::from),
                    ])?;
                }
            }
        }
        tx.commit()
    }

    /// Deletes bindings expired at `now`; returns how many.
    pub fn purge(&self, now: u64) -> rusqlite::Result<usize> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute("DELETE FROM location WHERE expires_at <= ?1", [now as i64])
    }

    /// Every binding still live at `now`, with its AOR.
    pub fn load(&self, now: u64) -> rusqlite::Result<Vec<(String, Binding)>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare(
            "SELECT aor, contact, expires_at, q, call_id, cseq, path, received, instance, reg_id,
                    methods
             FROM location WHERE expires_at > ?1",
        )?;
        let rows = stmt.query_map([now as i64], |r| {
            let path: String = r.get(6)?;
            let received: Option<String> = r.get(7)?;
            let received = received.as_deref().and_then(Binding::parse_received);
            Ok((
                r.get::<_, String>(0)?,
                Binding {
                    contact: r.get(1)?,
                    expires_at: r.get::<_, i64>(2)? as u64,
                    q: r.get::<_, Option<i64>>(3)?.map(|q| q as u16),
                    call_id: r.get(4)?,
                    cseq: r.get::<_, i64>(5)? as u32,
                    path: path.lines().map(str::to_owned).filter(|p| !p.is_empty()).collect(),
                    received: received.map(|(addr, _)| addr),
                    transport: received.map_or(Transport::Udp, |(_, t)| t),
                    instance: r.get(8)?,
                    reg_id: r.get::<_, Option<i64>>(9)?.map(|v| v as u32),
                    methods: r.get::<_, Option<i64>>(10)?.map(|v| v as u32),
                    peer: false,
                },
            ))
        })?;
        rows.collect()
    }
}

/// The write-behind thread for one [`Location`] and [`SqliteStore`].
#[derive(Debug)]
pub struct Persister {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Persister {
    /// Starts writing `location`'s changes to `store` every `delay`.
    pub fn start(location: Arc<Location>, store: Arc<SqliteStore>, delay: Duration) -> Persister {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sipc-location-store".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                loop {
                    let stopped = {
                        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                        // The flag is checked before waiting, so a stop that
                        // came first is not missed.
                        if !*guard {
                            guard =
                                cv.wait_timeout(guard, delay).unwrap_or_else(|e| e.into_inner()).0;
                        }
                        *guard
                    };
                    let dirty = location.take_dirty();
                    if !dirty.is_empty() {
                        if let Err(e) = store.write(&dirty) {
                            tracing::error!("location store write failed: {e}");
                            location.remark_dirty(dirty);
                        }
                    }
                    if stopped {
                        break;
                    }
                }
            })
            .expect("spawn the location store thread");
        Persister { stop, thread: Some(thread) }
    }

    /// Writes what is pending and ends the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::RegistrarConfig;
    use crate::sip::Message;
    use bytes::Bytes;

    fn reg(user: &str, contact: &str, expires: u32) -> Message {
        reg_seq(user, contact, expires, 1)
    }

    fn reg_seq(user: &str, contact: &str, expires: u32, cseq: u32) -> Message {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             To: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=1\r\nCall-ID: {user}-c\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <{contact}>;expires={expires}\r\n\
             Path: <sip:edge.example.com;lr>\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn bindings_survive_a_restart_and_expire() {
        let dir = std::env::temp_dir().join(format!("sipc-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("location.db");
        let _ = std::fs::remove_file(&db);
        let src = "203.0.113.9:5060".parse().unwrap();
        {
            let loc = Arc::new(Location::new(RegistrarConfig::default()).persistent());
            let store = Arc::new(SqliteStore::open(&db).unwrap());
            let p = Persister::start(Arc::clone(&loc), store, Duration::from_secs(3600));
            loc.register(&reg("alice", "sip:alice@192.0.2.10", 600), src, 1_000).unwrap();
            loc.register(&reg("bob", "sip:bob@192.0.2.11", 60), src, 1_000).unwrap();
            // A TCP client behind NAT: reached back over its own connection.
            let nat = "198.51.100.7:40312".parse().unwrap();
            let tcp = Transport::Tcp;
            loc.register_from(&reg("dave", "sip:dave@10.0.0.7", 600), nat, tcp, 1_000).unwrap();
            p.stop(); // flushes although the delay has not passed
        }
        let store = SqliteStore::open(&db).unwrap();
        let restored = Location::new(RegistrarConfig::default());
        restored.restore(store.load(1_100).unwrap());
        let alice = restored.lookup("sip:alice@example.com", 1_100);
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0].contact, "sip:alice@192.0.2.10");
        assert_eq!(alice[0].expires_at, 1_600);
        assert_eq!(alice[0].path, ["<sip:edge.example.com;lr>"]);
        assert_eq!(alice[0].received, Some(src));
        assert_eq!(alice[0].transport, Transport::Udp);
        let dave = restored.lookup("sip:dave@example.com", 1_100);
        assert_eq!(dave[0].received_uri().as_deref(), Some("sip:198.51.100.7:40312;transport=tcp"));
        assert!(restored.lookup("sip:bob@example.com", 1_100).is_empty(), "expired while down");
        assert_eq!(store.purge(1_100).unwrap(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn received_addresses_of_older_stores_are_udp() {
        let udp = Binding::parse_received("203.0.113.9:5060").unwrap();
        assert_eq!(udp, ("203.0.113.9:5060".parse().unwrap(), Transport::Udp));
        let tls = Binding::parse_received("sip:[2001:db8::1]:5061;transport=TLS").unwrap();
        assert_eq!(tls, ("[2001:db8::1]:5061".parse().unwrap(), Transport::Tls));
        assert_eq!(Binding::parse_received("sip:x;transport=sctp"), None);
    }

    #[test]
    fn write_behind_writes_within_the_delay() {
        let dir = std::env::temp_dir().join(format!("sipc-store-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("location.db");
        let _ = std::fs::remove_file(&db);
        let loc = Arc::new(Location::new(RegistrarConfig::default()).persistent());
        let store = Arc::new(SqliteStore::open(&db).unwrap());
        let p = Persister::start(Arc::clone(&loc), Arc::clone(&store), Duration::from_millis(20));
        loc.register(
            &reg("carol", "sip:carol@192.0.2.12", 600),
            "192.0.2.12:5060".parse().unwrap(),
            5,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.load(5).unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(store.load(5).unwrap().len(), 1, "written without a stop");
        // An unregister is written too.
        let gone = reg_seq("carol", "sip:carol@192.0.2.12", 0, 2);
        loc.register(&gone, "192.0.2.12:5060".parse().unwrap(), 6).unwrap();
        p.stop();
        assert!(store.load(6).unwrap().is_empty(), "the removal reached the database");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
