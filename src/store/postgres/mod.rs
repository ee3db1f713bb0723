//! The PostgreSQL backend: one pool for reads and writes, transactions at READ COMMITTED. Several
//! daemons may share one database: claims lock their rows and skip rows another one has locked
//! (`FOR UPDATE SKIP LOCKED`), and every fenced update re-checks owner and attempt. Integer
//! parameters are bound as `i64` (PostgreSQL has no unsigned types) and batches are passed as one
//! `jsonb` document read with `jsonb_to_recordset`, or as a `bigint[]` of ids, with explicit casts.

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
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::MigrateDatabase;
use std::sync::Arc;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Result;
use super::types::ts;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key of the evaluator: one instance evaluates a window at a time.
const EVALUATOR_LOCK: i64 = 0x7469_6469_6e67_7331; // "tidings1"

/// The NOTIFY channel that says "messages are due": sent in the transaction that schedules them.
pub(super) const DUE_CHANNEL: &str = "tidings_due";

/// A handle on a PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, create: bool) -> Result<PgStore> {
        // Like SQLite's file, the database is created when missing (if the role may). Another
        // instance may create it at the same moment: only its absence afterwards is an error.
        if create
            && !sqlx::Postgres::database_exists(url).await?
            && let Err(e) = sqlx::Postgres::create_database(url).await
            && !sqlx::Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
        // Notices (the migrator's "already exists, skipping" at every start) are not news. The
        // process id in the session's name tells instances apart in `pg_stat_activity`.
        let options = PgConnectOptions::from_str(url)?
            .application_name(&format!("tidings {}", std::process::id()))
            .options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATIONS.run(&self.pool).await?;
        Ok(())
    }

    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default();
        Ok(MIGRATIONS.iter().map(|m| (m.version, m.description.to_string(), applied.contains(&m.version))).collect())
    }

    pub async fn analyze_members(&self) -> Result<()> {
        sqlx::query("ANALYZE members").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the evaluator's advisory lock if no other instance holds it. The lock belongs to the
    /// session: the returned connection holds it until [`PgStore::release_evaluator_lock`], or
    /// until the connection closes (a crashed instance's lock goes with its session).
    pub async fn try_evaluator_lock(&self) -> Result<Option<PoolConnection<Postgres>>> {
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1::bigint)")
            .bind(EVALUATOR_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // Should the holder be dropped without a release, the session (and the lock) ends.
            conn.close_on_drop();
            Ok(Some(conn))
        } else {
            Ok(None)
        }
    }

    pub async fn release_evaluator_lock(&self, mut conn: PoolConnection<Postgres>) {
        if let Err(e) =
            sqlx::query("SELECT pg_advisory_unlock($1::bigint)").bind(EVALUATOR_LOCK).execute(&mut *conn).await
        {
            tracing::warn!(error = %e, "could not release the evaluator lock; closing its session");
        }
    }

    /// Wakes `wake` whenever any instance enqueues or reschedules messages (LISTEN/NOTIFY on
    /// [`DUE_CHANNEL`]), until `stop`. Polling stays the fallback; a lost connection is retried.
    pub fn listen_due(&self, wake: Arc<Notify>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for due messages; polling until it can");
                        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
                    }
                };
                if let Err(e) = listener.listen(DUE_CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN failed; polling until it works");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
                }
                // Listening (again): whatever was scheduled while this was not is looked at now.
                wake.notify_waiters();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = listener.recv() => match got {
                            Ok(_) => wake.notify_waiters(),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    pub async fn watermark(&self, rule_id: &str) -> Result<Option<(Timestamp, i64)>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT evaluated_until, seen_changes FROM rule_state WHERE rule_id = $1")
                .bind(rule_id)
                .fetch_optional(&self.pool)
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
            "INSERT INTO rule_state (rule_id, evaluated_until, seen_changes, evaluated_at)
             VALUES ($1::text, $2::bigint, $3::bigint, $4::bigint)
             ON CONFLICT (rule_id) DO UPDATE SET evaluated_until = excluded.evaluated_until,
                 seen_changes = excluded.seen_changes, evaluated_at = excluded.evaluated_at",
        )
        .bind(rule_id)
        .bind(until.as_millisecond())
        .bind(seen_changes)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn member_changes(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = 'member_changes'").fetch_one(&self.pool).await?)
    }
}

/// Takes the next member change number inside a write transaction (the row lock it takes
/// serializes member writers until commit, as SQLite's single writer does).
async fn next_change(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'member_changes' RETURNING value")
        .fetch_one(&mut **tx)
        .await?)
}
