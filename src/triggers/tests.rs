//! Trigger evaluation, checked against hand-worked dates.

use super::*;
use jiff::civil::{date, time};
use serde_json::Map;

fn member() -> Member {
    Member {
        id: 1,
        external_id: "M1".into(),
        name: "Ada".into(),
        phone: Some("+14155550100".into()),
        email: None,
        locale: Some("en".into()),
        time_zone: None,
        birth_date: Some(date(1990, 3, 15)),
        member_since: Some(date(2020, 6, 1)),
        tier: None,
        points: 0,
        attributes: Map::new(),
        last_activity_at: None,
        created_at: "2020-06-01T00:00:00Z".parse().unwrap(),
        updated_at: "2020-06-01T00:00:00Z".parse().unwrap(),
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
        purpose: crate::channels::Purpose::Marketing,
    }
}

fn window(from: &str, to: &str) -> Window {
    let from: Timestamp = from.parse().unwrap();
    Window { from, to: to.parse().unwrap(), now: from }
}

/// Evaluates and returns (key, due) pairs.
fn check(rule: &Rule, member: &Member, zone: &str, w: Window, changed: bool, expected: &[(&str, &str)]) {
    let tz = TimeZone::get(zone).unwrap();
    let got: Vec<(String, String)> =
        evaluate(rule, member, &tz, w, changed, "en").into_iter().map(|o| (o.key, o.due.to_string())).collect();
    let expected: Vec<(String, String)> = expected.iter().map(|(k, d)| (k.to_string(), d.to_string())).collect();
    assert_eq!(got, expected, "{:?} in {zone} over {w:?}", rule.trigger);
}

#[test]
fn birthday_fires_at_member_local_send_time() {
    let r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    let w = window("2026-03-14T00:00:00Z", "2026-03-16T00:00:00Z");
    check(&r, &member(), "Asia/Shanghai", w, false, &[("birthday:2026", "2026-03-15T01:30:00Z")]);
    check(&r, &member(), "America/Los_Angeles", w, false, &[("birthday:2026", "2026-03-15T16:30:00Z")]);
    // Outside the window: nothing.
    check(&r, &member(), "UTC", window("2026-03-15T09:30:00Z", "2026-03-16T00:00:00Z"), false, &[]);
    // The window is (from, to]: the send instant itself is included at the end.
    check(
        &r,
        &member(),
        "UTC",
        window("2026-03-15T00:00:00Z", "2026-03-15T09:30:00Z"),
        false,
        &[("birthday:2026", "2026-03-15T09:30:00Z")],
    );
}

#[test]
fn offset_days_move_the_send_day_not_the_occurrence() {
    let mut r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    r.offset_days = -1;
    let w = window("2026-03-13T00:00:00Z", "2026-03-16T00:00:00Z");
    check(&r, &member(), "UTC", w, false, &[("birthday:2026", "2026-03-14T09:30:00Z")]);
}

#[test]
fn feb29_birthdays_follow_the_configured_rule_in_common_years() {
    let mut m = member();
    m.birth_date = Some(date(2000, 2, 29));
    let w = window("2027-02-27T00:00:00Z", "2027-03-02T00:00:00Z");
    check(
        &rule(Trigger::Birthday { feb29: Feb29::Feb28 }),
        &m,
        "UTC",
        w,
        false,
        &[("birthday:2027", "2027-02-28T09:30:00Z")],
    );
    check(
        &rule(Trigger::Birthday { feb29: Feb29::Mar1 }),
        &m,
        "UTC",
        w,
        false,
        &[("birthday:2027", "2027-03-01T09:30:00Z")],
    );
    // In a leap year, Feb 29 itself.
    let leap = window("2028-02-27T00:00:00Z", "2028-03-02T00:00:00Z");
    check(
        &rule(Trigger::Birthday { feb29: Feb29::Mar1 }),
        &m,
        "UTC",
        leap,
        false,
        &[("birthday:2028", "2028-02-29T09:30:00Z")],
    );
}

#[test]
fn anniversaries_carry_the_number_of_years() {
    let r = rule(Trigger::Anniversary { feb29: Feb29::Feb28 });
    let tz = TimeZone::UTC;
    let occ = evaluate(&r, &member(), &tz, window("2026-05-31T00:00:00Z", "2026-06-02T00:00:00Z"), false, "en");
    assert_eq!(occ.len(), 1);
    assert_eq!(occ[0].key, "anniversary:2026");
    assert_eq!(occ[0].vars["years"], 6);
    // No anniversary in the joining year itself.
    let none = evaluate(&r, &member(), &tz, window("2020-05-31T00:00:00Z", "2020-06-02T00:00:00Z"), true, "en");
    assert!(none.is_empty());
}

#[test]
fn holidays_reach_every_member_with_a_localized_name() {
    let names = [("en".to_string(), "Christmas".to_string()), ("zh-CN".to_string(), "圣诞节".to_string())];
    let r = rule(Trigger::Holiday { month: 12, day: 25, names: names.into_iter().collect() });
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let w = window("2026-12-24T00:00:00Z", "2026-12-26T00:00:00Z");
    let occ = evaluate(&r, &member(), &tz, w, false, "zh-TW");
    assert_eq!(occ.len(), 1);
    assert_eq!(occ[0].key, "holiday:2026-12-25");
    assert_eq!(occ[0].vars["holiday"], "圣诞节");
    assert_eq!(evaluate(&r, &member(), &tz, w, false, "fr")[0].vars["holiday"], "Christmas");
}

