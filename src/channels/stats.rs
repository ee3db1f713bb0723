//! What each provider of a route has done since start-up, for `/metrics` and the heartbeat that
//! `tidings status` reads: a latency histogram per outcome, kept in atomics.
//!
//! Recording is on the dispatcher's hot path (once per provider call), so it takes no lock and
//! allocates nothing: a bucket search over a dozen constants and three relaxed atomic adds.
//! Readers take a snapshot that may be a few sends out of step between counters; a scrape does
//! not need better.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::SendOutcome;

/// The histogram's upper bounds in seconds (Prometheus `le`), besides `+Inf`.
pub const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The same bounds in nanoseconds, for the comparison on the hot path.
const BUCKETS_NS: [u64; 12] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// A provider call's outcome, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Transient,
    Permanent,
    Gone,
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Sent, Outcome::Transient, Outcome::Permanent, Outcome::Gone, Outcome::Unknown];

    pub fn of(outcome: &SendOutcome) -> Outcome {
        match outcome {
            SendOutcome::Sent { .. } => Outcome::Sent,
            SendOutcome::Transient { .. } => Outcome::Transient,
            SendOutcome::Permanent { .. } => Outcome::Permanent,
            SendOutcome::Gone { .. } => Outcome::Gone,
            SendOutcome::Unknown { .. } => Outcome::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Transient => "transient",
            Outcome::Permanent => "permanent",
            Outcome::Gone => "gone",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One outcome's histogram: a count per bucket (not cumulative; the last is `+Inf`) and the sum.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A provider's calls since start-up, by outcome.
#[derive(Debug, Default)]
pub struct ProviderStats {
    by_outcome: [Histogram; Outcome::ALL.len()],
}

impl ProviderStats {
    /// Counts one call that took `took` and ended in `outcome`.
    pub fn record(&self, outcome: Outcome, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let h = &self.by_outcome[outcome as usize];
        let bucket = BUCKETS_NS.iter().position(|&b| ns <= b).unwrap_or(BUCKETS_NS.len());
        h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        h.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The histogram of one outcome as Prometheus wants it: cumulative counts per bound (the
    /// last, `+Inf`, is the count) and the sum in seconds.
    pub fn snapshot(&self, outcome: Outcome) -> Snapshot {
        let h = &self.by_outcome[outcome as usize];
        let mut cumulative = [0u64; BUCKETS.len() + 1];
        let mut total = 0;
        for (i, b) in h.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            cumulative[i] = total;
        }
        Snapshot { cumulative, sum_seconds: h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

/// One outcome's histogram at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Cumulative counts for each of [`BUCKETS`], then `+Inf`.
    pub cumulative: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.cumulative[BUCKETS.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let s = ProviderStats::default();
        s.record(Outcome::Sent, Duration::from_micros(500));
        s.record(Outcome::Sent, Duration::from_millis(5));
        s.record(Outcome::Sent, Duration::from_secs(60));
        s.record(Outcome::Transient, Duration::from_millis(30));
        let sent = s.snapshot(Outcome::Sent);
        assert_eq!(sent.cumulative[0], 1, "0.5 ms is under 1 ms");
        assert_eq!(sent.cumulative[2], 2, "5 ms is at the 5 ms bound, counted there");
        assert_eq!(sent.cumulative[BUCKETS.len() - 1], 2, "a minute is over every finite bound");
        assert_eq!(sent.count(), 3);
        assert!((sent.sum_seconds - 60.0055).abs() < 1e-9, "{}", sent.sum_seconds);
        let transient = s.snapshot(Outcome::Transient);
        assert_eq!((transient.cumulative[4], transient.cumulative[5], transient.count()), (0, 1, 1));
        assert_eq!(s.snapshot(Outcome::Gone).count(), 0);
    }
}
