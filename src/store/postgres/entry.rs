//! Entry triggers and transactional sends on PostgreSQL: the SQLite module's statements in
//! PostgreSQL's dialect.

use jiff::Timestamp;
use std::collections::HashSet;

use super::PgStore;
use crate::members::builtin::NewBuiltin;
use crate::store::entry::{EventQuery, EventRow, SentMessage, builtin_rows, event_from_row};
use crate::store::{Result, State, StoreError};
use crate::triggers::EventRecord;

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl PgStore {
    pub async fn events_for_rule(&self, q: &EventQuery<'_>) -> Result<Vec<EventRecord>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, event_id, member_id, kind, amount, at, data, change_seq FROM events
             WHERE kind = ANY($1::text[]) AND change_seq > $2::bigint AND change_seq <= $3::bigint
               AND at > $4::bigint AND id > $5::bigint
             ORDER BY id LIMIT $6::bigint",
        )
        .bind(q.kinds)
        .bind(q.after_seq.unwrap_or(i64::MIN))
        .bind(q.upto_seq)
        .bind(q.at_after.map_or(i64::MIN, Timestamp::as_millisecond))
        .bind(q.after_id)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(event_from_row).collect()
    }

    pub async fn take_send_key(&self, key: &str, request: &str, now: Timestamp) -> Result<String> {
        // Inserted, or the row another request committed first (the insert waits for it).
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO send_requests (idempotency_key, request, created_at) VALUES ($1, $2, $3::bigint)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(key)
        .bind(request)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        let stored: String = sqlx::query_scalar("SELECT request FROM send_requests WHERE idempotency_key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn messages_by_dedupe_keys(&self, keys: &[String]) -> Result<Vec<SentMessage>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, dedupe_key, channel, state FROM messages WHERE dedupe_key = ANY($1::text[]) ORDER BY id",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, dedupe_key, channel, state)| {
                let state = State::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("message {id}: state {state:?}")))?;
                Ok(SentMessage { id, dedupe_key, channel, state })
            })
            .collect()
    }
}

/// Inserts built-in events in the transaction of the write that caused them, stamped with its
/// change; one already recorded (same event id) is left alone.
pub(super) async fn insert_builtin(tx: &mut Tx, events: &[NewBuiltin], change: i64, now_ms: i64) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (event_id, member_id, kind, amount, at, received_at, data, change_seq)
         SELECT e.event_id, e.member_id, e.kind, NULL, e.at, $2::bigint, e.data, $3::bigint
         FROM jsonb_to_recordset($1::jsonb) AS e(event_id text, member_id bigint, kind text, at bigint, data text)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(builtin_rows(events))
    .bind(now_ms)
    .bind(change)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which of these members had an event of a purchase kind before this transaction's `change`.
pub(super) async fn had_purchase(tx: &mut Tx, members: &[i64], kinds: &[String], change: i64) -> Result<HashSet<i64>> {
    if members.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT member_id FROM events
         WHERE member_id = ANY($1::bigint[]) AND kind = ANY($2::text[]) AND change_seq < $3::bigint",
    )
    .bind(members)
    .bind(kinds)
    .bind(change)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().collect())
}
