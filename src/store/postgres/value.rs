//! Member value on PostgreSQL: the SQLite module's statements in PostgreSQL's dialect: purchase histories, value rows and fitted models.

use super::{PgStore, next_change};
use crate::store::Result;
use crate::store::types::{HistoryRow, ModelRecord, ValueRow, model_from_row, purchases_from_row, value_rows};

const MODEL_COLUMNS: &str = "id, kind, fitted_at, params, log_likelihood, customers, iterations, converged, \
     accepted, at_risk, duration_ms, note";

impl PgStore {
    pub async fn purchase_histories(
        &self,
        kinds: &[String],
        after: i64,
        limit: u32,
        day_offset_ms: i64,
    ) -> Result<Vec<HistoryRow>> {
        let rows = sqlx::query(
            "SELECT m.id AS member_id, m.created_at, m.member_since,
                    count(DISTINCT (e.at + $4::bigint) / 86400000) AS purchase_days, min(e.at) AS first_at, max(e.at) AS last_at,
                    coalesce(sum(e.amount), 0)::float8 AS spend, v.p_alive AS previous_p_alive, v.last_purchase_at AS previous_last_purchase_at,
                    v.churn_crossed_at AS previous_churn_crossed_at, v.scored_at AS previous_scored_at
             FROM (SELECT id, created_at, member_since FROM members WHERE id > $1::bigint AND erased_at IS NULL ORDER BY id LIMIT $2::bigint) m
             LEFT JOIN events e ON e.member_id = m.id AND e.kind = ANY($3::text[])
             LEFT JOIN member_value v ON v.member_id = m.id
             GROUP BY m.id, m.created_at, m.member_since, v.p_alive, v.last_purchase_at, v.churn_crossed_at, v.scored_at
             ORDER BY m.id",
        )
        .bind(after)
        .bind(i64::from(limit))
        .bind(kinds)
        .bind(day_offset_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(purchases_from_row).collect()
    }

    pub async fn write_member_values(&self, rows: &[ValueRow], changed: &[i64]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO member_value (member_id, recency_days, frequency, monetary, r_score, f_score, m_score,
                                       segment, p_alive, expected_purchases, last_purchase_at, churn_crossed_at,
                                       scored_at)
             SELECT j.member_id, j.recency_days, j.frequency, j.monetary, j.r_score, j.f_score, j.m_score,
                    j.segment, j.p_alive, j.expected_purchases, j.last_purchase_at, j.churn_crossed_at, j.scored_at
             FROM jsonb_to_recordset($1::jsonb) AS j(member_id bigint, recency_days float8, frequency bigint,
                  monetary float8, r_score bigint, f_score bigint, m_score bigint, segment text, p_alive float8,
                  expected_purchases float8, last_purchase_at bigint, churn_crossed_at bigint, scored_at bigint)
             JOIN members m ON m.id = j.member_id
             ON CONFLICT (member_id) DO UPDATE SET
                 recency_days = excluded.recency_days, frequency = excluded.frequency,
                 monetary = excluded.monetary, r_score = excluded.r_score, f_score = excluded.f_score,
                 m_score = excluded.m_score, segment = excluded.segment, p_alive = excluded.p_alive,
                 expected_purchases = excluded.expected_purchases, last_purchase_at = excluded.last_purchase_at,
                 churn_crossed_at = excluded.churn_crossed_at,
                 scored_at = excluded.scored_at",
        )
        .bind(value_rows(rows))
        .execute(&mut *tx)
        .await?;
        if !changed.is_empty() {
            let change = next_change(&mut tx).await?;
            sqlx::query("UPDATE members SET change_seq = $1 WHERE id = ANY($2::bigint[])")
                .bind(change)
                .bind(changed)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_model(&self, m: &ModelRecord) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO models (kind, fitted_at, params, log_likelihood, customers, iterations, converged,
                                 accepted, at_risk, duration_ms, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&m.kind)
        .bind(m.fitted_at.as_millisecond())
        .bind(m.params.to_string())
        .bind(m.log_likelihood)
        .bind(m.customers)
        .bind(m.iterations)
        .bind(m.converged)
        .bind(m.accepted)
        .bind(m.at_risk)
        .bind(m.duration_ms)
        .bind(&m.note)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The latest fits of `kind`, newest first; `accepted_only` for the current model.
    pub async fn models(&self, kind: &str, accepted_only: bool, limit: u32) -> Result<Vec<ModelRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MODEL_COLUMNS} FROM models WHERE kind = $1 AND (accepted OR NOT $2) ORDER BY id DESC LIMIT $3::bigint"
        ));
        let rows = sqlx::query(sql).bind(kind).bind(accepted_only).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                use sqlx::Row;
                model_from_row(r, r.try_get("converged")?, r.try_get("accepted")?)
            })
            .collect()
    }

    /// How many members are in each segment.
    pub async fn segment_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT segment, count(*) FROM member_value GROUP BY segment ORDER BY segment")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Members whose P(alive) is below `below`.
    pub async fn count_below(&self, below: f64) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM member_value WHERE p_alive < $1")
            .bind(below)
            .fetch_one(&self.pool)
            .await?)
    }
}
