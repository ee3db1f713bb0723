//! Triggers: which members have an occurrence of a rule inside an evaluation window.
//!
//! Pure: evaluation takes the rule, one member, the window and the zones as arguments and returns
//! occurrences. It never touches the database or the clock. Each occurrence carries a stable key
//! (`birthday:2027`, `inactive30:2026-11-02`) that, with the rule, member and channel, makes the
//! message's dedupe key.

pub mod calendar;
mod dates;
mod entry;
pub mod narrow;

use std::collections::BTreeMap;

use jiff::civil::{Date, Time, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Map, Value, json};

use crate::channels::ChannelKind;
use crate::members::{Member, Segment};
use crate::plan::send_time::local_instant;

pub use calendar::Calendar;
pub use dates::{Feb29, anniversary_in};
pub use entry::{EventRecord, RESERVED_EVENT_FIELDS, event_occurrence, member_date};

/// A rule: when to write to whom, on which channels, with which template.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub trigger: Trigger,
    pub channels: Vec<ChannelKind>,
    pub template: String,
    /// Member-local time of day to send at.
    pub send_at: Time,
    /// Days from the occurrence to the send day (`-1`: the day before).
    pub offset_days: i32,
    /// A message due longer ago than this is skipped rather than sent late.
    pub max_lateness: SignedDuration,
    pub enabled: bool,
    /// One message on the first channel the member has an address on, rather than one per channel.
    pub fallback: bool,
    pub purpose: crate::channels::Purpose,
    /// Only members in these segments; empty: every member.
    pub segments: Vec<Segment>,
    /// Which message a member gets when two rules' marketing messages fall on one day.
    pub priority: crate::plan::collide::Priority,
    /// When this rule wins a collision, its message carries the losers' occurrences
    /// (`occurrence.also`) so one message greets both.
    pub merge: bool,
    /// Each channel's sending hours for this rule (none when the rule opts out).
    pub quiet_hours: crate::plan::quiet::QuietHours,
    /// Variants and a holdout (`[rules.experiment]`); `None`: everyone gets the rule's message.
    pub experiment: Option<crate::plan::experiment::Experiment>,
    /// What counts as a conversion after this rule's message, and within how long.
    pub conversion: crate::track::report::Conversion,
}

impl Rule {
    /// Whether evaluating the rule reads members' value (segments, P(alive)).
    pub fn needs_value(&self) -> bool {
        !self.segments.is_empty() || matches!(self.trigger, Trigger::ChurnRisk { .. })
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Birthday {
        feb29: Feb29,
    },
    Anniversary {
        feb29: Feb29,
    },
    /// Every member, every year on `month`-`day`.
    Holiday {
        month: i8,
        day: i8,
        names: BTreeMap<String, String>,
    },
    /// Once when a member crosses `days` without activity; again only after new activity.
    Inactivity {
        days: u32,
    },
    /// Every year on the Gregorian date of the member's lunar birthday (see `calendar::lunar`).
    LunarBirthday,
    /// The rule's festivals (built-in or custom), each on its date every year.
    Festival {
        calendar: Calendar,
    },
    /// Once when the member's P(alive) is below `below` after a refresh; again only after a
    /// purchase.
    ChurnRisk {
        below: f64,
    },
    /// An event of one of `kinds` (sent by the host, or built in: `member.joined`, …) starts the
    /// rule: sent `delay` after the event, or, without a delay, at `send_at` on the day
    /// `offset_days` after it. `data` names the fields its events carry (for checking templates).
    Event {
        kinds: Vec<String>,
        delay: Option<SignedDuration>,
        data: Vec<String>,
    },
    /// A member date (`birth_date`, `member_since` or an attribute holding `YYYY-MM-DD`), sent
    /// `offset_days` from it; with `yearly`, every year.
    Date {
        attribute: String,
        yearly: bool,
    },
}

impl Trigger {
    /// The occurrence variables this trigger's messages carry, with sample values: what a rule's
    /// template is checked against at start-up, so a template that needs a variable the trigger
    /// does not give (`occurrence.years` in a birthday rule) is refused then, not at each send.
    pub fn sample_vars(&self) -> Map<String, Value> {
        let mut vars = Map::new();
        match self {
            Trigger::Birthday { .. } => {
                vars.insert("age".into(), json!(36));
            }
            Trigger::Anniversary { .. } => {
                vars.insert("years".into(), json!(3));
            }
            Trigger::Holiday { names, .. } => {
                vars.insert("holiday".into(), json!(names.values().next().cloned().unwrap_or_default()));
            }
            Trigger::Inactivity { days } => {
                vars.insert("days".into(), json!(days));
                // Null for a member with no recorded activity: templates must allow for that.
                vars.insert("last_activity".into(), Value::Null);
                vars.insert(INACTIVE_SINCE.into(), json!("2026-10-01T12:00:00Z"));
            }
            Trigger::LunarBirthday => {
                // Null when the member's solar birth date is unknown.
                vars.insert("age".into(), Value::Null);
                lunar_vars(&mut vars, date(2026, 9, 25), "zh-CN");
            }
            Trigger::Festival { calendar } => {
                let first = calendar.festivals().first();
                vars.insert("holiday".into(), json!(first.map(|f| f.name("zh-CN")).unwrap_or_default()));
                vars.insert("festival".into(), json!(first.map(|f| f.id.clone()).unwrap_or_default()));
                lunar_vars(&mut vars, date(2026, 9, 25), "zh-CN");
            }
            Trigger::Event { kinds, data, .. } => {
                vars.insert("event".into(), entry::sample_event(kinds, data));
            }
            Trigger::Date { attribute, yearly } => {
                vars.insert("attribute".into(), json!(attribute));
                vars.insert("attribute_date".into(), json!("2026-12-31"));
                if *yearly {
                    vars.insert("years".into(), json!(1));
                }
            }
            Trigger::ChurnRisk { .. } => {
                vars.insert("p_alive".into(), json!(0.31));
                vars.insert("last_purchase".into(), json!("2026-08-14"));
                vars.insert(INACTIVE_SINCE.into(), json!("2026-08-14T12:00:00Z"));
            }
        }
        vars.insert("key".into(), json!(format!("{}:2026", self.kind())));
        vars.insert("date".into(), json!("2026-11-23"));
        vars
    }

