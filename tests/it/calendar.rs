//! A year's forecast against the independent reference tables: every festival and every lunar
//! birthday of 2027 shows on its date for members in three zones (Shanghai, London, New York),
//! and nothing shows on any other date.

use std::collections::{BTreeMap, BTreeSet};

use jiff::ToSpan;
use jiff::civil::{Date, Weekday, date};
use serde_json::json;

use crate::support::app::TestApp;

const MONTHS: &str = include_str!("../data/calendar/chinese_months_1901_2100.csv");
const QINGMING: &str = include_str!("../data/calendar/qingming_1901_2100.csv");

/// The reference's Chinese months: (year, month, leap) → (first day, length).
fn months() -> BTreeMap<(i32, u8, bool), (Date, i32)> {
    MONTHS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("year"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "1"),
                (f[3].parse().unwrap(), f[4].parse().unwrap()),
            )
        })
        .collect()
}

/// The reference's Gregorian date of a lunar date, with the lunar-birthday fallbacks: a leap
/// month the year lacks is the ordinary month, day 30 of a 29-day month is the 29th.
fn lunar(months: &BTreeMap<(i32, u8, bool), (Date, i32)>, year: i32, month: u8, leap: bool, day: i32) -> Date {
    let (first, len) = months.get(&(year, month, leap)).or_else(|| months.get(&(year, month, false))).unwrap();
    first.checked_add((day.min(*len) - 1).days()).unwrap()
}

fn nth_weekday(year: i16, month: i8, weekday: Weekday, nth: i32) -> Date {
    let first = date(year, month, 1);
    let offset = (weekday.to_monday_zero_offset() - first.weekday().to_monday_zero_offset() + 7) % 7;
    first.checked_add((i32::from(offset) + 7 * (nth - 1)).days()).unwrap()
}

const ZONES: [&str; 3] = ["Asia/Shanghai", "Europe/London", "America/New_York"];
const BIRTHDAYS: [(&str, u8, bool, i32); 3] =
    [("08-15", 8, false, 15), ("L06-10", 6, true, 10), ("12-30", 12, false, 30)];

const RULES: &str = r#"
[programme]
time_zone = "Asia/Shanghai"
[[rules]]
id = "festivals"
trigger = "festival"
festivals = ["chinese", "solar_term", "fixed", "observance"]
channels = ["sms"]
template = "holiday"
send_at = "09:00"
[[rules]]
id = "lunar-birthday"
trigger = "lunar_birthday"
channels = ["sms"]
template = "lunar_birthday"
send_at = "09:00"
"#;

#[tokio::test]
async fn a_year_s_forecast_shows_every_festival_and_lunar_birthday_on_its_date_in_three_zones() {
    // 23:00 on Dec 31 in Shanghai, the programme's zone; the morning of Dec 31 in New York.
    let t = TestApp::start(RULES, "2026-12-31T15:00:00Z").await;
    let mut lines = Vec::new();
    for (z, zone) in ZONES.iter().enumerate() {
        for (b, (text, ..)) in BIRTHDAYS.iter().enumerate() {
            lines.push(
                json!({"external_id": format!("m{z}{b}"), "name": "Lin", "phone": format!("+86138001380{z}{b}"),
                       "time_zone": zone, "locale": "zh-CN", "lunar_birthday": text})
                .to_string(),
            );
        }
    }
    let report = t.import_jsonl(&lines.join("\n")).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let rows = t.app.forecast(366, None).await.unwrap();
    let in_2027 = |r: &&tidings::evaluate::ForecastRow| r.day.year() == 2027;

    // Festivals from the reference tables.
    let m = months();
    let mut expected: BTreeMap<Date, BTreeSet<&str>> = BTreeMap::new();
    let mut add = |d: Date, id: &'static str| {
        if d.year() == 2027 {
            expected.entry(d).or_default().insert(id);
        }
    };
    for y in [2026, 2027] {
        add(lunar(&m, y, 1, false, 1), "spring_festival");
        add(lunar(&m, y, 1, false, 15), "lantern");
        add(lunar(&m, y, 5, false, 5), "dragon_boat");
        add(lunar(&m, y, 7, false, 7), "qixi");
        add(lunar(&m, y, 8, false, 15), "mid_autumn");
        add(lunar(&m, y, 9, false, 9), "double_ninth");
        add(lunar(&m, y, 12, false, 8), "laba");
        add(lunar(&m, y, 12, false, 23), "little_new_year");
        add(lunar(&m, y, 12, false, 30), "new_years_eve");
    }
    let qingming = QINGMING.lines().find(|l| l.starts_with("2027,")).unwrap().split(',').nth(1).unwrap();
    add(qingming.parse().unwrap(), "qingming");
    for (mo, d, id) in [
        (1, 1, "new_year"),
        (2, 14, "valentines"),
        (3, 8, "womens_day"),
        (5, 1, "labour_day"),
        (10, 1, "national_day"),
        (12, 25, "christmas"),
    ] {
        add(date(2027, mo, d), id);
    }
    add(nth_weekday(2027, 5, Weekday::Sunday, 2), "mothers_day");
    add(nth_weekday(2027, 6, Weekday::Sunday, 3), "fathers_day");
    add(nth_weekday(2027, 11, Weekday::Thursday, 4), "thanksgiving");
    assert_eq!(expected.values().map(BTreeSet::len).sum::<usize>(), 19, "every festival once in 2027: {expected:?}");

    let festival_rows: Vec<_> = rows.iter().filter(in_2027).filter(|r| r.rule == "festivals").collect();
    let got: BTreeSet<Date> = festival_rows.iter().map(|r| r.day).collect();
    assert_eq!(got, expected.keys().copied().collect::<BTreeSet<_>>(), "festival dates");
    for r in &festival_rows {
        assert!(expected[&r.day].contains(r.occasion.as_str()), "{r:?}");
        assert_eq!(r.messages, 9, "every member in every zone, once: {r:?}");
        assert_eq!(r.sample.len(), 3, "{r:?}");
    }

    // Lunar birthdays: each on its reference date, once per zone.
    let mut birthdays: BTreeMap<Date, u64> = BTreeMap::new();
    for (_, month, leap, day) in BIRTHDAYS {
        for y in [2026, 2027] {
            let d = lunar(&m, y, month, leap, day);
            if d.year() == 2027 {
                *birthdays.entry(d).or_default() += 3;
            }
        }
    }
    let got: BTreeMap<Date, u64> = rows
        .iter()
        .filter(in_2027)
        .filter(|r| r.rule == "lunar-birthday")
        .map(|r| {
            assert_eq!(r.occasion, "lunar_birthday");
            (r.day, r.messages)
        })
        .collect();
    assert_eq!(got, birthdays);
    // 2027 has no leap 6th month: the L06-10 birthday is on the ordinary 6th month's 10th.
    assert!(!m.contains_key(&(2027, 6, true)));
    assert!(got.contains_key(&lunar(&m, 2027, 6, false, 10)));
}
