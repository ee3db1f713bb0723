//! Heartbeats and the counts by provider on PostgreSQL.

use super::PgStore;
use crate::store::Result;
use crate::store::instances::{HeartbeatRow, InstanceRow};

impl PgStore {
    pub async fn heartbeat(&self, row: HeartbeatRow<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (instance_id, started_at, seen_at, last_tick_at, last_tick_ms, providers)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb)
             ON CONFLICT (instance_id) DO UPDATE SET started_at = excluded.started_at,
                 seen_at = excluded.seen_at, last_tick_at = excluded.last_tick_at,
                 last_tick_ms = excluded.last_tick_ms, providers = excluded.providers",
        )
        .bind(row.0)
        .bind(row.1)
        .bind(row.2)
        .bind(row.3)
        .bind(row.4)
        .bind(row.5)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(
            "SELECT instance_id, started_at, seen_at, last_tick_at, last_tick_ms, providers::text
             FROM instances ORDER BY seen_at DESC, instance_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn counts_by_provider(&self) -> Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT channel, coalesce(provider, 'none'), state, count(*) FROM messages
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
