//! Entry triggers beyond the calendar, pure like the rest: a named event starts a rule (event
//! triggers), and a member date with days before or after it (date-attribute triggers).
//!
//! Event rules are not found by scanning members: the evaluator reads the events a rule has not
//! seen and asks [`event_occurrence`] about each. Date-attribute rules are dated triggers like a
//! birthday: [`date_match`] says whether a day is an occurrence.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Map, Value, json};

use super::{Feb29, Occurrence, Rule, Trigger, anniversary_in, in_audience, next_slot, occurrence};
use crate::members::Member;
use crate::members::builtin;
use crate::plan::send_time::local_instant;

/// An event as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The store's row id: the occurrence key (`event:<id>`), so each event fires once per rule.
    pub id: i64,
    /// The host's id for the event, if it gave one.
    pub event_id: Option<String>,
    pub member_id: i64,
    pub kind: String,
    pub amount: Option<f64>,
    pub at: Timestamp,
    /// What the host (or the daemon, for built-in events) said about it.
    pub data: Map<String, Value>,
    /// The member change counter of the transaction that recorded it.
    pub change_seq: i64,
}

/// The names an event's data may not use: they are the event's own fields in
/// `occurrence.event`.
pub const RESERVED_EVENT_FIELDS: [&str; 4] = ["kind", "at", "id", "amount"];

/// The occurrence of an event rule for one of its events: `None` when the rule is off, the
/// member is outside its segments or the event is not of its kinds. Sent `delay` after the
/// event, or at `send_at` (member-local) on the day `offset_days` after it, never before the
/// event itself (with `offset_days = 0`, an event after `send_at` is sent at the next day's).
pub fn event_occurrence(rule: &Rule, member: &Member, event: &EventRecord, tz: &TimeZone) -> Option<Occurrence> {
    let Trigger::Event { kinds, delay, .. } = &rule.trigger else { return None };
    if !rule.enabled || !in_audience(rule, member) || !kinds.contains(&event.kind) {
        return None;
    }
    let day = event.at.to_zoned_datetime(tz.clone()).date();
    let due = match delay {
        Some(delay) => event.at.checked_add(*delay).ok()?,
        None => {
            let send_day = day.checked_add(rule.offset_days.days()).ok()?;
            let at = local_instant(send_day, rule.send_at, tz);
            if at < event.at { next_slot(event.at, rule.send_at, tz) } else { at }
        }
    };
    let mut vars = Map::new();
    vars.insert("event".into(), event_vars(event, tz));
    Some(occurrence(format!("event:{}", event.id), day, due, vars))
}

/// `occurrence.event`: the event's data, with its kind, instant (member-local, RFC 3339), the
/// host's id and amount.
fn event_vars(event: &EventRecord, tz: &TimeZone) -> Value {
    let mut v = event.data.clone();
    v.insert("kind".into(), json!(event.kind));
    v.insert("at".into(), json!(event.at.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()));
    v.insert("id".into(), json!(event.event_id));
    v.insert("amount".into(), json!(event.amount));
    Value::Object(v)
}

/// Sample `occurrence.event` for checking templates: the fields every event has, the built-in
/// events' data for the built-in kinds, and a sample text for each of `data` (the fields the
/// rule says its events carry).
pub(super) fn sample_event(kinds: &[String], data: &[String]) -> Value {
    let mut v = Map::new();
    for kind in kinds {
        let keys: &[&str] = match kind.as_str() {
            builtin::JOINED => &["tier"],
            builtin::TIER_UPGRADED | builtin::TIER_DOWNGRADED | builtin::TIER_CHANGED => &["from", "to"],
            builtin::FIRST_PURCHASE => &["kind", "amount", "event_id"],
            _ => &[],
        };
        for k in keys {
            v.insert((*k).into(), json!("gold"));
        }
    }
    for k in data {
        v.insert(k.clone(), json!("sample"));
    }
    v.insert("kind".into(), json!(kinds.first().cloned().unwrap_or_default()));
    v.insert("at".into(), json!("2026-11-23T09:30:00+08:00"));
    v.insert("id".into(), json!("sample-event"));
    v.insert("amount".into(), json!(25.0));
    Value::Object(v)
}

/// A member's date called `attribute`: `birth_date`, `member_since`, or an attribute holding
/// `YYYY-MM-DD`. `None` when the member has none (or it is not such a date).
pub fn member_date(member: &Member, attribute: &str) -> Option<Date> {
    match attribute {
        "birth_date" => member.birth_date,
        "member_since" => member.member_since,
        name => {
            let text = member.attributes.get(name)?.as_str()?;
            if text.len() != 10 {
                return None;
            }
            text.parse().ok()
        }
    }
}

