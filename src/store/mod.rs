//! The store: every SQL statement of the daemon lives here (and in `migrations/`). SQLite in WAL
//! mode; writes go through one connection that opens transactions with `BEGIN IMMEDIATE`, so
//! writers queue instead of failing with "database is locked", while reads use their own pool.
//!
//! Instants are epoch milliseconds, civil dates `YYYY-MM-DD` text; conversion happens here.

mod members;
mod messages;

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use members::{EventCounts, UpsertCounts};
pub use messages::{Claimed, Finalize, HistoryEntry, MessageFilter, MessageRow, State};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database schema is not up to date (pending: {0}); run `tidings migrate`")]
    NotMigrated(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the SQLite database at `url`, e.g. `sqlite://tidings.db`.
    pub async fn open(url: &str) -> Result<Store> {
        Self::connect(url, true).await
    }

    /// Opens an existing database whose schema is up to date, creating and migrating nothing:
    /// for commands that only read (`preview`, `forecast`) beside a running daemon.
    pub async fn open_existing(url: &str) -> Result<Store> {
        let store = Self::connect(url, false).await?;
        let pending: Vec<String> = store
            .migration_status()
            .await?
            .into_iter()
            .filter(|(_, _, applied)| !applied)
            .map(|(v, d, _)| format!("{v} {d}"))
            .collect();
        if !pending.is_empty() {
            return Err(StoreError::NotMigrated(pending.join(", ")));
        }
        Ok(store)
    }

    async fn connect(url: &str, create: bool) -> Result<Store> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss too. A `sending` mark lost that way would let a
            // message go out twice.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        Ok(Store { write, read })
    }

    /// Brings the schema up to date; safe to run at every start.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATIONS.run(&self.write).await?;
        Ok(())
    }

    /// The migrations this build knows and whether each is applied.
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.read)
            .await
            .unwrap_or_default();
        Ok(MIGRATIONS.iter().map(|m| (m.version, m.description.to_string(), applied.contains(&m.version))).collect())
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where evaluation of a rule stopped (`evaluated_until`) and the member change counter it
    /// had seen.
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

    /// The member change counter as committed now (read through the writer, so it is the latest).
    pub async fn member_changes(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = 'member_changes'")
            .fetch_one(&self.write)
            .await?)
    }
}

/// Held by a running daemon for its whole life: SQLite serves one daemon per database file.
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

/// Takes the database's daemon lock (`<file>.lock`, an OS file lock released when the process
/// dies, however it dies), or says which process holds it.
pub fn lock_for_daemon(url: &str) -> Result<Option<DaemonLock>, String> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') {
        return Ok(None); // in memory: nothing to share
    }
    let lock_path = format!("{path}.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {lock_path}: {e}"))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            let _ = file.set_len(0);
            let _ = file.seek(std::io::SeekFrom::Start(0));
            let _ = writeln!(file, "{}", std::process::id());
            Ok(Some(DaemonLock { _file: file }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            Err(format!(
                "another tidings daemon (pid {}) is running on {path}: SQLite serves one daemon per database \
                 file; run several instances on PostgreSQL instead",
                holder.trim()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {lock_path}: {e}")),
    }
}

/// Takes the next member change number inside a write transaction.
async fn next_change(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'member_changes' RETURNING value")
        .fetch_one(&mut **tx)
        .await?)
}

fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("instant {ms}: {e}")))
}

fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(ts).transpose()
}
