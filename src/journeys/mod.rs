//! Journeys: multi-step flows. A journey is entered when its entry trigger (any rule trigger)
//! fires for a member; every step is then enqueued up front as a message due on its day. An
//! event of an `exit_on` kind (a purchase) ends the member's active runs at once and skips their
//! remaining steps; a step's `unless` kinds and the run's state are checked again when the step
//! is due. Re-entry rules decide whether a new occurrence may start the journey again.
//!
//! `plan.rs` is the pure policy (step planning, re-entry, step checks); this file the edges:
//! entering from the evaluator, exiting on recorded events, checking claimed steps.

pub mod cli;
pub mod config;
pub mod plan;

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::channels::ChannelKind;
use crate::evaluate::Zones;
use crate::members::{EventInput, Member, Segment};
use crate::plan::NewMessage;
use crate::store::{Claimed, ExitCounts, Finalize, JourneyExit, NewRun, Store};
use crate::triggers::{Occurrence, Rule};

/// A journey as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub id: String,
    /// The entry: trigger, `send_at`, `max_lateness`, `purpose`, `segments` and `enabled`, as a
    /// rule has them (its channels and template are the first step's).
    pub entry: Rule,
    /// Event kinds that end an active run at once.
    pub exit_on: Vec<String>,
    pub reentry: Reentry,
    pub steps: Vec<Step>,
}

/// One step: sent `after_days` after entry, at the journey's `send_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub after_days: u32,
    pub channels: Vec<ChannelKind>,
    pub fallback: bool,
    pub template: String,
    /// Skip this step if the member had an event of one of these kinds since entering.
    pub unless: Vec<String>,
    /// Only members in these segments get this step; empty: all.
    pub segments: Vec<Segment>,
    pub coupon: Option<Coupon>,
    /// Variants of this step and a holdout; `None`: everyone gets the step's template.
    pub experiment: Option<crate::plan::experiment::Experiment>,
}

/// Where a step's coupon code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coupon {
    /// A code from an imported pool, issued once.
    Pool(String),
    /// A code generated and signed (see `crate::coupons`), with this prefix.
    Signed { prefix: String },
}

/// May a member enter a journey again with a new occurrence of its trigger?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reentry {
    Never,
    Always,
    /// Only this long after their last entry.
    After(SignedDuration),
}

/// The default minimum gap between two entries of one member into one journey.
pub const DEFAULT_REENTRY_DAYS: i64 = 30;

/// What entering did in one member batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entered {
    pub runs: u64,
    pub planned: u64,
    pub enqueued: u64,
    pub skipped: u64,
    pub refused: u64,
}

