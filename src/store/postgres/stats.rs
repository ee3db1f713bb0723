//! The dashboard's aggregates on PostgreSQL.

use super::PgStore;
use crate::store::Result;

impl PgStore {
    pub async fn day_counts(&self, bounds: &str) -> Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT b ->> 0 AS day, m.channel, m.state, count(*)
             FROM jsonb_array_elements($1::jsonb) b
             JOIN messages m ON m.run_at >= (b ->> 1)::bigint AND m.run_at < (b ->> 2)::bigint
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(bounds)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn counts_by_rule(&self) -> Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT rule_id, channel, state, count(*) FROM messages GROUP BY rule_id, channel, state
             ORDER BY rule_id, channel, state",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn backlog(&self, now: i64) -> Result<(i64, i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "SELECT count(*) FILTER (WHERE run_at <= $1), count(*), min(run_at) FILTER (WHERE run_at <= $1)
             FROM messages WHERE state = 'scheduled'",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }
}
