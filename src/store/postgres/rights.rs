//! Member rights on PostgreSQL: the SQLite module's steps in PostgreSQL's dialect, in the same
//! order. The export reads one REPEATABLE READ snapshot; the erasure locks the member's row.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{PgStore, next_change};
use crate::rights::{ERASED_REASON, HashKey, erasure_suppressions, member_addresses, scrub};
use crate::store::Result;
use crate::store::rights::{
    EXPORT_MESSAGE_COLUMNS, ErasureReport, ExportRows, device_from_row, event_from_row, export_suppression_keys,
    history_from_row, message_from_row, opt_out_from_row, plain_suppression, suppression_from_row,
};
use crate::store::types::{MEMBER_COLUMNS, MEMBERS, member_from_row, parse_channel, parse_purpose, suppression_rows};

impl PgStore {
    pub async fn export_member(&self, external_id: &str, key: Option<&HashKey>) -> Result<Option<ExportRows>> {
        // One read transaction: one snapshot of every table.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;

        // members, with member_value joined
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE external_id = $1 AND members.erased_at IS NULL"
        ));
        let Some(row) = sqlx::query(sql).bind(external_id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let member = member_from_row(&row)?;
        let id = member.id;

        // events
        let events = sqlx::query(
            "SELECT event_id, kind, amount, at, received_at FROM events WHERE member_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<_>>()?;

        // messages
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_MESSAGE_COLUMNS} FROM messages WHERE member_id = $1 ORDER BY id"
        ));
        let messages =
            sqlx::query(sql).bind(id).fetch_all(&mut *tx).await?.iter().map(message_from_row).collect::<Result<_>>()?;

        // message_history
        let history = sqlx::query(
            "SELECT h.message_id, h.at, h.state, h.detail FROM message_history h
             JOIN messages m ON m.id = h.message_id WHERE m.member_id = $1 ORDER BY h.message_id, h.id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(history_from_row)
        .collect::<Result<_>>()?;

        // push_devices
        let push_devices = sqlx::query(
            "SELECT platform, token, p256dh, auth, created_at FROM push_devices WHERE member_id = $1
             ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(device_from_row)
        .collect::<Result<_>>()?;

        // opt_outs
        let opt_outs = sqlx::query(
            "SELECT channel, purpose, source, created_at FROM opt_outs WHERE member_id = $1
             ORDER BY created_at, channel, purpose",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(opt_out_from_row)
        .collect::<Result<_>>()?;

        // suppressions of the member's addresses, plain or hashed
        let addresses = member_addresses(&member.external_id, member.phone.as_deref(), member.email.as_deref());
        let (channels, addrs): (Vec<String>, Vec<String>) =
            export_suppression_keys(&addresses, key).into_iter().unzip();
        let suppressions = sqlx::query(
            "SELECT s.channel, s.address, s.reason, s.source, s.created_at FROM suppressions s
             JOIN unnest($1::text[], $2::text[]) AS q(channel, address)
               ON s.channel = q.channel AND s.address = q.address
             ORDER BY s.created_at, s.channel",
        )
        .bind(&channels)
        .bind(&addrs)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(suppression_from_row)
        .collect::<Result<_>>()?;

        tx.rollback().await?;
        Ok(Some(ExportRows { member, events, messages, history, push_devices, opt_outs, suppressions }))
    }

    pub async fn erase_member(
        &self,
        external_id: &str,
        key: &HashKey,
        tombstone: &str,
        now: Timestamp,
    ) -> Result<Option<ErasureReport>> {
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;

        // members: who, and every string that would link a kept row to them
        let Some((id, phone, email)): Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, phone, email FROM members WHERE external_id = $1 AND erased_at IS NULL FOR UPDATE",
        )
        .bind(external_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let addresses = member_addresses(external_id, phone.as_deref(), email.as_deref());
        let tokens: Vec<String> = sqlx::query_scalar("SELECT token FROM push_devices WHERE member_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let provider_ids: Vec<String> =
            sqlx::query_scalar("SELECT provider_id FROM messages WHERE member_id = $1 AND provider_id IS NOT NULL")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let needles: Vec<String> = addresses.iter().map(|(_, a)| a.clone()).chain(tokens).chain(provider_ids).collect();
        let mut report = ErasureReport { member_id: id, tombstone: tombstone.to_string(), ..Default::default() };

        // suppressions: the member's suppressed addresses and opt-outs, kept only hashed
        let channels: Vec<&str> = addresses.iter().map(|(c, _)| c.as_str()).collect();
        let addrs: Vec<&str> = addresses.iter().map(|(_, a)| a.as_str()).collect();
        let plain: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT s.channel, s.address, s.reason, s.source FROM suppressions s
             JOIN unnest($1::text[], $2::text[]) AS q(channel, address)
               ON s.channel = q.channel AND s.address = q.address",
        )
        .bind(&channels)
        .bind(&addrs)
        .fetch_all(&mut *tx)
        .await?;
        let plain = plain.into_iter().map(plain_suppression).collect::<Result<Vec<_>>>()?;
        let opt_outs: Vec<(String, String)> =
            sqlx::query_as("SELECT channel, purpose FROM opt_outs WHERE member_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let opt_outs =
            opt_outs.iter().map(|(c, p)| Ok((parse_channel(c)?, parse_purpose(p)?))).collect::<Result<Vec<_>>>()?;
        let hashed = erasure_suppressions(key, &addresses, &plain, &opt_outs, &needles);
        report.suppressions_removed = sqlx::query(
            "DELETE FROM suppressions s USING unnest($1::text[], $2::text[]) AS q(channel, address)
             WHERE s.channel = q.channel AND s.address = q.address",
        )
        .bind(&channels)
        .bind(&addrs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        report.suppressions_hashed = sqlx::query(
            "INSERT INTO suppressions (channel, address, reason, source, created_at)
             SELECT j.channel, j.address, j.reason, j.source, $2::bigint
             FROM jsonb_to_recordset($1::jsonb) AS j(channel text, address text, reason text, source text)
             ON CONFLICT (channel, address) DO NOTHING",
        )
        .bind(suppression_rows(&hashed))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();

        // opt_outs (now in suppressions, hashed): the revocations among the consents, deleted
        // with them below
        report.opt_outs_deleted = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM opt_outs WHERE member_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await? as u64;

        // push_devices
        report.push_devices_deleted = sqlx::query("DELETE FROM push_devices WHERE member_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();

        // events
        report.events_deleted =
            sqlx::query("DELETE FROM events WHERE member_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();

        // consents and consent_history (the opt-outs among them are now hashed suppressions)
        report.consents_deleted =
            sqlx::query("DELETE FROM consents WHERE member_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM consent_history WHERE member_id = $1").bind(id).execute(&mut *tx).await?;

        // audit_log: entries about the member keep when, who and what, not the details
        report.audit_scrubbed =
            sqlx::query("UPDATE audit_log SET subject = $2, detail = '{\"erased\":true}' WHERE subject = $1")
                .bind(format!("member:{external_id}"))
                .bind(format!("member:{tombstone}"))
                .execute(&mut *tx)
                .await?
                .rows_affected();

        // send_requests: transactional idempotency keys name the member in their request
        sqlx::query("DELETE FROM send_requests WHERE (request::jsonb ->> 'member') = $1")
            .bind(external_id)
            .execute(&mut *tx)
            .await?;

        // journey_runs and coupon_codes: kept, pointing at the tombstone (states and issued
        // codes for statistics; nothing in them names the person)

        // occurrence keys can hold the member's dates (`date:birth_date:1990-05-01`) or the
        // host's idempotency key: messages and journey runs keep an opaque key instead
        sqlx::query(
            "UPDATE messages SET occurrence = 'erased', dedupe_key = rule_id || ':erased:' || id WHERE member_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE journey_runs SET entry_key = 'erased:' || id WHERE member_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;

        // member_value
        report.member_value_deleted = sqlx::query("DELETE FROM member_value WHERE member_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();

        // messages: what has not gone to a provider yet is skipped
        let skipped: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages SET state = 'skipped', reason = $2, lease_owner = NULL, lease_until = NULL,
                    updated_at = $3::bigint
             WHERE member_id = $1 AND state IN ('scheduled', 'claimed') RETURNING id",
        )
        .bind(id)
        .bind(ERASED_REASON)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        report.messages_skipped = skipped.len() as u64;
        sqlx::query(
            "INSERT INTO message_history (message_id, at, state, detail)
             SELECT id, $2::bigint, 'skipped', $3 FROM unnest($1::bigint[]) AS id",
        )
        .bind(&skipped)
        .bind(now_ms)
        .bind(ERASED_REASON)
        .execute(&mut *tx)
        .await?;

        // messages: anonymised; states and instants stay for statistics
        let reasons: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, reason FROM messages WHERE member_id = $1").bind(id).fetch_all(&mut *tx).await?;
        let rows: Value = reasons.iter().map(|(m, r)| json!([m, r.as_deref().map(|r| scrub(r, &needles))])).collect();
        report.messages_anonymised = sqlx::query(
            "UPDATE messages SET vars = '{}', rendered = NULL, provider_id = NULL, reason = j ->> 1
             FROM jsonb_array_elements($1::jsonb) AS j WHERE messages.id = (j ->> 0)::bigint",
        )
        .bind(rows.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();

        // message_history: details scrubbed of addresses and provider ids
        let details: Vec<(i64, String)> = sqlx::query_as(
            "SELECT h.id, h.detail FROM message_history h JOIN messages m ON m.id = h.message_id
             WHERE m.member_id = $1 AND h.detail IS NOT NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let changed: Value = details
            .iter()
            .filter_map(|(h, d)| {
                let s = scrub(d, &needles);
                (&s != d).then(|| json!([h, s]))
            })
            .collect();
        report.history_scrubbed = sqlx::query(
            "UPDATE message_history SET detail = j ->> 1 FROM jsonb_array_elements($1::jsonb) AS j
             WHERE message_history.id = (j ->> 0)::bigint",
        )
        .bind(changed.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();

        // members: the row becomes a tombstone
        let change = next_change(&mut tx).await?;
        sqlx::query(
            "UPDATE members SET external_id = $2, name = '', phone = NULL, email = NULL, locale = NULL,
                    time_zone = NULL, birth_date = NULL, lunar_birthday = NULL, member_since = NULL, tier = NULL,
                    points = 0, attributes = '{}', last_activity_at = NULL, updated_at = $3::bigint,
                    erased_at = $3::bigint, change_seq = $4::bigint
             WHERE id = $1",
        )
        .bind(id)
        .bind(tombstone)
        .bind(now_ms)
        .bind(change)
        .execute(&mut *tx)
        .await?;

        tx.commit().await?;
        Ok(Some(report))
    }

    pub async fn tables_with_member_id(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND column_name = 'member_id' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