/// Enters members into journeys for the entry occurrences found in one member batch: the
/// re-entry rules are checked against the members' runs (one query), new runs recorded, and
/// every step of each run enqueued (idempotently, by dedupe key).
pub async fn enter(
    store: &Store,
    found: &[(&Journey, Member, Occurrence)],
    zones: &mut Zones,
    fallback_tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> anyhow::Result<Entered> {
    let mut out = Entered::default();
    if found.is_empty() {
        return Ok(out);
    }
    let mut ids: Vec<i64> = found.iter().map(|(_, m, _)| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut runs = store.journey_runs_of(&ids).await?;
    let mut new_runs = Vec::new();
    let mut messages: Vec<NewMessage> = Vec::new();
    for (journey, member, occ) in found {
        let previous: Vec<_> = runs.iter().filter(|r| r.journey_id == journey.id && r.member_id == member.id).collect();
        match plan::may_enter(&journey.reentry, &occ.key, &previous, now) {
            plan::Entry::Refused(why) => {
                tracing::debug!(journey = %journey.id, member.id = member.id, why, "journey entry refused");
                out.refused += 1;
                continue;
            }
            plan::Entry::New => {
                let run = NewRun {
                    journey_id: journey.id.clone(),
                    member_id: member.id,
                    entry_key: occ.key.clone(),
                    entered_at: now,
                };
                // Seen by the next occurrence of the same batch.
                runs.push(crate::store::JourneyRun {
                    id: 0,
                    journey_id: run.journey_id.clone(),
                    member_id: run.member_id,
                    entry_key: run.entry_key.clone(),
                    entered_at: now,
                    state: "active".into(),
                    exit_reason: None,
                    ended_at: None,
                });
                new_runs.push(run);
            }
            plan::Entry::Again => {}
        }
        let tz = zones.of(member, fallback_tz);
        for n in 0..journey.steps.len() {
            messages.extend(plan::plan_step(journey, n, member, occ, &tz, now));
        }
    }
    // The runs first: a crash before the steps are in leaves the window to be evaluated again,
    // and the same occurrence then enqueues them (`Entry::Again`).
    out.runs = store.start_journey_runs(&new_runs).await?;
    out.planned = messages.len() as u64;
    out.skipped = messages.iter().filter(|m| m.skip.is_some()).count() as u64;
    out.enqueued = store.enqueue(&messages, now).await?;
    Ok(out)
}

/// Ends the journeys these recorded events exit (each event whose kind is in a journey's
/// `exit_on`), before the caller answers: the runs are marked exited and their scheduled steps
/// skipped with `journey exited: <kind>`.
pub async fn exit_on_events(
    store: &Store,
    journeys: &[Journey],
    events: &[EventInput],
    now: Timestamp,
) -> anyhow::Result<ExitCounts> {
    let exits: Vec<JourneyExit> = events
        .iter()
        .flat_map(|e| {
            journeys.iter().filter(|j| j.exit_on.contains(&e.kind)).map(|j| JourneyExit {
                journey_id: j.id.clone(),
                member: e.member.clone(),
                kind: e.kind.clone(),
                at: e.at,
            })
        })
        .collect();
    let counts = store.exit_journeys(&exits, now).await?;
    if counts.runs > 0 {
        tracing::info!(runs = counts.runs, messages = counts.messages, "journeys exited");
    }
    Ok(counts)
}

/// Checks a claimed batch's journey steps before rendering: a step whose run has exited, or
/// whose `unless` condition now holds, is settled as skipped with the reason. Two queries per
/// batch (the members' runs, their latest events of the `unless` kinds), none without a journey
/// step. A run whose last step is due is marked completed. Steps with a coupon get an empty
/// `coupon` variable, filled in once the message is known to go out (`crate::coupons::issue`).
pub async fn check_claimed(
    store: &Store,
    claimed: Vec<Claimed>,
    now: Timestamp,
) -> anyhow::Result<(Vec<Claimed>, Vec<(i64, u32, Finalize)>)> {
    let journey_of = |c: &Claimed| c.vars.get(plan::VAR_JOURNEY).and_then(|v| v.as_str()).map(String::from);
    if !claimed.iter().any(|c| journey_of(c).is_some()) {
        return Ok((claimed, Vec::new()));
    }
    let mut ids: Vec<i64> = claimed.iter().filter(|c| journey_of(c).is_some()).map(|c| c.member_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let runs = store.journey_runs_of(&ids).await?;
    let mut kinds: Vec<String> = claimed
        .iter()
        .flat_map(|c| plan::unless_of(&c.vars).into_iter().chain(plan::kinds_of(&c.vars, plan::VAR_EXIT_ON)))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let latest: HashMap<(i64, String), Timestamp> =
        store.latest_events(&ids, &kinds).await?.into_iter().map(|(m, k, at)| ((m, k), at)).collect();
    let mut keep = Vec::with_capacity(claimed.len());
    let mut skipped = Vec::new();
    let mut completed = Vec::new();
    for mut c in claimed {
        let Some(journey) = journey_of(&c) else {
            keep.push(c);
            continue;
        };
        let entry = c.vars.get(plan::VAR_ENTRY).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let run = runs.iter().find(|r| r.journey_id == journey && r.member_id == c.member_id && r.entry_key == entry);
        let unless = plan::unless_of(&c.vars);
        let exit_on = plan::kinds_of(&c.vars, plan::VAR_EXIT_ON);
        let since = c.vars.get(plan::VAR_SINCE).and_then(|v| v.as_str()).and_then(|s| s.parse().ok());
        let member = c.member_id;
        let latest = |k: &str| latest.get(&(member, k.to_string())).copied();
        if let Some(reason) = plan::step_skip(run, &exit_on, &unless, since, latest) {
            skipped.push((c.id, c.attempt, Finalize::Skipped { reason }));
            continue;
        }
        if let Some(run) = run
            && c.vars.get(plan::VAR_LAST).and_then(|v| v.as_bool()) == Some(true)
        {
            completed.push(run.id);
        }
        if c.vars.contains_key(plan::VAR_COUPON_POOL) || c.vars.contains_key(plan::VAR_COUPON_PREFIX) {
            c.vars.insert(plan::VAR_COUPON.into(), "".into());
        }
        keep.push(c);
    }
    store.complete_journey_runs(&completed, now).await?;
    Ok((keep, skipped))
}

/// The enabled journey with this id.
pub fn find<'a>(journeys: &'a [Journey], id: &str) -> Option<&'a Journey> {
    journeys.iter().find(|j| j.entry.enabled && j.id == id)
}

/// Every enabled journey's step templates must exist for the step's channels and render in each
/// locale with the variables the step carries (the entry trigger's, the journey's, the coupon):
/// checked with the rules' templates at start-up and on reload.
pub fn check_templates(settings: &crate::config::Settings, templates: &crate::render::Templates) -> Vec<String> {
    use serde_json::json;
    let mut problems = Vec::new();
    let mut sms_templates = Vec::new();
    for (i, j) in settings.journeys.iter().enumerate().filter(|(_, j)| j.entry.enabled) {
        for (n, step) in j.steps.iter().enumerate() {
            // The step's template, or each of its experiment's variants (with their vars).
            for rt in crate::plan::experiment::templates(step.experiment.as_ref(), &step.template) {
                let mut vars = j.entry.trigger.sample_vars();
                vars.insert(plan::VAR_JOURNEY.into(), json!(j.id));
                vars.insert(plan::VAR_STEP.into(), json!(n + 1));
                if step.coupon.is_some() {
                    vars.insert(plan::VAR_COUPON.into(), json!("WB-23456789ABCDEFGH"));
                }
                if let Some(extra) = rt.vars {
                    vars.extend(extra.clone());
                }
                let vars = serde_json::Value::Object(vars);
                let (key, template) = (format!("journeys[{i}].steps[{n}].{}", rt.key), rt.template);
                for &channel in &step.channels {
                    if channel == ChannelKind::Sms {
                        sms_templates.push(template);
                    }
                    if !templates.has(template, channel) {
                        problems.push(format!("{key}: {template:?} has no {channel} variant (journey {:?})", j.id));
                        continue;
                    }
                    for locale in templates.locales(template) {
                        let mut ctx = crate::render::fixture_context(&locale);
                        ctx["occurrence"] = vars.clone();
                        ctx["rule"]["id"] = j.id.clone().into();
                        if let Err(e) = templates.render(template, channel, &ctx) {
                            problems.push(format!("{key}: {template:?} ({locale}, {channel}) does not render: {e}"));
                        }
                    }
                }
            }
        }
    }
    for provider in settings.raw.channels.names(ChannelKind::Sms) {
        if crate::render::providers::TEMPLATE_PROVIDERS.contains(&provider.as_str()) {
            problems.extend(templates.missing_provider_templates_of(&provider, |k| sms_templates.contains(&k)));
        }
    }
    problems
}