    /// A greeting for a calendar occasion (a birthday, an anniversary, a holiday, a festival):
    /// such messages collide when two fall on one member-local day (`plan::collide`).
    pub fn is_occasion(&self) -> bool {
        matches!(
            self,
            Trigger::Birthday { .. }
                | Trigger::Anniversary { .. }
                | Trigger::Holiday { .. }
                | Trigger::LunarBirthday
                | Trigger::Festival { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Birthday { .. } => "birthday",
            Trigger::Anniversary { .. } => "anniversary",
            Trigger::Holiday { .. } => "holiday",
            Trigger::Inactivity { .. } => "inactivity",
            Trigger::LunarBirthday => "lunar_birthday",
            Trigger::Festival { .. } => "festival",
            Trigger::ChurnRisk { .. } => "churn_risk",
            Trigger::Event { .. } => "event",
            Trigger::Date { .. } => "date",
        }
    }
}

/// The instants being evaluated: `(from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The evaluation's "now": inactivity crossings found late are sent at the next slot after it.
    pub now: Timestamp,
}

/// One due occurrence of a rule for a member.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// Stable across evaluations, e.g. `birthday:2027`.
    pub key: String,
    /// The member-local day of the occurrence itself (the birthday, not the send day).
    pub date: Date,
    /// When to send, member-local time converted to an instant.
    pub due: Timestamp,
    /// Occurrence variables for templates (`years`, `holiday`, `days`, `date`, `key`).
    pub vars: Map<String, Value>,
}

/// The occurrences of `rule` for `member` whose send instant falls in the window.
///
/// `changed_since_from` says the member was created or changed after `window.from`: such a member
/// was not seen by earlier windows, so their occurrences due since `from - max_lateness` are found
/// too (a member imported at 10:00 on their birthday still gets the 09:30 greeting).
pub fn evaluate(
    rule: &Rule,
    member: &Member,
    tz: &TimeZone,
    window: Window,
    changed_since_from: bool,
    locale: &str,
) -> Vec<Occurrence> {
    if !rule.enabled || !in_audience(rule, member) {
        return Vec::new();
    }
    let from = if changed_since_from {
        window.from.min(window.now.checked_sub(rule.max_lateness).unwrap_or(window.from))
    } else {
        window.from
    };
    match &rule.trigger {
        Trigger::Inactivity { days } => inactivity(rule, member, tz, window, from, changed_since_from, *days),
        Trigger::ChurnRisk { below } => churn_risk(rule, member, tz, window, from, changed_since_from, *below),
        // Found from the events, not the members (see `event_occurrence`).
        Trigger::Event { .. } => Vec::new(),
        _ => dated(rule, member, tz, from, window.to, locale),
    }
}

