//! The accounting writer: a bounded queue drained by one thread into the
//! backend, with a spool file for when the backend is down.
//!
//! Order is kept: while anything is spooled, new batches go to the spool
//! behind it, and the spool is replayed (every [`RETRY`]) before the
//! backend takes new batches directly again. A replay that stops halfway
//! rewrites the spool with what is left, so a record is written once.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Cdr;
use super::backend::{Backend, DbUrl};

/// How often a down backend is tried again.
const RETRY: Duration = Duration::from_secs(2);
/// Records written per transaction at most.
const BATCH: usize = 1024;

enum Msg {
    Cdr(Box<Cdr>),
    Stop,
}

/// Counters of the writer (`sipc reload --status`).
#[derive(Debug, Default)]
pub struct AccStats {
    /// Records written to the backend (directly or replayed).
    pub written: AtomicU64,
    /// Records that went to the spool file.
    pub spooled: AtomicU64,
    /// Records the spool still holds.
    pub in_spool: AtomicU64,
    /// Records lost because the queue was full.
    pub dropped: AtomicU64,
    pub backend_up: AtomicBool,
}

/// The accounting service of a running proxy.
#[derive(Debug)]
pub struct Accounting {
    tx: SyncSender<Msg>,
    pub stats: Arc<AccStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub url: DbUrl,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Cdr(_) => "Cdr",
            Msg::Stop => "Stop",
        })
    }
}

/// Settings of `module acc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccConfig {
    pub url: DbUrl,
    pub table: String,
    pub spool: PathBuf,
    pub queue: usize,
}

