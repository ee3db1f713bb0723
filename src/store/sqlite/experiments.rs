//! Experiments and conversions on SQLite: the report's counts in one statement.

use super::SqliteStore;
use crate::store::Result;
use crate::store::experiments::ReportQuery;
use crate::track::report::ArmCounts;

impl SqliteStore {
    pub async fn report_counts(&self, q: &ReportQuery<'_>) -> Result<Vec<ArmCounts>> {
        let events = serde_json::to_string(q.events).expect("strings serialize");
        let rows: Vec<(Option<String>, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "WITH units AS (
                 SELECT member_id, occurrence, max(variant) AS variant,
                        max(state IN ('sent', 'delivered')) AS sent,
                        max(state = 'delivered') AS delivered,
                        max(state IN ('failed', 'dead', 'undelivered')) AS failed,
                        coalesce(min(CASE WHEN state IN ('sent', 'delivered') THEN sent_at END), min(run_at)) AS anchor
                 FROM messages
                 WHERE rule_id = ?1 AND (?2 IS NULL OR experiment = ?2) AND (?3 IS NULL OR run_at >= ?3)
                 GROUP BY member_id, occurrence
             )
             SELECT u.variant, count(*), sum(u.sent), sum(u.delivered), sum(u.sent = 0 AND u.failed = 1),
                    sum(EXISTS (SELECT 1 FROM events e
                                WHERE e.member_id = u.member_id AND e.kind IN (SELECT value FROM json_each(?4))
                                  AND e.at >= u.anchor AND e.at < u.anchor + ?5))
             FROM units u GROUP BY u.variant ORDER BY u.variant",
        )
        .bind(q.rule_id)
        .bind(q.experiment)
        .bind(q.since.map(|t| t.as_millisecond()))
        .bind(events)
        .bind(q.window_ms)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(counts).collect())
    }
}

fn counts((arm, eligible, sent, delivered, failed, converted): (Option<String>, i64, i64, i64, i64, i64)) -> ArmCounts {
    let n = |x: i64| x.max(0) as u64;
    ArmCounts {
        arm,
        eligible: n(eligible),
        sent: n(sent),
        delivered: n(delivered),
        failed: n(failed),
        converted: n(converted),
    }
}
