//! Journey runs and coupon pools on SQLite.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::SqliteStore;
use crate::store::journeys::{CouponPool, ExitCounts, JourneyExit, JourneyRun, NewRun};
use crate::store::types::{opt_ts, ts};
use crate::store::{Result, State};

type RunRow = (i64, String, i64, String, i64, String, Option<String>, Option<i64>);

const RUN_COLUMNS: &str = "id, journey_id, member_id, entry_key, entered_at, state, exit_reason, ended_at";

fn run(r: RunRow) -> Result<JourneyRun> {
    Ok(JourneyRun {
        id: r.0,
        journey_id: r.1,
        member_id: r.2,
        entry_key: r.3,
        entered_at: ts(r.4)?,
        state: r.5,
        exit_reason: r.6,
        ended_at: opt_ts(r.7)?,
    })
}

impl SqliteStore {
    pub async fn journey_runs_of(&self, member_ids: &[i64]) -> Result<Vec<JourneyRun>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM journey_runs
             WHERE member_id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        )))
        .bind(serde_json::to_string(member_ids).expect("ids serialize"))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(run).collect()
    }

    pub async fn journey_runs(&self, journey_id: Option<&str>, limit: u32) -> Result<Vec<JourneyRun>> {
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM journey_runs
             WHERE (?1 IS NULL OR journey_id = ?1) ORDER BY id DESC LIMIT ?2"
        )))
        .bind(journey_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(run).collect()
    }

    pub async fn start_journey_runs(&self, runs: &[NewRun]) -> Result<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let rows: Value = runs
            .iter()
            .map(|r| json!([r.journey_id, r.member_id, r.entry_key, r.entered_at.as_millisecond()]))
            .collect();
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO journey_runs (journey_id, member_id, entry_key, entered_at, state)
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, 'active' FROM json_each(?1) j
             WHERE true
             ON CONFLICT (journey_id, member_id, entry_key) DO NOTHING",
        )
        .bind(rows.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn exit_journeys(&self, exits: &[JourneyExit], now: Timestamp) -> Result<ExitCounts> {
        if exits.is_empty() {
            return Ok(ExitCounts::default());
        }
        let rows: Value =
            exits.iter().map(|e| json!([e.journey_id, e.member, e.kind, e.at.as_millisecond()])).collect();
        let now_ms = now.as_millisecond();
        let mut tx = self.begin().await?;
        let ended: Vec<(String, i64, String, String)> = sqlx::query_as(
            "UPDATE journey_runs SET state = 'exited', exit_reason = 'journey exited: ' || x.kind, ended_at = ?2
             FROM (SELECT j.value ->> 0 AS journey, m.id AS member_id, j.value ->> 2 AS kind,
                          j.value ->> 3 AS at
                   FROM json_each(?1) j JOIN members m ON m.external_id = j.value ->> 1) x
             WHERE journey_runs.journey_id = x.journey AND journey_runs.member_id = x.member_id
               AND journey_runs.state = 'active' AND journey_runs.entered_at <= x.at
             RETURNING journey_runs.journey_id, journey_runs.member_id, journey_runs.entry_key, journey_runs.exit_reason",
        )
        .bind(rows.to_string())
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Value = ended.iter().map(|(j, m, k, why)| json!([j, m, k, why])).collect();
        let skipped: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE messages SET state = 'skipped', reason = r.why, lease_owner = NULL, lease_until = NULL,
                    updated_at = ?2
             FROM (SELECT j.value ->> 0 AS journey, j.value ->> 1 AS member_id, j.value ->> 2 AS entry_key,
                          j.value ->> 3 AS why
                   FROM json_each(?1) j) r
             WHERE messages.state = 'scheduled' AND messages.rule_id = r.journey
               AND messages.member_id = r.member_id
               AND substr(messages.occurrence, 1, length(r.entry_key) + 2) = r.entry_key || ':s'
             RETURNING messages.id, messages.reason",
        )
        .bind(runs.to_string())
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if !skipped.is_empty() {
            let history: Value = skipped.iter().map(|(id, why)| json!([id, why])).collect();
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT j.value ->> 0, ?2, ?3, j.value ->> 1 FROM json_each(?1) j",
            )
            .bind(history.to_string())
            .bind(now_ms)
            .bind(State::Skipped.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ExitCounts { runs: ended.len() as u64, messages: skipped.len() as u64 })
    }

    pub async fn complete_journey_runs(&self, run_ids: &[i64], now: Timestamp) -> Result<u64> {
        if run_ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE journey_runs SET state = 'completed', ended_at = ?2
             WHERE state = 'active' AND id IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(run_ids).expect("ids serialize"))
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn latest_events(&self, member_ids: &[i64], kinds: &[String]) -> Result<Vec<(i64, String, Timestamp)>> {
        if member_ids.is_empty() || kinds.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT member_id, kind, MAX(at) FROM events
             WHERE member_id IN (SELECT value FROM json_each(?1)) AND kind IN (SELECT value FROM json_each(?2))
             GROUP BY member_id, kind",
        )
        .bind(serde_json::to_string(member_ids).expect("ids serialize"))
        .bind(serde_json::to_string(kinds).expect("kinds serialize"))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(|(m, k, at)| Ok((m, k, ts(at)?))).collect()
    }

    pub async fn import_coupons(&self, pool: &str, codes: &[String], now: Timestamp) -> Result<u64> {
        if codes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO coupon_codes (pool, code, imported_at)
             SELECT ?1, j.value, ?3 FROM json_each(?2) j WHERE true
             ON CONFLICT (pool, code) DO NOTHING",
        )
        .bind(pool)
        .bind(serde_json::to_string(codes).expect("codes serialize"))
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn issue_coupons(&self, pool: &str, wants: &[(i64, i64)], now: Timestamp) -> Result<Vec<(i64, String)>> {
        if wants.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        // A retry of a message keeps the code it was issued first.
        let mut issued: Vec<(i64, String)> = sqlx::query_as(
            "SELECT message_id, code FROM coupon_codes
             WHERE pool = ?1 AND message_id IN (SELECT j.value ->> 0 FROM json_each(?2) j)",
        )
        .bind(pool)
        .bind(serde_json::to_string(wants).expect("wants serialize"))
        .fetch_all(&mut *tx)
        .await?;
        let rest: Vec<(i64, i64)> =
            wants.iter().filter(|(m, _)| !issued.iter().any(|(i, _)| i == m)).copied().collect();
        if !rest.is_empty() {
            // The n-th message waiting takes the n-th free code, in one statement.
            let fresh: Vec<(i64, String)> = sqlx::query_as(
                "WITH want AS (
                     SELECT j.value ->> 0 AS message_id, j.value ->> 1 AS member_id,
                            row_number() OVER (ORDER BY j.value ->> 0) AS n
                     FROM json_each(?2) j),
                 free AS (
                     SELECT id, row_number() OVER (ORDER BY id) AS n
                     FROM (SELECT id FROM coupon_codes WHERE pool = ?1 AND message_id IS NULL ORDER BY id LIMIT ?4))
                 UPDATE coupon_codes SET message_id = w.message_id, member_id = w.member_id, issued_at = ?3
                 FROM free f JOIN want w ON w.n = f.n
                 WHERE coupon_codes.id = f.id
                 RETURNING message_id, code",
            )
            .bind(pool)
            .bind(serde_json::to_string(&rest).expect("wants serialize"))
            .bind(now.as_millisecond())
            .bind(rest.len() as i64)
            .fetch_all(&mut *tx)
            .await?;
            issued.extend(fresh);
        }
        tx.commit().await?;
        Ok(issued)
    }

    pub async fn coupon_pools(&self) -> Result<Vec<CouponPool>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT pool, COUNT(*), COUNT(*) FILTER (WHERE message_id IS NULL) FROM coupon_codes
             GROUP BY pool ORDER BY pool",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(pool, total, remaining)| CouponPool { pool, total, remaining }).collect())
    }
}
