//! The API's paged reads and an operator's one-message retry or cancel, on SQLite.

use jiff::Timestamp;

use super::SqliteStore;
use crate::channels::{ChannelKind, Platform};
use crate::members::Member;
use crate::store::search::{CANCELLABLE, Device, MemberSearch, MessageSearch, OneMove, RETRYABLE};
use crate::store::types::{MEMBER_COLUMNS, MEMBERS, member_from_row, message_from_row, ts};
use crate::store::{MessageRow, Result, State, StoreError};

impl SqliteStore {
    pub async fn search_members(&self, s: &MemberSearch) -> Result<Vec<Member>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS}
             WHERE members.erased_at IS NULL AND members.id > ?1
               AND (?2 IS NULL OR lower(members.external_id) LIKE ?2 ESCAPE '\\'
                    OR lower(members.name) LIKE ?2 ESCAPE '\\' OR lower(members.email) LIKE ?2 ESCAPE '\\'
                    OR (?3 IS NOT NULL AND members.phone LIKE ?3 ESCAPE '\\'))
               AND (?4 IS NULL OR v.segment = ?4)
               AND (?5 IS NULL OR members.tier = ?5)
               AND (?6 IS NULL OR lower(members.locale) = lower(?6))
             ORDER BY members.id LIMIT ?7"
        ));
        let rows = sqlx::query(sql)
            .bind(s.after.unwrap_or(0))
            .bind(s.text_pattern())
            .bind(s.phone_pattern())
            .bind(s.segment.map(|seg| seg.as_str()))
            .bind(&s.tier)
            .bind(&s.locale)
            .bind(s.limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member_devices(
        &self,
        external_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<Device>>> {
        let Some(member_id): Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = ?")
            .bind(external_id)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, platform, token, created_at FROM push_devices
             WHERE member_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(member_id)
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(device).collect::<Result<Vec<_>>>().map(Some)
    }

    pub async fn search_messages(&self, s: &MessageSearch) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.dedupe_key, m.rule_id, m.member_id, mb.external_id AS member, m.occurrence, m.channel,
                    m.state, m.reason, m.attempts, m.run_at, m.provider, m.provider_id, m.rendered, m.sent_at,
                    m.instance, m.experiment, m.variant
             FROM messages m JOIN members mb ON mb.id = m.member_id
             WHERE (?1 IS NULL OR m.member_id = (SELECT id FROM members WHERE external_id = ?1))
               AND (?2 IS NULL OR m.rule_id = ?2) AND (?3 IS NULL OR m.state = ?3)
               AND (?4 IS NULL OR m.channel = ?4)
               AND (?5 IS NULL OR m.run_at >= ?5) AND (?6 IS NULL OR m.run_at < ?6)
               AND (?7 IS NULL OR m.id < ?7)
             ORDER BY m.id DESC LIMIT ?8",
        )
        .bind(&s.member)
        .bind(&s.rule_id)
        .bind(s.state.map(State::as_str))
        .bind(s.channel.map(ChannelKind::as_str))
        .bind(s.since.map(|t| t.as_millisecond()))
        .bind(s.until.map(|t| t.as_millisecond()))
        .bind(s.before)
        .bind(s.limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn retry_message(&self, id: i64, detail: &str, now: Timestamp) -> Result<OneMove> {
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'scheduled', reason = NULL, run_at = ?2, deadline = NULL, attempts = 0,
                    lease_owner = NULL, lease_until = NULL, updated_at = ?2
             WHERE id = ?1 AND state IN (?3, ?4, ?5)
             RETURNING id",
        )
        .bind(id)
        .bind(now_ms)
        .bind(RETRYABLE[0].as_str())
        .bind(RETRYABLE[1].as_str())
        .bind(RETRYABLE[2].as_str())
        .fetch_optional(&mut *tx)
        .await?;
        finish_move(tx, id, moved, State::Scheduled, detail, now_ms).await
    }

    pub async fn cancel_message(&self, id: i64, reason: &str, detail: &str, now: Timestamp) -> Result<OneMove> {
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'skipped', reason = ?3, lease_owner = NULL, lease_until = NULL,
                    updated_at = ?2
             WHERE id = ?1 AND state = ?4
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
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    id: i64,
    moved: Option<i64>,
    to: State,
    detail: &str,
    now_ms: i64,
) -> Result<OneMove> {
    if moved.is_none() {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM messages WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        return Ok(state.map_or(OneMove::NotFound, OneMove::InState));
    }
    sqlx::query("INSERT INTO message_history (message_id, at, state, detail) VALUES (?, ?, ?, ?)")
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
