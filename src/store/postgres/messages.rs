//! Messages on PostgreSQL: the SQLite module's statements in PostgreSQL's dialect. Claims lock
//! the rows they take and skip rows another instance holds; settling reads the rows it moves
//! under a lock, so a history entry is written only for a row this transaction moved.

use crate::plan::consent::{ConsentPolicy, Rule};
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::Row;

use super::PgStore;
use crate::channels::ChannelKind;
use crate::plan::NewMessage;
use crate::store::Result;
use crate::store::types::{
    Claimed, FinalRow, Finalize, HistoryEntry, MessageFilter, MessageRow, State, claimed_from_row, enqueue_rows,
    history_from_row, message_from_row, opt_ts,
};

impl PgStore {
    pub async fn enqueue(&self, msgs: &[NewMessage], now: Timestamp) -> Result<u64> {
        if msgs.is_empty() {
            return Ok(0);
        }
        let now_ms = now.as_millisecond();
        let rows = enqueue_rows(msgs);
        let mut tx = self.begin().await?;
        let inserted: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO messages (dedupe_key, rule_id, member_id, occurrence, channel, template, vars,
                                   run_at, deadline, state, reason, fallback, purpose, experiment, variant,
                                   created_at, updated_at)
             SELECT j.key, j.rule, j.member, j.occurrence, j.channel, j.template, j.vars, j.run_at,
                    j.deadline, j.state, j.reason, j.fallback, j.purpose, j.experiment, j.variant, $2::bigint, $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(key text, rule text, member bigint, occurrence text,
                  channel text, template text, vars text, run_at bigint, deadline bigint, state text,
                  reason text, fallback text, purpose text, experiment text, variant text)
             ON CONFLICT (dedupe_key) DO NOTHING
             RETURNING id, dedupe_key",
        )
        .bind(&rows)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if !inserted.is_empty() {
            let ids: Value = inserted.iter().map(|(id, key)| json!({"id": id, "key": key})).collect();
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT i.id, $2::bigint, r.state, r.detail
                 FROM jsonb_to_recordset($1::jsonb) AS i(id bigint, key text)
                 JOIN jsonb_to_recordset($3::jsonb) AS r(key text, state text, detail text) ON r.key = i.key",
            )
            .bind(ids.to_string())
            .bind(now_ms)
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
            notify_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(inserted.len() as u64)
    }

    pub async fn claim(&self, owner: &str, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Claimed>> {
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        settle(&mut tx, now_ms).await?;
        // UPDATE … RETURNING has no order of its own: the batch comes back in run_at order, as
        // on SQLite.
        let rows = sqlx::query(
            "WITH claimed AS (
                 UPDATE messages SET state = 'claimed', lease_owner = $1::text, lease_until = $2::bigint,
                        attempts = attempts + 1, updated_at = $3::bigint
                 WHERE id IN (SELECT id FROM messages WHERE state = 'scheduled' AND run_at <= $3::bigint
                              ORDER BY run_at, id LIMIT $4::bigint FOR UPDATE SKIP LOCKED)
                 RETURNING id, dedupe_key, rule_id, member_id, occurrence, channel, template, vars, run_at,
                           deadline, attempts, fallback, purpose)
             SELECT * FROM claimed ORDER BY run_at, id",
        )
        .bind(owner)
        .bind(lease_until.as_millisecond())
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows.iter().map(claimed_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(claimed)
    }

    pub async fn mark_sending(
        &self,
        owner: &str,
        batch: &[(i64, u32, ChannelKind, String)],
        policy: ConsentPolicy,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = now.as_millisecond();
        let rows: Value = batch
            .iter()
            .map(|(id, attempt, channel, rendered)| {
                json!({"id": id, "attempt": attempt, "channel": channel.as_str(), "rendered": rendered})
            })
            .collect();
        let mut tx = self.begin().await?;
        let moved: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE messages AS m SET state = 'sending', channel = j.channel, rendered = j.rendered,
                    instance = m.lease_owner, updated_at = $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, attempt bigint, channel text, rendered text)
             WHERE m.id = j.id AND m.attempts = j.attempt
               AND m.lease_owner = $3::text AND m.state = 'claimed'
               AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.member_id = m.member_id
                                 AND c.channel = j.channel AND c.purpose = m.purpose AND c.status = 'revoked')
               AND (j.channel = 'webhook'
                    OR NOT (CASE WHEN m.purpose = 'marketing' THEN $4::boolean ELSE $5::boolean END)
                    OR EXISTS (SELECT 1 FROM consents c WHERE c.member_id = m.member_id
                                 AND c.channel = j.channel AND c.purpose = m.purpose AND c.status = 'granted'))
             RETURNING m.id, m.attempts",
        )
        .bind(rows.to_string())
        .bind(now_ms)
        .bind(owner)
        .bind(policy.marketing == Rule::Required)
        .bind(policy.service == Rule::Required)
        .fetch_all(&mut *tx)
        .await?;
        let history: Value =
            moved.iter().map(|(id, attempt)| json!([id, format!("attempt {attempt} by {owner}")])).collect();
        insert_history(&mut tx, &history, now_ms, State::Sending).await?;
        tx.commit().await?;
        Ok(moved.into_iter().map(|(id, _)| id).collect())
    }

    pub async fn finalize(&self, owner: &str, results: &[(i64, u32, Finalize)], now: Timestamp) -> Result<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let now_ms = now.as_millisecond();
        let rows: Vec<FinalRow> =
            results.iter().map(|(id, attempt, result)| result.row(*id, *attempt, now_ms)).collect();
        let rows = serde_json::to_string(&rows).expect("rows serialize");
        let mut tx = self.begin().await?;
        let applied: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages AS m SET state = j.state, reason = j.reason,
                    provider = coalesce(j.provider, m.provider),
                    provider_id = coalesce(j.provider_id, m.provider_id),
                    run_at = coalesce(j.run_at, m.run_at),
                    sent_at = coalesce(j.sent_at, m.sent_at),
                    instance = m.lease_owner, lease_owner = NULL, lease_until = NULL, updated_at = $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, attempt bigint, state text, reason text,
                  provider text, provider_id text, run_at bigint, sent_at bigint)
             WHERE m.id = j.id AND m.attempts = j.attempt
               AND m.lease_owner = $3::text AND m.state IN ('claimed', 'sending', 'ambiguous')
             RETURNING m.id",
        )
        .bind(&rows)
        .bind(now_ms)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        if !applied.is_empty() {
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT r.id, $2::bigint, r.state, r.detail
                 FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, state text, detail text)
                 WHERE r.id = ANY($3::bigint[])",
            )
            .bind(&rows)
            .bind(now_ms)
            .bind(&applied)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(applied.len() as u64)
    }

    pub async fn retry_messages(&self, f: &MessageFilter, now: Timestamp, why: &str) -> Result<u64> {
        self.operator_move(f, now, &[State::Dead, State::Failed, State::Ambiguous], State::Scheduled, why).await
    }

    pub async fn cancel_messages(&self, f: &MessageFilter, now: Timestamp) -> Result<u64> {
        self.operator_move(f, now, &[State::Scheduled], State::Skipped, "cancelled by an operator").await
    }

    async fn operator_move(
        &self,
        f: &MessageFilter,
        now: Timestamp,
        from: &[State],
        to: State,
        why: &str,
    ) -> Result<u64> {
        let from: Vec<&str> =
            from.iter().map(|s| s.as_str()).filter(|s| f.state.is_none_or(|st| st.as_str() == *s)).collect();
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = $1::text,
                    reason = CASE WHEN $1::text = 'skipped' THEN $2::text ELSE NULL END,
                    run_at = CASE WHEN $1::text = 'scheduled' THEN $3::bigint ELSE run_at END,
                    deadline = CASE WHEN $1::text = 'scheduled' THEN NULL ELSE deadline END,
                    attempts = CASE WHEN $1::text = 'scheduled' THEN 0 ELSE attempts END,
                    lease_owner = NULL, lease_until = NULL, updated_at = $3::bigint
             WHERE state = ANY($4::text[])
               AND ($5::text IS NULL OR rule_id = $5::text)
               AND ($6::text IS NULL OR member_id = (SELECT id FROM members WHERE external_id = $6::text))
               AND ($7::bigint IS NULL OR id = $7::bigint)
               AND ($8::text IS NULL OR channel = $8::text)
             RETURNING id",
        )
        .bind(to.as_str())
        .bind(why)
        .bind(now_ms)
        .bind(&from)
        .bind(&f.rule_id)
        .bind(&f.member)
        .bind(f.id)
        .bind(f.channel.map(ChannelKind::as_str))
        .fetch_all(&mut *tx)
        .await?;
        let history: Value = moved.iter().map(|id| json!([id, why])).collect();
        insert_history(&mut tx, &history, now_ms, to).await?;
        if to == State::Scheduled && !moved.is_empty() {
            notify_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(moved.len() as u64)
    }

    pub async fn release(&self, owner: &str, ids: &[i64], now: Timestamp) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let released: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'scheduled', lease_owner = NULL, lease_until = NULL,
                    attempts = attempts - 1, updated_at = $2::bigint
             WHERE lease_owner = $3::text AND state = 'claimed' AND id = ANY($1::bigint[])
             RETURNING id",
        )
        .bind(ids)
        .bind(now.as_millisecond())
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let history: Value = released.iter().map(|id| json!([id, format!("released unsent by {owner}")])).collect();
        insert_history(&mut tx, &history, now.as_millisecond(), State::Scheduled).await?;
        if !released.is_empty() {
            notify_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(released.len() as u64)
    }

    pub async fn renew_lease(&self, owner: &str, ids: &[i64], until: Timestamp) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE messages SET lease_until = $1::bigint
             WHERE lease_owner = $2::text AND state IN ('claimed', 'sending')
               AND id = ANY($3::bigint[])",
        )
        .bind(until.as_millisecond())
        .bind(owner)
        .bind(ids)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    pub async fn settle(&self, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        settle(&mut tx, now.as_millisecond()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        let ms: Option<i64> = sqlx::query_scalar("SELECT min(run_at) FROM messages WHERE state = 'scheduled'")
            .fetch_one(&self.pool)
            .await?;
        opt_ts(ms)
    }

    pub async fn count_by_state(&self) -> Result<BTreeMap<String, i64>> {
        let rows =
            sqlx::query("SELECT state, count(*) AS n FROM messages GROUP BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }

    pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.dedupe_key, m.rule_id, m.member_id, mb.external_id AS member, m.occurrence, m.channel,
                    m.state, m.reason, m.attempts, m.run_at, m.provider, m.provider_id, m.rendered, m.sent_at, m.instance,
                    m.experiment, m.variant
             FROM messages m JOIN members mb ON mb.id = m.member_id
             WHERE ($1::text IS NULL OR m.rule_id = $1::text) AND ($2::text IS NULL OR mb.external_id = $2::text)
               AND ($3::text IS NULL OR m.state = $3::text) AND ($5::bigint IS NULL OR m.id = $5::bigint)
               AND ($6::text IS NULL OR m.channel = $6::text)
             ORDER BY m.id DESC LIMIT $4::bigint",
        )
        .bind(&f.rule_id)
        .bind(&f.member)
        .bind(f.state.map(State::as_str))
        .bind(i64::from(if f.limit == 0 { 100 } else { f.limit }))
        .bind(f.id)
        .bind(f.channel.map(ChannelKind::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn history(&self, message_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows =
            sqlx::query("SELECT at, state, detail FROM message_history WHERE message_id = $1::bigint ORDER BY id")
                .bind(message_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(history_from_row).collect()
    }
}

/// Settles what expired leases and deadlines left behind (see [`crate::store::Store::claim`]).
/// Each transition is one statement that locks the rows it moves (skipping rows another
/// transaction holds, such as a finalize by their owner) and writes their history from the
/// same set. The literal `state IN ('claimed', 'sending')` lets a generic plan use the
/// `messages_leased` partial index (a bound state alone cannot).
async fn settle(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, now_ms: i64) -> Result<()> {
    for (from, to, detail) in [
        ("claimed", State::Scheduled, "lease expired before sending; rescheduled"),
        ("sending", State::Ambiguous, "lease expired while the provider had it; delivery unknown, not resent"),
    ] {
        sqlx::query(
            "WITH expired AS (
                 SELECT id, lease_owner FROM messages
                 WHERE state = $4::text AND state IN ('claimed', 'sending') AND lease_until < $1::bigint
                 FOR UPDATE SKIP LOCKED),
             moved AS (
                 UPDATE messages AS m SET state = $2::text,
                        reason = CASE WHEN $2::text = 'ambiguous' THEN $3::text ELSE m.reason END,
                        lease_owner = CASE WHEN $2::text = 'ambiguous' THEN m.lease_owner END,
                        lease_until = NULL, updated_at = $1::bigint
                 FROM expired WHERE m.id = expired.id
                 RETURNING m.id, expired.lease_owner)
             INSERT INTO message_history (message_id, at, state, detail)
             SELECT id, $1::bigint, $2::text, $3::text || ' (worker ' || coalesce(lease_owner, '?') || ')'
             FROM moved",
        )
        .bind(now_ms)
        .bind(to.as_str())
        .bind(detail)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    }
    // Through `messages_deadline` (`run_at + 0` keeps the planner off `messages_due`, which
    // would walk every due message of a burst at each claim).
    let late = "late: past the rule's maximum lateness before it could be sent";
    sqlx::query(
        "WITH late AS (
             UPDATE messages SET state = 'skipped', reason = $1::text, updated_at = $2::bigint
             WHERE id IN (SELECT id FROM messages
                          WHERE state = 'scheduled' AND run_at + 0 <= $2::bigint AND deadline < $2::bigint
                          FOR UPDATE SKIP LOCKED)
             RETURNING id)
         INSERT INTO message_history (message_id, at, state, detail)
         SELECT id, $2::bigint, 'skipped', $1::text FROM late",
    )
    .bind(late)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends one history entry per `[message_id, detail]` pair, all in `state`.
async fn insert_history(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    entries: &Value,
    at: i64,
    state: State,
) -> Result<()> {
    if entries.as_array().is_some_and(Vec::is_empty) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO message_history (message_id, at, state, detail)
         SELECT (j ->> 0)::bigint, $2::bigint, $3::text, j ->> 1 FROM jsonb_array_elements($1::jsonb) AS j",
    )
    .bind(entries.to_string())
    .bind(at)
    .bind(state.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Tells listening instances that messages are due; delivered when the transaction commits.
async fn notify_due(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(super::DUE_CHANNEL).execute(&mut **tx).await?;
    Ok(())
}
