//! Reloads when the rows of a routing table fed by a SQL query change
//! (`table … from "postgres://…" query "…" refresh 30s notify "routes"`).
//!
//! The rows are part of the compiled program (see `crate::routing::sql`),
//! so new rows mean a reload: compiled off the routing workers, swapped in
//! atomically, the previous program serving if the new rows are bad. With
//! `refresh`, the watcher runs the query every interval and reloads only
//! when the rows differ from the ones it saw last (a reload recompiles
//! every route); with `notify`, it `LISTEN`s on the channel and reloads on
//! each notification (several within 100 ms make one reload). The
//! watchers are those of the configuration `sipc run` started with.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Reloader;
use crate::routing::sql::{self, SqlSource};

/// Watches one table's source until the process ends.
pub async fn watch(reloader: Arc<Reloader>, table: String, source: SqlSource) {
    let notified = match &source.notify {
        Some(channel) if crate::cluster::is_postgres_url(&source.url) => {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(listen(source.url.clone(), channel.clone(), tx));
            Some(rx)
        }
        _ => None,
    };
    let refresh = source.refresh_ms.map(Duration::from_millis);
    let mut notified = notified;
    let mut last = rows_digest(&source).await.ok();
    loop {
        let why = tokio::select! {
            _ = tokio::time::sleep(refresh.unwrap_or(Duration::MAX)), if refresh.is_some() => {
                match rows_digest(&source).await {
                    Ok(d) if Some(d) != last => {
                        last = Some(d);
                        format!("table {table}: its rows changed")
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!("table {table}: the query failed ({e}); its rows are the last ones read");
                        continue;
                    }
                }
            }
            got = recv(&mut notified) => {
                if got.is_none() {
                    notified = None;
                    continue;
                }
                // Several changes in a row: one reload.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(rx) = notified.as_mut() {
                    while rx.try_recv().is_ok() {}
                }
                last = rows_digest(&source).await.ok();
                format!("table {table}: notified")
            }
        };
        let _ = reloader.reload(&why).await;
    }
}

async fn recv(rx: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn rows_digest(source: &SqlSource) -> Result<u64, String> {
    let (url, query) = (source.url.clone(), source.query.clone());
    tokio::task::spawn_blocking(move || sql::fetch(&url, &query).map(|rows| sql::digest(&rows)))
        .await
        .map_err(|e| e.to_string())?
}

/// Forwards notifications on `channel`, reconnecting after failures.
async fn listen(url: String, channel: String, tx: mpsc::UnboundedSender<()>) {
    let mut first = true;
    loop {
        let (ntx, mut notes) = mpsc::unbounded_channel();
        match crate::cluster::connect(&url, Some(ntx)).await {
            Ok(client) => match client.batch_execute(&format!("LISTEN {channel}")).await {
                Ok(()) => {
                    // Notifications sent while away are lost: look again.
                    if !std::mem::take(&mut first) && tx.send(()).is_err() {
                        return;
                    }
                    while notes.recv().await.is_some() {
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!("LISTEN {channel}: {e}"),
            },
            Err(e) => tracing::warn!("LISTEN {channel}: {}: {e}", sql::redact(&url)),
        }
        tokio::time::sleep(crate::cluster::RETRY).await;
    }
}
