//! The evaluation tick: for each enabled rule, the window since its watermark up to
//! `now + lookahead`; members read in keyset batches; triggers find occurrences, the planner
//! turns them into messages, and the store inserts them idempotently. The watermark moves only
//! after a whole pass, so a crash mid-tick re-evaluates the same window, harmlessly. When every
//! rule can be narrowed (`triggers::narrow`), each reads only its candidates through indexes
//! instead of every member.

use crate::clock::InstantExt;
use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::config::Settings;
use crate::journeys;
use crate::members::Member;
use crate::plan::{self, NewMessage};
use crate::store::Store;
use crate::triggers::narrow::{self, Source};
use crate::triggers::{self, Occurrence, Rule, Window};

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Members read: every member on a full scan; a rule's candidates when every rule narrows
    /// (a member read by two rules counts twice).
    pub members: u64,
    pub planned: u64,
    /// Newly inserted (planned minus those already there).
    pub enqueued: u64,
    pub skipped: u64,
    /// Another instance held the evaluator lock: this tick evaluated nothing.
    pub busy: bool,
}

/// Resolves members' zones once per pass.
#[derive(Default)]
pub struct Zones(HashMap<String, TimeZone>);

impl Zones {
    pub fn of(&mut self, member: &Member, fallback: &TimeZone) -> TimeZone {
        match &member.time_zone {
            None => fallback.clone(),
            Some(name) => self
                .0
                .entry(name.clone())
                .or_insert_with(|| TimeZone::get(name).unwrap_or_else(|_| fallback.clone()))
                .clone(),
        }
    }
}

/// The members in id order, a batch at a time (keyset pagination).
struct Batches<'a> {
    store: &'a Store,
    size: u32,
    after: i64,
    /// Read each member's value too (some rule filters on segments or is a churn rule).
    value: bool,
}

impl<'a> Batches<'a> {
    fn new<'r>(store: &'a Store, size: u32, rules: impl IntoIterator<Item = &'r Rule>) -> Self {
        let value = rules.into_iter().any(|r| r.needs_value());
        Batches { store, size, after: 0, value }
    }

    async fn next(&mut self) -> anyhow::Result<Option<Vec<Member>>> {
        let batch = self.store.members_after(self.after, self.size, self.value).await?;
        Ok(batch.last().map(|m| m.id).map(|last| {
            self.after = last;
            batch
        }))
    }
}

/// One rule with the window it is evaluated over.
struct Pass<'a> {
    rule: &'a Rule,
    window: Window,
    /// The member change counter the rule's last tick had seen; members changed since (with a
    /// higher `change_seq`) were not seen by it. `None` for a rule never evaluated.
    seen_changes: Option<i64>,
}

