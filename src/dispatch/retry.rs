//! The retry policy, in one place: a pure function of the attempt, the provider's answer, the
//! deadline and a jitter draw.

use crate::clock::InstantExt;
use jiff::{SignedDuration, Timestamp};

use crate::channels::SendOutcome;
use crate::store::Finalize;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first delay; doubled each attempt.
    pub base: SignedDuration,
    pub max: SignedDuration,
    /// Whether an unknown outcome (the provider's answer lost) is retried like a transient
    /// error, accepting a possible duplicate, instead of being left ambiguous.
    pub retry_unknown: bool,
}

/// The delay before attempt `attempt + 1`: exponential from `base`, capped at `max`, with
/// "equal jitter" (between half and all of it, by `jitter` in `[0, 1)`), and never shorter than
/// the provider's `Retry-After`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, retry_after: Option<SignedDuration>, jitter: f64) -> SignedDuration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = policy.base.checked_mul(1 << exp).unwrap_or(policy.max).min(policy.max);
    let secs = full.as_secs_f64() * (0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    let delay = SignedDuration::from_secs_f64(secs);
    match retry_after {
        Some(after) if after > delay => after,
        _ => delay,
    }
}

/// What to record after attempt `attempt` ended with `outcome`.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    outcome: SendOutcome,
    provider: &str,
    now: Timestamp,
    deadline: Option<Timestamp>,
    jitter: f64,
) -> Finalize {
    match outcome {
        SendOutcome::Sent { provider_id } => Finalize::Sent { provider: provider.to_string(), provider_id },
        SendOutcome::Permanent { error } | SendOutcome::Gone { error } => Finalize::Failed { error },
        SendOutcome::Unknown { error } if !policy.retry_unknown => Finalize::Ambiguous { error },
        SendOutcome::Unknown { error } => decide(
            policy,
            attempt,
            SendOutcome::Transient { error: format!("delivery unknown: {error}"), retry_after: None },
            provider,
            now,
            deadline,
            jitter,
        ),
        SendOutcome::Transient { error, retry_after } => {
            if attempt >= policy.max_attempts {
                return Finalize::Dead { error: format!("{error} (gave up after {attempt} attempts)") };
            }
            let after = retry_after.and_then(|d| SignedDuration::try_from(d).ok());
            let at = now.plus(backoff(policy, attempt, after, jitter));
            match deadline {
                Some(d) if at > d => {
                    Finalize::Dead { error: format!("{error} (a retry at {at} would be past its deadline {d})") }
                }
                _ => Finalize::Retry { at, error },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base: SignedDuration::from_secs(30),
        max: SignedDuration::from_secs(600),
        retry_unknown: false,
    };

    fn check(attempt: u32, retry_after: Option<u64>, jitter: f64, expected_secs: i64) {
        let got = backoff(&P, attempt, retry_after.map(|s| SignedDuration::from_secs(s as i64)), jitter);
        assert_eq!(got.as_secs(), expected_secs, "attempt {attempt} retry_after {retry_after:?} jitter {jitter}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        check(1, None, 1.0, 30);
        check(1, None, 0.0, 15);
        check(2, None, 1.0, 60);
        check(3, None, 1.0, 120);
        check(6, None, 1.0, 600);
        check(40, None, 0.0, 300);
        check(1, Some(90), 0.0, 90);
        check(3, Some(5), 1.0, 120);
    }

    fn now() -> Timestamp {
        "2026-11-23T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn outcomes_map_to_states() {
        let sent = decide(&P, 1, SendOutcome::Sent { provider_id: "SM1".into() }, "twilio", now(), None, 0.5);
        assert_eq!(sent, Finalize::Sent { provider: "twilio".into(), provider_id: "SM1".into() });
        let perm = decide(&P, 1, SendOutcome::Permanent { error: "bad number".into() }, "twilio", now(), None, 0.5);
        assert_eq!(perm, Finalize::Failed { error: "bad number".into() });
        let transient = SendOutcome::Transient { error: "503".into(), retry_after: Some(Duration::from_secs(7)) };
        match decide(&P, 1, transient.clone(), "twilio", now(), None, 0.0) {
            Finalize::Retry { at, .. } => assert_eq!(at, now().plus(SignedDuration::from_secs(15))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decide(&P, 4, transient.clone(), "twilio", now(), None, 0.0), Finalize::Dead { .. }));
        let deadline = Some(now().plus(SignedDuration::from_secs(10)));
        assert!(matches!(decide(&P, 1, transient, "twilio", now(), deadline, 0.0), Finalize::Dead { .. }));
        let unknown = SendOutcome::Unknown { error: "no answer".into() };
        assert_eq!(
            decide(&P, 1, unknown.clone(), "smtp", now(), None, 0.0),
            Finalize::Ambiguous { error: "no answer".into() }
        );
        let retrying = RetryPolicy { retry_unknown: true, ..P };
        match decide(&retrying, 1, unknown, "smtp", now(), None, 0.0) {
            Finalize::Retry { error, .. } => assert_eq!(error, "delivery unknown: no answer"),
            other => panic!("{other:?}"),
        }
    }
}
