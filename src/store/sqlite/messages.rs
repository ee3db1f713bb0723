//! Messages on SQLite: idempotent enqueue, claims under a lease, fenced finalize, history.

use crate::plan::consent::{ConsentPolicy, Rule};
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::Row;

use super::SqliteStore;
use crate::channels::ChannelKind;
use crate::plan::NewMessage;
use crate::store::Result;
use crate::store::types::{
    Claimed, FinalRow, Finalize, HistoryEntry, MessageFilter, MessageRow, State, claimed_from_row, enqueue_rows,
    first_state, history_detail, history_from_row, message_from_row, opt_ts,
};

impl SqliteStore {
    /// Inserts planned messages; one whose dedupe key exists is ignored. Returns how many were new.
    /// One statement for the rows and one for their history, whatever the batch's size.
    pub async fn enqueue(&self, msgs: &[NewMessage], now: Timestamp) -> Result<u64> {
        if msgs.is_empty() {
            return Ok(0);
        }
        let now_ms = now.as_millisecond();
        let rows = enqueue_rows(msgs);
        let mut tx = self.begin().await?;
        // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
        let inserted: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO messages (dedupe_key, rule_id, member_id, occurrence, channel, template, vars,
                                   run_at, deadline, state, reason, fallback, purpose, experiment, variant,
                                   created_at, updated_at)
             SELECT j.value ->> 'key', j.value ->> 'rule', j.value ->> 'member', j.value ->> 'occurrence',
                    j.value ->> 'channel', j.value ->> 'template', j.value ->> 'vars', j.value ->> 'run_at',
                    j.value ->> 'deadline', j.value ->> 'state', j.value ->> 'reason', j.value ->> 'fallback',
                    j.value ->> 'purpose', j.value ->> 'experiment', j.value ->> 'variant', ?2, ?2
             FROM json_each(?1) j WHERE true
             ON CONFLICT (dedupe_key) DO NOTHING
             RETURNING id, dedupe_key",
        )
        .bind(&rows)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if !inserted.is_empty() {
            // Each new row's state and detail, looked up here by key: a join in SQL through the
            // JSON array (no index) grew with the square of the batch.
            // The first of a key named twice, as `enqueue_rows` keeps.
            let mut by_key = std::collections::HashMap::new();
            for m in msgs {
                by_key.entry(m.dedupe_key.as_str()).or_insert(m);
            }
            let history: Value = inserted
                .iter()
                .filter_map(|(id, key)| {
                    let m = by_key.get(key.as_str())?;
                    Some(json!([id, first_state(m).as_str(), history_detail(m)]))
                })
                .collect();
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT j.value ->> 0, ?2, j.value ->> 1, j.value ->> 2 FROM json_each(?1) j",
            )
            .bind(history.to_string())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(inserted.len() as u64)
    }

    /// Settles what expired leases and deadlines left behind, then claims up to `limit` due
    /// messages for `owner` until `lease_until`.
    ///
    /// - claimed but never handed to a provider, lease expired: back to scheduled (safe to send);
    /// - sending when the lease expired: ambiguous (it may have gone out; never resent blindly);
    /// - scheduled past its deadline: skipped as late.
    pub async fn claim(&self, owner: &str, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Claimed>> {
        let now_ms = now.as_millisecond();
        // Unsynced: a claim undone by a power cut leaves the messages `scheduled`, as before it.
        let mut conn = self.write_unsynced().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        settle(&mut tx, now_ms).await?;
        let rows = sqlx::query(
            "UPDATE messages SET state = 'claimed', lease_owner = ?, lease_until = ?, attempts = attempts + 1,
                    updated_at = ?
             WHERE id IN (SELECT id FROM messages WHERE state = 'scheduled' AND run_at <= ?
                          ORDER BY run_at, id LIMIT ?)
             RETURNING id, dedupe_key, rule_id, member_id, occurrence, channel, template, vars, run_at,
                       deadline, attempts, fallback, purpose",
        )
        .bind(owner)
        .bind(lease_until.as_millisecond())
        .bind(now_ms)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows.iter().map(claimed_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Marks claimed messages as handed to their provider, storing what was rendered. Fenced:
    /// only messages this owner still holds at this attempt move; their ids are returned, and
    /// only those may be sent.
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
            .map(|(id, attempt, channel, rendered)| json!([id, attempt, channel.as_str(), rendered]))
            .collect();
        let mut tx = self.begin().await?;
        let moved: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE messages SET state = 'sending', channel = j.value ->> 2, rendered = j.value ->> 3, instance = lease_owner, updated_at = ?2
             FROM json_each(?1) j
             WHERE messages.id = j.value ->> 0 AND messages.attempts = j.value ->> 1
               AND messages.lease_owner = ?3 AND messages.state = 'claimed'
               AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.member_id = messages.member_id
                                 AND c.channel = j.value ->> 2 AND c.purpose = messages.purpose
                                 AND c.status = 'revoked')
               AND (j.value ->> 2 = 'webhook'
                    OR (CASE WHEN messages.purpose = 'marketing' THEN ?4 ELSE ?5 END) = 0
                    OR EXISTS (SELECT 1 FROM consents c WHERE c.member_id = messages.member_id
                                 AND c.channel = j.value ->> 2 AND c.purpose = messages.purpose
                                 AND c.status = 'granted'))
             RETURNING messages.id, messages.attempts",
        )
        .bind(rows.to_string())
        .bind(now_ms)
        .bind(owner)
        .bind(i64::from(policy.marketing == Rule::Required))
        .bind(i64::from(policy.service == Rule::Required))
        .fetch_all(&mut *tx)
        .await?;
        let history: Value =
            moved.iter().map(|(id, attempt)| json!([id, format!("attempt {attempt} by {owner}")])).collect();
        insert_history(&mut tx, &history, now_ms, State::Sending).await?;
        tx.commit().await?;
        Ok(moved.into_iter().map(|(id, _)| id).collect())
    }

    /// Records how attempts ended. Fenced on lease owner and attempt: a worker whose lease was
    /// taken over cannot overwrite the newer result. Returns how many were applied.
    pub async fn finalize(&self, owner: &str, results: &[(i64, u32, Finalize)], now: Timestamp) -> Result<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let now_ms = now.as_millisecond();
        let rows: Vec<FinalRow> =
            results.iter().map(|(id, attempt, result)| result.row(*id, *attempt, now_ms)).collect();
        let rows = serde_json::to_string(&rows).expect("rows serialize");
        // Unsynced: an outcome undone by a power cut leaves its message `sending`, which the
        // lease's end turns `ambiguous`: reported, never sent again. The next `sending` mark,
        // synced, takes it to disk with it.
        let mut conn = self.write_unsynced().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let applied: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = j.value ->> 'state', reason = j.value ->> 'reason',
                    provider = coalesce(j.value ->> 'provider', provider),
                    provider_id = coalesce(j.value ->> 'provider_id', provider_id),
                    run_at = coalesce(j.value ->> 'run_at', run_at),
                    sent_at = coalesce(j.value ->> 'sent_at', sent_at),
                    instance = lease_owner, lease_owner = NULL, lease_until = NULL, updated_at = ?2
             FROM json_each(?1) j
             WHERE messages.id = j.value ->> 'id' AND messages.attempts = j.value ->> 'attempt'
               AND messages.lease_owner = ?3 AND messages.state IN ('claimed', 'sending', 'ambiguous')
             RETURNING messages.id",
        )
        .bind(&rows)
        .bind(now_ms)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        if !applied.is_empty() {
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT r.value ->> 'id', ?2, r.value ->> 'state', r.value ->> 'detail'
                 FROM json_each(?1) r WHERE r.value ->> 'id' IN (SELECT value FROM json_each(?3))",
            )
            .bind(&rows)
            .bind(now_ms)
            .bind(serde_json::to_string(&applied).expect("ids serialize"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(applied.len() as u64)
    }

    /// An operator's decision to send again: matching `dead`, `failed` or `ambiguous` messages are
    /// scheduled now, with a fresh set of attempts and no deadline. Returns how many.
    pub async fn retry_messages(&self, f: &MessageFilter, now: Timestamp, why: &str) -> Result<u64> {
        self.operator_move(f, now, &[State::Dead, State::Failed, State::Ambiguous], State::Scheduled, why).await
    }

    /// An operator's decision not to send: matching `scheduled` messages are skipped.
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
            "UPDATE messages SET state = ?1,
                    reason = CASE WHEN ?1 = 'skipped' THEN ?2 ELSE NULL END,
                    run_at = CASE WHEN ?1 = 'scheduled' THEN ?3 ELSE run_at END,
                    deadline = CASE WHEN ?1 = 'scheduled' THEN NULL ELSE deadline END,
                    attempts = CASE WHEN ?1 = 'scheduled' THEN 0 ELSE attempts END,
                    lease_owner = NULL, lease_until = NULL, updated_at = ?3
             WHERE state IN (SELECT value FROM json_each(?4))
               AND (?5 IS NULL OR rule_id = ?5)
               AND (?6 IS NULL OR member_id = (SELECT id FROM members WHERE external_id = ?6))
               AND (?7 IS NULL OR id = ?7)
               AND (?8 IS NULL OR channel = ?8)
             RETURNING id",
        )
        .bind(to.as_str())
        .bind(why)
        .bind(now_ms)
        .bind(serde_json::to_string(&from).expect("states serialize"))
        .bind(&f.rule_id)
        .bind(&f.member)
        .bind(f.id)
        .bind(f.channel.map(ChannelKind::as_str))
        .fetch_all(&mut *tx)
        .await?;
        let history: Value = moved.iter().map(|id| json!([id, why])).collect();
        insert_history(&mut tx, &history, now_ms, to).await?;
        tx.commit().await?;
        Ok(moved.len() as u64)
    }

    /// Hands claimed messages back unsent (a worker stopping mid-batch): they are scheduled again
    /// at once rather than waiting for the lease to expire.
    pub async fn release(&self, owner: &str, ids: &[i64], now: Timestamp) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let released: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'scheduled', lease_owner = NULL, lease_until = NULL,
                    attempts = attempts - 1, updated_at = ?2
             WHERE lease_owner = ?3 AND state = 'claimed' AND id IN (SELECT value FROM json_each(?1))
             RETURNING id",
        )
        .bind(serde_json::to_string(ids).expect("ids serialize"))
        .bind(now.as_millisecond())
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let history: Value = released.iter().map(|id| json!([id, format!("released unsent by {owner}")])).collect();
        insert_history(&mut tx, &history, now.as_millisecond(), State::Scheduled).await?;
        tx.commit().await?;
        Ok(released.len() as u64)
    }

    /// Extends this owner's lease on messages it still holds.
    pub async fn renew_lease(&self, owner: &str, ids: &[i64], until: Timestamp) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE messages SET lease_until = ?
             WHERE lease_owner = ? AND state IN ('claimed', 'sending')
               AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(until.as_millisecond())
        .bind(owner)
        .bind(serde_json::to_string(ids).expect("ids serialize"))
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Settles expired leases and deadlines without claiming (housekeeping).
    pub async fn settle(&self, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        settle(&mut tx, now.as_millisecond()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The earliest `run_at` of a scheduled message, for an idle worker to wait until.
    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        let ms: Option<i64> = sqlx::query_scalar("SELECT min(run_at) FROM messages WHERE state = 'scheduled'")
            .fetch_one(&self.read)
            .await?;
        opt_ts(ms)
    }

    /// How many messages are in each state.
    pub async fn count_by_state(&self) -> Result<BTreeMap<String, i64>> {
        let rows =
            sqlx::query("SELECT state, count(*) AS n FROM messages GROUP BY state").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }

    /// Messages matching the filter, newest first.
    pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.dedupe_key, m.rule_id, m.member_id, mb.external_id AS member, m.occurrence, m.channel,
                    m.state, m.reason, m.attempts, m.run_at, m.provider, m.provider_id, m.rendered, m.sent_at, m.instance,
                    m.experiment, m.variant
             FROM messages m JOIN members mb ON mb.id = m.member_id
             WHERE (?1 IS NULL OR m.rule_id = ?1) AND (?2 IS NULL OR mb.external_id = ?2)
               AND (?3 IS NULL OR m.state = ?3) AND (?5 IS NULL OR m.id = ?5)
               AND (?6 IS NULL OR m.channel = ?6)
             ORDER BY m.id DESC LIMIT ?4",
        )
        .bind(&f.rule_id)
        .bind(&f.member)
        .bind(f.state.map(State::as_str))
        .bind(if f.limit == 0 { 100 } else { f.limit })
        .bind(f.id)
        .bind(f.channel.map(ChannelKind::as_str))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Every state change of one message, oldest first.
    pub async fn history(&self, message_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query("SELECT at, state, detail FROM message_history WHERE message_id = ? ORDER BY id")
            .bind(message_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(history_from_row).collect()
    }
}

