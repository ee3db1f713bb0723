//! Gateways on PostgreSQL: the SQLite module's statements in PostgreSQL's dialect.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::PgStore;
use crate::channels::{ChannelKind, Platform, PushDevice, Receipt};
use crate::store::Result;
use crate::store::types::{
    DeviceRow, Suppression, device_from_row, parse_channel as channel, receipt_rows, suppression_rows, ts,
};

impl PgStore {
    pub async fn add_push_device(&self, external_id: &str, d: &PushDevice, now: Timestamp) -> Result<Option<bool>> {
        let mut tx = self.begin().await?;
        let Some(member_id): Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = $1")
            .bind(external_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT member_id FROM push_devices WHERE platform = $1 AND token = $2 FOR UPDATE")
                .bind(d.platform.as_str())
                .bind(&d.token)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO push_devices (member_id, platform, token, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (platform, token) DO UPDATE SET member_id = excluded.member_id, p256dh = excluded.p256dh,
                 auth = excluded.auth, created_at = excluded.created_at",
        )
        .bind(member_id)
        .bind(d.platform.as_str())
        .bind(&d.token)
        .bind(&d.p256dh)
        .bind(&d.auth)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(existing != Some(member_id)))
    }

    pub async fn remove_push_device(&self, external_id: Option<&str>, platform: Platform, token: &str) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM push_devices WHERE platform = $1 AND token = $2
               AND ($3::text IS NULL OR member_id = (SELECT id FROM members WHERE external_id = $3::text))",
        )
        .bind(platform.as_str())
        .bind(token)
        .bind(external_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn push_devices(&self, member_ids: &[i64]) -> Result<Vec<(i64, PushDevice)>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<DeviceRow> = sqlx::query_as(
            "SELECT member_id, platform, token, p256dh, auth FROM push_devices
             WHERE member_id = ANY($1::bigint[]) ORDER BY member_id, created_at, id",
        )
        .bind(member_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    pub async fn suppress(&self, entries: &[Suppression], now: Timestamp) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let rows = suppression_rows(entries);
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM push_devices WHERE token IN
               (SELECT j.address FROM jsonb_to_recordset($1::jsonb) AS j(channel text, address text)
                WHERE j.channel = 'push')",
        )
        .bind(&rows)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO suppressions (channel, address, reason, source, created_at)
             SELECT DISTINCT ON (j.channel, j.address) j.channel, j.address, j.reason, j.source, $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(channel text, address text, reason text, source text)
             WHERE j.channel <> 'push'
             ON CONFLICT (channel, address) DO NOTHING",
        )
        .bind(&rows)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn unsuppress(&self, channel: ChannelKind, address: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM suppressions WHERE channel = $1 AND address = $2")
            .bind(channel.as_str())
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn suppressed(&self, addresses: &[(ChannelKind, String)]) -> Result<HashSet<(ChannelKind, String)>> {
        if addresses.is_empty() {
            return Ok(HashSet::new());
        }
        let channels: Vec<&str> = addresses.iter().map(|(c, _)| c.as_str()).collect();
        let addrs: Vec<&str> = addresses.iter().map(|(_, a)| a.as_str()).collect();
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.channel, s.address FROM suppressions s
             JOIN unnest($1::text[], $2::text[]) AS q(channel, address)
               ON s.channel = q.channel AND s.address = q.address",
        )
        .bind(&channels)
        .bind(&addrs)
        .fetch_all(&self.pool)
        .await?;
        found.into_iter().map(|(c, a)| Ok((channel(&c)?, a))).collect()
    }

    pub async fn suppressions(&self, limit: u32) -> Result<Vec<(Suppression, Timestamp)>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT channel, address, reason, source, created_at FROM suppressions
             ORDER BY created_at DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(c, address, reason, source, at)| {
                Ok((Suppression { channel: channel(&c)?, address, reason, source }, ts(at)?))
            })
            .collect()
    }

    pub async fn record_receipts(&self, receipts: &[Receipt], now: Timestamp) -> Result<u64> {
        let now_ms = now.as_millisecond();
        let rows = receipt_rows(receipts, now_ms);
        if rows == "[]" {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let moved: Vec<(i64, String, String)> = sqlx::query_as(
            "UPDATE messages AS m SET state = j.state, provider_code = j.code,
                    delivered_at = CASE WHEN j.state = 'delivered' THEN j.at END, updated_at = $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(provider text, provider_id text, state text, code text,
                  at bigint, detail text)
             WHERE m.provider = j.provider AND m.provider_id = j.provider_id
               AND m.state IN ('sent', 'ambiguous', 'delivered', 'undelivered')
             RETURNING m.id, m.state, j.detail",
        )
        .bind(&rows)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if !moved.is_empty() {
            let history: Value = moved.iter().map(|(id, state, detail)| json!([id, state, detail])).collect();
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT (h ->> 0)::bigint, $2::bigint, h ->> 1, h ->> 2 FROM jsonb_array_elements($1::jsonb) AS h",
            )
            .bind(history.to_string())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved.len() as u64)
    }
}
