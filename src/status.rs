//! `tidings status`: the backlog, each instance's last tick and its providers' health, read from
//! the database so that it sees every instance sharing it. A daemon writes its heartbeat
//! (`instances`) at each tick: one upsert with its last tick and, per provider, the circuit state
//! and the calls by outcome since it started (held in memory by `channels::stats`).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::channels::stats::Outcome;
use crate::store::Store;
use crate::store::instances::Heartbeat;
use crate::track::stats::BacklogView;

/// An instance not seen for this long is shown as stale (ticks run every minute by default).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_mins(5);

impl App {
    /// Each provider of each channel, route order: circuit state, calls by outcome since start-up,
    /// and their mean latency.
    pub fn provider_health(&self) -> Value {
        let rows: Vec<Value> = self
            .channels
            .health()
            .map(|(channel, slot)| {
                let (mut calls, mut total, mut seconds) = (serde_json::Map::new(), 0, 0.0);
                for outcome in Outcome::ALL {
                    let h = slot.stats.snapshot(outcome);
                    calls.insert(outcome.as_str().into(), json!(h.count()));
                    total += h.count();
                    seconds += h.sum_seconds;
                }
                let mean_ms = if total == 0 { None } else { Some(seconds * 1000.0 / total as f64) };
                json!({
                    "channel": channel.to_string(),
                    "provider": slot.provider.name(),
                    "circuit": slot.breaker.state().as_str(),
                    "calls": calls,
                    "mean_ms": mean_ms,
                })
            })
            .collect();
        Value::Array(rows)
    }

    /// Writes this instance's heartbeat; called at every tick. A failure is logged, never fatal.
    pub async fn heartbeat(&self) {
        let last = *self.last_tick.lock().unwrap_or_else(|e| e.into_inner());
        let beat = Heartbeat {
            instance_id: self.instance_id.clone(),
            started_at: self.started_at,
            seen_at: self.now(),
            last_tick_at: last.map(|(at, _)| at),
            last_tick_ms: last.map(|(_, took)| took.as_millis() as i64),
            providers: self.provider_health(),
        };
        if let Err(e) = self.store.heartbeat(&beat).await {
            tracing::warn!(error = %e, "could not write this instance's heartbeat");
        }
    }
}

/// What `tidings status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub now: Timestamp,
    pub backlog: BacklogView,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub beat: Heartbeat,
    /// Seconds since its last heartbeat.
    pub seen_seconds_ago: i64,
    /// Not seen for [`STALE_AFTER`]: stopped, or stuck.
    pub stale: bool,
}

/// Reads the status at `now`.
pub async fn read(store: &Store, now: Timestamp) -> anyhow::Result<Status> {
    let backlog = BacklogView::new(store.backlog(now).await?, now);
    let instances = store
        .instances()
        .await?
        .into_iter()
        .map(|beat| {
            let ago = now.duration_since(beat.seen_at);
            InstanceStatus { seen_seconds_ago: ago.as_secs().max(0), stale: ago > STALE_AFTER, beat }
        })
        .collect();
    Ok(Status { now, backlog, instances })
}

/// The human form.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let oldest = match s.backlog.oldest_due_seconds {
        Some(secs) => format!(", the oldest waiting {}", ago(secs)),
        None => String::new(),
    };
    let _ = writeln!(out, "backlog: {} due{oldest}; {} scheduled in all", s.backlog.due, s.backlog.scheduled);
    if s.instances.is_empty() {
        let _ = writeln!(out, "instances: none has run a tick against this database yet");
        return out;
    }
    let _ = writeln!(out, "instances:");
    for i in &s.instances {
        let b = &i.beat;
        let seen = if i.stale {
            format!("STALE: last seen {} ago", ago(i.seen_seconds_ago))
        } else {
            format!("seen {} ago", ago(i.seen_seconds_ago))
        };
        let tick = match (b.last_tick_at, b.last_tick_ms) {
            (Some(at), Some(ms)) => format!("last tick {at} took {ms} ms"),
            _ => "no tick yet".into(),
        };
        let _ = writeln!(out, "  {}  {seen}; {tick}; started {}", b.instance_id, b.started_at);
        for p in b.providers.as_array().into_iter().flatten() {
            let calls = &p["calls"];
            let n = |k: &str| calls[k].as_u64().unwrap_or(0);
            let failed = n("transient") + n("permanent") + n("gone") + n("unknown");
            let mean = p["mean_ms"].as_f64().map_or("-".to_string(), |m| format!("{m:.1} ms"));
            let _ = writeln!(
                out,
                "    {:<8} {:<9} circuit {:<9} sent {:>7}  failed {:>6} (transient {}, permanent {}, gone {}, unknown {})  mean {mean}",
                p["channel"].as_str().unwrap_or("?"),
                p["provider"].as_str().unwrap_or("?"),
                p["circuit"].as_str().unwrap_or("?"),
                n("sent"),
                failed,
                n("transient"),
                n("permanent"),
                n("gone"),
                n("unknown"),
            );
        }
    }
    out
}

/// `90` → `1m 30s`.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_read_in_the_largest_sensible_units() {
        let check = |secs, expected: &str| assert_eq!(super::ago(secs), expected);
        check(0, "0s");
        check(90, "1m 30s");
        check(3 * 3600 + 120, "3h 2m");
        check(2 * 86_400 + 3600, "2d 1h");
    }
}
