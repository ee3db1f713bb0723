//! Entry triggers and transactional sends on SQLite.

use jiff::Timestamp;
use std::collections::HashSet;

use super::SqliteStore;
use crate::members::builtin::NewBuiltin;
use crate::store::entry::{EventQuery, EventRow, SentMessage, builtin_rows, event_from_row};
use crate::store::{Result, State, StoreError};
use crate::triggers::EventRecord;

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

impl SqliteStore {
    pub async fn events_for_rule(&self, q: &EventQuery<'_>) -> Result<Vec<EventRecord>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, event_id, member_id, kind, amount, at, data, change_seq FROM events
             WHERE kind IN (SELECT value FROM json_each(?1)) AND change_seq > ?2 AND change_seq <= ?3
               AND at > ?4 AND id > ?5
             ORDER BY id LIMIT ?6",
        )
        .bind(serde_json::to_string(q.kinds).expect("kinds serialize"))
        .bind(q.after_seq.unwrap_or(i64::MIN))
        .bind(q.upto_seq)
        .bind(q.at_after.map_or(i64::MIN, Timestamp::as_millisecond))
        .bind(q.after_id)
        .bind(q.limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(event_from_row).collect()
    }

    pub async fn take_send_key(&self, key: &str, request: &str, now: Timestamp) -> Result<String> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO send_requests (idempotency_key, request, created_at) VALUES (?, ?, ?)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(key)
        .bind(request)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        let stored: String = sqlx::query_scalar("SELECT request FROM send_requests WHERE idempotency_key = ?")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn messages_by_dedupe_keys(&self, keys: &[String]) -> Result<Vec<SentMessage>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, dedupe_key, channel, state FROM messages
             WHERE dedupe_key IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .bind(serde_json::to_string(keys).expect("keys serialize"))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(sent_message).collect()
    }
}

pub(super) fn sent_message((id, dedupe_key, channel, state): (i64, String, String, String)) -> Result<SentMessage> {
    let state = State::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("message {id}: state {state:?}")))?;
    Ok(SentMessage { id, dedupe_key, channel, state })
}

/// Inserts built-in events in the transaction of the write that caused them, stamped with its
/// change; one already recorded (same event id) is left alone.
pub(super) async fn insert_builtin(tx: &mut Tx, events: &[NewBuiltin], change: i64, now_ms: i64) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (event_id, member_id, kind, amount, at, received_at, data, change_seq)
         SELECT j.value ->> 'event_id', j.value ->> 'member_id', j.value ->> 'kind', NULL, j.value ->> 'at', ?2,
                j.value ->> 'data', ?3
         FROM json_each(?1) j WHERE true
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
         WHERE member_id IN (SELECT value FROM json_each(?1)) AND kind IN (SELECT value FROM json_each(?2))
           AND change_seq < ?3",
    )
    .bind(serde_json::to_string(members).expect("ids serialize"))
    .bind(serde_json::to_string(kinds).expect("kinds serialize"))
    .bind(change)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().collect())
}
