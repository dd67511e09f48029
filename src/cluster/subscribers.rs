//! The subscriber table shared in PostgreSQL (`module auth { db_url =
//! "postgres://…"; }`): digest authentication on every node against the
//! same users, and `sipc user` writing them.
//!
//! Each node holds the whole table in memory, as a lone node does (routes
//! never wait on the database). A trigger on the table notifies every row
//! changed, whoever changed it (`sipc user`, or SQL an operator runs), on
//! the table's channel; each node's listener reads that row again, so a
//! new user or password is in force on every node a few milliseconds after
//! the change commits, and a deleted user is refused as soon. On each
//! (re)connection the whole table is read again. The key that signs
//! nonces is in the table `TABLE_secret`, one for the cluster, so a
//! challenge from one node is answered on any other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::Client;
use tokio::sync::mpsc;

use super::schema::{self, Kind};
use crate::auth::{Auth, Subscriber};

/// Connects and brings the table up to date (the CLI's and the node's
/// first step).
pub async fn open(url: &str, table: &str) -> Result<Client, String> {
    let mut client = super::connect(url, None).await.map_err(|e| format!("`{url}`: {e}"))?;
    schema::migrate(&mut client, Kind::Subscriber, table)
        .await
        .map_err(|e| format!("`{table}`: {e}"))?;
    Ok(client)
}

/// The cluster's nonce key, made by the first node that asks.
pub async fn secret(client: &Client, table: &str) -> Result<[u8; 32], String> {
    let fresh = *crate::auth::NonceKey::random().bytes();
    client
        .execute(
            &format!(
                "INSERT INTO {table}_secret (id, secret) VALUES (1, $1) ON CONFLICT DO NOTHING"
            ),
            &[&&fresh[..]],
        )
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(&format!("SELECT secret FROM {table}_secret WHERE id = 1"), &[])
        .await
        .map_err(|e| e.to_string())?;
    let v: Vec<u8> = row.get(0);
    <[u8; 32]>::try_from(v).map_err(|_| format!("`{table}_secret`: the key is not 32 bytes"))
}

/// Adds or replaces users in one transaction.
pub async fn put_many(
    client: &mut Client,
    table: &str,
    users: &[(String, String, Subscriber)],
) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let stmt = tx
        .prepare(&format!(
            "INSERT INTO {table} (username, realm, ha1, ha1_sha256) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username, realm) DO UPDATE SET ha1 = EXCLUDED.ha1,
                ha1_sha256 = EXCLUDED.ha1_sha256"
        ))
        .await
        .map_err(|e| e.to_string())?;
    for (u, r, s) in users {
        tx.execute(&stmt, &[u, r, &s.ha1_md5, &s.ha1_sha256]).await.map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// Removes a user; true when there was one.
pub async fn delete(client: &Client, table: &str, user: &str, realm: &str) -> Result<bool, String> {
    client
        .execute(
            &format!("DELETE FROM {table} WHERE username = $1 AND realm = $2"),
            &[&user, &realm],
        )
        .await
        .map(|n| n > 0)
        .map_err(|e| e.to_string())
}

/// Every user, as `user@realm`, sorted.
pub async fn list(client: &Client, table: &str) -> Result<Vec<String>, String> {
    let rows = client
        .query(&format!("SELECT username || '@' || realm AS u FROM {table} ORDER BY u"), &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Reads the cluster's nonce key before the node serves (up to `wait`),
/// on a thread of its own: `None` when PostgreSQL cannot say (the node
/// then makes a key of its own, and its challenges hold on it alone).
pub fn secret_blocking(url: &str, table: &str, wait: Duration) -> Option<[u8; 32]> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (url, table) = (url.to_owned(), table.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let got = match rt {
            Ok(rt) => rt.block_on(async {
                let client = open(&url, &table).await?;
                secret(&client, &table).await
            }),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(got);
    });
    match rx.recv_timeout(wait) {
        Ok(Ok(k)) => Some(k),
        Ok(Err(e)) => {
            tracing::error!(
                "auth: cannot read the cluster's nonce key ({e}); using one of this node's"
            );
            None
        }
        Err(_) => {
            tracing::error!(
                "auth: PostgreSQL did not answer within {wait:?}; using a nonce key of this node's"
            );
            None
        }
    }
}

/// The running follower of the shared table.
#[derive(Debug)]
pub struct SharedSubscribers {
    worker: Option<super::Worker>,
}

impl SharedSubscribers {
    /// Fills `auth`'s cache from the table and keeps it in step; waits up
    /// to `wait` for the first read.
    pub fn start(auth: Arc<Auth>, url: String, table: String, wait: Duration) -> SharedSubscribers {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<usize>();
        let worker = super::Worker::spawn("sipc-subscribers", move |stop| async move {
            tokio::select! {
                _ = stop.requested() => {}
                _ = follow_forever(&auth, &url, &table, ready_tx) => {}
            }
        });
        if let Err(e) = &worker {
            tracing::error!("auth: {e}");
        }
        if let Ok(n) = ready_rx.recv_timeout(wait) {
            tracing::info!("auth: {n} subscribers read from the shared table");
        }
        SharedSubscribers { worker: worker.ok() }
    }

    pub fn stop(self) {
        if let Some(w) = self.worker {
            w.stop();
        }
    }
}

async fn follow_forever(
    auth: &Auth,
    url: &str,
    table: &str,
    ready: std::sync::mpsc::Sender<usize>,
) {
    let mut said = false;
    loop {
        match follow(auth, url, table, &ready).await {
            Ok(()) => {}
            Err(e) if !said => {
                tracing::error!(
                    "auth: shared subscriber table unreachable ({e}); using the users read last"
                );
                said = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(super::RETRY).await;
    }
}

async fn follow(
    auth: &Auth,
    url: &str,
    table: &str,
    ready: &std::sync::mpsc::Sender<usize>,
) -> Result<(), String> {
    let (tx, mut notes) = mpsc::unbounded_channel();
    let mut client = super::connect(url, Some(tx)).await.map_err(|e| e.to_string())?;
    schema::migrate(&mut client, Kind::Subscriber, table).await.map_err(|e| e.to_string())?;
    client.batch_execute(&format!("LISTEN {table}")).await.map_err(|e| e.to_string())?;
    let rows = client
        .query(&format!("SELECT username || '@' || realm, ha1, ha1_sha256 FROM {table}"), &[])
        .await
        .map_err(|e| e.to_string())?;
    let all: HashMap<String, Subscriber> = rows
        .iter()
        .map(|r| (r.get(0), Subscriber { ha1_md5: r.get(1), ha1_sha256: r.get(2) }))
        .collect();
    let n = all.len();
    auth.subscribers.replace_cache(all);
    let _ = ready.send(n);
    let one = client
        .prepare(&format!(
            "SELECT ha1, ha1_sha256 FROM {table} WHERE username || '@' || realm = $1"
        ))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(note) = notes.recv().await {
        let key = note.payload();
        let row = client.query_opt(&one, &[&key]).await.map_err(|e| e.to_string())?;
        let s = row.map(|r| Subscriber { ha1_md5: r.get(0), ha1_sha256: r.get(1) });
        tracing::debug!(user = key, present = s.is_some(), "auth: subscriber changed");
        auth.subscribers.set_cached(key, s);
    }
    Err("connection closed".into())
}
