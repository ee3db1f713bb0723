//! Consent, its history and the audit log on SQLite. Batches go in as one JSON document read
//! with `json_each`; a batch of changes is four statements in one transaction whatever its size.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::Value;

use super::SqliteStore;
use crate::channels::{ChannelKind, Purpose};
use crate::store::Result;
use crate::store::consent::{
    AuditEntry, AuditFilter, ConfigChange, ConsentChange, ConsentOutcome, ConsentRecord, ResolvedChange, config_action,
    consent_audit_rows, last_per_key,
};
use crate::store::types::{parse_channel, parse_purpose, ts};

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

impl SqliteStore {
    pub async fn change_consent(
        &self,
        changes: &[ConsentChange],
        actor: &str,
        now: Timestamp,
    ) -> Result<ConsentOutcome> {
        let changes = last_per_key(changes);
        let ids: Value = changes.iter().map(|c| Value::from(c.member.as_str())).collect();
        let mut tx = self.begin().await?;
        let members: HashMap<String, i64> = sqlx::query_as::<_, (i64, String)>(
            "SELECT id, external_id FROM members WHERE external_id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids.to_string())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id, ext)| (ext, id))
        .collect();
        let mut outcome = ConsentOutcome::default();
        let mut rows = Vec::new();
        for c in &changes {
            match members.get(&c.member) {
                Some(&id) => rows.push(ResolvedChange::new(id, &c.member, c.channel, c.purpose, c.granted, &c.source)),
                None => outcome.unknown_members.push(c.member.clone()),
            }
        }
        outcome.unknown_members.dedup();
        let applied = apply(&mut tx, &rows, actor, now).await?;
        tx.commit().await?;
        outcome.changed = applied as u64;
        outcome.unchanged = (rows.len() - applied) as u64;
        Ok(outcome)
    }

    pub async fn revoke_address(
        &self,
        channel: ChannelKind,
        address: &str,
        purposes: &[Purpose],
        source: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let sql = match channel {
            ChannelKind::Sms => "SELECT id, external_id FROM members WHERE phone = ?",
            ChannelKind::Email => "SELECT id, external_id FROM members WHERE email = ?",
            ChannelKind::Push | ChannelKind::Webhook => return Ok(0),
        };
        let mut tx = self.begin().await?;
        let members: Vec<(i64, String)> = sqlx::query_as(sql).bind(address).fetch_all(&mut *tx).await?;
        let rows: Vec<ResolvedChange> = members
            .iter()
            .flat_map(|(id, ext)| {
                purposes.iter().map(move |&p| ResolvedChange::new(*id, ext, channel, p, false, source))
            })
            .collect();
        apply(&mut tx, &rows, actor, now).await?;
        tx.commit().await?;
        Ok(members.len() as u64)
    }

    pub async fn consents(&self, member_ids: &[i64]) -> Result<HashMap<(i64, ChannelKind, Purpose), bool>> {
        if member_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Value = member_ids.iter().copied().collect();
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT member_id, channel, purpose, status FROM consents
             WHERE member_id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(|(m, c, p, s)| Ok(((m, parse_channel(&c)?, parse_purpose(&p)?), s == "granted"))).collect()
    }

    pub async fn member_consent(&self, external_id: &str) -> Result<Option<(Vec<ConsentRecord>, Vec<ConsentRecord>)>> {
        let Some(id): Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = ?")
            .bind(external_id)
            .fetch_optional(&self.write)
            .await?
        else {
            return Ok(None);
        };
        let current: Vec<Row> = sqlx::query_as(
            "SELECT channel, purpose, status, source, actor, changed_at FROM consents WHERE member_id = ?
             ORDER BY channel, purpose",
        )
        .bind(id)
        .fetch_all(&self.write)
        .await?;
        let history: Vec<Row> = sqlx::query_as(
            "SELECT channel, purpose, status, source, actor, at FROM consent_history WHERE member_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.write)
        .await?;
        Ok(Some((records(current)?, records(history)?)))
    }

    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &Value,
        now: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(now.as_millisecond())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail.to_string())
        .fetch_one(&self.write)
        .await?)
    }

    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, at, actor, action, subject, detail FROM audit_log
             WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(f.subject.as_deref())
        .bind(f.action.as_deref())
        .bind(f.before)
        .bind(i64::from(f.limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(crate::store::consent::audit_entry).collect()
    }

    pub async fn audited_config(&self, kind: &str) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, digest FROM audited_config WHERE kind = ?")
            .bind(kind)
            .fetch_all(&self.write)
            .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn record_config_changes(&self, changes: &[ConfigChange], actor: &str, now: Timestamp) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for c in changes {
            let previous: Option<String> =
                sqlx::query_scalar("SELECT digest FROM audited_config WHERE kind = ? AND name = ?")
                    .bind(&c.kind)
                    .bind(&c.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if previous == c.digest {
                continue;
            }
            let detail = serde_json::json!({"digest": c.digest, "previous": previous});
            sqlx::query("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)")
                .bind(now.as_millisecond())
                .bind(actor)
                .bind(config_action(c, previous.is_some()))
                .bind(format!("{}:{}", c.kind, c.name))
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
            match &c.digest {
                Some(d) => {
                    sqlx::query(
                        "INSERT INTO audited_config (kind, name, digest) VALUES (?, ?, ?)
                     ON CONFLICT (kind, name) DO UPDATE SET digest = excluded.digest",
                    )
                    .bind(&c.kind)
                    .bind(&c.name)
                    .bind(d)
                    .execute(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query("DELETE FROM audited_config WHERE kind = ? AND name = ?")
                        .bind(&c.kind)
                        .bind(&c.name)
                        .execute(&mut *tx)
                        .await?
                }
            };
        }
        tx.commit().await?;
        Ok(())
    }
}

type Row = (String, String, String, String, String, i64);

fn records(rows: Vec<Row>) -> Result<Vec<ConsentRecord>> {
    rows.into_iter()
        .map(|(c, p, s, source, actor, at)| {
            Ok(ConsentRecord {
                channel: parse_channel(&c)?,
                purpose: parse_purpose(&p)?,
                granted: s == "granted",
                source,
                actor,
                at: ts(at)?,
            })
        })
        .collect()
}

/// Applies resolved changes: the upsert decides which move the stored state (see the module
/// comment of `store::consent`), and those get their history rows and audit entries. Returns
/// how many moved.
async fn apply(tx: &mut Tx, rows: &[ResolvedChange], actor: &str, now: Timestamp) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_string(rows).expect("rows serialize");
    let moved: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO consents (member_id, channel, purpose, status, source, actor, changed_at)
         SELECT j.value ->> 'member_id', j.value ->> 'channel', j.value ->> 'purpose', j.value ->> 'status',
                j.value ->> 'source', ?2, ?3
         FROM json_each(?1) j WHERE true
         ON CONFLICT (member_id, channel, purpose) DO UPDATE
            SET status = excluded.status, source = excluded.source, actor = excluded.actor,
                changed_at = excluded.changed_at
          WHERE (consents.status <> excluded.status OR (excluded.actor = 'member' AND consents.actor <> 'member'))
            AND NOT (excluded.actor = 'import' AND excluded.status = 'granted'
                     AND consents.status = 'revoked' AND consents.actor = 'member')
         RETURNING member_id, channel, purpose",
    )
    .bind(&json)
    .bind(actor)
    .bind(now.as_millisecond())
    .fetch_all(&mut **tx)
    .await?;
    let moved: std::collections::HashSet<(i64, String, String)> = moved.into_iter().collect();
    let applied: Vec<ResolvedChange> = rows
        .iter()
        .filter(|r| moved.contains(&(r.member_id, r.channel.to_string(), r.purpose.to_string())))
        .cloned()
        .collect();
    if applied.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO consent_history (member_id, channel, purpose, status, source, actor, at)
         SELECT j.value ->> 'member_id', j.value ->> 'channel', j.value ->> 'purpose', j.value ->> 'status',
                j.value ->> 'source', ?2, ?3
         FROM json_each(?1) j",
    )
    .bind(serde_json::to_string(&applied).expect("rows serialize"))
    .bind(actor)
    .bind(now.as_millisecond())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail)
         SELECT ?3, ?2, j.value ->> 'action', j.value ->> 'subject', j.value ->> 'detail' FROM json_each(?1) j",
    )
    .bind(consent_audit_rows(&applied))
    .bind(actor)
    .bind(now.as_millisecond())
    .execute(&mut **tx)
    .await?;
    Ok(applied.len())
}
