//! State shared by the nodes of a cluster: the location table in
//! PostgreSQL ([`location`]), with its schema ([`schema`]).
//!
//! Routes never wait on a database (docs/architecture.md, "Route code is
//! synchronous"): each node keeps the whole location table in memory, as a
//! single node does, and a background thread with its own small tokio
//! runtime keeps that memory and the shared table in step. Changes made
//! here are journaled per binding and written to PostgreSQL (at once, or
//! every `write_delay`); changes made by other nodes arrive as PostgreSQL
//! notifications and are read back into memory. While PostgreSQL is away
//! the node routes from memory and keeps its journal; the journal is
//! written when it returns, and the whole table is read again, since
//! notifications sent meanwhile are lost. docs/cluster.md says what each
//! feature shares and how fresh it is.

pub mod counters;
pub mod location;
pub mod schema;
pub mod subscribers;

use std::time::Duration;

use deadpool_postgres::tokio_postgres;

/// The counters of what a node shares, for metrics: set when shared.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub location: std::sync::OnceLock<std::sync::Arc<location::SyncStats>>,
    pub redis: std::sync::OnceLock<std::sync::Arc<counters::CounterStats>>,
}

/// A background thread running one task on a current-thread runtime of its
/// own (the database and Redis clients never run on the proxy's runtime or
/// its routing workers); stopped and joined by [`Worker::stop`] or on drop.
#[derive(Debug)]
pub struct Worker {
    stop: Stop,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a [`Worker`]'s task is told when it must stop.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    notify: std::sync::Arc<tokio::sync::Notify>,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stop {
    /// Resolves when the stop is asked (at once if it was already).
    pub async fn requested(&self) {
        if !self.is_requested() {
            self.notify.notified().await;
        }
    }

    pub fn is_requested(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Worker {
    /// Runs `task` on a thread named `name`.
    pub fn spawn<F, Fut>(name: &str, task: F) -> Result<Worker, String>
    where
        F: FnOnce(Stop) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let stop = Stop::default();
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(task(s)),
                    Err(e) => tracing::error!("cannot start a runtime: {e}"),
                }
            })
            .map_err(|e| format!("cannot start the thread {name}: {e}"))?;
        Ok(Worker { stop, thread: Some(thread) })
    }

    /// Asks the task to stop and waits for the thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop.notify.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A PostgreSQL connection string, checked for what sipc needs.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `name` can be a table name as written (unquoted, lower case):
/// tables are named in settings, and their names go into SQL text and
/// notification channels.
pub fn is_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48
}

/// How long to wait before trying an unreachable database again.
pub const RETRY: Duration = Duration::from_secs(1);

/// Connects one client and drives its connection on the current runtime;
/// the connection's notifications go to `notes` when given.
pub async fn connect(
    url: &str,
    notes: Option<tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let done = std::future::poll_fn(|cx| {
            loop {
                match conn.poll_message(cx) {
                    std::task::Poll::Ready(Some(Ok(
                        tokio_postgres::AsyncMessage::Notification(n),
                    ))) => {
                        if let Some(tx) = &notes {
                            let _ = tx.send(n);
                        }
                    }
                    std::task::Poll::Ready(Some(Ok(_))) => {}
                    std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// A pool of clients for `url` (writes and reads; the listener has a
/// connection of its own).
pub fn pool(url: &str, size: usize) -> Result<deadpool_postgres::Pool, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| format!("`{url}`: {e}"))
}

/// A random token naming this process in notifications, so it can skip
/// its own.
pub fn node_token() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(is_table_name("location"));
        assert!(is_table_name("loc_test_42"));
        assert!(!is_table_name("Location"));
        assert!(!is_table_name("loc; drop table x"));
        assert!(!is_table_name("1loc"));
        assert!(!is_table_name(""));
    }
}
