//! Each daemon's heartbeat (`instances`, one row per instance id, upserted at every tick) and what
//! `/metrics` counts by provider. What a daemon holds only in memory (its providers' circuits and
//! latencies) reaches `tidings status` this way, for every instance sharing the database.

use jiff::Timestamp;
use serde::Serialize;

use super::{Backend, Result, Store};

/// One instance's last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub instance_id: String,
    pub started_at: Timestamp,
    pub seen_at: Timestamp,
    /// Its last completed evaluation tick: when it started (the tick's `now`), and how long it
    /// took in milliseconds.
    pub last_tick_at: Option<Timestamp>,
    pub last_tick_ms: Option<i64>,
    /// Its providers' health (a JSON list, written by `App::heartbeat`).
    pub providers: serde_json::Value,
}

impl Store {
    /// Inserts or replaces this instance's row: one statement.
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        let row = (
            beat.instance_id.as_str(),
            beat.started_at.as_millisecond(),
            beat.seen_at.as_millisecond(),
            beat.last_tick_at.map(|t| t.as_millisecond()),
            beat.last_tick_ms,
            beat.providers.to_string(),
        );
        on_backend!(self.heartbeat(row))
    }

    /// Every instance that ever beat, most recently seen first.
    pub async fn instances(&self) -> Result<Vec<Heartbeat>> {
        let rows = on_backend!(self.instances())?;
        rows.into_iter()
            .map(|(instance_id, started_at, seen_at, last_tick_at, last_tick_ms, providers)| {
                Ok(Heartbeat {
                    instance_id,
                    started_at: super::types::ts(started_at)?,
                    seen_at: super::types::ts(seen_at)?,
                    last_tick_at: super::types::opt_ts(last_tick_at)?,
                    last_tick_ms,
                    providers: serde_json::from_str(&providers)
                        .map_err(|e| super::StoreError::Corrupt(format!("instances.providers: {e}")))?,
                })
            })
            .collect()
    }

    /// How many messages each provider has on each channel in each state: `(channel, provider,
    /// state, count)`, for `/metrics`; `none` for messages no provider has had yet.
    pub async fn counts_by_provider(&self) -> Result<Vec<(String, String, String, i64)>> {
        on_backend!(self.counts_by_provider())
    }
}

/// A heartbeat row as it is bound: id, started, seen, last tick at, last tick ms, providers JSON.
pub(super) type HeartbeatRow<'a> = (&'a str, i64, i64, Option<i64>, Option<i64>, String);
/// A heartbeat row as it is read.
pub(super) type InstanceRow = (String, i64, i64, Option<i64>, Option<i64>, String);
