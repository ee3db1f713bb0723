//! Member value on SQLite: purchase histories, value rows and fitted models.

use super::{SqliteStore, next_change};
use crate::store::Result;
use crate::store::types::{HistoryRow, ModelRecord, ValueRow, model_from_row, purchases_from_row, value_rows};

const MODEL_COLUMNS: &str = "id, kind, fitted_at, params, log_likelihood, customers, iterations, converged, \
     accepted, at_risk, duration_ms, note";

impl SqliteStore {
    pub async fn purchase_histories(
        &self,
        kinds: &[String],
        after: i64,
        limit: u32,
        day_offset_ms: i64,
    ) -> Result<Vec<HistoryRow>> {
        let rows = sqlx::query(
            "SELECT m.id AS member_id, m.created_at, m.member_since,
                    count(DISTINCT (e.at + ?4) / 86400000) AS purchase_days, min(e.at) AS first_at, max(e.at) AS last_at,
                    total(e.amount) AS spend, v.p_alive AS previous_p_alive, v.last_purchase_at AS previous_last_purchase_at,
                    v.churn_crossed_at AS previous_churn_crossed_at, v.scored_at AS previous_scored_at
             FROM (SELECT id, created_at, member_since FROM members WHERE id > ?1 AND erased_at IS NULL ORDER BY id LIMIT ?2) m
             LEFT JOIN events e ON e.member_id = m.id AND e.kind IN (SELECT value FROM json_each(?3))
             LEFT JOIN member_value v ON v.member_id = m.id
             GROUP BY m.id, m.created_at, m.member_since, v.p_alive, v.last_purchase_at, v.churn_crossed_at, v.scored_at
             ORDER BY m.id",
        )
        .bind(after)
        .bind(limit)
        .bind(serde_json::to_string(kinds).expect("kinds serialize"))
        .bind(day_offset_ms)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(purchases_from_row).collect()
    }

    pub async fn write_member_values(&self, rows: &[ValueRow], changed: &[i64]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO member_value (member_id, recency_days, frequency, monetary, r_score, f_score, m_score,
                                       segment, p_alive, expected_purchases, last_purchase_at, churn_crossed_at,
                                       scored_at)
             SELECT j.value ->> 'member_id', j.value ->> 'recency_days', j.value ->> 'frequency',
                    j.value ->> 'monetary', j.value ->> 'r_score', j.value ->> 'f_score', j.value ->> 'm_score',
                    j.value ->> 'segment', j.value ->> 'p_alive', j.value ->> 'expected_purchases',
                    j.value ->> 'last_purchase_at', j.value ->> 'churn_crossed_at', j.value ->> 'scored_at'
             FROM json_each(?1) j JOIN members m ON m.id = j.value ->> 'member_id'
             WHERE true
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
            sqlx::query("UPDATE members SET change_seq = ?1 WHERE id IN (SELECT value FROM json_each(?2))")
                .bind(change)
                .bind(serde_json::to_string(changed).expect("ids serialize"))
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
            "SELECT {MODEL_COLUMNS} FROM models WHERE kind = ? AND (accepted = 1 OR NOT ?) ORDER BY id DESC LIMIT ?"
        ));
        let rows = sqlx::query(sql).bind(kind).bind(accepted_only).bind(limit).fetch_all(&self.read).await?;
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
            .fetch_all(&self.read)
            .await?)
    }

    /// Members whose P(alive) is below `below`.
    pub async fn count_below(&self, below: f64) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM member_value WHERE p_alive < ?")
            .bind(below)
            .fetch_one(&self.read)
            .await?)
    }
}
