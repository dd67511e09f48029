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
    /// The subscriber table (HA1 hashes), its nonce secret beside it, and
    /// a trigger that notifies every change, however it is made.
    Subscriber,
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
        Kind::Subscriber => &[
            // 1: users as Kamailio's `subscriber` keys them, with both
            // HA1s; the key that signs nonces, one for the whole cluster
            // (a challenge from one node is answered on another); and a
            // notification on the table's channel for every row changed,
            // by `sipc user` or by any SQL an operator runs.
            "CREATE TABLE IF NOT EXISTS {t} (
                username TEXT NOT NULL,
                realm TEXT NOT NULL,
                ha1 TEXT NOT NULL,
                ha1_sha256 TEXT NOT NULL,
                PRIMARY KEY (username, realm)
            );
            CREATE TABLE IF NOT EXISTS {t}_secret (
                id INTEGER PRIMARY KEY,
                secret BYTEA NOT NULL
            );
            CREATE OR REPLACE FUNCTION {t}_notify() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    PERFORM pg_notify('{t}', OLD.username || '@' || OLD.realm);
                ELSE
                    PERFORM pg_notify('{t}', NEW.username || '@' || NEW.realm);
                    IF TG_OP = 'UPDATE' AND (OLD.username, OLD.realm) <> (NEW.username, NEW.realm) THEN
                        PERFORM pg_notify('{t}', OLD.username || '@' || OLD.realm);
                    END IF;
                END IF;
                RETURN NULL;
            END
            $$ LANGUAGE plpgsql;
            DROP TRIGGER IF EXISTS {t}_notify ON {t};
            CREATE TRIGGER {t}_notify AFTER INSERT OR UPDATE OR DELETE ON {t}
                FOR EACH ROW EXECUTE FUNCTION {t}_notify()",
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