/// Settles what expired leases and deadlines left behind (see [`SqliteStore::claim`]). The
/// literal `state IN ('claimed', 'sending')` lets the planner use the `messages_leased` partial
/// index (a bound state alone cannot): without it each claim scanned the whole table.
async fn settle(tx: &mut sqlx::SqliteConnection, now_ms: i64) -> Result<()> {
    for (from, to, detail) in [
        ("claimed", State::Scheduled, "lease expired before sending; rescheduled"),
        ("sending", State::Ambiguous, "lease expired while the provider had it; delivery unknown, not resent"),
    ] {
        sqlx::query(
            "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT id, ?, ?, ? || ' (worker ' || coalesce(lease_owner, '?') || ')'
                 FROM messages WHERE state = ? AND state IN ('claimed', 'sending') AND lease_until < ?",
        )
        .bind(now_ms)
        .bind(to.as_str())
        .bind(detail)
        .bind(from)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages SET state = ?, reason = CASE WHEN ? = 'ambiguous' THEN ? ELSE reason END,
                        lease_owner = CASE WHEN ? = 'ambiguous' THEN lease_owner END,
                        lease_until = NULL, updated_at = ?
                 WHERE state = ? AND state IN ('claimed', 'sending') AND lease_until < ?",
        )
        .bind(to.as_str())
        .bind(to.as_str())
        .bind(detail)
        .bind(to.as_str())
        .bind(now_ms)
        .bind(from)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    // Through `messages_deadline` (`+run_at` keeps the planner off `messages_due`, which would
    // walk every due message of a burst at each claim).
    let late = "late: past the rule's maximum lateness before it could be sent";
    sqlx::query(
        "INSERT INTO message_history (message_id, at, state, detail)
             SELECT id, ?, 'skipped', ? FROM messages
             WHERE state = 'scheduled' AND +run_at <= ? AND deadline < ?",
    )
    .bind(now_ms)
    .bind(late)
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE messages SET state = 'skipped', reason = ?, updated_at = ?
             WHERE state = 'scheduled' AND +run_at <= ? AND deadline < ?",
    )
    .bind(late)
    .bind(now_ms)
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends one history entry per `[message_id, detail]` pair, all in `state`.
async fn insert_history(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    entries: &Value,
    at: i64,
    state: State,
) -> Result<()> {
    if entries.as_array().is_some_and(Vec::is_empty) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO message_history (message_id, at, state, detail)
         SELECT j.value ->> 0, ?2, ?3, j.value ->> 1 FROM json_each(?1) j",
    )
    .bind(entries.to_string())
    .bind(at)
    .bind(state.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
