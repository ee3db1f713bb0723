//! Festival dates against the reference; rule-based dates by weekday arithmetic; text forms.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday, date};
use proptest::prelude::*;

use super::{RefMonth, ref_qingming, reference};
use crate::triggers::calendar::*;

proptest! {
    #[test]
    fn when_text_round_trips(when in any_when()) {
        prop_assert_eq!(when.to_string().parse::<When>(), Ok(when.clone()), "{}", when);
    }
}

fn any_when() -> impl Strategy<Value = When> {
    let weekday = (0i8..7).prop_map(|n| Weekday::from_monday_zero_offset(n).unwrap());
    let day = (0i64..40_000).prop_map(|n| date(1950, 1, 1) + n.days());
    prop_oneof![
        (1i8..=12, 1i8..=28).prop_map(|(month, day)| When::Fixed { month, day }),
        (1u8..=12, 1u8..=30).prop_map(|(month, day)| When::Lunar { month, day }),
        Just(When::LunarNewYearsEve),
        Just(When::Qingming),
        (1i8..=12, weekday, prop_oneof![1i8..=5, Just(-1)]).prop_map(|(month, weekday, nth)| When::NthWeekday {
            month,
            weekday,
            nth
        }),
        prop::collection::vec(day, 1..5).prop_map(When::Dates),
    ]
}

/// The dates of a built-in festival in Gregorian `year`, from the reference alone.
fn ref_festival_dates(months: &[RefMonth], qingming: &BTreeMap<i16, Date>, id: &str, year: i16) -> Option<Vec<Date>> {
    let lunar = |month: u8, day: u8| {
        let ds = months.iter().filter(|m| m.month == month && !m.leap).map(|m| m.first + (i64::from(day) - 1).days());
        ds.filter(|d| d.year() == year).collect()
    };
    Some(match id {
        "spring_festival" => lunar(1, 1),
        "lantern" => lunar(1, 15),
        "dragon_boat" => lunar(5, 5),
        "qixi" => lunar(7, 7),
        "mid_autumn" => lunar(8, 15),
        "double_ninth" => lunar(9, 9),
        "laba" => lunar(12, 8),
        "little_new_year" => lunar(12, 23),
        // The last day of the year: the day before each Spring Festival.
        "new_years_eve" => {
            let firsts = months.iter().filter(|m| m.month == 1 && !m.leap);
            firsts.map(|m| m.first.yesterday().unwrap()).filter(|d| d.year() == year).collect()
        }
        "qingming" => vec![qingming[&year]],
        _ => return None,
    })
}

#[test]
fn builtin_festivals_in_2027_and_2028() {
    let months = reference();
    let qm = ref_qingming();
    let calendar = Calendar::new(builtin(), 2027..=2028);
    for year in [2027, 2028] {
        let mut expected = Vec::new();
        for f in builtin() {
            let dates = match ref_festival_dates(&months, &qm, &f.id, year) {
                Some(dates) => dates,
                None => match f.when {
                    When::Fixed { month, day } => vec![Date::new(year, month, day).unwrap()],
                    When::NthWeekday { .. } => f.when.dates_in(year),
                    _ => panic!("{} has no reference", f.id),
                },
            };
            assert!(!dates.is_empty(), "{} {year}", f.id);
            assert_eq!(f.when.dates_in(year), dates, "{} {year}", f.id);
            for d in &dates {
                assert!(calendar.on(*d).any(|g| g.id == f.id), "{} {d}", f.id);
                expected.push((*d, f.id.clone()));
            }
        }
        expected.sort_by_key(|(d, _)| *d);
        let got: Vec<(Date, String)> = calendar.year(year).into_iter().map(|(d, f)| (d, f.id.clone())).collect();
        assert_eq!(got, expected);
    }
    let id = |date| calendar.on(date).map(|f| f.id.as_str()).collect::<Vec<_>>();
    assert_eq!(id(date(2027, 2, 6)), ["spring_festival"]);
    assert_eq!(id(date(2027, 2, 7)), Vec::<&str>::new());
    assert_eq!(id(date(2026, 12, 25)), Vec::<&str>::new(), "outside the indexed years");
    assert_eq!(calendar.year(2026).iter().filter(|(_, f)| f.id == "christmas").count(), 1, "on demand");
}

