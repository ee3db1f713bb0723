//! Gateways on SQLite: push devices, suppressed addresses, opt-outs and delivery receipts.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::SqliteStore;
use crate::channels::{ChannelKind, Platform, PushDevice, Receipt};
use crate::store::Result;
use crate::store::types::{
    DeviceRow, Suppression, device_from_row, parse_channel as channel, receipt_detail, receipt_rows, suppression_rows,
};

impl SqliteStore {
    pub async fn add_push_device(&self, external_id: &str, d: &PushDevice, now: Timestamp) -> Result<Option<bool>> {
        let mut tx = self.begin().await?;
        let Some(member_id): Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = ?")
            .bind(external_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        // A token moves to whoever registers it last (a shared or resold device), with its keys.
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT member_id FROM push_devices WHERE platform = ? AND token = ?")
                .bind(d.platform.as_str())
                .bind(&d.token)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO push_devices (member_id, platform, token, p256dh, auth, created_at) VALUES (?, ?, ?, ?, ?, ?)
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
            "DELETE FROM push_devices WHERE platform = ?1 AND token = ?2
               AND (?3 IS NULL OR member_id = (SELECT id FROM members WHERE external_id = ?3))",
        )
        .bind(platform.as_str())
        .bind(token)
        .bind(external_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn push_devices(&self, member_ids: &[i64]) -> Result<Vec<(i64, PushDevice)>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Value = member_ids.iter().copied().collect();
        let rows: Vec<DeviceRow> = sqlx::query_as(
            "SELECT member_id, platform, token, p256dh, auth FROM push_devices
             WHERE member_id IN (SELECT value FROM json_each(?)) ORDER BY member_id, created_at, id",
        )
        .bind(ids.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    pub async fn suppress(&self, entries: &[Suppression], now: Timestamp) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let rows = suppression_rows(entries);
        let mut tx = self.begin().await?;
        // A push address is a device: it is forgotten rather than listed.
        sqlx::query(
            "DELETE FROM push_devices WHERE token IN
               (SELECT j.value ->> 'address' FROM json_each(?) j WHERE j.value ->> 'channel' = 'push')",
        )
        .bind(&rows)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO suppressions (channel, address, reason, source, created_at)
             SELECT j.value ->> 'channel', j.value ->> 'address', j.value ->> 'reason', j.value ->> 'source', ?2
             FROM json_each(?1) j WHERE j.value ->> 'channel' <> 'push' AND true
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
        let done = sqlx::query("DELETE FROM suppressions WHERE channel = ? AND address = ?")
            .bind(channel.as_str())
            .bind(address)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn suppressed(&self, addresses: &[(ChannelKind, String)]) -> Result<HashSet<(ChannelKind, String)>> {
        if addresses.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Value = addresses.iter().map(|(c, a)| json!([c.as_str(), a])).collect();
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.channel, s.address FROM suppressions s
             JOIN json_each(?) j ON s.channel = j.value ->> 0 AND s.address = j.value ->> 1",
        )
        .bind(rows.to_string())
        .fetch_all(&self.read)
        .await?;
        found.into_iter().map(|(c, a)| Ok((channel(&c)?, a))).collect()
    }

    pub async fn suppressions(&self, limit: u32) -> Result<Vec<(Suppression, Timestamp)>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT channel, address, reason, source, created_at FROM suppressions ORDER BY created_at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(c, address, reason, source, at)| {
                Ok((Suppression { channel: channel(&c)?, address, reason, source }, crate::store::types::ts(at)?))
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
            "UPDATE messages SET state = j.value ->> 'state', provider_code = j.value ->> 'code',
                    delivered_at = CASE WHEN j.value ->> 'state' = 'delivered' THEN j.value ->> 'at' END,
                    updated_at = ?2
             FROM json_each(?1) j
             WHERE messages.provider = j.value ->> 'provider' AND messages.provider_id = j.value ->> 'provider_id'
               AND messages.state IN ('sent', 'ambiguous', 'delivered', 'undelivered')
             RETURNING messages.id, messages.provider, messages.provider_id",
        )
        .bind(&rows)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        // SQLite's RETURNING cannot name the FROM table: the detail is looked up here.
        let details: std::collections::HashMap<(&str, &str), String> =
            receipts.iter().map(|r| ((r.provider, r.provider_id.as_str()), receipt_detail(r))).collect();
        let history: Value = moved
            .iter()
            .map(|(id, provider, provider_id)| json!([id, details.get(&(provider.as_str(), provider_id.as_str()))]))
            .collect();
        sqlx::query(
            "INSERT INTO message_history (message_id, at, state, detail)
             SELECT h.value ->> 0, ?2, m.state, h.value ->> 1 FROM json_each(?1) h JOIN messages m ON m.id = h.value ->> 0",
        )
        .bind(history.to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(moved.len() as u64)
    }
}