/// Birthday, anniversary and holiday: walk the member-local days that may hold a send instant in
/// `(from, to]`, and keep those whose occurrence day matches.
fn dated(rule: &Rule, member: &Member, tz: &TimeZone, from: Timestamp, to: Timestamp, locale: &str) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let first = from.to_zoned_datetime(tz.clone()).date().saturating_sub(1.day());
    let last = to.to_zoned_datetime(tz.clone()).date().saturating_add(1.day());
    let mut send_day = first;
    while send_day <= last {
        let Ok(date) = send_day.checked_sub(rule.offset_days.days()) else { break };
        if let Some((key, vars)) = matches(rule, member, date, locale) {
            let due = local_instant(send_day, rule.send_at, tz);
            if from < due && due <= to {
                out.push(occurrence(key, date, due, vars));
            }
        }
        match send_day.tomorrow() {
            Ok(next) => send_day = next,
            Err(_) => break,
        }
    }
    out
}

/// Whether `date` is an occurrence of a dated trigger for `member`: its key and variables.
fn matches(rule: &Rule, member: &Member, date: Date, locale: &str) -> Option<(String, Map<String, Value>)> {
    let mut vars = Map::new();
    let key = match &rule.trigger {
        Trigger::Birthday { feb29 } => {
            let born = member.birth_date?;
            if anniversary_in(born, date.year(), *feb29)? != date || date.year() <= born.year() {
                return None;
            }
            vars.insert("age".into(), json!(date.year() - born.year()));
            format!("birthday:{}", date.year())
        }
        Trigger::Anniversary { feb29 } => {
            let since = member.member_since?;
            if anniversary_in(since, date.year(), *feb29)? != date || date.year() <= since.year() {
                return None;
            }
            vars.insert("years".into(), json!(date.year() - since.year()));
            format!("anniversary:{}", date.year())
        }
        Trigger::Holiday { month, day, names } => {
            if date.month() != *month || date.day() != *day {
                return None;
            }
            vars.insert("holiday".into(), json!(holiday_name(names, locale, &rule.id)));
            format!("holiday:{date}")
        }
        Trigger::LunarBirthday => {
            let birthday = member.lunar_birthday?;
            let lunar = calendar::to_lunar(date)?;
            if calendar::lunar_birthday_in(lunar.year, birthday)? != date {
                return None;
            }
            let born = member.birth_date.and_then(calendar::to_lunar).map(|b| b.year);
            if born.is_some_and(|b| lunar.year <= b) {
                return None;
            }
            vars.insert("age".into(), born.map_or(Value::Null, |b| json!(lunar.year - b)));
            lunar_vars(&mut vars, date, locale);
            format!("lunar_birthday:{}", lunar.year)
        }
        Trigger::Festival { calendar } => {
            // One greeting a day per rule: of two festivals on one day, the rule's first.
            let festival = calendar.on(date).next()?;
            vars.insert("holiday".into(), json!(festival.name(locale)));
            vars.insert("festival".into(), json!(festival.id));
            lunar_vars(&mut vars, date, locale);
            format!("festival:{}:{date}", festival.id)
        }
        Trigger::Date { attribute, yearly } => entry::date_match(member, attribute, *yearly, date, &mut vars)?,
        Trigger::Inactivity { .. } | Trigger::ChurnRisk { .. } | Trigger::Event { .. } => return None,
    };
    Some((key, vars))
}

/// Whether the member is in the rule's segments (every member when it names none; a member
/// not yet scored is in none).
fn in_audience(rule: &Rule, member: &Member) -> bool {
    rule.segments.is_empty() || member.value.as_ref().is_some_and(|v| rule.segments.contains(&v.segment))
}

/// The lunar date of `date` in Chinese (`农历八月十五`), and the zodiac animal and stem-branch
/// name of its Chinese year.
fn lunar_vars(vars: &mut Map<String, Value>, date: Date, locale: &str) {
    if let Some(lunar) = calendar::to_lunar(date) {
        vars.insert("lunar_date".into(), json!(lunar.to_chinese()));
        vars.insert("zodiac".into(), json!(calendar::zodiac(lunar.year).name(locale)));
        vars.insert("ganzhi".into(), json!(calendar::ganzhi(lunar.year)));
    }
}

/// Inactivity: the crossing is `days` after the member's last activity (or their first sighting).
/// It fires when the send slot after the crossing falls in the window, or, for a member changed
/// since the last tick, as soon as that slot lies within the window's end; either way it is sent
/// at that slot, or at the next one after `now` when that slot has passed (after downtime, or for
/// a member first seen long after crossing). The key is the crossing instant in UTC, so neither a
/// zone change nor re-evaluation makes a second message.
fn inactivity(
    rule: &Rule,
    member: &Member,
    tz: &TimeZone,
    window: Window,
    from: Timestamp,
    changed: bool,
    days: u32,
) -> Vec<Occurrence> {
    let base = member.active_at();
    let Ok(crossing) = base.checked_add(SignedDuration::from_hours(24 * i64::from(days))) else {
        return Vec::new();
    };
    let Some(due) = crossing_due(rule, tz, window, from, changed, crossing) else { return Vec::new() };
    let mut vars = Map::new();
    vars.insert("days".into(), json!(days));
    vars.insert(
        "last_activity".into(),
        member.last_activity_at.map_or(Value::Null, |t| json!(t.to_zoned_datetime(tz.clone()).date().to_string())),
    );
    // What the dispatcher checks: a member active again since planning is not written to.
    vars.insert(INACTIVE_SINCE.into(), json!(base.to_string()));
    let key = format!("inactive{days}:{}", crossing.round(jiff::Unit::Second).unwrap_or(crossing));
    vec![occurrence(key, crossing.to_zoned_datetime(tz.clone()).date(), due, vars)]
}

