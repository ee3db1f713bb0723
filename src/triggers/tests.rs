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
        lunar_birthday: None,
        member_since: Some(date(2020, 6, 1)),
        tier: None,
        points: 0,
        attributes: Map::new(),
        last_activity_at: None,
        value: None,
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
        segments: Vec::new(),
        priority: Default::default(),
        merge: false,
        quiet_hours: crate::plan::quiet::QuietHours::NONE,
        experiment: None,
        conversion: crate::track::report::Conversion::default(),
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

fn lunar_member(birthday: &str) -> Member {
    let mut m = member();
    m.lunar_birthday = Some(birthday.parse().unwrap());
    // Mid-Autumn 1990 fell on October 3.
    m.birth_date = Some(date(1990, 10, 3));
    m
}

#[test]
fn a_lunar_birthday_fires_on_that_year_s_gregorian_date() {
    let r = rule(Trigger::LunarBirthday);
    let m = lunar_member("08-15");
    // Mid-Autumn (the 15th of the 8th month) was on 2026-09-25 and is on 2027-09-15.
    let w = window("2026-09-24T00:00:00Z", "2026-09-26T00:00:00Z");
    check(&r, &m, "Asia/Shanghai", w, false, &[("lunar_birthday:2026", "2026-09-25T01:30:00Z")]);
    check(
        &r,
        &m,
        "UTC",
        window("2027-09-14T00:00:00Z", "2027-09-16T00:00:00Z"),
        false,
        &[("lunar_birthday:2027", "2027-09-15T09:30:00Z")],
    );
    // The day before and after: nothing.
    check(&r, &m, "UTC", window("2026-09-25T10:00:00Z", "2026-10-20T00:00:00Z"), false, &[]);
    // The variables a template shows.
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let occ = evaluate(&r, &m, &tz, w, false, "zh-CN").pop().unwrap();
    assert_eq!(occ.vars["lunar_date"], "农历八月十五");
    assert_eq!(occ.vars["zodiac"], "马");
    assert_eq!(occ.vars["ganzhi"], "丙午");
    assert_eq!(occ.vars["age"], 36);
    assert_eq!(occ.vars["date"], "2026-09-25");
    let en = evaluate(&r, &m, &tz, w, false, "en").pop().unwrap();
    assert_eq!(en.vars["zodiac"], "Horse");
    // Spring Festival: the first day of the first month was 2027-02-06.
    let mut ny = lunar_member("01-01");
    ny.birth_date = None;
    let occ = evaluate(&r, &ny, &tz, window("2027-02-05T00:00:00Z", "2027-02-07T00:00:00Z"), false, "zh-CN");
    assert_eq!(occ.len(), 1);
    assert_eq!(occ[0].date, date(2027, 2, 6));
    assert_eq!(occ[0].vars["age"], serde_json::Value::Null, "no solar birth date, no age");
    assert_eq!(occ[0].vars["zodiac"], "羊", "2027 is the year of the goat from Spring Festival on");
}

#[test]
fn a_lunar_birthday_is_not_greeted_in_or_before_the_year_of_birth() {
    let r = rule(Trigger::LunarBirthday);
    let mut m = lunar_member("08-15");
    m.birth_date = Some(date(2026, 9, 25));
    check(&r, &m, "UTC", window("2026-09-24T00:00:00Z", "2026-09-26T00:00:00Z"), false, &[]);
    check(
        &r,
        &m,
        "UTC",
        window("2027-09-14T00:00:00Z", "2027-09-16T00:00:00Z"),
        false,
        &[("lunar_birthday:2027", "2027-09-15T09:30:00Z")],
    );
}

