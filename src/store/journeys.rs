//! The store's journey and coupon calls: journey runs (entry, exit, completion), the latest
//! events a step's `unless` condition reads, and coupon pools (import, issue once, counts).

use jiff::Timestamp;

use super::{Backend, Result, Store};

/// One member's passage through one journey, for one occurrence of its entry trigger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JourneyRun {
    pub id: i64,
    pub journey_id: String,
    pub member_id: i64,
    pub entry_key: String,
    pub entered_at: Timestamp,
    /// `active`, `exited` or `completed`.
    pub state: String,
    pub exit_reason: Option<String>,
    pub ended_at: Option<Timestamp>,
}

/// A run to record on entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub journey_id: String,
    pub member_id: i64,
    pub entry_key: String,
    pub entered_at: Timestamp,
}

/// An event that ends the member's active runs of a journey (one with the event's kind in its
/// `exit_on`). Only runs entered at or before the event's instant end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JourneyExit {
    pub journey_id: String,
    /// The member's external id.
    pub member: String,
    pub kind: String,
    pub at: Timestamp,
}

/// What an exit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExitCounts {
    /// Runs moved to `exited`.
    pub runs: u64,
    /// Their still-scheduled step messages, skipped.
    pub messages: u64,
}

/// A coupon pool's size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CouponPool {
    pub pool: String,
    pub total: i64,
    /// Codes not yet issued.
    pub remaining: i64,
}

impl Store {
    /// Every run of these members (any journey, any state), oldest first: what re-entry rules
    /// and the dispatcher's step checks read, one query per member batch.
    pub async fn journey_runs_of(&self, member_ids: &[i64]) -> Result<Vec<JourneyRun>> {
        on_backend!(self.journey_runs_of(member_ids))
    }

    /// Records runs on entry; one already there (same journey, member and entry key) is left
    /// alone. Returns how many are new.
    pub async fn start_journey_runs(&self, runs: &[NewRun]) -> Result<u64> {
        on_backend!(self.start_journey_runs(runs))
    }

    /// Ends the active runs these events exit and skips their scheduled step messages with the
    /// reason `journey exited: <kind>`, in one transaction, committed before it returns.
    pub async fn exit_journeys(&self, exits: &[JourneyExit], now: Timestamp) -> Result<ExitCounts> {
        on_backend!(self.exit_journeys(exits, now))
    }

    /// Marks these runs completed (their last step came due), if still active.
    pub async fn complete_journey_runs(&self, run_ids: &[i64], now: Timestamp) -> Result<u64> {
        on_backend!(self.complete_journey_runs(run_ids, now))
    }

    /// The latest event instant of each of `kinds` for each of these members (those with one).
    pub async fn latest_events(&self, member_ids: &[i64], kinds: &[String]) -> Result<Vec<(i64, String, Timestamp)>> {
        on_backend!(self.latest_events(member_ids, kinds))
    }

    /// The most recent runs, newest first, of one journey or all.
    pub async fn journey_runs(&self, journey_id: Option<&str>, limit: u32) -> Result<Vec<JourneyRun>> {
        on_backend!(self.journey_runs(journey_id, limit))
    }

    /// Adds codes to a pool; a code already in the pool is ignored. Returns how many are new.
    pub async fn import_coupons(&self, pool: &str, codes: &[String], now: Timestamp) -> Result<u64> {
        on_backend!(self.import_coupons(pool, codes, now))
    }

    /// Issues one code of `pool` to each `(message id, member id)`: a message that already has a
    /// code gets the same one again (a retry); the others take free codes, each code going to
    /// one message only, even with several instances. A message missing from the answer found
    /// the pool exhausted.
    pub async fn issue_coupons(&self, pool: &str, wants: &[(i64, i64)], now: Timestamp) -> Result<Vec<(i64, String)>> {
        on_backend!(self.issue_coupons(pool, wants, now))
    }

    /// Every pool with its total and remaining (not issued) codes.
    pub async fn coupon_pools(&self) -> Result<Vec<CouponPool>> {
        on_backend!(self.coupon_pools())
    }
}
