//! Members and events on SQLite.

use jiff::Timestamp;
use std::collections::{HashMap, HashSet};

use super::{SqliteStore, entry, next_change};
use crate::members::builtin::{BuiltinEvents, RecordedEvent, RecordedRow};
use crate::members::{EventInput, Member, MemberInput};
use crate::store::Result;
use crate::store::types::{
    EventCounts, MEMBER_COLUMNS, MEMBERS, PLAIN_MEMBER_COLUMNS, UpsertCounts, event_rows, member_from_row, member_rows,
    unknown_members,
};
use crate::triggers::narrow::{DateColumn, Source};

impl SqliteStore {
    /// Inserts or updates members by external id, in one transaction. A row identical to the
    /// stored one is left alone (its `updated_at` does not move), so re-importing changes nothing.
    /// Set-based: two statements per run of rows, where a run ends before an id repeats (so a
    /// later row for the same member sees, and updates, the earlier one).
    pub async fn upsert_members(
        &self,
        rows: &[MemberInput],
        now: Timestamp,
        builtin: &BuiltinEvents,
    ) -> Result<UpsertCounts> {
        let mut counts = UpsertCounts::default();
        let mut tx = self.begin().await?;
        let change = next_change(&mut tx).await?;
        let mut start = 0;
        while start < rows.len() {
            let mut seen = HashSet::new();
            let end = start + rows[start..].iter().take_while(|m| seen.insert(m.external_id.as_str())).count();
            upsert_run(&mut tx, &rows[start..end], now, change, builtin, &mut counts).await?;
            start = end;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Records events and moves each member's `last_activity_at` forward (never back). Set-based:
    /// the events, then the members they moved, one statement each.
    pub async fn record_events(
        &self,
        events: &[EventInput],
        now: Timestamp,
        builtin: &BuiltinEvents,
    ) -> Result<EventCounts> {
        if events.is_empty() {
            return Ok(EventCounts::default());
        }
        let rows = event_rows(events);
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let change = next_change(&mut tx).await?;
        let known: HashSet<String> = sqlx::query_scalar(
            "SELECT external_id FROM members WHERE external_id IN (SELECT j.value ->> 'member' FROM json_each(?) j)",
        )
        .bind(&rows)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
        let recorded: Vec<RecordedEvent> = sqlx::query_as::<_, RecordedRow>(
            "INSERT INTO events (event_id, member_id, kind, amount, at, received_at, data, change_seq)
             SELECT j.value ->> 'event_id', m.id, j.value ->> 'kind', j.value ->> 'amount', j.value ->> 'at', ?2,
                    j.value ->> 'data', ?3
             FROM json_each(?1) j JOIN members m ON m.external_id = j.value ->> 'member'
             WHERE true
             ON CONFLICT (event_id) DO NOTHING
             RETURNING id, member_id, at, kind, amount, event_id",
        )
        .bind(&rows)
        .bind(now_ms)
        .bind(change)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(RecordedEvent::from)
        .collect();
        let pairs: Vec<(i64, i64)> = recorded.iter().map(|e| (e.member_id, e.at)).collect();
        sqlx::query(
            "UPDATE members SET last_activity_at = x.at, updated_at = ?2, change_seq = ?3
             FROM (SELECT j.value ->> 0 AS member_id, max(j.value ->> 1) AS at FROM json_each(?1) j GROUP BY 1) x
             WHERE members.id = x.member_id AND (members.last_activity_at IS NULL OR members.last_activity_at < x.at)",
        )
        .bind(serde_json::to_string(&pairs).expect("pairs serialize"))
        .bind(now_ms)
        .bind(change)
        .execute(&mut *tx)
        .await?;
        let buyers: Vec<i64> = recorded.iter().filter(|e| builtin.is_purchase(&e.kind)).map(|e| e.member_id).collect();
        let had = entry::had_purchase(&mut tx, &buyers, &builtin.purchase_kinds, change).await?;
        entry::insert_builtin(&mut tx, &builtin.first_purchases(&recorded, &had), change, now_ms).await?;
        tx.commit().await?;
        let unknown = unknown_members(events, &known);
        Ok(EventCounts {
            recorded: recorded.len() as u64,
            duplicate: (events.len() - unknown.len() - recorded.len()) as u64,
            unknown_members: unknown,
            recorded_ids: recorded.iter().filter_map(|e| e.event_id.clone()).collect(),
        })
    }

    pub async fn member_by_external_id(&self, external_id: &str) -> Result<Option<Member>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE external_id = ?"));
        let row = sqlx::query(sql).bind(external_id).fetch_optional(&self.read).await?;
        row.map(|r| member_from_row(&r)).transpose()
    }

    /// Members with id greater than `after`, in id order: the evaluator's keyset pagination.
    pub async fn members_after(&self, after: i64, limit: u32, value: bool) -> Result<Vec<Member>> {
        let (cols, from) = if value { (MEMBER_COLUMNS, MEMBERS) } else { (PLAIN_MEMBER_COLUMNS, "members") };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM {from} WHERE members.id > ? AND members.erased_at IS NULL ORDER BY members.id LIMIT ?"
        ));
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.read).await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Members selected by one narrowing source, in its key's order then id, after the cursor
    /// `(key, id)` (the key is ignored by equality sources, paged by id alone): the evaluator's
    /// candidate reads, each an index range scan.
    pub async fn members_where(
        &self,
        source: &Source,
        after: (i64, i64),
        limit: u32,
        value: bool,
    ) -> Result<Vec<Member>> {
        let (cols, from) = if value { (MEMBER_COLUMNS, MEMBERS) } else { (PLAIN_MEMBER_COLUMNS, "members") };
        let live = "members.erased_at IS NULL";
        let (key, hi) = match source {
            Source::MonthDay { column, md } => {
                let col = match column {
                    DateColumn::BirthDate => "substr(members.birth_date, -5)",
                    DateColumn::MemberSince => "substr(members.member_since, -5)",
                };
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {cols} FROM {from} WHERE {col} = ?1 AND members.id > ?2 AND {live}
                     ORDER BY members.id LIMIT ?3"
                ));
                let rows = sqlx::query(sql).bind(md).bind(after.1).bind(limit).fetch_all(&self.read).await?;
                return rows.iter().map(member_from_row).collect();
            }
            Source::LunarBirthday(b) => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {cols} FROM {from} WHERE members.lunar_birthday = ?1 AND members.id > ?2 AND {live}
                     ORDER BY members.id LIMIT ?3"
                ));
                let rows = sqlx::query(sql).bind(b).bind(after.1).bind(limit).fetch_all(&self.read).await?;
                return rows.iter().map(member_from_row).collect();
            }
            Source::ActivityBetween { to, .. } => ("coalesce(members.last_activity_at, members.created_at)", *to),
            Source::ChangedAfter(_) => ("members.change_seq", i64::MAX),
        };
        // SQLite seeks a row value's first column only (a page would rescan every row sharing
        // the cursor's key): the rest of the cursor's key by id, then the keys after it.
        let same = sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM {from} WHERE {key} = ?1 AND members.id > ?2 AND {key} <= ?4 AND {live}
             ORDER BY members.id LIMIT ?3"
        ));
        let mut rows = sqlx::query(same).bind(after.0).bind(after.1).bind(limit).bind(hi).fetch_all(&self.read).await?;
        if rows.len() < limit as usize {
            let next = sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM {from} WHERE {key} > ?1 AND {key} <= ?3 AND {live}
                 ORDER BY {key}, members.id LIMIT ?2"
            ));
            let rest = limit - rows.len() as u32;
            rows.extend(sqlx::query(next).bind(after.0).bind(rest).bind(hi).fetch_all(&self.read).await?);
        }
        rows.iter().map(member_from_row).collect()
    }

    /// Members by row id (for rendering a claimed batch).
    pub async fn members_by_ids(&self, ids: &[i64]) -> Result<Vec<Member>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE members.id IN (SELECT value FROM json_each(?))"
        ));
        let rows =
            sqlx::query(sql).bind(serde_json::to_string(ids).expect("ids serialize")).fetch_all(&self.read).await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM members WHERE erased_at IS NULL").fetch_one(&self.read).await?)
    }
}

