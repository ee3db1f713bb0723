//! A channel's route: its providers in order (a primary, then failovers), each behind its own
//! rate limit and circuit breaker.
//!
//! A send goes to the first provider whose circuit is closed, waiting for its rate limit. A
//! transient failure is retried on the same provider `retries` times, then the next provider is
//! tried. Only a transient failure fails over: a permanent one would fail anywhere, and an
//! unknown outcome (the provider may have the message) must not be sent a second time elsewhere.
//!
//! The limiter and breaker keep time with `tokio::time::Instant`, so tests drive them with
//! tokio's paused clock instead of the wall clock (governor's clocks cannot follow it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::stats::{Outcome, ProviderStats};
use super::{Outgoing, Provider, SendOutcome};
use crate::config::{ConfigProblem, parse_duration};

/// `[limits.<provider>]`: how hard a provider may be driven.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Messages per second, sustained; unset: unlimited.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Messages that may go at once after a quiet spell; defaults to one second's worth.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Immediate retries on this provider after a transient failure, before failing over.
    #[serde(default)]
    pub retries: u32,
    /// Consecutive transient failures that open the circuit.
    #[serde(default = "default_circuit_failures")]
    pub circuit_failures: u32,
    /// How long an open circuit sends nothing before one trial message.
    #[serde(default = "default_circuit_cooldown")]
    pub circuit_cooldown: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate: None,
            burst: None,
            retries: 0,
            circuit_failures: default_circuit_failures(),
            circuit_cooldown: default_circuit_cooldown(),
        }
    }
}

fn default_circuit_failures() -> u32 {
    5
}

fn default_circuit_cooldown() -> String {
    "30s".into()
}

impl LimitsConfig {
    /// Start-up validation; keys are `limits.<provider>.<field>`.
    pub fn check(&self, provider: &str) -> Vec<ConfigProblem> {
        let key = |f: &str| format!("limits.{provider}.{f}");
        let mut problems = Vec::new();
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            problems.push(ConfigProblem::new(key("rate"), "must be a positive number of messages per second"));
        }
        if self.burst == Some(0) {
            problems.push(ConfigProblem::new(key("burst"), "must be at least 1"));
        }
        if self.retries > 10 {
            problems.push(ConfigProblem::new(key("retries"), "at most 10; the dispatcher retries later anyway"));
        }
        if self.circuit_failures == 0 {
            problems.push(ConfigProblem::new(key("circuit_failures"), "must be at least 1"));
        }
        match parse_duration(&self.circuit_cooldown) {
            Ok(d) if d.is_positive() => {}
            Ok(_) => problems.push(ConfigProblem::new(key("circuit_cooldown"), "must be longer than zero")),
            Err(e) => problems.push(ConfigProblem::new(key("circuit_cooldown"), e)),
        }
        problems
    }

    fn cooldown(&self) -> Duration {
        parse_duration(&self.circuit_cooldown).ok().and_then(|d| d.try_into().ok()).unwrap_or(Duration::from_secs(30))
    }
}

/// A token bucket in its GCRA form: one "theoretical arrival time" per limiter.
#[derive(Debug)]
pub struct Limiter {
    /// The time one message costs.
    interval: Duration,
    /// How far ahead of now the arrival time may run: `burst - 1` intervals.
    tolerance: Duration,
    tat: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(rate: f64, burst: u32) -> Limiter {
        let interval = Duration::from_secs_f64(1.0 / rate);
        Limiter { interval, tolerance: interval * burst.saturating_sub(1), tat: Mutex::new(None) }
    }

    /// Takes a slot: `None` if the message may go now, else how long to wait first (the slot is
    /// reserved either way, so concurrent callers queue in order).
    pub fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut tat = self.tat.lock().expect("limiter lock");
        let arrival = tat.map_or(now, |t| t.max(now));
        let start = arrival.checked_sub(self.tolerance).unwrap_or(now);
        *tat = Some(arrival + self.interval);
        (start > now).then(|| start - now)
    }

    pub async fn acquire(&self) {
        if let Some(wait) = self.reserve(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The circuit's state, for `tidings status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    /// Sending nothing until the instant; then one trial.
    Open {
        until: Instant,
    },
    /// The trial message is out.
    HalfOpen,
}

impl Circuit {
    /// `tidings_provider_circuit_state`: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> u8 {
        match self {
            Circuit::Closed => 0,
            Circuit::HalfOpen => 1,
            Circuit::Open { .. } => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::HalfOpen => "half-open",
            Circuit::Open { .. } => "open",
        }
    }
}

/// Opens after `threshold` consecutive transient failures; after the cooldown lets one trial
/// through, which closes it on success and opens it again on failure.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<(Circuit, u32)>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker { threshold: threshold.max(1), cooldown, state: Mutex::new((Circuit::Closed, 0)) }
    }

    /// Whether a message may be sent now (taking the trial slot when the cooldown is over).
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.state.lock().expect("breaker lock");
        match state.0 {
            Circuit::Closed => true,
            Circuit::Open { until } if now >= until => {
                state.0 = Circuit::HalfOpen;
                true
            }
            Circuit::Open { .. } | Circuit::HalfOpen => false,
        }
    }

    pub fn success(&self) {
        *self.state.lock().expect("breaker lock") = (Circuit::Closed, 0);
    }

    pub fn failure(&self, now: Instant) {
        let mut state = self.state.lock().expect("breaker lock");
        let failures = state.1.saturating_add(1);
        state.1 = failures;
        if state.0 == Circuit::HalfOpen || failures >= self.threshold {
            state.0 = Circuit::Open { until: now + self.cooldown };
        }
    }

    pub fn state(&self) -> Circuit {
        self.state.lock().expect("breaker lock").0
    }
}

