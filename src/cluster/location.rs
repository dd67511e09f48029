//! The location table shared in PostgreSQL (`module usrloc { db_url =
//! "postgres://…"; }`).
//!
//! Three tasks on one background thread keep this node's memory and the
//! table in step:
//!
//! - the **writer** takes the [`Location`] journal (bindings added, changed
//!   and removed here) at once after a change (`db_mode = 1`, write-through)
//!   or every `write_delay` (`db_mode = 2`, write-back), and writes it in one
//!   transaction of three statements however many AORs it holds: the
//!   removals, the upserts (`INSERT … ON CONFLICT`) and one `pg_notify` per
//!   AOR on the table's channel, naming this node and the AOR. A failed
//!   write puts the journal back and is tried again a second later, so a
//!   PostgreSQL restart loses nothing this node accepted.
//! - the **listener** holds its own connection, `LISTEN`s on the channel,
//!   and on each notification from another node reads that AOR's rows back
//!   into memory (notifications arriving within 5 ms are read in one query).
//!   On every (re)connection it reads the whole table, since notifications
//!   sent while it was away are gone. The AOR's journal, if this node has
//!   unwritten changes to it, is applied over the rows read.
//! - **expiry** is the job of one node: the one whose listener holds the
//!   table's session advisory lock deletes expired rows every 5 s; when it
//!   dies its session ends and another node's listener takes the lock.
//!   Every node also drops expired bindings from its own memory, on its own
//!   clock, without waiting for the delete.
//!
//! So a binding written by one node is in every other node's memory one
//! notification round trip after its transaction commits (a few
//! milliseconds on a LAN; `tests/cluster.rs` measures it), and a node that
//! lost its connection is complete again once it has reconnected.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::tokio_postgres::{self, types::ToSql};
use tokio::sync::{Notify, mpsc};

use super::schema::{self, Kind};
use crate::proxy::Transport;
use crate::registrar::{AorChange, Binding, Location};

/// When the writer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// As soon as a change is made (`db_mode = 1`).
    Through,
    /// Every so often (`db_mode = 2`, `write_delay`).
    Behind(Duration),
}

/// The settings of a shared location table.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    pub url: String,
    pub table: String,
    pub mode: WriteMode,
    /// Stored with each row this node writes (its first listen address).
    pub node: String,
}

/// Counters of the synchronisation, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Binding changes written.
    pub written: AtomicU64,
    /// Write transactions that failed (each is tried again).
    pub write_failures: AtomicU64,
    /// AORs read back after another node's notification.
    pub refreshed: AtomicU64,
    /// Whole-table reads (start-up and reconnections).
    pub full_reads: AtomicU64,
    /// Expired rows this node deleted as the expiry leader.
    pub expired: AtomicU64,
    /// The listener is connected.
    pub connected: AtomicBool,
    /// This node deletes expired rows.
    pub leader: AtomicBool,
}

/// The running synchronisation: a thread with its runtime.
#[derive(Debug)]
pub struct SharedLocation {
    pub stats: Arc<SyncStats>,
    worker: super::Worker,
}

/// A [`Location`] whose changes wake the writer, and the wake-up.
pub fn shared_location(config: crate::registrar::RegistrarConfig) -> (Arc<Location>, Arc<Notify>) {
    let wake = Arc::new(Notify::new());
    let w = Arc::clone(&wake);
    (Arc::new(Location::new(config).shared(move || w.notify_one())), wake)
}

impl SharedLocation {
    /// Starts keeping `location` and the table in step. Waits (up to
    /// `wait`) for the table to be migrated and read, so a node that starts
    /// with PostgreSQL up serves every binding from its first request; when
    /// PostgreSQL is down it starts empty and fills in when it comes back.
    pub fn start(
        location: Arc<Location>,
        wake: Arc<Notify>,
        config: SharedConfig,
        wait: Duration,
    ) -> Result<SharedLocation, String> {
        let pool = super::pool(&config.url, 4)?;
        let stats = Arc::new(SyncStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, String>>();
        let ctx = Syncer {
            location,
            config,
            pool,
            stats: Arc::clone(&stats),
            token: super::node_token(),
        };
        let worker =
            super::Worker::spawn("sipc-cluster", move |stop| ctx.run(wake, stop, ready_tx))?;
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(n)) => tracing::info!("location: {n} bindings read from the shared table"),
            Ok(Err(e)) => {
                tracing::error!(
                    "location: the shared table cannot be read yet: {e}; serving from memory until it can"
                )
            }
            Err(_) => tracing::error!(
                "location: the shared table did not answer within {wait:?}; serving from memory until it does"
            ),
        }
        Ok(SharedLocation { stats, worker })
    }

    /// Writes what is pending (for up to two seconds) and ends the thread.
    pub fn stop(self) {
        self.worker.stop();
    }
}

