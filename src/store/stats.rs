//! The dashboard's numbers: messages per day (days bounded by the caller, in the programme's
//! zone) by channel and state, and the queue's backlog. Aggregated in SQL, one query each.

use jiff::Timestamp;
use serde::Serialize;

use super::{Backend, Result, Store};

/// One day's count of messages on one channel in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    pub day: String,
    pub channel: String,
    pub state: String,
    pub count: i64,
}

/// What waits to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Scheduled and due now (what workers should be sending).
    pub due: i64,
    /// Scheduled in all, due now or later.
    pub scheduled: i64,
    /// When the oldest due message was due.
    pub oldest_due: Option<Timestamp>,
}

impl Store {
    /// Messages whose `run_at` falls in each day, by channel and state; `days` are
    /// `(label, from, until)` with `until` exclusive.
    pub async fn day_counts(&self, days: &[(String, Timestamp, Timestamp)]) -> Result<Vec<DayCount>> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let bounds: serde_json::Value = days
            .iter()
            .map(|(d, from, to)| serde_json::json!([d, from.as_millisecond(), to.as_millisecond()]))
            .collect();
        let rows = on_backend!(self.day_counts(&bounds.to_string()))?;
        Ok(rows.into_iter().map(|(day, channel, state, count)| DayCount { day, channel, state, count }).collect())
    }

    /// How many messages each rule has on each channel in each state: `(rule, channel, state,
    /// count)`, for `/metrics`.
    pub async fn counts_by_rule(&self) -> Result<Vec<(String, String, String, i64)>> {
        on_backend!(self.counts_by_rule())
    }

    pub async fn backlog(&self, now: Timestamp) -> Result<Backlog> {
        let (due, scheduled, oldest) = on_backend!(self.backlog(now.as_millisecond()))?;
        Ok(Backlog { due, scheduled, oldest_due: super::types::opt_ts(oldest)? })
    }
}
