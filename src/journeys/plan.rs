//! Pure journey policy: planning one step of a journey for a member who entered it, and the
//! re-entry decision. No clock, no database: `now` and the member's earlier runs come in.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use super::{Coupon, Journey, Reentry};
use crate::clock::InstantExt;
use crate::members::Member;
use crate::plan::send_time::local_instant;
use crate::plan::{self, NewMessage};
use crate::store::JourneyRun;
use crate::triggers::{INACTIVE_SINCE, Occurrence, Rule};

/// Occurrence variables a journey step carries besides its entry's.
pub const VAR_JOURNEY: &str = "journey";
pub const VAR_STEP: &str = "step";
pub const VAR_ENTRY: &str = "journey_entry";
pub const VAR_LAST: &str = "journey_last";
pub const VAR_UNLESS: &str = "unless";
/// The journey's `exit_on` kinds, checked again when each step is claimed.
pub const VAR_EXIT_ON: &str = "journey_exit_on";
/// When the member entered: the entry event's instant (or the first step's due time), from which
/// exit and `unless` events count even before the run was recorded.
pub const VAR_SINCE: &str = "journey_since";
pub const VAR_COUPON_POOL: &str = "coupon_pool";
pub const VAR_COUPON_PREFIX: &str = "coupon_prefix";
/// The code a template shows: `{{occurrence.coupon}}`, filled in at dispatch.
pub const VAR_COUPON: &str = "coupon";

/// The messages of step `n` (0-based) of `journey` for `member`, who entered it with `entry`.
///
/// The step is due on the member-local day `after` days from the entry's send day, at the
/// journey's `send_at` (step 0 with `after = "0d"` at the entry's own due instant). Its dedupe key
/// is `<journey>:<member>:<entry>:s<N>:<channel>` (N from 1); it carries the entry's variables
/// and `journey`, `step`, `journey_entry`, and its `unless` kinds and coupon source for the
/// dispatcher. Only the first step keeps a win-back's "member active again" check: later steps
/// are governed by `exit_on` and `unless`, which name the events that matter.
///
/// The one place a step becomes messages, so that anything deciding per message (an experiment's
/// variant) applies here.
pub fn plan_step(
    journey: &Journey,
    n: usize,
    member: &Member,
    entry: &Occurrence,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<NewMessage> {
    let step = &journey.steps[n];
    let due = if step.after_days == 0 {
        entry.due
    } else {
        let day0 = entry.due.to_zoned_datetime(tz.clone()).date();
        let day = day0.checked_add(i64::from(step.after_days).days()).unwrap_or(day0);
        local_instant(day, journey.entry.send_at, tz)
    };
    let mut vars = entry.vars.clone();
    if n > 0 {
        vars.remove(INACTIVE_SINCE);
    }
    vars.insert(VAR_JOURNEY.into(), json!(journey.id));
    vars.insert(VAR_STEP.into(), json!(n + 1));
    vars.insert(VAR_ENTRY.into(), json!(entry.key));
    vars.insert(VAR_LAST.into(), json!(n + 1 == journey.steps.len()));
    if !journey.exit_on.is_empty() {
        vars.insert(VAR_EXIT_ON.into(), json!(journey.exit_on));
    }
    let event_at = entry.vars.get("event").and_then(|e| e.get("at")).and_then(Value::as_str);
    let since = event_at.and_then(|at| at.parse::<Timestamp>().ok()).unwrap_or(entry.due);
    vars.insert(VAR_SINCE.into(), json!(since.to_string()));
    if !step.unless.is_empty() {
        vars.insert(VAR_UNLESS.into(), json!(step.unless));
    }
    match &step.coupon {
        Some(Coupon::Pool(pool)) => {
            vars.insert(VAR_COUPON_POOL.into(), json!(pool));
        }
        Some(Coupon::Signed { prefix }) => {
            vars.insert(VAR_COUPON_PREFIX.into(), json!(prefix));
        }
        None => {}
    }
    let rule = Rule {
        id: journey.id.clone(),
        channels: step.channels.clone(),
        template: step.template.clone(),
        fallback: step.fallback,
        experiment: step.experiment.clone(),
        ..journey.entry.clone()
    };
    let occ = Occurrence { key: format!("{}:s{}", entry.key, n + 1), date: entry.date, due, vars };
    let mut messages = plan::plan(&rule, member, &occ, now, tz);
    let in_segments =
        step.segments.is_empty() || member.value.as_ref().is_some_and(|v| step.segments.contains(&v.segment));
    if !in_segments {
        let names: Vec<&str> = step.segments.iter().map(|s| s.as_str()).collect();
        for m in messages.iter_mut().filter(|m| m.skip.is_none()) {
            m.skip = Some(format!("not in the step's segments ({})", names.join(", ")));
        }
    }
    messages
}

/// Whether a member may enter a journey with this occurrence of its entry trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A new run.
    New,
    /// The same occurrence again (a re-evaluated window): its steps are enqueued again, which
    /// changes nothing already there.
    Again,
    /// Refused by the re-entry rule, with why.
    Refused(String),
}

