//! The dispatcher's policy gate: collisions, quiet hours and frequency caps applied to a claimed
//! batch. The decisions are the pure functions of `plan::collide`, `plan::quiet` and
//! `plan::caps`; this file gathers their inputs for the whole batch (one store query) and turns
//! their answers into skips, deferrals and merged occurrence variables.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::channels::{Outgoing, Purpose};
use crate::config::Settings;
use crate::members::Member;
use crate::plan::caps::{self, Sent};
use crate::plan::collide::{self, Contender, Priority, Stage, Verdict};
use crate::plan::quiet::{self, QuietHours, Shift};
use crate::plan::send_time::local_instant;
use crate::store::{Claimed, Defer, Finalize, Recent, Store};
use crate::triggers::{self, Rule, Window};

/// The policy a dispatcher applies, from the settings: rules (priority, merge, quiet hours, and
/// their triggers to foresee a colliding occurrence not yet planned), caps, the programme's zone.
#[derive(Clone)]
pub struct Policy {
    settings: Arc<Settings>,
}

impl Policy {
    pub fn new(settings: Arc<Settings>) -> Policy {
        Policy { settings }
    }

    /// A rule by id, with its position for ties; a journey's entry counts as a rule listed after
    /// every rule (its priority, quiet hours and class are the journey's).
    fn rule(&self, id: &str) -> Option<(usize, &Rule)> {
        let rules = self.settings.rules.iter();
        let journeys = self.settings.journeys.iter().map(|j| &j.entry);
        rules.chain(journeys).enumerate().find(|(_, r)| r.id == id)
    }

    /// Whether the rule or journey is known and disabled (a message of one no longer defined,
    /// or of a transactional send, is not).
    pub fn disabled(&self, rule_id: &str) -> bool {
        self.rule(rule_id).is_some_and(|(_, r)| !r.enabled)
    }

    /// A message's priority class and its rule's position (for ties); a rule no longer
    /// configured is lifecycle (service for a service message), listed last.
    fn rank(&self, rule_id: &str, purpose: Purpose) -> (Priority, usize) {
        match self.rule(rule_id) {
            Some((i, r)) => (r.priority, i),
            None if purpose == Purpose::Service => (Priority::Service, usize::MAX),
            None => (Priority::Lifecycle, usize::MAX),
        }
    }

    /// Whether a rule's messages take part in collisions: greetings for calendar occasions
    /// (birthdays, anniversaries, holidays, festivals). Messages that answer something the member
    /// did (events), journeys, win-backs and transactional sends are limited by the caps only.
    fn collides(&self, rule_id: &str) -> bool {
        self.rule(rule_id).is_some_and(|(_, r)| r.trigger.is_occasion())
    }

    /// The rule's sending hours; a transactional send (asked for by the host, now) has none.
    fn quiet_hours(&self, rule_id: &str) -> QuietHours {
        if rule_id == crate::entry::API_RULE {
            return QuietHours::NONE;
        }
        self.rule(rule_id).map_or(self.settings.quiet_hours, |(_, r)| r.quiet_hours)
    }

    fn zone(&self, member: &Member) -> TimeZone {
        member
            .time_zone
            .as_deref()
            .and_then(|z| TimeZone::get(z).ok())
            .unwrap_or_else(|| self.settings.programme_tz.clone())
    }
}

/// One batch's view: its members' recent and same-day messages.
pub struct Gate<'a> {
    policy: &'a Policy,
    now: Timestamp,
    recent: HashMap<i64, Vec<Recent>>,
    zones: HashMap<i64, TimeZone>,
}

