//! Caps, collisions and quiet hours on SQLite (see `store/caps.rs`).

use jiff::Timestamp;
use serde_json::json;

use super::SqliteStore;
use crate::store::Result;
use crate::store::caps::{Defer, Recent, defer_rows, recent_from_row};

impl SqliteStore {
    pub async fn recent_messages(&self, member_ids: &[i64], since: Timestamp, until: Timestamp) -> Result<Vec<Recent>> {
        let rows = sqlx::query(
            "SELECT id, member_id, rule_id, occurrence, channel, purpose, state, reason, vars, run_at,
                    CASE WHEN state IN ('sending', 'sent', 'delivered', 'undelivered', 'ambiguous')
                         THEN coalesce(sent_at, updated_at) END AS handed_at
             FROM messages
             WHERE member_id IN (SELECT value FROM json_each(?1))
               AND (   (state IN ('sending', 'sent', 'delivered', 'undelivered', 'ambiguous')
                        AND coalesce(sent_at, updated_at) >= ?2)
                    OR (state IN ('scheduled', 'claimed') AND run_at >= ?2 AND run_at < ?3)
                    OR (state = 'skipped' AND reason LIKE 'collided with %' AND run_at >= ?2 AND run_at < ?3))
             ORDER BY member_id, run_at, id",
        )
        .bind(serde_json::to_string(member_ids).expect("ids serialize"))
        .bind(since.as_millisecond())
        .bind(until.as_millisecond())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(recent_from_row).collect()
    }

    pub async fn defer(&self, owner: &str, items: &[Defer], now: Timestamp) -> Result<u64> {
        let rows = defer_rows(items);
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'scheduled', run_at = j.value ->> 'run_at', attempts = attempts - 1,
                    lease_owner = NULL, lease_until = NULL, updated_at = ?2
             FROM json_each(?1) j
             WHERE messages.id = j.value ->> 'id' AND messages.attempts = j.value ->> 'attempt'
               AND messages.lease_owner = ?3 AND messages.state = 'claimed'
             RETURNING messages.id",
        )
        .bind(&rows)
        .bind(now_ms)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        if !moved.is_empty() {
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT r.value ->> 'id', ?2, 'scheduled', r.value ->> 'detail'
                 FROM json_each(?1) r WHERE r.value ->> 'id' IN (SELECT value FROM json_each(?3))",
            )
            .bind(&rows)
            .bind(now_ms)
            .bind(json!(moved).to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved.len() as u64)
    }
}