/// Whether `date` is an occurrence of a date-attribute trigger for `member`: the attribute's
/// date itself, or with `yearly` also each anniversary after it (Feb 29 falls on Feb 28). The key
/// holds the attribute and its date, so a changed date fires again.
pub(super) fn date_match(
    member: &Member,
    attribute: &str,
    yearly: bool,
    date: Date,
    vars: &mut Map<String, Value>,
) -> Option<String> {
    let base = member_date(member, attribute)?;
    vars.insert("attribute".into(), json!(attribute));
    vars.insert("attribute_date".into(), json!(base.to_string()));
    if !yearly {
        return (date == base).then(|| format!("date:{attribute}:{base}"));
    }
    if date.year() < base.year() || anniversary_in(base, date.year(), Feb29::Feb28)? != date {
        return None;
    }
    vars.insert("years".into(), json!(date.year() - base.year()));
    Some(format!("date:{attribute}:{base}:{}", date.year()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{ChannelKind, Purpose};
    use crate::triggers::{Window, evaluate};
    use jiff::SignedDuration;
    use jiff::civil::{date, time};

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
            member_since: Some(date(2020, 3, 1)),
            tier: None,
            points: 0,
            attributes: Map::from_iter([
                ("points_expire_on".to_string(), json!("2026-12-31")),
                ("note".to_string(), json!("not a date")),
            ]),
            last_activity_at: None,
            value: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            change_seq: 0,
        }
    }

    fn rule(trigger: Trigger) -> Rule {
        Rule {
            id: "r".into(),
            trigger,
            channels: vec![ChannelKind::Sms],
            template: "t".into(),
            send_at: time(9, 30, 0, 0),
            offset_days: 0,
            max_lateness: SignedDuration::from_hours(6),
            enabled: true,
            fallback: false,
            purpose: Purpose::Marketing,
            segments: Vec::new(),
            priority: Default::default(),
            merge: false,
            quiet_hours: crate::plan::quiet::QuietHours::NONE,
            experiment: None,
            conversion: crate::track::report::Conversion::default(),
        }
    }

    fn event(kind: &str, at: &str) -> EventRecord {
        EventRecord {
            id: 12,
            event_id: Some("o-1".into()),
            member_id: 7,
            kind: kind.into(),
            amount: Some(30.0),
            at: at.parse().unwrap(),
            data: Map::from_iter([("order".to_string(), json!("A-100"))]),
            change_seq: 3,
        }
    }

    fn on_event(kinds: &[&str], delay: Option<SignedDuration>) -> Trigger {
        Trigger::Event { kinds: kinds.iter().map(|k| k.to_string()).collect(), delay, data: Vec::new() }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn an_event_is_sent_after_its_delay_once_per_event() {
        let r = rule(on_event(&["member.joined"], Some(SignedDuration::from_hours(2))));
        let occ =
            event_occurrence(&r, &member(), &event("member.joined", "2026-11-23T10:00:00Z"), &TimeZone::UTC).unwrap();
        assert_eq!(occ.due, ts("2026-11-23T12:00:00Z"));
        assert_eq!(occ.key, "event:12");
        assert_eq!(occ.vars["event"]["order"], "A-100");
        assert_eq!(occ.vars["event"]["kind"], "member.joined");
        assert_eq!(occ.vars["event"]["id"], "o-1");
        assert_eq!(occ.vars["event"]["at"], "2026-11-23T10:00:00+00:00");
        // Another kind, or the rule off: nothing.
        assert_eq!(event_occurrence(&r, &member(), &event("purchase", "2026-11-23T10:00:00Z"), &TimeZone::UTC), None);
        let off = Rule { enabled: false, ..r };
        assert_eq!(
            event_occurrence(&off, &member(), &event("member.joined", "2026-11-23T10:00:00Z"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn an_event_with_send_at_goes_out_at_that_local_time_offset_days_after() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let check = |offset_days: i32, at: &str, want: &str| {
            let r = Rule { offset_days, ..rule(on_event(&["purchase"], None)) };
            let occ = event_occurrence(&r, &member(), &event("purchase", at), &tz).unwrap();
            assert_eq!(occ.due, ts(want), "offset {offset_days}, event at {at}");
        };
        // 08:00 local: the same day's 09:30.
        check(0, "2026-11-23T00:00:00Z", "2026-11-23T01:30:00Z");
        // 15:00 local: past today's 09:30, so the next day's.
        check(0, "2026-11-23T07:00:00Z", "2026-11-24T01:30:00Z");
        // Two days after, whatever the hour.
        check(2, "2026-11-23T07:00:00Z", "2026-11-25T01:30:00Z");
    }

    #[test]
    fn date_attributes_fire_on_their_date_with_days_before() {
        let r = Rule { offset_days: -7, ..rule(Trigger::Date { attribute: "points_expire_on".into(), yearly: false }) };
        let window = |from: &str, to: &str| Window { from: ts(from), to: ts(to), now: ts(from) };
        let found = evaluate(
            &r,
            &member(),
            &TimeZone::UTC,
            window("2026-12-24T00:00:00Z", "2026-12-25T00:00:00Z"),
            false,
            "en",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "date:points_expire_on:2026-12-31");
        assert_eq!(found[0].due, ts("2026-12-24T09:30:00Z"));
        assert_eq!(found[0].vars["attribute_date"], "2026-12-31");
        // Not a year later: once.
        assert!(
            evaluate(
                &r,
                &member(),
                &TimeZone::UTC,
                window("2027-12-24T00:00:00Z", "2027-12-25T00:00:00Z"),
                false,
                "en"
            )
            .is_empty()
        );
        // A text that is not a date, or a missing attribute: nothing, silently.
        for attribute in ["note", "missing"] {
            let r = rule(Trigger::Date { attribute: attribute.into(), yearly: true });
            assert!(
                evaluate(
                    &r,
                    &member(),
                    &TimeZone::UTC,
                    window("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
                    false,
                    "en"
                )
                .is_empty()
            );
        }
    }

    #[test]
    fn a_yearly_date_fires_every_year_with_its_count() {
        let r = rule(Trigger::Date { attribute: "member_since".into(), yearly: true });
        let mut vars = Map::new();
        assert_eq!(
            date_match(&member(), "member_since", true, date(2027, 3, 1), &mut vars).as_deref(),
            Some("date:member_since:2020-03-01:2027")
        );
        assert_eq!(vars["years"], 7);
        assert_eq!(date_match(&member(), "member_since", true, date(2019, 3, 1), &mut Map::new()), None);
        assert_eq!(date_match(&member(), "member_since", true, date(2027, 3, 2), &mut Map::new()), None);
        assert_eq!(r.trigger.kind(), "date");
    }
}