impl<'a> Gate<'a> {
    /// Loads, in one query, what the batch's members got lately (as far back as the longest cap)
    /// and what is due for them around the batch's days.
    pub async fn load(
        store: &Store,
        policy: &'a Policy,
        claimed: &[Claimed],
        members: &HashMap<i64, Member>,
        now: Timestamp,
    ) -> anyhow::Result<Gate<'a>> {
        let two_days = SignedDuration::from_hours(48);
        let back = caps::longest(&policy.settings.caps).max(two_days);
        let earliest = claimed.iter().map(|c| c.run_at).min().unwrap_or(now).min(now);
        let latest = claimed.iter().map(|c| c.run_at).max().unwrap_or(now).max(now);
        let since = earliest.checked_sub(back).unwrap_or(Timestamp::MIN);
        let until = latest.checked_add(two_days).unwrap_or(Timestamp::MAX);
        let ids: Vec<i64> = members.keys().copied().collect();
        let batch: HashSet<i64> = claimed.iter().map(|c| c.id).collect();
        let mut recent: HashMap<i64, Vec<Recent>> = HashMap::new();
        for r in store.recent_messages(&ids, since, until).await? {
            if !batch.contains(&r.id) {
                recent.entry(r.member_id).or_default().push(r);
            }
        }
        let zones = members.values().map(|m| (m.id, policy.zone(m))).collect();
        Ok(Gate { policy, now, recent, zones })
    }

    fn zone(&self, member_id: i64) -> TimeZone {
        self.zones.get(&member_id).cloned().unwrap_or_else(|| self.policy.settings.programme_tz.clone())
    }

    fn day(&self, member_id: i64, t: Timestamp) -> Date {
        t.to_zoned_datetime(self.zone(member_id)).date()
    }

    /// Decides collisions for the batch: each marketing message against the other rules'
    /// marketing messages for its member on its member-local day (sent, due, skipped as having
    /// collided, in this batch, or foreseen from a rule's trigger though not yet planned). A
    /// loser comes back as a skip; a merging winner gets `occurrence.also`.
    pub fn collide(
        &self,
        claimed: Vec<Claimed>,
        members: &HashMap<i64, Member>,
    ) -> (Vec<Claimed>, Vec<(i64, u32, Finalize)>) {
        let verdicts: Vec<Option<Verdict>> = claimed.iter().map(|c| self.verdict(c, &claimed, members)).collect();
        let mut keep = Vec::with_capacity(claimed.len());
        let mut skipped = Vec::new();
        for (mut c, verdict) in claimed.into_iter().zip(verdicts) {
            match verdict {
                Some(Verdict::Collided { with }) => {
                    skipped.push((c.id, c.attempt, Finalize::Skipped { reason: collide::reason(&with) }));
                }
                Some(Verdict::Send { also }) if !also.is_empty() => {
                    c.vars.insert("also".into(), Value::Array(also));
                    keep.push(c);
                }
                _ => keep.push(c),
            }
        }
        (keep, skipped)
    }

    /// The collision verdict of one batch message; `None` when it is not marketing.
    fn verdict(&self, c: &Claimed, batch: &[Claimed], members: &HashMap<i64, Member>) -> Option<Verdict> {
        if c.purpose != Purpose::Marketing || !self.policy.collides(&c.rule_id) {
            return None;
        }
        let member = members.get(&c.member_id)?;
        let day = self.day(c.member_id, c.run_at);
        let contender = |rule: &str, occurrence: &str, stage, collided_with, vars: &serde_json::Map<String, Value>| {
            let (priority, order) = self.policy.rank(rule, Purpose::Marketing);
            Contender {
                rule: rule.to_string(),
                occurrence: occurrence.to_string(),
                priority,
                order,
                stage,
                collided_with,
                vars: vars.clone(),
            }
        };
        let mut others = Vec::new();
        for r in self.recent.get(&c.member_id).into_iter().flatten() {
            if r.purpose != Purpose::Marketing || !self.policy.collides(&r.rule_id) {
                continue;
            }
            let (stage, at) = match (r.handed(), r.state.as_str()) {
                (true, _) => (Stage::Handed, r.handed_at.unwrap_or(r.run_at)),
                (false, "skipped") => (Stage::Collided, r.run_at),
                _ => (Stage::Pending, r.run_at),
            };
            if self.day(c.member_id, at) != day {
                continue;
            }
            let with = r.reason.as_deref().and_then(collide::collided_with).map(str::to_string);
            others.push(contender(&r.rule_id, &r.occurrence, stage, with, &r.vars));
        }
        for b in batch {
            if b.id != c.id
                && b.member_id == c.member_id
                && b.purpose == Purpose::Marketing
                && self.policy.collides(&b.rule_id)
                && self.day(b.member_id, b.run_at) == day
            {
                others.push(contender(&b.rule_id, &b.occurrence, Stage::Pending, None, &b.vars));
            }
        }
        for (rule, occ) in self.foreseen(member, day) {
            if rule.id != c.rule_id && !others.iter().any(|o| o.rule == rule.id && o.occurrence == occ.key) {
                others.push(contender(&rule.id, &occ.key, Stage::Pending, None, &occ.vars));
            }
        }
        let me = contender(&c.rule_id, &c.occurrence, Stage::Pending, None, &c.vars);
        let merge = self.policy.rule(&c.rule_id).is_some_and(|(_, r)| r.merge);
        Some(collide::decide(&me, &others, merge))
    }

    /// The dated marketing rules' occurrences for the member whose message would go out later
    /// on `day` (member-local) but may not be planned yet: the evaluator plans only its lookahead
    /// ahead, and a higher-priority message due in the evening must still win over one due in the
    /// morning.
    fn foreseen(&self, member: &Member, day: Date) -> Vec<(&'a Rule, triggers::Occurrence)> {
        let tz = self.zone(member.id);
        let Ok(next) = day.tomorrow() else { return Vec::new() };
        let ms = SignedDuration::from_millis(1);
        let from = local_instant(day, Time::midnight(), &tz).checked_sub(ms).unwrap_or(self.now);
        let to = local_instant(next, Time::midnight(), &tz).checked_sub(ms).unwrap_or(self.now);
        let window = Window { from, to, now: self.now };
        let locale = member.locale.as_deref().unwrap_or(&self.policy.settings.raw.programme.default_locale);
        let mut out = Vec::new();
        for rule in self.policy.settings.rules.iter() {
            if !rule.enabled || !rule.trigger.is_occasion() || rule.purpose != Purpose::Marketing {
                continue;
            }
            for occ in triggers::evaluate(rule, member, &tz, window, false, locale) {
                // As planning would make it: moved out of quiet hours, not already late.
                let planned = crate::plan::plan(rule, member, &occ, self.now, &tz);
                let on_day = |t: Timestamp| t.to_zoned_datetime(tz.clone()).date() == day;
                if planned.iter().any(|m| m.skip.is_none() && m.run_at > self.now && on_day(m.run_at)) {
                    out.push((rule, occ));
                }
            }
        }
        out
    }

    /// Quiet hours on the channel each message is about to go out on (its own, or a fallback's),
    /// then the caps, in priority order: what may be sent now, what waits (quiet hours), and what
    /// is skipped (pushed onto `skipped` with its reason).
    pub fn admit(
        &self,
        ready: Vec<(Claimed, Outgoing)>,
        skipped: &mut Vec<(i64, u32, Finalize)>,
    ) -> (Vec<(Claimed, Outgoing)>, Vec<Defer>) {
        let mut deferred = Vec::new();
        let mut open = Vec::with_capacity(ready.len());
        for (c, out) in ready {
            let channel = out.rendered.channel();
            let hours = self.policy.quiet_hours(&c.rule_id).get(channel);
            match quiet::shift(self.now, c.deadline, channel, hours, &self.zone(c.member_id)) {
                Shift::Now => open.push((c, out)),
                Shift::Wait(at) => {
                    let hours = hours.map(|h| h.to_string()).unwrap_or_default();
                    let why = format!("quiet hours: {channel} is sent {hours} member-local");
                    deferred.push(Defer { id: c.id, attempt: c.attempt, at, why });
                }
                Shift::Skip(reason) => skipped.push((c.id, c.attempt, Finalize::Skipped { reason })),
            }
        }
        let caps = &self.policy.settings.caps;
        if caps.is_empty() {
            return (open, deferred);
        }
        open.sort_by_key(|(c, _)| (std::cmp::Reverse(self.policy.rank(&c.rule_id, c.purpose).0), c.run_at, c.id));
        let mut sent: HashMap<i64, Vec<Sent>> = HashMap::new();
        for (member, recent) in &self.recent {
            let got = recent
                .iter()
                .filter_map(|r| r.handed_at.map(|at| Sent { channel: r.channel, purpose: r.purpose, at }))
                .collect();
            sent.insert(*member, got);
        }
        let mut admitted = Vec::with_capacity(open.len());
        for (c, out) in open {
            let channel = out.rendered.channel();
            let priority = self.policy.rank(&c.rule_id, c.purpose).0;
            let got = sent.entry(c.member_id).or_default();
            match caps::check(caps, got, channel, c.purpose, priority, self.now) {
                Some(reason) => skipped.push((c.id, c.attempt, Finalize::Skipped { reason })),
                None => {
                    got.push(Sent { channel, purpose: c.purpose, at: self.now });
                    admitted.push((c, out));
                }
            }
        }
        (admitted, deferred)
    }
}