/// What the tasks share.
struct Syncer {
    location: Arc<Location>,
    config: SharedConfig,
    pool: deadpool_postgres::Pool,
    stats: Arc<SyncStats>,
    token: String,
}

/// Rows as the table holds them.
const COLUMNS: &str =
    "aor, contact, expires_at, q, call_id, cseq, path, received, instance, reg_id, methods, node";

impl Syncer {
    async fn run(
        self,
        wake: Arc<Notify>,
        stop: super::Stop,
        ready: std::sync::mpsc::Sender<Result<usize, String>>,
    ) {
        let this = Arc::new(self);
        let listener = tokio::spawn(Arc::clone(&this).listen(ready));
        let mut failed = false;
        loop {
            let delay = match (this.config.mode, failed) {
                (_, true) => Some(super::RETRY),
                (WriteMode::Behind(d), false) => Some(d),
                (WriteMode::Through, false) => None,
            };
            tokio::select! {
                _ = stop.requested() => {}
                _ = wake.notified(), if delay.is_none() => {}
                _ = tokio::time::sleep(delay.unwrap_or(Duration::ZERO)), if delay.is_some() => {}
            }
            let last = stop.is_requested();
            failed = match this.write_journal().await {
                Ok(()) => false,
                Err(e) => {
                    this.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    if !failed {
                        tracing::error!(
                            "location: cannot write to the shared table ({e}); {} AORs kept and written when it is back",
                            this.location.journal_len()
                        );
                    }
                    true
                }
            };
            if last {
                if failed {
                    // One more chance, then what is left is lost with the
                    // process (as with Kamailio's write-back on a crash).
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), this.write_journal()).await;
                }
                break;
            }
        }
        listener.abort();
    }

    /// Writes the journal in one transaction; on failure puts it back.
    async fn write_journal(&self) -> Result<(), String> {
        let journal = self.location.take_journal();
        if journal.is_empty() {
            return Ok(());
        }
        match self.write(&journal).await {
            Ok(n) => {
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.location.rejournal(journal);
                Err(e)
            }
        }
    }

    async fn write(&self, journal: &HashMap<String, AorChange>) -> Result<usize, String> {
        let t = &self.config.table;
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let (mut del_aor, mut del_contact) = (Vec::new(), Vec::new());
        let mut up = Upserts::default();
        for (aor, change) in journal {
            for c in &change.delete {
                del_aor.push(aor.as_str());
                del_contact.push(c.as_str());
            }
            for b in &change.upsert {
                up.push(aor, b, &self.config.node);
            }
        }
        if !del_aor.is_empty() {
            tx.execute(
                &format!(
                    "DELETE FROM {t} USING UNNEST($1::text[], $2::text[]) AS d(aor, contact)
                     WHERE {t}.aor = d.aor AND {t}.contact = d.contact"
                ),
                &[&del_aor as &(dyn ToSql + Sync), &del_contact],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        if !up.aor.is_empty() {
            tx.execute(
                &format!(
                    "INSERT INTO {t} ({COLUMNS})
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int4[],
                        $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[], $10::int8[],
                        $11::int8[], $12::text[])
                     ON CONFLICT (aor, contact) DO UPDATE SET
                        expires_at = EXCLUDED.expires_at, q = EXCLUDED.q,
                        call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq, path = EXCLUDED.path,
                        received = EXCLUDED.received, instance = EXCLUDED.instance,
                        reg_id = EXCLUDED.reg_id, methods = EXCLUDED.methods,
                        node = EXCLUDED.node, updated_at = now()"
                ),
                &[
                    &up.aor as &(dyn ToSql + Sync),
                    &up.contact,
                    &up.expires_at,
                    &up.q,
                    &up.call_id,
                    &up.cseq,
                    &up.path,
                    &up.received,
                    &up.instance,
                    &up.reg_id,
                    &up.methods,
                    &up.node,
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        let payloads: Vec<String> =
            journal.keys().map(|aor| format!("{} {aor}", self.token)).collect();
        tx.execute(
            "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p",
            &[t as &(dyn ToSql + Sync), &payloads],
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(del_aor.len() + up.aor.len())
    }

    /// The listener: (re)connects, reads the whole table, then follows
    /// notifications and expires rows while it leads.
    async fn listen(self: Arc<Self>, ready: std::sync::mpsc::Sender<Result<usize, String>>) {
        let mut ready = Some(ready);
        let mut said_down = false;
        loop {
            match self.follow(&mut ready).await {
                Ok(()) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.clone()));
                    }
                    if !said_down {
                        tracing::error!("location: shared table unreachable: {e}");
                        said_down = true;
                    }
                }
            }
            if self.stats.connected.swap(false, Ordering::SeqCst) {
                tracing::warn!("location: lost the shared table's notifications; reconnecting");
                said_down = false;
            }
            self.stats.leader.store(false, Ordering::SeqCst);
            tokio::time::sleep(super::RETRY).await;
        }
    }

    async fn follow(
        &self,
        ready: &mut Option<std::sync::mpsc::Sender<Result<usize, String>>>,
    ) -> Result<(), String> {
        let t = &self.config.table;
        let (tx, mut notes) = mpsc::unbounded_channel();
        let mut client =
            super::connect(&self.config.url, Some(tx)).await.map_err(|e| e.to_string())?;
        schema::migrate(&mut client, Kind::Location, t).await.map_err(|e| e.to_string())?;
        client.batch_execute(&format!("LISTEN {t}")).await.map_err(|e| e.to_string())?;
        // Listening first, then reading: a change committed in between is
        // both read and notified, never neither.
        let n = self.read_all(&client).await?;
        self.stats.full_reads.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.store(true, Ordering::SeqCst);
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(n));
        } else {
            tracing::info!("location: shared table back; {n} bindings read again");
        }
        let lock_key = format!("sipc location {t}");
        let mut expiry = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                note = notes.recv() => {
                    let Some(note) = note else { return Err("connection closed".into()) };
                    let mut aors = Vec::new();
                    self.take_note(&note, &mut aors);
                    // Gather what else arrives within 5 ms: one query for all.
                    let gather = tokio::time::sleep(Duration::from_millis(5));
                    tokio::pin!(gather);
                    loop {
                        tokio::select! {
                            more = notes.recv() => match more {
                                Some(n) => self.take_note(&n, &mut aors),
                                None => break,
                            },
                            _ = &mut gather => break,
                        }
                    }
                    if !aors.is_empty() {
                        self.refresh(&client, aors).await?;
                    }
                }
                _ = expiry.tick() => {
                    if !self.stats.leader.load(Ordering::SeqCst) {
                        let got: bool = client
                            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock_key])
                            .await
                            .map_err(|e| e.to_string())?
                            .get(0);
                        if got {
                            tracing::info!("location: this node expires the shared table's rows");
                        }
                        self.stats.leader.store(got, Ordering::SeqCst);
                    }
                    if self.stats.leader.load(Ordering::SeqCst) {
                        let now = crate::runtime::registrar::unix_now() as i64;
                        let n = client
                            .execute(&format!("DELETE FROM {t} WHERE expires_at <= $1"), &[&now])
                            .await
                            .map_err(|e| e.to_string())?;
                        self.stats.expired.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn take_note(&self, note: &tokio_postgres::Notification, aors: &mut Vec<String>) {
        let Some((token, aor)) = note.payload().split_once(' ') else { return };
        if token != self.token && !aors.iter().any(|a| a == aor) {
            aors.push(aor.to_owned());
        }
    }

    async fn refresh(
        &self,
        client: &tokio_postgres::Client,
        aors: Vec<String>,
    ) -> Result<(), String> {
        let t = &self.config.table;
        let now = crate::runtime::registrar::unix_now() as i64;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM {t} WHERE aor = ANY($1) AND expires_at > $2"),
                &[&aors as &(dyn ToSql + Sync), &now],
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut by_aor: HashMap<String, Vec<Binding>> =
            aors.iter().map(|a| (a.clone(), Vec::new())).collect();
        for row in &rows {
            let (aor, b) = binding(row, &self.config.node)?;
            by_aor.entry(aor).or_default().push(b);
        }
        self.stats.refreshed.fetch_add(by_aor.len() as u64, Ordering::Relaxed);
        for (aor, bindings) in by_aor {
            self.location.apply_shared(&aor, bindings);
        }
        Ok(())
    }

    async fn read_all(&self, client: &tokio_postgres::Client) -> Result<usize, String> {
        let t = &self.config.table;
        let now = crate::runtime::registrar::unix_now() as i64;
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM {t} WHERE expires_at > $1"), &[&now])
            .await
            .map_err(|e| e.to_string())?;
        let all =
            rows.iter().map(|r| binding(r, &self.config.node)).collect::<Result<Vec<_>, _>>()?;
        let n = all.len();
        self.location.replace_all_shared(all);
        Ok(n)
    }
}

