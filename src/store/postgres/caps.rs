//! Caps, collisions and quiet hours on PostgreSQL (see `store/caps.rs`).

use jiff::Timestamp;

use super::PgStore;
use crate::store::Result;
use crate::store::caps::{Defer, Recent, defer_rows, recent_from_row};

impl PgStore {
    pub async fn recent_messages(&self, member_ids: &[i64], since: Timestamp, until: Timestamp) -> Result<Vec<Recent>> {
        let rows = sqlx::query(
            "SELECT id, member_id, rule_id, occurrence, channel, purpose, state, reason, vars, run_at,
                    CASE WHEN state IN ('sending', 'sent', 'delivered', 'undelivered', 'ambiguous')
                         THEN coalesce(sent_at, updated_at) END AS handed_at
             FROM messages
             WHERE member_id = ANY($1::bigint[])
               AND (   (state IN ('sending', 'sent', 'delivered', 'undelivered', 'ambiguous')
                        AND coalesce(sent_at, updated_at) >= $2::bigint)
                    OR (state IN ('scheduled', 'claimed') AND run_at >= $2::bigint AND run_at < $3::bigint)
                    OR (state = 'skipped' AND reason LIKE 'collided with %'
                        AND run_at >= $2::bigint AND run_at < $3::bigint))
             ORDER BY member_id, run_at, id",
        )
        .bind(member_ids)
        .bind(since.as_millisecond())
        .bind(until.as_millisecond())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recent_from_row).collect()
    }

    pub async fn defer(&self, owner: &str, items: &[Defer], now: Timestamp) -> Result<u64> {
        let rows = defer_rows(items);
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages m SET state = 'scheduled', run_at = j.run_at, attempts = m.attempts - 1,
                    lease_owner = NULL, lease_until = NULL, updated_at = $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, attempt bigint, run_at bigint, detail text)
             WHERE m.id = j.id AND m.attempts = j.attempt AND m.lease_owner = $3::text AND m.state = 'claimed'
             RETURNING m.id",
        )
        .bind(&rows)
        .bind(now_ms)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        if !moved.is_empty() {
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT r.id, $2::bigint, 'scheduled', r.detail
                 FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, detail text)
                 WHERE r.id = ANY($3::bigint[])",
            )
            .bind(&rows)
            .bind(now_ms)
            .bind(&moved)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved.len() as u64)
    }
}