#[test]
fn leap_month_and_day_30_birthdays_follow_the_fallback_rules() {
    let r = rule(Trigger::LunarBirthday);
    // Every lunar birthday a member can register fires exactly once in each Chinese year, on
    // the date `lunar_birthday_in` gives (its fallbacks are tested in `calendar`).
    for text in ["L04-15", "L06-30", "12-30", "01-30", "08-15"] {
        let mut m = lunar_member(text);
        m.birth_date = None;
        let birthday: calendar::LunarBirthday = text.parse().unwrap();
        for year in 2024..=2031 {
            let expected = calendar::lunar_birthday_in(year, birthday).unwrap();
            let from = expected.checked_sub(40.days()).unwrap();
            let to = expected.checked_add(40.days()).unwrap();
            let w = window(&format!("{from}T00:00:00Z"), &format!("{to}T00:00:00Z"));
            let tz = TimeZone::UTC;
            let got = evaluate(&r, &m, &tz, w, false, "en");
            let keys: Vec<&str> = got.iter().map(|o| o.key.as_str()).collect();
            let dates: Vec<Date> = got.iter().map(|o| o.date).collect();
            // A neighbouring year's occurrence can fall inside 40 days for month 12 / month 1.
            let this = format!("lunar_birthday:{year}");
            assert_eq!(keys.iter().filter(|k| **k == this).count(), 1, "{text} in {year}: {keys:?}");
            assert!(dates.contains(&expected), "{text} in {year}: {dates:?}, expected {expected}");
        }
    }
}

fn festivals(ids: &[&str]) -> Trigger {
    let chosen = calendar::builtin().into_iter().filter(|f| ids.contains(&f.id.as_str())).collect();
    Trigger::Festival { calendar: Calendar::new(chosen, 2000..=2040) }
}

#[test]
fn festival_greetings_go_on_the_festival_s_morning_or_days_before() {
    let mut r = rule(festivals(&["mid_autumn", "new_years_eve"]));
    r.send_at = time(8, 0, 0, 0);
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let w = window("2026-09-24T00:00:00Z", "2026-09-26T00:00:00Z");
    let occ = evaluate(&r, &member(), &tz, w, false, "zh-CN");
    assert_eq!(occ.len(), 1, "{occ:?}");
    assert_eq!(occ[0].key, "festival:mid_autumn:2026-09-25");
    assert_eq!(occ[0].due.to_string(), "2026-09-25T00:00:00Z");
    assert_eq!(occ[0].vars["festival"], "mid_autumn");
    assert_eq!(occ[0].vars["holiday"], "中秋节");
    assert_eq!(occ[0].vars["lunar_date"], "农历八月十五");
    // New Year's Eve is the last day of the 12th month: 2027-02-05, the day before Spring Festival.
    check(
        &r,
        &member(),
        "UTC",
        window("2027-02-04T00:00:00Z", "2027-02-07T00:00:00Z"),
        false,
        &[("festival:new_years_eve:2027-02-05", "2027-02-05T08:00:00Z")],
    );
    // Two days before, same key (the occurrence is the festival, not the send day).
    r.offset_days = -2;
    check(
        &r,
        &member(),
        "UTC",
        window("2027-02-02T00:00:00Z", "2027-02-04T00:00:00Z"),
        false,
        &[("festival:new_years_eve:2027-02-05", "2027-02-03T08:00:00Z")],
    );
    // Festivals the rule did not choose are not greeted.
    check(&r, &member(), "UTC", window("2027-02-04T00:00:00Z", "2027-02-09T00:00:00Z"), false, &[]);
}

fn scored(p_alive: f64, segment: Segment) -> Member {
    let mut m = member();
    m.last_activity_at = Some("2026-08-14T12:00:00Z".parse().unwrap());
    m.value = Some(crate::members::MemberValue {
        recency_days: Some(100.0),
        frequency: 4,
        monetary: 420.0,
        r: 1,
        f: 3,
        m: 3,
        segment,
        p_alive: Some(p_alive),
        expected_purchases: Some(0.2),
        last_purchase_at: Some("2026-08-14T12:00:00Z".parse().unwrap()),
        churn_crossed_at: Some("2026-11-22T19:00:00Z".parse().unwrap()),
        scored_at: "2026-11-22T19:00:00Z".parse().unwrap(),
    });
    m
}