/// One row as a binding, with its AOR; `node` is this node's label (a row
/// another node wrote is that node's to keep alive).
fn binding(r: &tokio_postgres::Row, node: &str) -> Result<(String, Binding), String> {
    let e = |e: tokio_postgres::Error| e.to_string();
    let path: String = r.try_get(6).map_err(e)?;
    let received: Option<String> = r.try_get(7).map_err(e)?;
    let received = received.as_deref().and_then(Binding::parse_received);
    Ok((
        r.try_get(0).map_err(e)?,
        Binding {
            contact: r.try_get(1).map_err(e)?,
            expires_at: r.try_get::<_, i64>(2).map_err(e)?.max(0) as u64,
            q: r.try_get::<_, Option<i32>>(3).map_err(e)?.map(|q| q.clamp(0, 1000) as u16),
            call_id: r.try_get(4).map_err(e)?,
            cseq: r.try_get::<_, i64>(5).map_err(e)? as u32,
            path: path.lines().map(str::to_owned).filter(|p| !p.is_empty()).collect(),
            received: received.map(|(addr, _)| addr),
            transport: received.map_or(Transport::Udp, |(_, t)| t),
            instance: r.try_get(8).map_err(e)?,
            reg_id: r.try_get::<_, Option<i64>>(9).map_err(e)?.map(|v| v as u32),
            methods: r.try_get::<_, Option<i64>>(10).map_err(e)?.map(|v| v as u32),
            peer: r.try_get::<_, String>(11).map_err(e)? != node,
        },
    ))
}

/// The columns of an upsert, as arrays for `UNNEST`.
#[derive(Default)]
struct Upserts<'a> {
    aor: Vec<&'a str>,
    contact: Vec<&'a str>,
    expires_at: Vec<i64>,
    q: Vec<Option<i32>>,
    call_id: Vec<&'a str>,
    cseq: Vec<i64>,
    path: Vec<String>,
    received: Vec<Option<String>>,
    instance: Vec<Option<&'a str>>,
    reg_id: Vec<Option<i64>>,
    methods: Vec<Option<i64>>,
    node: Vec<&'a str>,
}

impl<'a> Upserts<'a> {
    fn push(&mut self, aor: &'a str, b: &'a Binding, node: &'a str) {
        self.aor.push(aor);
        self.contact.push(&b.contact);
        self.expires_at.push(b.expires_at as i64);
        self.q.push(b.q.map(i32::from));
        self.call_id.push(&b.call_id);
        self.cseq.push(i64::from(b.cseq));
        self.path.push(b.path.join("\n"));
        self.received.push(b.received_uri());
        self.instance.push(b.instance.as_deref());
        self.reg_id.push(b.reg_id.map(i64::from));
        self.methods.push(b.methods.map(i64::from));
        self.node.push(node);
    }
}