/// One provider of a route with its limits.
#[derive(Debug)]
pub struct Slot {
    pub provider: Provider,
    limiter: Option<Limiter>,
    pub breaker: Breaker,
    retries: u32,
    /// Every call to this provider through this route: latency by outcome.
    pub stats: ProviderStats,
}

impl Slot {
    pub fn new(provider: Provider, limits: &LimitsConfig) -> Slot {
        let limiter = limits.rate.map(|rate| Limiter::new(rate, limits.burst.unwrap_or(rate.ceil().max(1.0) as u32)));
        Slot {
            provider,
            limiter,
            breaker: Breaker::new(limits.circuit_failures, limits.cooldown()),
            retries: limits.retries,
            stats: ProviderStats::default(),
        }
    }
}

/// A channel's providers, primary first. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Route {
    slots: Arc<Vec<Slot>>,
}

impl Route {
    pub fn new(slots: Vec<Slot>) -> Route {
        assert!(!slots.is_empty(), "a route has at least one provider");
        Route { slots: Arc::new(slots) }
    }

    pub fn single(provider: Provider) -> Route {
        Route::new(vec![Slot::new(provider, &LimitsConfig::default())])
    }

    pub fn primary(&self) -> &Provider {
        &self.slots[0].provider
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Sends through the first provider that takes it; returns the outcome and the name of the
    /// provider that gave it.
    pub async fn send(&self, msg: &Outgoing, now: jiff::Timestamp) -> (SendOutcome, &'static str) {
        let mut last = None;
        for slot in self.slots.iter() {
            if !slot.breaker.allow(Instant::now()) {
                tracing::debug!(provider = slot.provider.name(), "circuit open; trying the next provider");
                last.get_or_insert((
                    SendOutcome::Transient {
                        error: format!("{}: circuit open after repeated failures", slot.provider.name()),
                        retry_after: None,
                    },
                    slot.provider.name(),
                ));
                continue;
            }
            for attempt in 0..=slot.retries {
                if let Some(limiter) = &slot.limiter {
                    limiter.acquire().await;
                }
                let started = std::time::Instant::now();
                let outcome = slot.provider.send(msg, now).await;
                slot.stats.record(Outcome::of(&outcome), started.elapsed());
                match &outcome {
                    SendOutcome::Transient { error, retry_after } => {
                        slot.breaker.failure(Instant::now());
                        tracing::debug!(provider = slot.provider.name(), attempt, %error, "transient failure");
                        let retry_after = *retry_after;
                        last = Some((outcome, slot.provider.name()));
                        // A provider asking for a long pause is not retried here.
                        if retry_after.is_some_and(|d| d > Duration::from_secs(1)) {
                            break;
                        }
                        if slot.breaker.state() != Circuit::Closed {
                            break;
                        }
                    }
                    SendOutcome::Sent { .. } => {
                        slot.breaker.success();
                        return (outcome, slot.provider.name());
                    }
                    // The provider answered: it is up, whatever it thought of this message.
                    SendOutcome::Permanent { .. } | SendOutcome::Gone { .. } => {
                        slot.breaker.success();
                        return (outcome, slot.provider.name());
                    }
                    SendOutcome::Unknown { .. } => return (outcome, slot.provider.name()),
                }
            }
        }
        last.expect("a route has at least one provider")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_a_burst_through_then_spaces_messages_at_the_rate() {
        let l = Limiter::new(10.0, 3);
        let t0 = Instant::now();
        assert_eq!(l.reserve(t0), None);
        assert_eq!(l.reserve(t0), None);
        assert_eq!(l.reserve(t0), None);
        assert_eq!(l.reserve(t0), Some(Duration::from_millis(100)));
        assert_eq!(l.reserve(t0), Some(Duration::from_millis(200)));
        // A quiet second refills the bucket.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(l.reserve(later), None);
        assert_eq!(l.reserve(later), None);
        assert_eq!(l.reserve(later), None);
        assert!(l.reserve(later).is_some());
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_lets_one_trial_through_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        b.failure(t0);
        b.failure(t0);
        assert!(b.allow(t0), "two failures of three: still closed");
        b.failure(t0);
        assert!(!b.allow(t0 + Duration::from_secs(29)));
        assert!(b.allow(t0 + Duration::from_secs(30)), "the trial");
        assert!(!b.allow(t0 + Duration::from_secs(30)), "one trial at a time");
        b.failure(t0 + Duration::from_secs(31));
        assert!(!b.allow(t0 + Duration::from_secs(60)), "a failed trial opens it again for a cooldown");
        assert!(b.allow(t0 + Duration::from_secs(61)));
        b.success();
        assert_eq!(b.state(), Circuit::Closed);
        b.failure(t0 + Duration::from_secs(62));
        assert!(b.allow(t0 + Duration::from_secs(62)), "a success resets the count");
    }

    #[test]
    fn limits_are_checked_with_their_keys() {
        let bad = LimitsConfig {
            rate: Some(0.0),
            burst: Some(0),
            retries: 11,
            circuit_failures: 0,
            circuit_cooldown: "soon".into(),
        };
        let keys: Vec<String> = bad.check("twilio").into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "limits.twilio.rate",
                "limits.twilio.burst",
                "limits.twilio.retries",
                "limits.twilio.circuit_failures",
                "limits.twilio.circuit_cooldown"
            ]
        );
        assert!(LimitsConfig::default().check("twilio").is_empty());
    }
}
