//! Experiments and conversions: the per-arm counts of a rule's report (see `track::report`).

use jiff::Timestamp;

use super::{Backend, Result, Store};
use crate::track::report::ArmCounts;

/// What a report counts: one rule's messages (of one experiment, when named), the events that
/// convert and for how long after each member's message, from an instant on.
#[derive(Debug, Clone)]
pub struct ReportQuery<'a> {
    pub rule_id: &'a str,
    /// Only messages of this experiment (a rule's current one); `None`: all the rule's messages.
    pub experiment: Option<&'a str>,
    pub events: &'a [String],
    pub window_ms: i64,
    /// Only members planned at or after this instant.
    pub since: Option<Timestamp>,
}

impl Store {
    /// Per arm (variant, `holdout`, or `None` without an experiment): eligible, sent, delivered,
    /// failed and converted, counting a member once per occurrence whatever the channels.
    /// A member's anchor is their first message sent (sent or delivered), else the planned
    /// `run_at` (the holdout, and members nothing reached); they converted with an event of the
    /// kinds at or after the anchor and before `anchor + window`. One statement on both backends.
    pub async fn report_counts(&self, q: &ReportQuery<'_>) -> Result<Vec<ArmCounts>> {
        on_backend!(self.report_counts(q))
    }
}
