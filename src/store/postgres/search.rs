//! The API's paged reads and an operator's one-message retry or cancel, on PostgreSQL. The
//! retry and cancel `UPDATE`s are fenced on the state: one racing a claim waits for the claim's
//! row lock, then re-reads the row and finds it claimed.

use jiff::Timestamp;

use super::PgStore;
use crate::channels::{ChannelKind, Platform};
use crate::members::Member;
use crate::store::search::{CANCELLABLE, Device, MemberSearch, MessageSearch, OneMove, RETRYABLE};
use crate::store::types::{MEMBER_COLUMNS, MEMBERS, member_from_row, message_from_row, ts};
use crate::store::{MessageRow, Result, State, StoreError};

impl PgStore {
    pub async fn search_members(&self, s: &MemberSearch) -> Result<Vec<Member>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS}
             WHERE members.erased_at IS NULL AND members.id > $1::bigint
               AND ($2::text IS NULL OR lower(members.external_id) LIKE $2::text ESCAPE '\\'
                    OR lower(members.name) LIKE $2::text ESCAPE '\\'
                    OR lower(members.email) LIKE $2::text ESCAPE '\\'
                    OR ($3::text IS NOT NULL AND members.phone LIKE $3::text ESCAPE '\\'))
               AND ($4::text IS NULL OR v.segment = $4::text)
               AND ($5::text IS NULL OR members.tier = $5::text)
               AND ($6::text IS NULL OR lower(members.locale) = lower($6::text))
             ORDER BY members.id LIMIT $7::bigint"
        ));
        let rows = sqlx::query(sql)
            .bind(s.after.unwrap_or(0))
            .bind(s.text_pattern())
            .bind(s.phone_pattern())
            .bind(s.segment.map(|seg| seg.as_str()))
            .bind(&s.tier)
            .bind(&s.locale)
            .bind(i64::from(s.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member_devices(
        &self,
        external_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<Device>>> {
        let Some(member_id): Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = $1::text")
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, platform, token, created_at FROM push_devices
             WHERE member_id = $1::bigint AND id > $2::bigint ORDER BY id LIMIT $3::bigint",
        )
        .bind(member_id)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(device).collect::<Result<Vec<_>>>().map(Some)
    }

    pub async fn search_messages(&self, s: &MessageSearch) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.dedupe_key, m.rule_id, m.member_id, mb.external_id AS member, m.occurrence, m.channel,
                    m.state, m.reason, m.attempts, m.run_at, m.provider, m.provider_id, m.rendered, m.sent_at,
                    m.instance, m.experiment, m.variant
             FROM messages m JOIN members mb ON mb.id = m.member_id
             WHERE ($1::text IS NULL OR m.member_id = (SELECT id FROM members WHERE external_id = $1::text))
               AND ($2::text IS NULL OR m.rule_id = $2::text) AND ($3::text IS NULL OR m.state = $3::text)
               AND ($4::text IS NULL OR m.channel = $4::text)
               AND ($5::bigint IS NULL OR m.run_at >= $5::bigint) AND ($6::bigint IS NULL OR m.run_at < $6::bigint)
               AND ($7::bigint IS NULL OR m.id < $7::bigint)
             ORDER BY m.id DESC LIMIT $8::bigint",
        )
        .bind(&s.member)
        .bind(&s.rule_id)
        .bind(s.state.map(State::as_str))
        .bind(s.channel.map(ChannelKind::as_str))
        .bind(s.since.map(|t| t.as_millisecond()))
        .bind(s.until.map(|t| t.as_millisecond()))
        .bind(s.before)
        .bind(i64::from(s.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn retry_message(&self, id: i64, detail: &str, now: Timestamp) -> Result<OneMove> {
        let now_ms = now.as_millisecond();
        let retryable: Vec<&str> = RETRYABLE.iter().map(|s| s.as_str()).collect();
        let mut tx = self.begin().await?;
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'scheduled', reason = NULL, run_at = $2::bigint, deadline = NULL,
                    attempts = 0, lease_owner = NULL, lease_until = NULL, updated_at = $2::bigint
             WHERE id = $1::bigint AND state = ANY($3::text[])
             RETURNING id",
        )
        .bind(id)
        .bind(now_ms)
        .bind(&retryable)
        .fetch_optional(&mut *tx)
        .await?;
        if moved.is_some() {
            // Workers on every instance look at once.
            sqlx::query("SELECT pg_notify($1, '')").bind(super::DUE_CHANNEL).execute(&mut *tx).await?;
        }
        finish_move(tx, id, moved, State::Scheduled, detail, now_ms).await
    }

    pub async fn cancel_message(&self, id: i64, reason: &str, detail: &str, now: Timestamp) -> Result<OneMove> {
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'skipped', reason = $3::text, lease_owner = NULL, lease_until = NULL,
                    updated_at = $2::bigint
             WHERE id = $1::bigint AND state = $4::text
             RETURNING id",
        )
        .bind(id)
        .bind(now_ms)
        .bind(reason)
        .bind(CANCELLABLE[0].as_str())
        .fetch_optional(&mut *tx)
        .await?;
        finish_move(tx, id, moved, State::Skipped, detail, now_ms).await
    }
}

/// Records the move in the history and commits, or says why nothing moved.
async fn finish_move(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: i64,
    moved: Option<i64>,
    to: State,
    detail: &str,
    now_ms: i64,
) -> Result<OneMove> {
    if moved.is_none() {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM messages WHERE id = $1::bigint")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(state.map_or(OneMove::NotFound, OneMove::InState));
    }
    sqlx::query(
        "INSERT INTO message_history (message_id, at, state, detail)
         VALUES ($1::bigint, $2::bigint, $3::text, $4::text)",
    )
    .bind(id)
    .bind(now_ms)
    .bind(to.as_str())
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(OneMove::Moved)
}

fn device((id, platform, token, created_at): (i64, String, String, i64)) -> Result<Device> {
    Ok(Device {
        id,
        platform: Platform::parse(&platform).ok_or_else(|| StoreError::Corrupt(format!("platform {platform:?}")))?,
        token,
        registered_at: ts(created_at)?,
    })
}