#[test]
fn observances_by_weekday_arithmetic() {
    let dates = |id: &str, year| builtin().into_iter().find(|f| f.id == id).unwrap().when.dates_in(year);
    // The nth weekday of a month is that weekday, within the nth seven days.
    let check = |id: &str, year, month, weekday, nth: i8| {
        let [d] = dates(id, year)[..] else { panic!("{id} {year}") };
        assert_eq!((d.month(), d.weekday()), (month, weekday), "{id} {year}");
        assert_eq!((d.day() - 1) / 7 + 1, nth, "{id} {year}");
        d
    };
    for year in 2020..2040 {
        check("mothers_day", year, 5, Weekday::Sunday, 2);
        check("fathers_day", year, 6, Weekday::Sunday, 3);
        check("thanksgiving", year, 11, Weekday::Thursday, 4);
    }
    assert_eq!(check("mothers_day", 2027, 5, Weekday::Sunday, 2), date(2027, 5, 9));
    assert_eq!(check("fathers_day", 2027, 6, Weekday::Sunday, 3), date(2027, 6, 20));
    assert_eq!(check("thanksgiving", 2027, 11, Weekday::Thursday, 4), date(2027, 11, 25));
    // The last Monday of May, 2027: a Monday, and a week later is June.
    let last: When = "last monday of may".parse().unwrap();
    let [d] = last.dates_in(2027)[..] else { panic!() };
    assert_eq!((d.weekday(), d.month(), (d + 7.days()).month()), (Weekday::Monday, 5, 6));
    // No fifth Monday in February 2027.
    assert_eq!("5th monday of february".parse::<When>().unwrap().dates_in(2027), []);
}

#[test]
fn lunar_festivals_every_year_match_the_reference() {
    let months = reference();
    let qm = ref_qingming();
    let mut not_once = 0;
    for f in builtin().iter().filter(|f| matches!(f.group, Group::Chinese | Group::SolarTerm)) {
        for year in 1902..=2099 {
            let expected = ref_festival_dates(&months, &qm, &f.id, year).unwrap();
            not_once += usize::from(expected.len() != 1);
            assert_eq!(f.when.dates_in(year), expected, "{} {year}", f.id);
        }
    }
    // Some 12th-month festival falls twice in one Gregorian year and not at all in the next.
    assert!(not_once > 0);
}

#[test]
fn new_years_eve_is_the_29th_when_the_12th_month_is_short() {
    let months = reference();
    let short = months.iter().find(|m| m.year >= 2026 && m.month == 12 && m.days == 29).unwrap();
    let eve = short.last();
    assert_eq!(When::LunarNewYearsEve.dates_in(eve.year()), [eve]);
    assert_eq!(to_lunar(eve).map(|l| (l.month, l.day)), Some((12, 29)));
    let long = months.iter().find(|m| m.year >= 2026 && m.month == 12 && m.days == 30).unwrap();
    assert_eq!(When::LunarNewYearsEve.dates_in(long.last().year()), [long.last()]);
    // A day 30 festival does not occur in a 29-day month.
    let thirtieth = When::Lunar { month: 12, day: 30 };
    assert!(!thirtieth.dates_in(eve.year()).contains(&eve));
}

