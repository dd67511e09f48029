//! The tables sipc keeps in PostgreSQL, created and migrated by sipc
//! (`sipc db migrate`, and `sipc run` before it serves).
//!
//! Each table has a list of steps; `sipc_schema` records, per table, how
//! many have run. Migrating takes a transaction-scoped advisory lock, so
//! nodes starting together run each step once. Tables are named in the
//! configuration (`module usrloc { db_table }`), so one server can hold
//! several clusters, or the tests' tables beside an operator's.

use deadpool_postgres::tokio_postgres::{self, Client};

/// What a table holds, which picks its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The location table: one row per binding.
    Location,
}

/// The steps of a kind of table; `{t}` is the table's name.
fn steps(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Location => &[
            // 1: bindings, keyed by AOR and contact URI (Kamailio's
            // `location` keys rows the same way). Times are Unix seconds.
            // `node` names the node that wrote the row last.
            "CREATE TABLE IF NOT EXISTS {t} (
                aor TEXT NOT NULL,
                contact TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                q INTEGER,
                call_id TEXT NOT NULL,
                cseq BIGINT NOT NULL,
                path TEXT NOT NULL DEFAULT '',
                received TEXT,
                instance TEXT,
                reg_id BIGINT,
                methods BIGINT,
                node TEXT NOT NULL DEFAULT '',
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (aor, contact)
            );
            CREATE INDEX IF NOT EXISTS {t}_expires_at ON {t} (expires_at)",
        ],
    }
}

/// Brings `table` up to date; returns how many steps ran.
pub async fn migrate(
    client: &mut Client,
    kind: Kind,
    table: &str,
) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('sipc_schema'))", &[]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sipc_schema (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let done: i32 = tx
        .query_opt("SELECT version FROM sipc_schema WHERE name = $1", &[&table])
        .await?
        .map_or(0, |r| r.get(0));
    let all = steps(kind);
    let todo = all.iter().skip(done.max(0) as usize);
    let mut ran = 0;
    for step in todo {
        tx.batch_execute(&step.replace("{t}", table)).await?;
        ran += 1;
    }
    if ran > 0 {
        tx.execute(
            "INSERT INTO sipc_schema (name, version) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()",
            &[&table as &(dyn tokio_postgres::types::ToSql + Sync), &(all.len() as i32)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ran)
}
