//! Experiments and conversions on PostgreSQL: the SQLite module's statement in this dialect.

use super::PgStore;
use crate::store::Result;
use crate::store::experiments::ReportQuery;
use crate::track::report::ArmCounts;

impl PgStore {
    pub async fn report_counts(&self, q: &ReportQuery<'_>) -> Result<Vec<ArmCounts>> {
        let rows: Vec<(Option<String>, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "WITH units AS (
                 SELECT member_id, occurrence, max(variant) AS variant,
                        bool_or(state IN ('sent', 'delivered')) AS sent,
                        bool_or(state = 'delivered') AS delivered,
                        bool_or(state IN ('failed', 'dead', 'undelivered')) AS failed,
                        coalesce(min(sent_at) FILTER (WHERE state IN ('sent', 'delivered')), min(run_at)) AS anchor
                 FROM messages
                 WHERE rule_id = $1::text AND ($2::text IS NULL OR experiment = $2::text)
                   AND ($3::bigint IS NULL OR run_at >= $3::bigint)
                 GROUP BY member_id, occurrence
             )
             SELECT u.variant, count(*)::bigint, count(*) FILTER (WHERE u.sent)::bigint,
                    count(*) FILTER (WHERE u.delivered)::bigint,
                    count(*) FILTER (WHERE NOT u.sent AND u.failed)::bigint,
                    count(*) FILTER (WHERE EXISTS (
                        SELECT 1 FROM events e
                        WHERE e.member_id = u.member_id AND e.kind = ANY($4::text[])
                          AND e.at >= u.anchor AND e.at < u.anchor + $5::bigint))::bigint
             FROM units u GROUP BY u.variant ORDER BY u.variant",
        )
        .bind(q.rule_id)
        .bind(q.experiment)
        .bind(q.since.map(|t| t.as_millisecond()))
        .bind(q.events)
        .bind(q.window_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(arm, eligible, sent, delivered, failed, converted)| {
                let n = |x: i64| x.max(0) as u64;
                ArmCounts {
                    arm,
                    eligible: n(eligible),
                    sent: n(sent),
                    delivered: n(delivered),
                    failed: n(failed),
                    converted: n(converted),
                }
            })
            .collect())
    }
}