#[test]
fn when_text() {
    let check = |s: &str, when: When, shown: &str| {
        assert_eq!(s.parse::<When>(), Ok(when.clone()), "{s}");
        assert_eq!(when.to_string(), shown);
    };
    check("12-26", When::Fixed { month: 12, day: 26 }, "12-26");
    check(" 2-29 ", When::Fixed { month: 2, day: 29 }, "02-29");
    check("lunar 08-15", When::Lunar { month: 8, day: 15 }, "lunar 08-15");
    check("Lunar 8-15", When::Lunar { month: 8, day: 15 }, "lunar 08-15");
    check("lunar 12-last", When::LunarNewYearsEve, "lunar 12-last");
    check("Qingming", When::Qingming, "qingming");
    let nth = |nth, weekday, month| When::NthWeekday { month, weekday, nth };
    check("2nd sunday of may", nth(2, Weekday::Sunday, 5), "2nd sunday of may");
    check("Last Monday of May", nth(-1, Weekday::Monday, 5), "last monday of may");
    check("4th thursday of november", nth(4, Weekday::Thursday, 11), "4th thursday of november");
    check("first sat of jan", nth(1, Weekday::Saturday, 1), "1st saturday of january");
    check("5th friday of december", nth(5, Weekday::Friday, 12), "5th friday of december");
    let dates = When::Dates(vec![date(2027, 2, 6), date(2028, 1, 26)]);
    check("2027-02-06, 2028-01-26", dates.clone(), "2027-02-06, 2028-01-26");
    check("2027-02-06,2028-01-26", dates, "2027-02-06, 2028-01-26");
    check("2027-02-06", When::Dates(vec![date(2027, 2, 6)]), "2027-02-06");

    let err = |s: &str, msg: &str| assert_eq!(s.parse::<When>().unwrap_err(), msg, "{s}");
    err("13-01", "month must be 1–12, got 13");
    err("04-31", "no day 31 in month 4");
    err("lunar 13-01", "lunar month must be 1–12, got 13");
    err("lunar 01-31", "lunar day must be 1–30, got 31");
    err("lunar 08-last", r#"only the 12th month's last day has a form ("lunar 12-last"), got "lunar 08-last""#);
    err("lunar mid-autumn", r#"expected "lunar MM-DD", got "lunar mid-autumn""#);
    err("6th sunday of may", r#"nth must be 1st–5th or last, got "6th""#);
    err("2nd sundy of may", r#"unknown weekday "sundy""#);
    err("2nd sunday of mai", r#"unknown month "mai""#);
    err("2nd sunday in may", r#"expected "<nth> <weekday> of <month>", got "2nd sunday in may""#);
    let e = "2027-02-30, 2028-01-26".parse::<When>().unwrap_err();
    assert!(e.starts_with(r#"invalid date "2027-02-30" in date list: "#), "{e}");
    err(
        "christmas",
        r#"unknown festival date "christmas": expected MM-DD, "lunar MM-DD", "lunar 12-last", "qingming", "2nd sunday of may" or "YYYY-MM-DD, YYYY-MM-DD""#,
    );
    err(
        "",
        r#"unknown festival date "": expected MM-DD, "lunar MM-DD", "lunar 12-last", "qingming", "2nd sunday of may" or "YYYY-MM-DD, YYYY-MM-DD""#,
    );
}

#[test]
fn explicit_dates_in_a_year() {
    let when: When = "2028-01-26, 2027-02-06, 2027-02-06, 2026-02-17".parse().unwrap();
    assert_eq!(when.dates_in(2027), [date(2027, 2, 6)]);
    assert_eq!(when.dates_in(2028), [date(2028, 1, 26)]);
    assert_eq!(when.dates_in(2029), []);
    assert_eq!(When::Fixed { month: 2, day: 29 }.dates_in(2027), []);
    assert_eq!(When::Fixed { month: 2, day: 29 }.dates_in(2028), [date(2028, 2, 29)]);
}

#[test]
fn groups() {
    for g in Group::ALL {
        assert_eq!(g.as_str().parse::<Group>(), Ok(g));
    }
    assert_eq!(" Solar_Term ".parse::<Group>(), Ok(Group::SolarTerm));
    assert_eq!(
        "lunar".parse::<Group>().unwrap_err(),
        r#"unknown festival group "lunar": expected chinese, solar_term, fixed, observance or custom"#
    );
}

#[test]
fn builtin_ids_groups_and_names() {
    let all = builtin();
    let ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "spring_festival",
            "lantern",
            "dragon_boat",
            "qixi",
            "mid_autumn",
            "double_ninth",
            "laba",
            "little_new_year",
            "new_years_eve",
            "qingming",
            "new_year",
            "valentines",
            "womens_day",
            "labour_day",
            "national_day",
            "christmas",
            "mothers_day",
            "fathers_day",
            "thanksgiving"
        ]
    );
    for f in &all {
        assert!(f.names.contains_key("en") && f.names.contains_key("zh-CN"), "{}", f.id);
    }
    let mid_autumn = all.iter().find(|f| f.id == "mid_autumn").unwrap();
    assert_eq!(mid_autumn.group, Group::Chinese);
    assert_eq!(mid_autumn.name("zh-CN"), "中秋节");
    assert_eq!(mid_autumn.name("zh-TW"), "中秋节", "same language");
    assert_eq!(mid_autumn.name("en-GB"), "Mid-Autumn Festival");
    assert_eq!(mid_autumn.name("fr"), "Mid-Autumn Festival", "English next");
    let mut only_zh = mid_autumn.clone();
    only_zh.names.remove("en");
    assert_eq!(only_zh.name("fr"), "中秋节", "then any");
    only_zh.names.clear();
    assert_eq!(only_zh.name("fr"), "mid_autumn", "then the id");
    assert_eq!(all.iter().find(|f| f.id == "new_years_eve").unwrap().name("zh-CN"), "除夕");
}

#[test]
fn calendars_compare_by_festivals() {
    let a = Calendar::new(builtin(), 2027..=2027);
    assert_eq!(a, Calendar::new(builtin(), 2020..=2030));
    assert_ne!(a, Calendar::new(builtin()[1..].to_vec(), 2027..=2027));
    let b = a.clone();
    assert!(std::ptr::eq(a.festivals(), b.festivals()), "clones share the data");
    assert_eq!(a.years(), 2027..=2027);
    // Festivals on the same day keep their configured order.
    let mut extra = builtin();
    extra.push(Festival {
        id: "anniversary".into(),
        names: BTreeMap::new(),
        group: Group::Custom,
        when: "10-01".parse().unwrap(),
    });
    let c = Calendar::new(extra, 2027..=2027);
    let on: Vec<&str> = c.on(date(2027, 10, 1)).map(|f| f.id.as_str()).collect();
    assert_eq!(on, ["national_day", "anniversary"]);
}