#[test]
fn churn_risk_fires_once_below_the_threshold_keyed_by_the_last_purchase() {
    let r = rule(Trigger::ChurnRisk { below: 0.5 });
    let key = "churn:2026-08-14T12:00:00Z";
    // Scored at 19:00 on the 22nd: sent at the next 09:30.
    let w = window("2026-11-23T00:00:00Z", "2026-11-23T10:00:00Z");
    check(&r, &scored(0.3, Segment::AtRisk), "UTC", w, false, &[(key, "2026-11-23T09:30:00Z")]);
    check(&r, &scored(0.7, Segment::Active), "UTC", w, false, &[]);
    // Exactly at the threshold is not below it.
    check(&r, &scored(0.5, Segment::AtRisk), "UTC", w, false, &[]);
    // A member marked changed by the refresh, seen after the slot: at the next slot after now.
    let late = window("2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z");
    check(&r, &scored(0.3, Segment::AtRisk), "UTC", late, true, &[(key, "2026-11-24T09:30:00Z")]);
    check(&r, &scored(0.3, Segment::AtRisk), "UTC", late, false, &[]);
    // Unscored members, or without a purchase, never.
    check(&r, &member(), "UTC", w, true, &[]);
    // Below, but never crossed since the last purchase (P(alive) was below the threshold even
    // right after it): nothing, however often the member is scored.
    let mut never_crossed = scored(0.3, Segment::AtRisk);
    never_crossed.value.as_mut().unwrap().churn_crossed_at = None;
    check(&r, &never_crossed, "UTC", w, true, &[]);
    // Crossed a higher rule's threshold, but not this one's.
    check(&rule(Trigger::ChurnRisk { below: 0.2 }), &scored(0.3, Segment::AtRisk), "UTC", w, true, &[]);
    // The crossing, not the latest scoring, sets the slot: scored again tonight, the slot stays
    // the morning after the crossing (already planned, the same key).
    let mut rescored = scored(0.25, Segment::AtRisk);
    rescored.value.as_mut().unwrap().scored_at = "2026-11-23T19:00:00Z".parse().unwrap();
    check(&r, &rescored, "UTC", window("2026-11-24T00:00:00Z", "2026-11-24T10:00:00Z"), false, &[]);
    let tz = TimeZone::UTC;
    let occ = evaluate(&r, &scored(0.314, Segment::AtRisk), &tz, w, false, "en").pop().unwrap();
    assert_eq!(occ.vars["p_alive"], 0.31);
    assert_eq!(occ.vars["last_purchase"], "2026-08-14");
    // The dispatcher skips it if the member bought since.
    let mut back = scored(0.3, Segment::AtRisk);
    assert_eq!(no_longer_due(&occ.vars, &back), None);
    back.last_activity_at = Some("2026-11-23T08:00:00Z".parse().unwrap());
    assert_eq!(no_longer_due(&occ.vars, &back), Some("member active again since this was planned"));
}

#[test]
fn a_rule_s_segments_narrow_its_audience() {
    let mut r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
    r.segments = vec![Segment::AtRisk, Segment::Lapsed];
    let w = window("2026-03-14T00:00:00Z", "2026-03-16T00:00:00Z");
    check(&r, &scored(0.3, Segment::AtRisk), "UTC", w, false, &[("birthday:2026", "2026-03-15T09:30:00Z")]);
    check(&r, &scored(0.9, Segment::HighValue), "UTC", w, false, &[]);
    // Not scored yet: in no segment.
    check(&r, &member(), "UTC", w, false, &[]);
    r.segments.clear();
    check(&r, &member(), "UTC", w, false, &[("birthday:2026", "2026-03-15T09:30:00Z")]);
}