#[test]
fn send_times_follow_dst_in_the_members_zone() {
    let mut r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    let mut m = member();
    // New York springs forward on 2026-03-08: 02:30 does not exist that day.
    m.birth_date = Some(date(1990, 3, 8));
    r.send_at = time(2, 30, 0, 0);
    check(
        &r,
        &m,
        "America/New_York",
        window("2026-03-07T00:00:00Z", "2026-03-09T00:00:00Z"),
        false,
        &[("birthday:2026", "2026-03-08T07:00:00Z")],
    );
    // It falls back on 2026-11-01: 01:30 happens twice; sent once, at the first.
    m.birth_date = Some(date(1990, 11, 1));
    r.send_at = time(1, 30, 0, 0);
    check(
        &r,
        &m,
        "America/New_York",
        window("2026-10-31T00:00:00Z", "2026-11-02T00:00:00Z"),
        false,
        &[("birthday:2026", "2026-11-01T05:30:00Z")],
    );
    // 09:30 the week after the change is 13:30Z in summer time, 14:30Z after.
    m.birth_date = Some(date(1990, 11, 2));
    r.send_at = time(9, 30, 0, 0);
    check(
        &r,
        &m,
        "America/New_York",
        window("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z"),
        false,
        &[("birthday:2026", "2026-11-02T14:30:00Z")],
    );
}

#[test]
fn a_member_changed_since_the_last_tick_catches_up_within_lateness() {
    let r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    // Imported at 11:00 on the birthday; the last tick's window began after 09:30.
    let w = Window {
        from: "2026-03-15T11:00:00Z".parse().unwrap(),
        to: "2026-03-15T12:00:00Z".parse().unwrap(),
        now: "2026-03-15T11:00:00Z".parse().unwrap(),
    };
    check(&r, &member(), "UTC", w, false, &[]);
    check(&r, &member(), "UTC", w, true, &[("birthday:2026", "2026-03-15T09:30:00Z")]);
}

#[test]
fn inactivity_fires_once_per_crossing() {
    let r = rule(Trigger::Inactivity { days: 30 });
    let mut m = member();
    m.last_activity_at = Some("2026-01-01T12:00:00Z".parse().unwrap());
    let key = "inactive30:2026-01-31T12:00:00Z";
    // The crossing (2026-01-31T12:00Z) is followed by the 09:30 slot of Feb 1: it fires in the
    // window that holds that slot, not earlier.
    check(&r, &m, "UTC", window("2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"), false, &[]);
    check(
        &r,
        &m,
        "UTC",
        window("2026-02-01T00:00:00Z", "2026-02-01T10:00:00Z"),
        false,
        &[(key, "2026-02-01T09:30:00Z")],
    );
    // Later windows do not fire again for the same crossing: a state is not a crossing.
    check(&r, &m, "UTC", window("2026-02-01T10:00:00Z", "2026-02-02T00:00:00Z"), false, &[]);
    check(&r, &m, "UTC", window("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"), false, &[]);
    // A member seen for the first time long after crossing gets one, at the next slot after now,
    // with the same key however often it is evaluated.
    let w = window("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
    check(&r, &m, "UTC", w, true, &[(key, "2026-12-02T09:30:00Z")]);
    // The key does not depend on the member's zone.
    check(&r, &m, "Asia/Shanghai", w, true, &[(key, "2026-12-02T01:30:00Z")]);
    // New activity moves the crossing: a new key, only once crossed again.
    m.last_activity_at = Some("2026-12-05T08:00:00Z".parse().unwrap());
    check(&r, &m, "UTC", window("2026-12-06T00:00:00Z", "2027-01-04T09:00:00Z"), true, &[]);
    check(
        &r,
        &m,
        "UTC",
        window("2027-01-04T09:00:00Z", "2027-01-05T00:00:00Z"),
        false,
        &[("inactive30:2027-01-04T08:00:00Z", "2027-01-04T09:30:00Z")],
    );
}

#[test]
fn inactivity_after_downtime_goes_at_the_next_slot_not_late() {
    let r = rule(Trigger::Inactivity { days: 30 });
    let mut m = member();
    m.last_activity_at = Some("2026-01-01T12:00:00Z".parse().unwrap());
    // Down from Jan 31 to Feb 3 10:00: the Feb 1 slot passed; it goes at Feb 4 09:30.
    let w = Window {
        from: "2026-01-31T00:00:00Z".parse().unwrap(),
        to: "2026-02-03T11:00:00Z".parse().unwrap(),
        now: "2026-02-03T10:00:00Z".parse().unwrap(),
    };
    check(&r, &m, "UTC", w, false, &[("inactive30:2026-01-31T12:00:00Z", "2026-02-04T09:30:00Z")]);
}

#[test]
fn disabled_rules_find_nothing() {
    let mut r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    r.enabled = false;
    check(&r, &member(), "UTC", window("2026-03-14T00:00:00Z", "2026-03-16T00:00:00Z"), true, &[]);
}