/// The re-entry decision, from the member's earlier runs of this journey. A trigger fires once
/// per occurrence anyway; the rule says whether a new occurrence may start the journey again:
/// `never` (once per member, ever), `always`, or only `after` a gap since the last entry.
pub fn may_enter(policy: &Reentry, entry_key: &str, previous: &[&JourneyRun], now: Timestamp) -> Entry {
    if previous.iter().any(|r| r.entry_key == entry_key) {
        return Entry::Again;
    }
    let Some(last) = previous.iter().map(|r| r.entered_at).max() else { return Entry::New };
    match policy {
        Reentry::Always => Entry::New,
        Reentry::Never => Entry::Refused(format!("re-entry is never allowed; entered at {last}")),
        Reentry::After(gap) => {
            let allowed = last.plus(*gap);
            if now >= allowed {
                Entry::New
            } else {
                Entry::Refused(format!("re-entry allowed {gap:#} after the last entry ({last}), from {allowed}"))
            }
        }
    }
}

/// Why a claimed step message should not go out, given its run and the latest event of each kind
/// it names: the run was exited, an `exit_on` event happened since the member entered (one that
/// came before the run was recorded, which the exit at `POST /api/events` could not see), or an
/// `unless` event did. Entry counts from `since` (the entry event) or the run, whichever is
/// earlier. `None`: send it.
pub fn step_skip(
    run: Option<&JourneyRun>,
    exit_on: &[String],
    unless: &[String],
    since: Option<Timestamp>,
    latest: impl Fn(&str) -> Option<Timestamp>,
) -> Option<String> {
    let run = run?;
    if run.state == "exited" {
        return Some(run.exit_reason.clone().unwrap_or_else(|| "journey exited".into()));
    }
    let from = since.map_or(run.entered_at, |s| s.min(run.entered_at));
    let happened = |kind: &str| latest(kind).filter(|at| *at >= from);
    if let Some(kind) = exit_on.iter().find(|k| happened(k).is_some()) {
        return Some(format!("journey exited: {kind}"));
    }
    unless.iter().find_map(|kind| {
        happened(kind).map(|at| format!("unless {kind}: the member had one at {at}, since entering the journey"))
    })
}

/// The `unless` kinds a step message carries.
pub fn unless_of(vars: &serde_json::Map<String, Value>) -> Vec<String> {
    kinds_of(vars, VAR_UNLESS)
}

