//! The dashboard's aggregates on SQLite.

use super::SqliteStore;
use crate::store::Result;

impl SqliteStore {
    pub async fn day_counts(&self, bounds: &str) -> Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT b.value ->> 0 AS day, m.channel, m.state, count(*)
             FROM json_each(?1) b
             JOIN messages m ON m.run_at >= (b.value ->> 1) AND m.run_at < (b.value ->> 2)
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(bounds)
        .fetch_all(&self.read)
        .await?)
    }

    pub async fn counts_by_rule(&self) -> Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT rule_id, channel, state, count(*) FROM messages GROUP BY rule_id, channel, state
             ORDER BY rule_id, channel, state",
        )
        .fetch_all(&self.read)
        .await?)
    }

    pub async fn backlog(&self, now: i64) -> Result<(i64, i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "SELECT coalesce(sum(run_at <= ?1), 0), count(*), min(run_at) FILTER (WHERE run_at <= ?1)
             FROM messages WHERE state = 'scheduled'",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?)
    }
}