/// Runs every pass over one batch of members, calling `found` for each occurrence.
fn occurrences_in(
    batch: &[Member],
    settings: &Settings,
    passes: &[Pass<'_>],
    zones: &mut Zones,
    mut found: impl FnMut(&Rule, &Member, &Occurrence, &TimeZone),
) {
    for member in batch {
        let tz = zones.of(member, &settings.programme_tz);
        let locale = member.locale.as_deref().unwrap_or(&settings.raw.programme.default_locale);
        for pass in passes {
            let changed = pass.seen_changes.is_none_or(|seen| member.change_seq > seen);
            for occ in triggers::evaluate(pass.rule, member, &tz, pass.window, changed, locale) {
                found(pass.rule, member, &occ, &tz);
            }
        }
    }
}

/// The fewest members a candidate read returns at a time.
const CANDIDATE_PAGE: u32 = 10_000;

/// Each pass's candidate sources (`triggers::narrow`), or `None` when some pass needs every
/// member (then every pass rides the one full scan). A rule evaluated before reads the members
/// changed since (evaluated with a changed member's look-back) and the narrowed unchanged ones; a
/// rule never evaluated treats every member as changed.
fn narrowed(passes: &[Pass<'_>]) -> Option<Vec<Vec<Source>>> {
    passes
        .iter()
        .map(|p| match p.seen_changes {
            None => narrow::sources(p.rule, p.window.from, p.window.to, true),
            Some(seen) => {
                let mut sources = vec![Source::ChangedAfter(seen)];
                sources.extend(narrow::sources(p.rule, p.window.from, p.window.to, false)?);
                Some(sources)
            }
        })
        .collect()
}

/// Evaluates one batch of members against `passes`: plans, enqueues, enters journeys.
async fn run_batch(
    store: &Store,
    settings: &Settings,
    now: Timestamp,
    batch: &[Member],
    passes: &[Pass<'_>],
    zones: &mut Zones,
    report: &mut TickReport,
) -> anyhow::Result<()> {
    report.members += batch.len() as u64;
    let mut pending: Vec<NewMessage> = Vec::new();
    let mut entered = Vec::new();
    occurrences_in(batch, settings, passes, zones, |rule, member, occ, tz| {
        match journeys::find(&settings.journeys, &rule.id) {
            Some(journey) => entered.push((journey, member.clone(), occ.clone())),
            None => pending.extend(plan::plan(rule, member, occ, now, tz)),
        }
    });
    report.planned += pending.len() as u64;
    report.skipped += pending.iter().filter(|m| m.skip.is_some()).count() as u64;
    report.enqueued += store.enqueue(&pending, now).await?;
    let j = journeys::enter(store, &entered, zones, &settings.programme_tz, now).await?;
    report.planned += j.planned;
    report.skipped += j.skipped;
    report.enqueued += j.enqueued;
    Ok(())
}

/// Runs one evaluation tick at `now`, if no other instance is evaluating (PostgreSQL). The
/// dedupe key would make a double evaluation harmless; the lock makes it rare.
pub async fn tick(store: &Store, settings: &Settings, now: Timestamp) -> anyhow::Result<TickReport> {
    let Some(lock) = store.try_evaluator_lock().await? else {
        return Ok(TickReport { busy: true, ..TickReport::default() });
    };
    // On an error the lock is dropped with its session, which releases it.
    let report = evaluate(store, settings, now).await?;
    store.release_evaluator_lock(lock).await;
    Ok(report)
}

async fn evaluate(store: &Store, settings: &Settings, now: Timestamp) -> anyhow::Result<TickReport> {
    let to = now.plus(settings.lookahead);
    // Read before any member: a change committed after this is seen again by the next tick.
    let changes = store.member_changes().await?;
    let mut passes = Vec::new();
    // A journey's entry is evaluated as a rule of the journey's id (ids are distinct).
    let entries = settings.journeys.iter().map(|j| &j.entry);
    for rule in settings.rules.iter().chain(entries).filter(|r| r.enabled) {
        let (from, seen_changes) = match store.watermark(&rule.id).await? {
            Some((until, seen)) => (until, Some(seen)),
            // A new rule catches up only as far as its lateness allows.
            None => (now.minus(rule.max_lateness), None),
        };
        let changed_since = seen_changes.is_none_or(|seen| seen < changes);
        if from < to || changed_since {
            passes.push(Pass { rule, window: Window { from: from.min(to), to, now }, seen_changes });
        }
    }
    let mut report = TickReport::default();
    let mut zones = Zones::default();
    // Event rules read the events they have not seen, not the members.
    let (events, passes): (Vec<Pass>, Vec<Pass>) =
        passes.into_iter().partition(|p| crate::entry::is_event_rule(p.rule));
    for pass in &events {
        let pass =
            crate::entry::EventPass { rule: pass.rule, window: pass.window, seen_changes: pass.seen_changes, changes };
        crate::entry::evaluate_event_rule(store, settings, pass, &mut zones, &mut report).await?;
    }
    let size = settings.raw.evaluation.member_batch;
    match narrowed(&passes) {
        // Every rule narrows: each reads only its candidates, a source at a time.
        Some(narrowed) => {
            // Larger pages than the full scan's: a day's candidates for one month-day usually
            // fit in one, so a planner without statistics that sorts each page's rows (rather
            // than walking the index in order) sorts them once.
            let size = size.max(CANDIDATE_PAGE);
            for (pass, sources) in passes.iter().zip(narrowed) {
                let value = pass.rule.needs_value();
                for source in &sources {
                    // A member changed before this tick read the counter is read by the
                    // `ChangedAfter` source (with the changed member's longer look-back), so the
                    // other sources leave it out; one changed since may have been written after
                    // that source passed it, so they keep it (its dedupe key makes a second
                    // planning harmless).
                    let skip_changed = !matches!(source, Source::ChangedAfter(_)) && pass.seen_changes.is_some();
                    let mut after = source.start();
                    loop {
                        let batch = store.members_where(source, after, size, value).await?;
                        let Some(last) = batch.last() else { break };
                        after = (source.range_key(last).unwrap_or(0), last.id);
                        let full = batch.len() as u32 == size;
                        let batch: Vec<Member> = if skip_changed {
                            batch
                                .into_iter()
                                .filter(|m| {
                                    pass.seen_changes.is_none_or(|seen| m.change_seq <= seen || m.change_seq > changes)
                                })
                                .collect()
                        } else {
                            batch
                        };
                        run_batch(store, settings, now, &batch, std::slice::from_ref(pass), &mut zones, &mut report)
                            .await?;
                        if !full {
                            break;
                        }
                    }
                }
            }
        }
        None => {
            let mut batches = Batches::new(store, size, passes.iter().map(|p| p.rule));
            while !passes.is_empty()
                && let Some(batch) = batches.next().await?
            {
                run_batch(store, settings, now, &batch, &passes, &mut zones, &mut report).await?;
            }
        }
    }
    for pass in events.iter().chain(&passes) {
        store.set_watermark(&pass.rule.id, to, changes, now).await?;
    }
    Ok(report)
}

/// One line of a forecast: how many messages a rule would send on a channel on a day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ForecastRow {
    pub day: Date,
    pub rule: String,
    pub channel: String,
    /// What the message is for: the festival's id for a festival rule, else the trigger
    /// (`birthday`, `lunar_birthday`, …).
    pub occasion: String,
    pub messages: u64,
    /// Would be skipped (no address on the channel, no consent or opted out, held out, late).
    pub skipped: u64,
    /// A few of the members it would go to (external ids).
    pub sample: Vec<String>,
}

/// How many recipients a forecast row names.
const FORECAST_SAMPLE: usize = 3;

/// What would be sent from `now` for `days` days, by day (in the programme's zone), rule (or
/// journey: its steps due within the window) and channel, without sending or storing anything.
pub async fn forecast(
    store: &Store,
    settings: &Settings,
    now: Timestamp,
    days: u32,
    only: Option<&str>,
) -> anyhow::Result<Vec<ForecastRow>> {
    let to = now.plus(jiff::SignedDuration::from_hours(24 * i64::from(days)));
    let window = Window { from: now, to, now };
    // Every enabled rule and journey entry; or the one asked for, enabled or not (what it would
    // send if it were switched on).
    let entries = settings.journeys.iter().map(|j| &j.entry);
    let rules: Vec<Rule> = settings
        .rules
        .iter()
        .chain(entries)
        .filter(|r| match only {
            Some(id) => r.id == id,
            None => r.enabled,
        })
        .map(|r| Rule { enabled: true, ..r.clone() })
        .collect();
    let passes: Vec<Pass> = rules.iter().map(|rule| Pass { rule, window, seen_changes: Some(i64::MAX) }).collect();
    // (day, rule, channel, occasion) → (messages, skipped, sample recipients)
    type Counts = (u64, u64, Vec<String>);
    let mut rows: BTreeMap<(Date, String, String, String), Counts> = BTreeMap::new();
    let mut zones = Zones::default();
    let mut batches = Batches::new(store, settings.raw.evaluation.member_batch, passes.iter().map(|p| p.rule));
    let policy: crate::plan::consent::ConsentPolicy = (&settings.raw.consent).into();
    while let Some(batch) = batches.next().await? {
        // What each member agreed to: one query per batch, as the dispatcher reads it.
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        let consents = store.consents(&ids).await?;
        occurrences_in(&batch, settings, &passes, &mut zones, |rule, member, occ, tz| {
            let occasion = match occ.vars.get("festival").and_then(|f| f.as_str()) {
                Some(festival) => festival.to_string(),
                None => rule.trigger.kind().to_string(),
            };
            // A journey's entry plans its steps (those due within the window).
            let planned = match settings.journeys.iter().find(|j| j.id == rule.id) {
                Some(j) => (0..j.steps.len())
                    .flat_map(|n| crate::journeys::plan::plan_step(j, n, member, occ, tz, now))
                    .filter(|m| m.run_at < to)
                    .collect(),
                None => plan::plan(rule, member, occ, now, tz),
            };
            for m in planned {
                let day = m.run_at.to_zoned_datetime(settings.programme_tz.clone()).date();
                let key = (day, m.rule_id.clone(), m.channel.to_string(), occasion.clone());
                let entry = rows.entry(key).or_default();
                let consent = consents.get(&(member.id, m.channel, m.purpose)).copied();
                let allowed = crate::plan::consent::decide(&policy, m.purpose, m.channel, consent).is_ok();
                if m.skip.is_some() || !allowed || plan::address(member, m.channel, None).is_none() {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                    if entry.2.len() < FORECAST_SAMPLE {
                        entry.2.push(member.external_id.clone());
                    }
                }
            }
        });
    }
    Ok(rows
        .into_iter()
        .map(|((day, rule, channel, occasion), (messages, skipped, sample))| ForecastRow {
            day,
            rule,
            channel,
            occasion,
            messages,
            skipped,
            sample,
        })
        .collect())
}

/// The member's next occurrence of `rule` within about a year, for previews.
pub fn next_occurrence(
    rule: &Rule,
    member: &Member,
    tz: &TimeZone,
    now: Timestamp,
    locale: &str,
) -> Option<Occurrence> {
    let to = now.plus(jiff::SignedDuration::from_hours(24 * 400));
    triggers::evaluate(rule, member, tz, Window { from: now, to, now }, true, locale).into_iter().next()
}