/// When a crossing (inactivity, churn risk) is sent: at the first send slot after it, when that
/// slot falls in the window, or, for a member changed since the last tick, as soon as that slot
/// lies within the window's end; never before the next slot after `now`.
fn crossing_due(
    rule: &Rule,
    tz: &TimeZone,
    window: Window,
    from: Timestamp,
    changed: bool,
    crossing: Timestamp,
) -> Option<Timestamp> {
    let slot = next_slot(crossing, rule.send_at, tz);
    if slot > window.to || (!changed && slot <= from) {
        return None;
    }
    Some(slot.max(next_slot(window.now, rule.send_at, tz)))
}

/// Churn risk: the member's P(alive), as the last refresh scored it, is below the threshold, and
/// a refresh since their last purchase saw it cross below a churn threshold (`churn_crossed_at`;
/// the refresh also marks such members changed, so the next tick looks at them). Sent at the
/// first slot after the crossing; the key is the last purchase, so a member is written to once
/// per purchase: only a new purchase (and a new crossing) makes a new one.
fn churn_risk(
    rule: &Rule,
    member: &Member,
    tz: &TimeZone,
    window: Window,
    from: Timestamp,
    changed: bool,
    below: f64,
) -> Vec<Occurrence> {
    let Some(value) = &member.value else { return Vec::new() };
    let (Some(p_alive), Some(last_purchase)) = (value.p_alive, value.last_purchase_at) else { return Vec::new() };
    // Below the threshold, and crossed into it since the last purchase (not merely scored there).
    let Some(crossed_at) = value.churn_crossed_at.filter(|_| p_alive < below) else { return Vec::new() };
    let Some(due) = crossing_due(rule, tz, window, from, changed, crossed_at) else { return Vec::new() };
    let mut vars = Map::new();
    vars.insert("p_alive".into(), json!((p_alive * 100.0).round() / 100.0));
    vars.insert("last_purchase".into(), json!(last_purchase.to_zoned_datetime(tz.clone()).date().to_string()));
    // Any activity since (a purchase above all) means the member is back: not written to.
    let active = member.last_activity_at.map_or(last_purchase, |a| a.max(last_purchase));
    vars.insert(INACTIVE_SINCE.into(), json!(active.to_string()));
    let key = format!("churn:{}", last_purchase.round(jiff::Unit::Second).unwrap_or(last_purchase));
    vec![occurrence(key, crossed_at.to_zoned_datetime(tz.clone()).date(), due, vars)]
}

/// The occurrence variable holding the activity instant an inactivity message was planned from.
pub const INACTIVE_SINCE: &str = "inactive_since";

/// Why an occurrence planned earlier no longer holds for the member as they are now, if it does
/// not: checked when the message is due, since planning runs ahead. Today only a win-back can
/// lapse (the member came back since it was planned).
pub fn no_longer_due(vars: &Map<String, Value>, member: &Member) -> Option<&'static str> {
    let since = vars.get(INACTIVE_SINCE)?.as_str()?.parse::<Timestamp>().ok()?;
    member.last_activity_at.is_some_and(|last| last > since).then_some("member active again since this was planned")
}

/// The first member-local `send_at` at or after `t`.
pub fn next_slot(t: Timestamp, send_at: Time, tz: &TimeZone) -> Timestamp {
    let mut day = t.to_zoned_datetime(tz.clone()).date();
    loop {
        let at = local_instant(day, send_at, tz);
        if at >= t {
            return at;
        }
        day = day.tomorrow().expect("dates this far out are not in use");
    }
}

fn occurrence(key: String, date: Date, due: Timestamp, mut vars: Map<String, Value>) -> Occurrence {
    vars.insert("key".into(), json!(key));
    vars.insert("date".into(), json!(date.to_string()));
    Occurrence { key, date, due, vars }
}

/// The holiday's display name in the member's locale: exact, then same language, then English,
/// then any, then the rule id.
fn holiday_name(names: &BTreeMap<String, String>, locale: &str, fallback: &str) -> String {
    calendar::festivals::localized(names, locale).map_or_else(|| fallback.to_string(), Clone::clone)
}

#[cfg(test)]
mod tests;
