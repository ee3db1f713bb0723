//! Members and events on PostgreSQL: the SQLite module's statements in PostgreSQL's dialect.

use jiff::Timestamp;
use std::collections::{HashMap, HashSet};

use super::{PgStore, entry, next_change};
use crate::members::builtin::{BuiltinEvents, RecordedEvent, RecordedRow};
use crate::members::{EventInput, Member, MemberInput};
use crate::store::Result;
use crate::store::types::{
    EventCounts, MEMBER_COLUMNS, MEMBERS, PLAIN_MEMBER_COLUMNS, UpsertCounts, event_rows, member_from_row, member_rows,
    unknown_members,
};
use crate::triggers::narrow::{DateColumn, Source};

impl PgStore {
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
        // Runs without a repeated id: PostgreSQL also refuses to update one row twice in a
        // statement.
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
            "SELECT external_id FROM members
             WHERE external_id IN (SELECT j ->> 'member' FROM jsonb_array_elements($1::jsonb) j)",
        )
        .bind(&rows)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let recorded: Vec<RecordedEvent> = sqlx::query_as::<_, RecordedRow>(
            "INSERT INTO events (event_id, member_id, kind, amount, at, received_at, data, change_seq)
             SELECT e.event_id, m.id, e.kind, e.amount, e.at, $2::bigint, e.data, $3::bigint
             FROM jsonb_to_recordset($1::jsonb)
                  AS e(event_id text, member text, kind text, amount double precision, at bigint, data text)
             JOIN members m ON m.external_id = e.member
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
        let (ids, ats): (Vec<i64>, Vec<i64>) = recorded.iter().map(|e| (e.member_id, e.at)).unzip();
        sqlx::query(
            "UPDATE members AS m SET last_activity_at = x.at, updated_at = $3::bigint, change_seq = $4::bigint
             FROM (SELECT member_id, max(at) AS at FROM unnest($1::bigint[], $2::bigint[]) AS r(member_id, at)
                   GROUP BY member_id) x
             WHERE m.id = x.member_id AND (m.last_activity_at IS NULL OR m.last_activity_at < x.at)",
        )
        .bind(&ids)
        .bind(&ats)
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
        let sql = sqlx::AssertSqlSafe(format!("SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE external_id = $1"));
        let row = sqlx::query(sql).bind(external_id).fetch_optional(&self.pool).await?;
        row.map(|r| member_from_row(&r)).transpose()
    }

    pub async fn members_after(&self, after: i64, limit: u32, value: bool) -> Result<Vec<Member>> {
        let (cols, from) = if value { (MEMBER_COLUMNS, MEMBERS) } else { (PLAIN_MEMBER_COLUMNS, "members") };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM {from} WHERE members.id > $1::bigint AND members.erased_at IS NULL
             ORDER BY members.id LIMIT $2::bigint"
        ));
        let rows = sqlx::query(sql).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?;
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
        let (filter, order, text, hi) = match source {
            Source::MonthDay { column, md } => {
                let col = match column {
                    DateColumn::BirthDate => "right(members.birth_date, 5)",
                    DateColumn::MemberSince => "right(members.member_since, 5)",
                };
                (
                    format!("{col} = $1::text AND members.id > $2::bigint"),
                    "members.id".to_string(),
                    Some(md.as_str()),
                    None,
                )
            }
            Source::LunarBirthday(b) => (
                "members.lunar_birthday = $1::text AND members.id > $2::bigint".to_string(),
                "members.id".to_string(),
                Some(b.as_str()),
                None,
            ),
            Source::ActivityBetween { to, .. } => {
                let key = "coalesce(members.last_activity_at, members.created_at)";
                (
                    format!("({key}, members.id) > ($1::bigint, $2::bigint) AND {key} <= $4::bigint"),
                    format!("{key}, members.id"),
                    None,
                    Some(*to),
                )
            }
            Source::ChangedAfter(_) => (
                "(members.change_seq, members.id) > ($1::bigint, $2::bigint)".to_string(),
                "members.change_seq, members.id".to_string(),
                None,
                None,
            ),
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM {from} WHERE {filter} AND {live} ORDER BY {order} LIMIT $3::bigint"
        ));
        let query = sqlx::query(sql);
        let query = match text {
            Some(t) => query.bind(t),
            None => query.bind(after.0),
        };
        let query = query.bind(after.1).bind(i64::from(limit));
        let query = match hi {
            Some(hi) => query.bind(hi),
            None => query,
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn members_by_ids(&self, ids: &[i64]) -> Result<Vec<Member>> {
        let sql =
            sqlx::AssertSqlSafe(format!("SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE members.id = ANY($1::bigint[])"));
        let rows = sqlx::query(sql).bind(ids).fetch_all(&self.pool).await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM members WHERE erased_at IS NULL").fetch_one(&self.pool).await?)
    }
}

async fn upsert_run(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
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
         WHERE external_id IN (SELECT j ->> 'external_id' FROM jsonb_array_elements($1::jsonb) j)",
    )
    .bind(&batch)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let written: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "INSERT INTO members AS m (external_id, name, phone, email, locale, time_zone, birth_date,
                                   lunar_birthday, member_since, tier, points, attributes, created_at, updated_at, change_seq)
         SELECT j.external_id, j.name, j.phone, j.email, j.locale, j.time_zone, j.birth_date,
                j.lunar_birthday, j.member_since, j.tier, j.points, j.attributes, $2::bigint, $2::bigint, $3::bigint
         FROM jsonb_to_recordset($1::jsonb) AS j(external_id text, name text, phone text, email text,
              locale text, time_zone text, birth_date text, lunar_birthday text, member_since text, tier text, points bigint,
              attributes text)
         ON CONFLICT (external_id) DO UPDATE SET
             name = excluded.name, phone = excluded.phone, email = excluded.email,
             locale = excluded.locale, time_zone = excluded.time_zone,
             birth_date = excluded.birth_date, lunar_birthday = excluded.lunar_birthday,
             member_since = excluded.member_since,
             tier = excluded.tier, points = excluded.points, attributes = excluded.attributes,
             updated_at = excluded.updated_at, change_seq = excluded.change_seq
         WHERE m.name IS DISTINCT FROM excluded.name OR m.phone IS DISTINCT FROM excluded.phone
            OR m.email IS DISTINCT FROM excluded.email OR m.locale IS DISTINCT FROM excluded.locale
            OR m.time_zone IS DISTINCT FROM excluded.time_zone
            OR m.birth_date IS DISTINCT FROM excluded.birth_date
            OR m.lunar_birthday IS DISTINCT FROM excluded.lunar_birthday
            OR m.member_since IS DISTINCT FROM excluded.member_since
            OR m.tier IS DISTINCT FROM excluded.tier OR m.points IS DISTINCT FROM excluded.points
            OR m.attributes IS DISTINCT FROM excluded.attributes
         RETURNING m.id, m.external_id, m.tier",
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
