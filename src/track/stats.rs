//! The dashboard: messages per day by channel and state over the last days (days in the
//! programme's zone, so a 23-hour DST day is one day), each channel's delivery and failure
//! rates over them, the queue's backlog, and the report of every experiment running.
//!
//! The day bounds and the rates are pure; `App::stats` reads the store.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use crate::store::{Backlog, DayCount};

/// The most days the dashboard reads at once.
pub const MAX_DAYS: u32 = 92;

/// `(label, from, until)` for the `days` days ending with today (in `tz`), oldest first.
pub fn day_bounds(now: Timestamp, tz: &TimeZone, days: u32) -> Vec<(String, Timestamp, Timestamp)> {
    let today = now.to_zoned_datetime(tz.clone()).date();
    let start = |d: Date| crate::plan::send_time::local_instant(d, jiff::civil::Time::midnight(), tz);
    (0..i64::from(days))
        .rev()
        .filter_map(|back| {
            let day = today.checked_sub(back.days()).ok()?;
            let next = day.tomorrow().ok()?;
            Some((day.to_string(), start(day), start(next)))
        })
        .collect()
}

/// One channel's outcome over the days read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelRates {
    /// Handed to the provider (sent, delivered or undelivered).
    pub sent: i64,
    pub delivered: i64,
    /// Failed for good: permanent errors, retries exhausted, or undelivered.
    pub failed: i64,
    /// Delivered of those handed over, when the provider reports deliveries (else `null`).
    pub delivery_rate: Option<f64>,
    /// Failed of those that reached an end (handed over or failed).
    pub failure_rate: Option<f64>,
}

/// Each channel's rates from the day counts.
pub fn rates(counts: &[DayCount]) -> BTreeMap<String, ChannelRates> {
    // Per channel: handed over, delivered, undelivered, failed before the provider took it.
    let mut tally: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for c in counts {
        let t = tally.entry(c.channel.clone()).or_default();
        match c.state.as_str() {
            "sent" => t[0] += c.count,
            "delivered" => {
                t[0] += c.count;
                t[1] += c.count;
            }
            "undelivered" => {
                t[0] += c.count;
                t[2] += c.count;
            }
            "failed" | "dead" => t[3] += c.count,
            _ => {}
        }
    }
    tally
        .into_iter()
        .map(|(channel, [handed, delivered, undelivered, failed])| {
            let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
            let receipts = delivered + undelivered > 0;
            let rates = ChannelRates {
                sent: handed,
                delivered,
                failed: failed + undelivered,
                delivery_rate: if receipts { ratio(delivered, handed) } else { None },
                failure_rate: ratio(failed + undelivered, handed + failed),
            };
            (channel, rates)
        })
        .collect()
}

/// What `GET /api/stats` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub days: Vec<DayCount>,
    pub channels: BTreeMap<String, ChannelRates>,
    pub backlog: BacklogView,
    pub experiments: Vec<crate::track::report::Report>,
}

/// The backlog with the oldest due message's age.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BacklogView {
    pub due: i64,
    pub scheduled: i64,
    pub oldest_due_seconds: Option<i64>,
}

impl BacklogView {
    pub fn new(b: Backlog, now: Timestamp) -> BacklogView {
        BacklogView {
            due: b.due,
            scheduled: b.scheduled,
            oldest_due_seconds: b.oldest_due.map(|t| now.duration_since(t).as_secs().max(0)),
        }
    }
}

impl crate::app::App {
    /// The dashboard over the last `days` days (1 to `MAX_DAYS`).
    pub async fn stats(&self, days: u32) -> anyhow::Result<Stats> {
        let settings = self.settings();
        let now = self.now();
        let bounds = day_bounds(now, &settings.programme_tz, days.clamp(1, MAX_DAYS));
        let counts = self.store.day_counts(&bounds).await?;
        let backlog = BacklogView::new(self.store.backlog(now).await?, now);
        // Every rule and journey with an experiment, over the same days.
        let since = bounds.first().map(|(_, from, _)| *from);
        let with_experiment = settings.rules.iter().filter(|r| r.experiment.is_some()).map(|r| r.id.clone()).chain(
            settings.journeys.iter().filter(|j| j.steps.iter().any(|s| s.experiment.is_some())).map(|j| j.id.clone()),
        );
        let mut experiments = Vec::new();
        for id in with_experiment {
            experiments.extend(self.report(&id, since).await?);
        }
        Ok(Stats { channels: rates(&counts), days: counts, backlog, experiments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(channel: &str, state: &str, n: i64) -> DayCount {
        DayCount { day: "2026-03-10".into(), channel: channel.into(), state: state.into(), count: n }
    }

    #[test]
    fn a_dst_day_is_one_day_of_23_hours() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let now: Timestamp = "2026-03-09T15:00:00Z".parse().unwrap();
        let days = day_bounds(now, &tz, 2);
        let labels: Vec<&str> = days.iter().map(|(d, _, _)| d.as_str()).collect();
        assert_eq!(labels, ["2026-03-08", "2026-03-09"]);
        assert_eq!(days[0].2.duration_since(days[0].1).as_hours(), 23, "spring forward");
        assert_eq!(days[1].2.duration_since(days[1].1).as_hours(), 24);
        assert_eq!(days[0].2, days[1].1, "days meet");
        assert_eq!(days[0].1.to_string(), "2026-03-08T05:00:00Z");
    }

    #[test]
    fn rates_count_receipts_and_failures_once() {
        let r = rates(&[
            count("sms", "delivered", 90),
            count("sms", "undelivered", 5),
            count("sms", "sent", 5),
            count("sms", "failed", 2),
            count("sms", "dead", 3),
            count("sms", "scheduled", 40),
            count("email", "sent", 10),
        ]);
        let sms = &r["sms"];
        assert_eq!((sms.sent, sms.delivered, sms.failed), (100, 90, 10));
        assert_eq!(sms.delivery_rate, Some(0.9));
        assert_eq!(sms.failure_rate, Some(10.0 / 105.0));
        let email = &r["email"];
        assert_eq!(email.delivery_rate, None, "no receipts: unknown, not zero");
        assert_eq!(email.failure_rate, Some(0.0));
    }
}
