//! What frequency caps, collisions and quiet hours need from the store: a batch's members'
//! recent and same-day messages in one query, and handing a claimed message back to wait for
//! the end of quiet hours without using up an attempt.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Backend, Result, Store};
use crate::channels::{ChannelKind, Purpose};

/// A message of one of a batch's members, as caps and collisions look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    pub id: i64,
    pub member_id: i64,
    pub rule_id: String,
    pub occurrence: String,
    pub channel: ChannelKind,
    pub purpose: Purpose,
    /// `scheduled`, `claimed`, `sending`, `sent`, `delivered`, `undelivered`, `ambiguous`, or
    /// `skipped` (only those that lost a collision).
    pub state: String,
    pub reason: Option<String>,
    pub vars: Map<String, Value>,
    pub run_at: Timestamp,
    /// When it was handed to a provider (`None` while not yet).
    pub handed_at: Option<Timestamp>,
}

impl Recent {
    /// Whether it went to a provider (it counts toward caps, and wins any collision).
    pub fn handed(&self) -> bool {
        matches!(self.state.as_str(), "sending" | "sent" | "delivered" | "undelivered" | "ambiguous")
    }
}

/// A claimed message to put back to `scheduled` at `at` (quiet hours), without using an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Defer {
    pub id: i64,
    pub attempt: u32,
    pub at: Timestamp,
    pub why: String,
}

impl Store {
    /// The messages of these members that were handed to a provider since `since`, or are due
    /// (scheduled, claimed, or skipped as having collided) with `run_at` in `[since, until)`.
    /// One query whatever the number of members.
    pub async fn recent_messages(&self, member_ids: &[i64], since: Timestamp, until: Timestamp) -> Result<Vec<Recent>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_backend!(self.recent_messages(member_ids, since, until))
    }

    /// Hands claimed messages back to `scheduled` at their `at`, without counting the attempt,
    /// with a history entry saying why. Fenced on owner and attempt; returns how many moved.
    pub async fn defer(&self, owner: &str, items: &[Defer], now: Timestamp) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        on_backend!(self.defer(owner, items, now))
    }
}

/// The batch `defer` writes, as the JSON array both backends read in one statement.
pub(super) fn defer_rows(items: &[Defer]) -> String {
    let rows: Vec<Value> = items
        .iter()
        .map(|d| {
            serde_json::json!({"id": d.id, "attempt": d.attempt, "run_at": d.at.as_millisecond(),
                               "detail": format!("{}; waits until {}", d.why, d.at)})
        })
        .collect();
    Value::Array(rows).to_string()
}

pub(super) fn recent_from_row<'r, R: super::types::StoreRow<'r>>(r: &'r R) -> Result<Recent>
where
    &'r str: sqlx::ColumnIndex<R>,
{
    use super::StoreError;
    use super::types::{opt_ts, parse_channel, parse_purpose, ts};
    let vars = r.text("vars")?;
    Ok(Recent {
        id: r.int("id")?,
        member_id: r.int("member_id")?,
        rule_id: r.text("rule_id")?,
        occurrence: r.text("occurrence")?,
        channel: parse_channel(&r.text("channel")?)?,
        purpose: parse_purpose(&r.text("purpose")?)?,
        state: r.text("state")?,
        reason: r.opt_text("reason")?,
        vars: match serde_json::from_str(&vars) {
            Ok(Value::Object(m)) => m,
            _ => return Err(StoreError::Corrupt(format!("vars {vars:?}"))),
        },
        run_at: ts(r.int("run_at")?)?,
        handed_at: opt_ts(r.opt_int("handed_at")?)?,
    })
}
