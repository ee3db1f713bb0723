//! Journey runs and coupon pools on PostgreSQL. Issuing takes free codes with
//! `FOR UPDATE SKIP LOCKED`, so instances issuing from one pool at once never share a code.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::PgStore;
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

impl PgStore {
    pub async fn journey_runs_of(&self, member_ids: &[i64]) -> Result<Vec<JourneyRun>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM journey_runs WHERE member_id = ANY($1::bigint[]) ORDER BY id"
        )))
        .bind(member_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(run).collect()
    }

    pub async fn journey_runs(&self, journey_id: Option<&str>, limit: u32) -> Result<Vec<JourneyRun>> {
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM journey_runs
             WHERE ($1::text IS NULL OR journey_id = $1::text) ORDER BY id DESC LIMIT $2::bigint"
        )))
        .bind(journey_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let done = sqlx::query(
            "INSERT INTO journey_runs (journey_id, member_id, entry_key, entered_at, state)
             SELECT j ->> 0, (j ->> 1)::bigint, j ->> 2, (j ->> 3)::bigint, 'active'
             FROM jsonb_array_elements($1::jsonb) AS j
             ON CONFLICT (journey_id, member_id, entry_key) DO NOTHING",
        )
        .bind(rows.to_string())
        .execute(&self.pool)
        .await?;
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
        // Several events may exit one run: the earliest kind names the reason.
        let ended: Vec<(String, i64, String, String)> = sqlx::query_as(
            "UPDATE journey_runs r SET state = 'exited', exit_reason = 'journey exited: ' || x.kind,
                    ended_at = $2::bigint
             FROM (SELECT DISTINCT ON (r2.id) r2.id, j ->> 2 AS kind
                   FROM jsonb_array_elements($1::jsonb) AS j
                   JOIN members m ON m.external_id = j ->> 1
                   JOIN journey_runs r2 ON r2.journey_id = j ->> 0 AND r2.member_id = m.id
                   WHERE r2.state = 'active' AND r2.entered_at <= (j ->> 3)::bigint
                   ORDER BY r2.id, (j ->> 3)::bigint) x
             WHERE r.id = x.id AND r.state = 'active'
             RETURNING r.journey_id, r.member_id, r.entry_key, r.exit_reason",
        )
        .bind(rows.to_string())
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Value = ended.iter().map(|(j, m, k, why)| json!([j, m, k, why])).collect();
        let skipped: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE messages m SET state = 'skipped', reason = r.why, lease_owner = NULL, lease_until = NULL,
                    updated_at = $2::bigint
             FROM (SELECT j ->> 0 AS journey, (j ->> 1)::bigint AS member_id, j ->> 2 AS entry_key,
                          j ->> 3 AS why
                   FROM jsonb_array_elements($1::jsonb) AS j) r
             WHERE m.state = 'scheduled' AND m.rule_id = r.journey AND m.member_id = r.member_id
               AND left(m.occurrence, length(r.entry_key) + 2) = r.entry_key || ':s'
             RETURNING m.id, r.why",
        )
        .bind(runs.to_string())
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if !skipped.is_empty() {
            let history: Value = skipped.iter().map(|(id, why)| json!([id, why])).collect();
            sqlx::query(
                "INSERT INTO message_history (message_id, at, state, detail)
                 SELECT (j ->> 0)::bigint, $2::bigint, $3::text, j ->> 1 FROM jsonb_array_elements($1::jsonb) AS j",
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
        let done = sqlx::query(
            "UPDATE journey_runs SET state = 'completed', ended_at = $2::bigint
             WHERE state = 'active' AND id = ANY($1::bigint[])",
        )
        .bind(run_ids)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn latest_events(&self, member_ids: &[i64], kinds: &[String]) -> Result<Vec<(i64, String, Timestamp)>> {
        if member_ids.is_empty() || kinds.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT member_id, kind, MAX(at) FROM events
             WHERE member_id = ANY($1::bigint[]) AND kind = ANY($2::text[])
             GROUP BY member_id, kind",
        )
        .bind(member_ids)
        .bind(kinds)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|(m, k, at)| Ok((m, k, ts(at)?))).collect()
    }

    pub async fn import_coupons(&self, pool: &str, codes: &[String], now: Timestamp) -> Result<u64> {
        if codes.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "INSERT INTO coupon_codes (pool, code, imported_at)
             SELECT $1::text, c, $3::bigint FROM unnest($2::text[]) AS c
             ON CONFLICT (pool, code) DO NOTHING",
        )
        .bind(pool)
        .bind(codes)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn issue_coupons(&self, pool: &str, wants: &[(i64, i64)], now: Timestamp) -> Result<Vec<(i64, String)>> {
        if wants.is_empty() {
            return Ok(Vec::new());
        }
        let messages: Vec<i64> = wants.iter().map(|(m, _)| *m).collect();
        let mut tx = self.begin().await?;
        // A retry of a message keeps the code it was issued first.
        let mut issued: Vec<(i64, String)> = sqlx::query_as(
            "SELECT message_id, code FROM coupon_codes WHERE pool = $1::text AND message_id = ANY($2::bigint[])",
        )
        .bind(pool)
        .bind(&messages)
        .fetch_all(&mut *tx)
        .await?;
        let rest: Vec<(i64, i64)> =
            wants.iter().filter(|(m, _)| !issued.iter().any(|(i, _)| i == m)).copied().collect();
        if !rest.is_empty() {
            let ids: Vec<i64> = rest.iter().map(|(m, _)| *m).collect();
            let members: Vec<i64> = rest.iter().map(|(_, m)| *m).collect();
            // The n-th message waiting takes the n-th free code; codes another instance is
            // taking are skipped, not waited for.
            let fresh: Vec<(i64, String)> = sqlx::query_as(
                "WITH want AS (
                     SELECT w.message_id, w.member_id, row_number() OVER (ORDER BY w.message_id) AS n
                     FROM unnest($2::bigint[], $3::bigint[]) AS w (message_id, member_id)),
                 picked AS (
                     SELECT id FROM coupon_codes WHERE pool = $1::text AND message_id IS NULL
                     ORDER BY id LIMIT $5::bigint FOR UPDATE SKIP LOCKED),
                 free AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM picked)
                 UPDATE coupon_codes c SET message_id = w.message_id, member_id = w.member_id, issued_at = $4::bigint
                 FROM free f JOIN want w ON w.n = f.n
                 WHERE c.id = f.id
                 RETURNING c.message_id, c.code",
            )
            .bind(pool)
            .bind(&ids)
            .bind(&members)
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
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(pool, total, remaining)| CouponPool { pool, total, remaining }).collect())
    }
}
