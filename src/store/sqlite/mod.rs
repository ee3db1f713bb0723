//! The SQLite backend: WAL mode; writes go through one connection that opens transactions with
//! `BEGIN IMMEDIATE`, so writers queue instead of failing with "database is locked", while reads
//! use their own pool. One daemon per database file (see [`crate::store::lock_for_daemon`]).

mod auth;
mod caps;
mod consent;
mod definitions;
mod entry;
mod experiments;
mod gateways;
mod instances;
mod journeys;
mod members;
mod messages;
mod rights;
mod search;
mod stats;
mod templates;
mod value;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::Result;
use super::types::ts;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A handle on a SQLite database; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// Set while the write connection commits unsynced (see [`SqliteStore::write_unsynced`]);
    /// the pool's release hook puts `synchronous = FULL` back before anyone else gets it.
    unsynced: Arc<AtomicBool>,
}

impl SqliteStore {
    pub async fn connect(url: &str, create: bool) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss too. A `sending` mark lost that way would let a
            // message go out twice.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let unsynced = Arc::new(AtomicBool::new(false));
        let flag = unsynced.clone();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Runs before the connection is handed to the next writer, even when the future
            // that held it was dropped mid-transaction; a failure closes the connection (a new
            // one starts at FULL).
            .after_release(move |conn, _| {
                let flag = flag.clone();
                Box::pin(async move {
                    if flag.swap(false, Ordering::SeqCst) {
                        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        Ok(SqliteStore { write, read, unsynced })
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATIONS.run(&self.write).await?;
        Ok(())
    }

    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.read)
            .await
            .unwrap_or_default();
        Ok(MIGRATIONS.iter().map(|m| (m.version, m.description.to_string(), applied.contains(&m.version))).collect())
    }

    pub async fn analyze_members(&self) -> Result<()> {
        // A sample per index, not a full scan: the statistics only need the shape of the data.
        let mut conn = self.write.acquire().await?;
        sqlx::query("PRAGMA analysis_limit = 1000").execute(&mut *conn).await?;
        sqlx::query("ANALYZE members").execute(&mut *conn).await?;
        sqlx::query("PRAGMA analysis_limit = 0").execute(&mut *conn).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The write connection set to commit without waiting for the disk (`synchronous =
    /// NORMAL`): a commit then survives the process dying, and a power cut may undo it. Only for
    /// writes whose loss sends nothing twice (a claim, an attempt's outcome): every other write,
    /// and above all the `sending` mark before a provider is called, commits synced, and that
    /// sync takes the unsynced commits before it to disk too (one WAL file). Back to FULL when
    /// the connection is released, however that happens.
    async fn write_unsynced(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        let mut conn = self.write.acquire().await?;
        self.unsynced.store(true, Ordering::SeqCst);
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        Ok(conn)
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn watermark(&self, rule_id: &str) -> Result<Option<(Timestamp, i64)>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT evaluated_until, seen_changes FROM rule_state WHERE rule_id = ?")
                .bind(rule_id)
                .fetch_optional(&self.write)
                .await?;
        row.map(|(until, seen)| Ok((ts(until)?, seen))).transpose()
    }

    pub async fn set_watermark(
        &self,
        rule_id: &str,
        until: Timestamp,
        seen_changes: i64,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rule_state (rule_id, evaluated_until, seen_changes, evaluated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (rule_id) DO UPDATE SET evaluated_until = excluded.evaluated_until,
                 seen_changes = excluded.seen_changes, evaluated_at = excluded.evaluated_at",
        )
        .bind(rule_id)
        .bind(until.as_millisecond())
        .bind(seen_changes)
        .bind(now.as_millisecond())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn member_changes(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = 'member_changes'")
            .fetch_one(&self.write)
            .await?)
    }
}

/// Takes the next member change number inside a write transaction.
async fn next_change(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'member_changes' RETURNING value")
        .fetch_one(&mut **tx)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;

    async fn synchronous(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.write).await.unwrap()
    }

    /// An unsynced write commits at NORMAL (1); whoever writes next finds FULL (2) again, even
    /// when the unsynced writer was dropped mid-transaction.
    #[tokio::test]
    async fn the_write_connection_is_back_to_full_after_an_unsynced_write_however_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url, true).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(synchronous(&store).await, 2);

        let mut conn = store.write_unsynced().await.unwrap();
        let during: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(during, 1);
        let tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await.unwrap();
        drop(tx); // dropped mid-transaction, as a cancelled step would
        drop(conn);
        assert_eq!(synchronous(&store).await, 2, "handed on unsynced");

        // The claim and the outcome go unsynced and leave it FULL.
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let claimed = store.claim("w", now, now, 10).await.unwrap();
        assert!(claimed.is_empty());
        store.finalize("w", &[(1, 1, crate::store::Finalize::Skipped { reason: "x".into() })], now).await.unwrap();
        assert_eq!(synchronous(&store).await, 2);
    }
}