/// The kinds listed under `var` in a step message's variables.
pub fn kinds_of(vars: &serde_json::Map<String, Value>, var: &str) -> Vec<String> {
    vars.get(var)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{ChannelKind, Purpose};
    use crate::journeys::Step;
    use crate::triggers::Trigger;
    use jiff::SignedDuration;
    use jiff::civil::{date, time};
    use serde_json::Map;

    fn member() -> Member {
        Member {
            id: 7,
            external_id: "M7".into(),
            name: "Ada".into(),
            phone: Some("+14155550100".into()),
            email: None,
            locale: None,
            time_zone: None,
            birth_date: None,
            lunar_birthday: None,
            member_since: None,
            tier: None,
            points: 0,
            attributes: Map::new(),
            last_activity_at: None,
            value: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            change_seq: 0,
        }
    }

    fn step(after_days: u32, channel: ChannelKind, unless: &[&str], coupon: Option<Coupon>) -> Step {
        Step {
            after_days,
            channels: vec![channel],
            fallback: false,
            template: "winback_journey".into(),
            unless: unless.iter().map(|s| s.to_string()).collect(),
            segments: Vec::new(),
            coupon,
            experiment: None,
        }
    }

    fn journey() -> Journey {
        Journey {
            id: "winback".into(),
            entry: Rule {
                id: "winback".into(),
                trigger: Trigger::Inactivity { days: 60 },
                channels: vec![ChannelKind::Sms],
                template: "winback_journey".into(),
                send_at: time(10, 0, 0, 0),
                offset_days: 0,
                max_lateness: SignedDuration::from_hours(12),
                enabled: true,
                fallback: false,
                purpose: Purpose::Marketing,
                segments: Vec::new(),
                priority: Default::default(),
                merge: false,
                quiet_hours: crate::plan::quiet::QuietHours::NONE,
                experiment: None,
                conversion: Default::default(),
            },
            exit_on: vec!["purchase".into()],
            reentry: Reentry::After(SignedDuration::from_hours(24 * 90)),
            steps: vec![
                step(0, ChannelKind::Sms, &[], Some(Coupon::Pool("winback".into()))),
                step(7, ChannelKind::Email, &["purchase"], None),
                step(14, ChannelKind::Push, &["purchase"], None),
            ],
        }
    }

    fn entry() -> Occurrence {
        let mut vars = Map::new();
        vars.insert(INACTIVE_SINCE.into(), json!("2026-01-01T00:00:00Z"));
        vars.insert("days".into(), json!(60));
        Occurrence {
            key: "inactive60:2026-03-02T00:00:00Z".into(),
            date: date(2026, 3, 2),
            due: "2026-03-02T10:00:00Z".parse().unwrap(),
            vars,
        }
    }

    fn run(key: &str, entered: &str, state: &str) -> JourneyRun {
        JourneyRun {
            id: 1,
            journey_id: "winback".into(),
            member_id: 7,
            entry_key: key.into(),
            entered_at: entered.parse().unwrap(),
            state: state.into(),
            exit_reason: (state == "exited").then(|| "journey exited: purchase".into()),
            ended_at: None,
        }
    }

    #[test]
    fn steps_fall_on_their_day_at_send_at_with_stable_keys() {
        let now: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let j = journey();
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let day0 = plan_step(&j, 0, &member(), &entry(), &tz, now);
        assert_eq!(day0.len(), 1);
        assert_eq!(day0[0].dedupe_key, "winback:7:inactive60:2026-03-02T00:00:00Z:s1:sms");
        assert_eq!(day0[0].run_at, entry().due);
        assert_eq!(day0[0].vars["coupon_pool"], "winback");
        assert_eq!(day0[0].vars[INACTIVE_SINCE], "2026-01-01T00:00:00Z");
        let day7 = plan_step(&j, 1, &member(), &entry(), &tz, now);
        assert_eq!(day7[0].dedupe_key, "winback:7:inactive60:2026-03-02T00:00:00Z:s2:email");
        // 2026-03-02T10:00Z is 18:00 in Shanghai on the 2nd; day 7 is the 9th at 10:00 there.
        assert_eq!(day7[0].run_at, "2026-03-09T02:00:00Z".parse().unwrap());
        assert_eq!(day7[0].deadline, Some("2026-03-09T14:00:00Z".parse().unwrap()));
        assert_eq!(day7[0].vars["step"], 2);
        assert_eq!(day7[0].vars["journey_last"], false);
        assert_eq!(day7[0].vars["unless"], json!(["purchase"]));
        assert!(day7[0].vars.get(INACTIVE_SINCE).is_none(), "later steps follow exit_on and unless only");
        let day14 = plan_step(&j, 2, &member(), &entry(), &tz, now);
        assert_eq!(day14[0].run_at, "2026-03-16T02:00:00Z".parse().unwrap());
        assert_eq!(day14[0].vars["journey_last"], true);
        assert_eq!(day14[0].channel, ChannelKind::Push);
    }

    #[test]
    fn a_step_outside_its_segments_is_planned_skipped() {
        let mut j = journey();
        j.steps[1].segments = vec![crate::members::Segment::AtRisk];
        let now: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let m = plan_step(&j, 1, &member(), &entry(), &TimeZone::UTC, now);
        assert_eq!(m[0].skip.as_deref(), Some("not in the step's segments (at_risk)"));
    }

    #[test]
    fn a_step_s_experiment_picks_its_arm_and_only_that_step_carries_it() {
        use crate::plan::experiment::{self, Arm, Experiment, Variant};
        let exp = Experiment {
            id: "winback-s2".into(),
            holdout: 0.3,
            variants: vec![
                Variant { id: "a".into(), weight: 1.0, template: None, vars: Default::default() },
                Variant { id: "b".into(), weight: 1.0, template: Some("winback_b".into()), vars: Default::default() },
            ],
        };
        let mut j = journey();
        j.steps[1].experiment = Some(exp.clone());
        let now: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let (mut seen_holdout, mut seen_b) = (false, false);
        for id in 1..200 {
            let m = Member { id, ..member() };
            let step2 = plan_step(&j, 1, &m, &entry(), &TimeZone::UTC, now);
            let arm = experiment::assign(&exp, id);
            assert_eq!(step2[0].experiment.as_deref(), Some("winback-s2"));
            assert_eq!(step2[0].variant.as_deref(), Some(arm.id()));
            match arm {
                Arm::Holdout => {
                    seen_holdout = true;
                    assert_eq!(step2[0].skip.as_deref(), Some("holdout"));
                }
                Arm::Variant(v) => {
                    seen_b |= v.id == "b";
                    assert_eq!(step2[0].skip, None);
                    let want = if v.id == "b" { "winback_b" } else { "winback_journey" };
                    assert_eq!(step2[0].template, want);
                }
            }
            // The other steps are not in the experiment.
            let step1 = plan_step(&j, 0, &m, &entry(), &TimeZone::UTC, now);
            assert_eq!((step1[0].experiment.as_deref(), step1[0].skip.as_deref()), (None, None));
        }
        assert!(seen_holdout && seen_b);
    }

    #[test]
    fn reentry_rules() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let earlier = run("inactive60:2026-03-02T00:00:00Z", "2026-03-02T09:00:00Z", "completed");
        let recent = run("inactive60:2026-05-20T00:00:00Z", "2026-05-20T09:00:00Z", "exited");
        let gap = Reentry::After(SignedDuration::from_hours(24 * 90));
        let check = |policy: &Reentry, key: &str, prev: &[&JourneyRun], expected: &str| {
            let got = match may_enter(policy, key, prev, now) {
                Entry::New => "new".to_string(),
                Entry::Again => "again".to_string(),
                Entry::Refused(why) => format!("refused: {why}"),
            };
            assert!(got.starts_with(expected), "{policy:?} {key}: {got}");
        };
        check(&gap, "k", &[], "new");
        check(&Reentry::Never, "k", &[], "new");
        check(&gap, "inactive60:2026-03-02T00:00:00Z", &[&earlier], "again");
        check(&Reentry::Never, "inactive60:2026-03-02T00:00:00Z", &[&earlier], "again");
        check(&Reentry::Never, "k", &[&earlier], "refused: re-entry is never allowed");
        check(&Reentry::Always, "k", &[&earlier, &recent], "new");
        // 91 days after March 2nd: allowed; 12 days after May 20th: refused.
        check(&gap, "k", &[&earlier], "new");
        check(&gap, "k", &[&earlier, &recent], "refused: re-entry allowed 2160h");
    }

    #[test]
    fn a_step_is_skipped_when_its_run_exited_or_its_condition_holds() {
        let active = run("k", "2026-03-02T09:00:00Z", "active");
        let exited = run("k", "2026-03-02T09:00:00Z", "exited");
        let unless = vec!["purchase".to_string()];
        let none = |_: &str| None;
        let before = |_: &str| Some("2026-03-01T00:00:00Z".parse().unwrap());
        let after = |k: &str| (k == "purchase").then(|| "2026-03-05T00:00:00Z".parse().unwrap());
        assert_eq!(step_skip(Some(&active), &[], &unless, None, none), None);
        assert_eq!(
            step_skip(Some(&active), &[], &unless, None, before),
            None,
            "a purchase before entry does not count"
        );
        assert_eq!(
            step_skip(Some(&active), &[], &unless, None, after).as_deref(),
            Some("unless purchase: the member had one at 2026-03-05T00:00:00Z, since entering the journey")
        );
        assert_eq!(step_skip(Some(&active), &[], &[], None, after), None);
        assert_eq!(step_skip(Some(&exited), &[], &[], None, none).as_deref(), Some("journey exited: purchase"));
        // An exit event between the entry event and the run being recorded still ends it.
        let between = |k: &str| (k == "purchase").then(|| "2026-03-02T08:30:00Z".parse().unwrap());
        let entry_event = Some("2026-03-02T08:00:00Z".parse().unwrap());
        assert_eq!(step_skip(Some(&active), &unless, &[], None, between), None, "without the entry event's time");
        assert_eq!(
            step_skip(Some(&active), &unless, &[], entry_event, between).as_deref(),
            Some("journey exited: purchase")
        );
        assert_eq!(step_skip(None, &[], &unless, None, after), None);
    }
}