impl Accounting {
    /// Starts the writer, which opens the backend on its own thread (the
    /// PostgreSQL client runs a runtime of its own, which cannot start on
    /// a thread inside the proxy's). A file backend that cannot be opened
    /// is an error; an unreachable PostgreSQL is not (records are spooled
    /// until it answers).
    pub fn start(config: AccConfig) -> Result<Accounting, String> {
        let stats = Arc::new(AccStats::default());
        stats.in_spool.store(count_lines(&config.spool), Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let url = config.url.clone();
        let shared = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("sipc-acc".into())
            .spawn(move || {
                let backend = match Backend::open(&config.url, &config.table) {
                    Ok(b) => Some(b),
                    Err(e) if matches!(config.url, DbUrl::Postgres(_)) => {
                        tracing::error!(
                            "accounting: {e}; spooling records to {}",
                            config.spool.display()
                        );
                        None
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                shared.backend_up.store(backend.is_some(), Ordering::Relaxed);
                let _ = opened_tx.send(Ok(()));
                let mut w = Writer { backend, config, stats: shared, last_try: Instant::now() };
                w.run(rx);
            })
            .map_err(|e| format!("accounting thread: {e}"))?;
        match opened.recv() {
            Ok(Ok(())) => Ok(Accounting { tx, stats, thread: Mutex::new(Some(thread)), url }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the accounting thread ended at start".into()),
        }
    }

    /// Queues a record; never waits. A full queue drops it (counted).
    pub fn record(&self, cdr: Cdr) {
        match self.tx.try_send(Msg::Cdr(Box::new(cdr))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "accounting queue full: call records dropped");
                }
            }
        }
    }

    /// Writes everything queued (to the backend, or the spool) and stops
    /// the writer.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// The status line of `sipc reload --status`.
    pub fn status_line(&self) -> String {
        let s = &self.stats;
        format!(
            "accounting ({}): {} written, {} spooled, {} in spool, {} dropped, backend {}",
            self.url.describe(),
            s.written.load(Ordering::Relaxed),
            s.spooled.load(Ordering::Relaxed),
            s.in_spool.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            if s.backend_up.load(Ordering::Relaxed) { "up" } else { "down" },
        )
    }
}

struct Writer {
    backend: Option<Backend>,
    config: AccConfig,
    stats: Arc<AccStats>,
    last_try: Instant,
}

fn count_lines(path: &Path) -> u64 {
    match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f).lines().count() as u64,
        Err(_) => 0,
    }
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Cdr> = Vec::new();
        loop {
            let mut stop = false;
            match rx.recv_timeout(RETRY) {
                Ok(Msg::Cdr(c)) => batch.push(*c),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !stop && batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(Msg::Cdr(c)) => batch.push(*c),
                    Ok(Msg::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            if self.stats.in_spool.load(Ordering::Relaxed) > 0 && self.last_try.elapsed() >= RETRY {
                self.replay();
            }
            if !batch.is_empty() {
                self.write(std::mem::take(&mut batch));
            }
            if stop {
                return;
            }
        }
    }

    /// Writes a batch, or spools it behind what is spooled already.
    fn write(&mut self, batch: Vec<Cdr>) {
        if self.stats.in_spool.load(Ordering::Relaxed) == 0
            && let Some(b) = self.backend.as_mut()
        {
            match b.write(&batch) {
                Ok(()) => {
                    self.stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        "accounting: writing {} records to {} failed: {e}; spooling to {}",
                        batch.len(),
                        self.config.url.describe(),
                        self.config.spool.display()
                    );
                    self.down();
                }
            }
        }
        self.spool(&batch);
    }

    fn down(&mut self) {
        self.last_try = Instant::now();
        if matches!(self.config.url, DbUrl::Postgres(_)) {
            // Reconnect on the next try: a broken connection stays broken.
            self.backend = None;
            self.stats.backend_up.store(false, Ordering::Relaxed);
        }
    }

    fn spool(&mut self, batch: &[Cdr]) {
        let mut buf = Vec::with_capacity(batch.len() * 400);
        for c in batch {
            if serde_json::to_writer(&mut buf, c).is_ok() {
                buf.push(b'\n');
            }
        }
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.spool)
            .and_then(|mut f| f.write_all(&buf).and_then(|()| f.sync_data()));
        match r {
            Ok(()) => {
                self.stats.spooled.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.in_spool.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(
                    "accounting: cannot spool {} records to {}: {e}",
                    batch.len(),
                    self.config.spool.display()
                );
                self.stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Writes the spool to the backend, oldest first.
    fn replay(&mut self) {
        self.last_try = Instant::now();
        if self.backend.is_none() {
            match Backend::open(&self.config.url, &self.config.table) {
                Ok(b) => {
                    tracing::info!("accounting: {} is back", self.config.url.describe());
                    self.backend = Some(b);
                    self.stats.backend_up.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!("accounting: still down: {e}");
                    return;
                }
            }
        }
        let path = self.config.spool.clone();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stats.in_spool.store(0, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::error!("accounting: cannot read the spool {}: {e}", path.display());
                return;
            }
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut done = 0;
        for chunk in lines.chunks(BATCH) {
            let batch: Vec<Cdr> =
                chunk.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
            let Some(b) = self.backend.as_mut() else { break };
            match b.write(&batch) {
                Ok(()) => {
                    done += chunk.len();
                    self.stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!("accounting: replaying the spool failed: {e}");
                    self.down();
                    break;
                }
            }
        }
        let left = &lines[done..];
        let r = if left.is_empty() {
            std::fs::remove_file(&path)
        } else {
            let tmp = path.with_extension("spool.tmp");
            let mut body = left.join("\n");
            body.push('\n');
            std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path))
        };
        if let Err(e) = r {
            tracing::error!("accounting: cannot rewrite the spool {}: {e}", path.display());
        }
        self.stats.in_spool.store(left.len() as u64, Ordering::Relaxed);
        if done > 0 {
            tracing::info!("accounting: {done} spooled records written, {} left", left.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acc::CdrKind;

    fn cdr(id: &str) -> Cdr {
        Cdr {
            call_id: id.into(),
            kind: CdrKind::Failed,
            status: 486,
            reason: "Busy Here".into(),
            hangup: String::new(),
            from_tag: "f".into(),
            to_tag: String::new(),
            from_uri: "sip:a@x".into(),
            to_uri: "sip:b@x".into(),
            ruri: "sip:b@x".into(),
            src_ip: "127.0.0.1".into(),
            dst: String::new(),
            start_time: 1.0,
            answer_time: None,
            end_time: 2.0,
            duration: 0.0,
            extra: Default::default(),
        }
    }

    #[test]
    fn records_reach_the_file_and_stop_flushes() {
        let dir = std::env::temp_dir().join(format!("sipc-accw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = DbUrl::parse("jsonl:w.jsonl", &dir).unwrap();
        let acc = Accounting::start(AccConfig {
            url: url.clone(),
            table: "cdr".into(),
            spool: dir.join("w.spool"),
            queue: 100,
        })
        .unwrap();
        for i in 0..50 {
            acc.record(cdr(&i.to_string()));
        }
        acc.stop();
        let mut b = Backend::open(&url, "cdr").unwrap();
        assert_eq!(b.query(0.0).unwrap().len(), 50);
        assert_eq!(acc.stats.written.load(Ordering::Relaxed), 50);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_down_postgres_spools_and_nothing_is_lost() {
        let dir = std::env::temp_dir().join(format!("sipc-accs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spool = dir.join("cdr.spool");
        // Port 9 (discard) on loopback: nothing listens, the connect fails.
        let url =
            DbUrl::parse("postgres://nobody@127.0.0.1:9/none?connect_timeout=1", &dir).unwrap();
        let acc = Accounting::start(AccConfig {
            url,
            table: "cdr".into(),
            spool: spool.clone(),
            queue: 10,
        })
        .unwrap();
        acc.record(cdr("a"));
        acc.record(cdr("b"));
        acc.stop();
        assert_eq!(count_lines(&spool), 2);
        assert_eq!(acc.stats.in_spool.load(Ordering::Relaxed), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
