//! Members and events in the store.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError, opt_ts, ts};
use crate::members::{EventInput, Member, MemberInput};

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// What recording events did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventCounts {
    pub recorded: u64,
    /// Already recorded (same `event_id`).
    pub duplicate: u64,
    /// External ids of members not found; those events were not recorded.
    pub unknown_members: Vec<String>,
}

const MEMBER_COLUMNS: &str = "id, external_id, name, phone, email, locale, time_zone, birth_date, member_since, \
     tier, points, attributes, last_activity_at, created_at, updated_at";

impl Store {
    /// Inserts or updates members by external id, in one transaction. A row identical to the
    /// stored one is left alone (its `updated_at` does not move), so re-importing changes nothing.
    pub async fn upsert_members(&self, rows: &[MemberInput], now: Timestamp) -> Result<UpsertCounts> {
        let mut counts = UpsertCounts::default();
        let mut tx = self.begin().await?;
        for m in rows {
            let attributes = Value::Object(m.attributes.clone()).to_string();
            // Asked first: `created_at` cannot tell an insert from an update in the same millisecond.
            let existed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM members WHERE external_id = ?)")
                .bind(&m.external_id)
                .fetch_one(&mut *tx)
                .await?;
            let written: Option<i64> = sqlx::query_scalar(
                "INSERT INTO members (external_id, name, phone, email, locale, time_zone, birth_date,
                                      member_since, tier, points, attributes, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (external_id) DO UPDATE SET
                     name = excluded.name, phone = excluded.phone, email = excluded.email,
                     locale = excluded.locale, time_zone = excluded.time_zone,
                     birth_date = excluded.birth_date, member_since = excluded.member_since,
                     tier = excluded.tier, points = excluded.points, attributes = excluded.attributes,
                     updated_at = excluded.updated_at
                 WHERE members.name IS NOT excluded.name OR members.phone IS NOT excluded.phone
                    OR members.email IS NOT excluded.email OR members.locale IS NOT excluded.locale
                    OR members.time_zone IS NOT excluded.time_zone
                    OR members.birth_date IS NOT excluded.birth_date
                    OR members.member_since IS NOT excluded.member_since
                    OR members.tier IS NOT excluded.tier OR members.points IS NOT excluded.points
                    OR members.attributes IS NOT excluded.attributes
                 RETURNING id",
            )
            .bind(&m.external_id)
            .bind(&m.name)
            .bind(&m.phone)
            .bind(&m.email)
            .bind(&m.locale)
            .bind(&m.time_zone)
            .bind(m.birth_date.map(|d| d.to_string()))
            .bind(m.member_since.map(|d| d.to_string()))
            .bind(&m.tier)
            .bind(m.points)
            .bind(attributes)
            .bind(now.as_millisecond())
            .bind(now.as_millisecond())
            .fetch_optional(&mut *tx)
            .await?;
            match (written, existed) {
                (None, _) => counts.unchanged += 1,
                (Some(_), false) => counts.inserted += 1,
                (Some(_), true) => counts.updated += 1,
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Records events and moves each member's `last_activity_at` forward (never back).
    pub async fn record_events(&self, events: &[EventInput], now: Timestamp) -> Result<EventCounts> {
        let mut counts = EventCounts::default();
        let mut tx = self.begin().await?;
        for e in events {
            let member: Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE external_id = ?")
                .bind(&e.member)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(member_id) = member else {
                counts.unknown_members.push(e.member.clone());
                continue;
            };
            let inserted = sqlx::query(
                "INSERT INTO events (event_id, member_id, kind, amount, at, received_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&e.event_id)
            .bind(member_id)
            .bind(&e.kind)
            .bind(e.amount)
            .bind(e.at.as_millisecond())
            .bind(now.as_millisecond())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                counts.duplicate += 1;
                continue;
            }
            counts.recorded += 1;
            sqlx::query(
                "UPDATE members SET last_activity_at = ?, updated_at = ?
                 WHERE id = ? AND (last_activity_at IS NULL OR last_activity_at < ?)",
            )
            .bind(e.at.as_millisecond())
            .bind(now.as_millisecond())
            .bind(member_id)
            .bind(e.at.as_millisecond())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    pub async fn member_by_external_id(&self, external_id: &str) -> Result<Option<Member>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {MEMBER_COLUMNS} FROM members WHERE external_id = ?"));
        let row = sqlx::query(sql).bind(external_id).fetch_optional(&self.read).await?;
        row.map(|r| member_from_row(&r)).transpose()
    }

    /// Members with id greater than `after`, in id order: the evaluator's keyset pagination.
    pub async fn members_after(&self, after: i64, limit: u32) -> Result<Vec<Member>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {MEMBER_COLUMNS} FROM members WHERE id > ? ORDER BY id LIMIT ?"));
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.read).await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Members by row id (for rendering a claimed batch).
    pub async fn members_by_ids(&self, ids: &[i64]) -> Result<Vec<Member>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE id IN (SELECT value FROM json_each(?))"
        ));
        let rows =
            sqlx::query(sql).bind(serde_json::to_string(ids).expect("ids serialize")).fetch_all(&self.read).await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM members").fetch_one(&self.read).await?)
    }
}

fn date(text: Option<String>, column: &str) -> Result<Option<Date>> {
    text.map(|t| t.parse::<Date>().map_err(|e| StoreError::Corrupt(format!("{column} {t:?}: {e}")))).transpose()
}

fn member_from_row(r: &SqliteRow) -> Result<Member> {
    let attributes: String = r.try_get("attributes")?;
    let attributes = match serde_json::from_str::<Value>(&attributes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(Member {
        id: r.try_get("id")?,
        external_id: r.try_get("external_id")?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        locale: r.try_get("locale")?,
        time_zone: r.try_get("time_zone")?,
        birth_date: date(r.try_get("birth_date")?, "birth_date")?,
        member_since: date(r.try_get("member_since")?, "member_since")?,
        tier: r.try_get("tier")?,
        points: r.try_get("points")?,
        attributes,
        last_activity_at: opt_ts(r.try_get("last_activity_at")?)?,
        created_at: ts(r.try_get("created_at")?)?,
        updated_at: ts(r.try_get("updated_at")?)?,
    })
}