async fn upsert_run(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: &[MemberInput],
    now: Timestamp,
    change: i64,
    builtin: &BuiltinEvents,
    counts: &mut UpsertCounts,
) -> Result<()> {
    let batch = member_rows(rows);
    // With their tiers before the write: a tier change is a built-in event.
    let existing: HashMap<String, Option<String>> = sqlx::query_as(
        "SELECT external_id, tier FROM members
         WHERE external_id IN (SELECT j.value ->> 'external_id' FROM json_each(?) j)",
    )
    .bind(&batch)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
    let written: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "INSERT INTO members (external_id, name, phone, email, locale, time_zone, birth_date,
                              lunar_birthday, member_since, tier, points, attributes, created_at, updated_at, change_seq)
         SELECT j.value ->> 'external_id', j.value ->> 'name', j.value ->> 'phone', j.value ->> 'email',
                j.value ->> 'locale', j.value ->> 'time_zone', j.value ->> 'birth_date',
                j.value ->> 'lunar_birthday', j.value ->> 'member_since', j.value ->> 'tier', j.value ->> 'points',
                j.value ->> 'attributes', ?2, ?2, ?3
         FROM json_each(?1) j WHERE true
         ON CONFLICT (external_id) DO UPDATE SET
             name = excluded.name, phone = excluded.phone, email = excluded.email,
             locale = excluded.locale, time_zone = excluded.time_zone,
             birth_date = excluded.birth_date, lunar_birthday = excluded.lunar_birthday,
             member_since = excluded.member_since,
             tier = excluded.tier, points = excluded.points, attributes = excluded.attributes,
             updated_at = excluded.updated_at, change_seq = excluded.change_seq
         WHERE members.name IS NOT excluded.name OR members.phone IS NOT excluded.phone
            OR members.email IS NOT excluded.email OR members.locale IS NOT excluded.locale
            OR members.time_zone IS NOT excluded.time_zone
            OR members.birth_date IS NOT excluded.birth_date
            OR members.lunar_birthday IS NOT excluded.lunar_birthday
            OR members.member_since IS NOT excluded.member_since
            OR members.tier IS NOT excluded.tier OR members.points IS NOT excluded.points
            OR members.attributes IS NOT excluded.attributes
         RETURNING id, external_id, tier",
    )
    .bind(&batch)
    .bind(now.as_millisecond())
    .bind(change)
    .fetch_all(&mut **tx)
    .await?;
    for (_, id, _) in &written {
        if existing.contains_key(id) {
            counts.updated += 1;
        } else {
            counts.inserted += 1;
        }
    }
    counts.unchanged += (rows.len() - written.len()) as u64;
    let now_ms = now.as_millisecond();
    entry::insert_builtin(tx, &builtin.of_upsert(&written, &existing, change, now_ms), change, now_ms).await?;
    Ok(())
}