mod once_per_occurrence {
    //! Time correctness across every kind of zone: however the time is cut into evaluation
    //! windows, each yearly occurrence is found exactly once, at the member-local send time on
    //! its day (or just after a DST gap), including on fall-back days whose local hour repeats.

    use super::*;
    use proptest::prelude::*;

    const ZONES: &[&str] = &[
        "America/New_York",
        "Europe/London",
        "Europe/Dublin",
        "Australia/Lord_Howe",
        "America/Santiago",
        "America/Havana",
        "America/St_Johns",
        "Africa/Casablanca",
        "Pacific/Apia",
        "Pacific/Chatham",
        "Asia/Kathmandu",
        "Asia/Kolkata",
        "Asia/Tehran",
        "Europe/Moscow",
        "America/Caracas",
        "Asia/Pyongyang",
        "Asia/Shanghai",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn each_occurrence_is_found_once_however_the_windows_fall(
            zone in 0..ZONES.len(),
            year in 2008i16..2030,
            day_of_year in 0i32..365,
            send_minutes in 0i64..(24 * 60),
            lunar in any::<bool>(),
            steps in proptest::collection::vec(1i64..(40 * 60), 16),
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let mut m = member();
            let birthday = date(1980, 1, 1).checked_add(day_of_year.days()).unwrap();
            let mut r = rule(Trigger::Birthday { feb29: Feb29::Feb28 });
            if lunar {
                let l = calendar::to_lunar(birthday).unwrap();
                m.lunar_birthday = Some(calendar::LunarBirthday { month: l.month, leap: l.leap, day: l.day });
                r.trigger = Trigger::LunarBirthday;
            } else {
                m.birth_date = Some(birthday);
            }
            r.send_at = Time::midnight().checked_add(SignedDuration::from_mins(send_minutes)).unwrap();
            let start = local_instant(date(year, 1, 1), Time::midnight(), &tz);
            let end = local_instant(date(year + 1, 6, 30), Time::midnight(), &tz);
            let mut found: Vec<Occurrence> = Vec::new();
            let mut from = start;
            let mut i = 0;
            while from < end {
                let to = from.checked_add(SignedDuration::from_mins(steps[i % steps.len()])).unwrap().min(end);
                found.extend(evaluate(&r, &m, &tz, Window { from, to, now: from }, false, "en"));
                from = to;
                i += 1;
            }
            let mut keys: Vec<&str> = found.iter().map(|o| o.key.as_str()).collect();
            keys.sort();
            let before = keys.len();
            keys.dedup();
            prop_assert_eq!(before, keys.len(), "an occurrence found twice: {:?}", found);
            for occ in &found {
                // The send instant is on the occurrence's local day, at the send time or the
                // first valid instant after it (a gap); on a skipped day, the next day.
                let local = occ.due.to_zoned_datetime(tz.clone());
                let wanted = occ.date.to_datetime(r.send_at);
                prop_assert!(local.datetime() >= wanted, "{} before {wanted}", local);
                prop_assert!(local.datetime() <= wanted.checked_add(SignedDuration::from_hours(25)).unwrap(),
                    "{} long after {wanted}", local);
                prop_assert_eq!(occ.due, crate::plan::send_time::local_instant(occ.date, r.send_at, &tz));
            }
            // None missed: every yearly date whose send instant is in the span.
            let expected: Vec<Date> = (year - 1..=year + 1)
                .filter_map(|y| match &r.trigger {
                    Trigger::LunarBirthday => calendar::lunar_birthday_in(i32::from(y), m.lunar_birthday.unwrap()),
                    _ => anniversary_in(birthday, y, Feb29::Feb28),
                })
                .filter(|d| {
                    let due = local_instant(*d, r.send_at, &tz);
                    start < due && due <= end
                })
                .collect();
            let got: Vec<Date> = found.iter().map(|o| o.date).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
