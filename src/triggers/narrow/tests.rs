//! The narrowing never misses a member the triggers fire for: random members, zones, windows and
//! rules, with dates drawn around each window's edges (Feb 29, year ends, DST days, lunar leap
//! months), each checked against the full evaluation.

use super::*;
use crate::channels::{ChannelKind, Purpose};
use crate::members::Member;
use crate::triggers::{Feb29, Window, evaluate};
use jiff::civil::{date, time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Map;

const ZONES: [&str; 10] = [
    "UTC",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Etc/GMT+12",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Asia/Shanghai",
];

/// Instants around which windows start: year ends, Feb 28/29 and Mar 1, DST changes, Chinese New
/// Year and a year with a leap month (2025: leap 6th month; 2028: leap 5th month).
const ANCHORS: [&str; 12] = [
    "2026-12-31T12:00:00Z",
    "2027-02-28T12:00:00Z",
    "2028-02-28T12:00:00Z",
    "2028-02-29T12:00:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
    "2026-03-29T01:00:00Z",
    "2026-04-05T15:00:00Z",
    "2027-02-06T00:00:00Z",
    "2025-07-25T00:00:00Z",
    "2028-06-24T00:00:00Z",
    "2026-11-24T09:00:00Z",
];

fn rule(trigger: Trigger, offset_days: i32) -> Rule {
    Rule {
        id: "r".into(),
        trigger,
        channels: vec![ChannelKind::Sms],
        template: "t".into(),
        send_at: time(9, 30, 0, 0),
        offset_days,
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

fn rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for offset in [0, -1, 3] {
        out.push(rule(Trigger::Birthday { feb29: Feb29::Feb28 }, offset));
        out.push(rule(Trigger::Birthday { feb29: Feb29::Mar1 }, offset));
        out.push(rule(Trigger::Anniversary { feb29: Feb29::Mar1 }, offset));
        out.push(rule(Trigger::LunarBirthday, offset));
        out.push(rule(Trigger::Date { attribute: "birth_date".into(), yearly: true }, offset));
        out.push(rule(Trigger::Date { attribute: "member_since".into(), yearly: false }, offset));
    }
    out.push(rule(Trigger::Inactivity { days: 30 }, 0));
    out.push(rule(Trigger::Inactivity { days: 1 }, 0));
    out
}

/// A date near `around` (within `spread` days), in a random year (often a leap year).
fn near(rng: &mut StdRng, around: Date, spread: i64, years: std::ops::Range<i16>) -> Date {
    let d = around.checked_add(rng.random_range(-spread..=spread).days()).unwrap();
    let year = rng.random_range(years);
    let year = if rng.random_bool(0.3) { year - year % 4 } else { year };
    if rng.random_bool(0.1) {
        return date(year - year % 4, 2, 29);
    }
    Date::new(year, d.month(), d.day())
        .unwrap_or_else(|_| if rng.random_bool(0.5) { date(year, 2, 28) } else { date(year, 3, 1) })
}

fn member(rng: &mut StdRng, id: i64, around: Timestamp) -> Member {
    let day = around.to_zoned_datetime(TimeZone::UTC).date();
    let lunar = calendar::to_lunar(near(rng, day, 4, 2026..2027)).unwrap();
    let lunar_birthday = if rng.random_bool(0.2) {
        LunarBirthday { month: rng.random_range(1..=12), leap: rng.random_bool(0.5), day: rng.random_range(1..=30) }
    } else {
        LunarBirthday { month: lunar.month, leap: lunar.leap || rng.random_bool(0.2), day: lunar.day.max(1) }
    };
    let base = around
        .checked_sub(SignedDuration::from_hours(24 * [30, 1][rng.random_range(0..2)]))
        .unwrap()
        .checked_add(SignedDuration::from_mins(rng.random_range(-4 * 1440..4 * 1440)))
        .unwrap();
    let created = "2020-06-01T00:00:00Z".parse::<Timestamp>().unwrap();
    let (last_activity_at, created_at) = if rng.random_bool(0.5) { (Some(base), created) } else { (None, base) };
    Member {
        id,
        external_id: format!("M{id}"),
        name: "Ada".into(),
        phone: Some("+14155550100".into()),
        email: None,
        locale: Some("en".into()),
        time_zone: Some(ZONES[rng.random_range(0..ZONES.len())].into()),
        birth_date: Some(near(rng, day, 5, 1950..2010)),
        lunar_birthday: Some(lunar_birthday),
        member_since: Some(near(rng, day, 5, 2000..2030)),
        tier: None,
        points: 0,
        attributes: Map::new(),
        last_activity_at,
        value: None,
        created_at,
        updated_at: created_at,
        change_seq: 0,
    }
}

#[test]
fn narrowing_never_misses_a_member_the_triggers_fire_for() {
    let mut rng = StdRng::seed_from_u64(9);
    let rules = rules();
    let mut fired = 0;
    let mut narrowed = 0;
    for case in 0..600 {
        let anchor: Timestamp = ANCHORS[case % ANCHORS.len()].parse().unwrap();
        let from = anchor.checked_add(SignedDuration::from_mins(rng.random_range(-3 * 1440..3 * 1440))).unwrap();
        let len = [1, 60, 24 * 60, 3 * 24 * 60][rng.random_range(0..4)];
        let to = from.checked_add(SignedDuration::from_mins(rng.random_range(1..=len))).unwrap();
        let now = to.checked_sub(SignedDuration::from_hours(rng.random_range(0..48))).unwrap();
        let window = Window { from, to, now };
        let members: Vec<Member> = (0..40).map(|id| member(&mut rng, id, from)).collect();
        for rule in &rules {
            for changed in [false, true] {
                let earliest = if changed { from.min(now.checked_sub(rule.max_lateness).unwrap()) } else { from };
                let sources = sources(rule, earliest, to, changed).expect("short windows are narrowed");
                for m in &members {
                    let tz = TimeZone::get(m.time_zone.as_deref().unwrap()).unwrap();
                    let selected = sources.iter().any(|s| s.matches(m));
                    narrowed += usize::from(selected);
                    if evaluate(rule, m, &tz, window, changed, "en").is_empty() {
                        continue;
                    }
                    fired += 1;
                    assert!(
                        selected,
                        "missed {m:?}\nrule {:?} offset {} window {window:?} changed {changed}\nsources {sources:?}",
                        rule.trigger, rule.offset_days
                    );
                }
            }
        }
    }
    // The cases are dense enough to mean something, and the narrowing does narrow.
    assert!(fired > 10_000, "only {fired} occurrences");
    assert!(narrowed < 600 * 40 * 2 * rules.len(), "{narrowed}");
}

#[test]
fn feb_29_members_are_candidates_when_feb_28_or_mar_1_is_in_range() {
    let r = rule(Trigger::Birthday { feb29: Feb29::Mar1 }, 0);
    let from: Timestamp = "2027-03-03T12:00:00Z".parse().unwrap();
    let to: Timestamp = "2027-03-03T13:00:00Z".parse().unwrap();
    let mds: Vec<Source> = sources(&r, from, to, false).unwrap();
    let has = |md: &str| mds.contains(&Source::MonthDay { column: DateColumn::BirthDate, md: md.into() });
    assert!(has("03-01") && has("02-29") && has("03-04"));
    assert!(!has("03-06") && !has("02-27"));
}

#[test]
fn rules_for_everyone_and_long_windows_are_not_narrowed() {
    let from: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let to = from.checked_add(SignedDuration::from_hours(24)).unwrap();
    let holiday = Trigger::Holiday { month: 1, day: 1, names: Default::default() };
    assert_eq!(sources(&rule(holiday, 0), from, to, false), None);
    assert_eq!(sources(&rule(Trigger::ChurnRisk { below: 0.3 }, 0), from, to, false), None);
    let attr = Trigger::Date { attribute: "points_expire_on".into(), yearly: false };
    assert_eq!(sources(&rule(attr, 0), from, to, false), None);
    let year = to.checked_add(SignedDuration::from_hours(24 * 365)).unwrap();
    assert_eq!(sources(&rule(Trigger::Birthday { feb29: Feb29::Feb28 }, 0), from, year, false), None);
    // A changed member's inactivity crossing fires however long ago it was.
    let all = sources(&rule(Trigger::Inactivity { days: 30 }, 0), from, to, true).unwrap();
    assert!(matches!(all[..], [Source::ActivityBetween { from: i64::MIN, .. }]));
}
