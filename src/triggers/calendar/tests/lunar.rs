//! Conversion, leap months and month lengths against the reference; lunar birthdays; names.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::date;
use proptest::prelude::*;

use super::{RefMonth, ref_date, reference};
use crate::triggers::calendar::lunar::{self, civil_from_days, epoch_day};
use crate::triggers::calendar::*;

fn ref_leap_months(months: &[RefMonth]) -> BTreeMap<i32, Option<u8>> {
    let mut leap = BTreeMap::new();
    for m in months {
        let entry = leap.entry(m.year).or_insert(None);
        if m.leap {
            *entry = Some(m.month);
        }
    }
    leap
}

#[test]
fn every_day_1901_2100_matches_the_reference_both_ways() {
    let mut days = 0;
    for m in reference() {
        let mut d = m.first;
        for day in 1..=m.days {
            let lunar = LunarDate { year: m.year, month: m.month, leap: m.leap, day };
            assert_eq!(to_lunar(d), Some(lunar), "{d}");
            assert_eq!(from_lunar(lunar), Some(d), "{lunar:?}");
            d = d.tomorrow().unwrap();
            days += 1;
        }
        if m.days == 29 {
            assert_eq!(from_lunar(LunarDate { year: m.year, month: m.month, leap: m.leap, day: 30 }), None);
        }
    }
    assert!(days > 73_000);
}

#[test]
fn leap_months_and_month_lengths_match_the_reference() {
    let months = reference();
    let leaps = ref_leap_months(&months);
    for (&year, &leap) in &leaps {
        assert_eq!(leap_month(year), leap, "{year}");
        for month in 1..=12 {
            if leap != Some(month) {
                assert_eq!(month_days(year, month, true), None, "{year}-{month}");
                assert_eq!(from_lunar(LunarDate { year, month, leap: true, day: 1 }), None, "{year}-{month}");
            }
        }
    }
    assert_eq!(leaps.len(), 201);
    for m in &months {
        assert_eq!(month_days(m.year, m.month, m.leap), Some(m.days), "{m:?}");
    }
    // Known leap years, as a check on the reading of the data itself.
    assert_eq!(
        (leap_month(2020), leap_month(2023), leap_month(2025), leap_month(2026)),
        (Some(4), Some(2), Some(6), None)
    );
}

#[test]
fn outside_the_range_is_none() {
    let (first, last) = (*lunar::YEARS.start(), *lunar::YEARS.end());
    assert_eq!(to_lunar(date(1899, 1, 1)), None);
    assert_eq!(to_lunar(date(2150, 1, 1)), None);
    assert!(to_lunar(date(1899, 12, 31)).is_some());
    assert_eq!(leap_month(first - 1), None);
    assert_eq!(from_lunar(LunarDate { year: last + 1, month: 1, leap: false, day: 1 }), None);
    assert_eq!(month_days(first - 1, 1, false), None);
    for (month, day) in [(0, 1), (13, 1), (1, 0), (1, 31)] {
        assert_eq!(from_lunar(LunarDate { year: 2027, month, leap: false, day }), None);
    }
    // The table ends where the next year would begin: the day before converts, the day after not.
    let end = from_lunar(LunarDate { year: last, month: 12, leap: false, day: 1 }).unwrap();
    let next = end + i64::from(month_days(last, 12, false).unwrap()).days();
    assert!(to_lunar(next.yesterday().unwrap()).is_some());
    assert_eq!(to_lunar(next), None);
}

#[test]
fn epoch_days_agree_with_jiff() {
    assert_eq!(epoch_day(date(1970, 1, 1)), 0);
    let mut d = date(1800, 1, 1);
    let mut n = epoch_day(d);
    while d <= date(2200, 12, 31) {
        assert_eq!(epoch_day(d), n, "{d}");
        assert_eq!(civil_from_days(n), d);
        d = d.tomorrow().unwrap();
        n += 1;
    }
}

fn birthday(s: &str) -> LunarBirthday {
    s.parse().unwrap()
}

#[test]
fn leap_month_birthdays_fall_back_to_the_ordinary_month() {
    let months = reference();
    let check = |year, b: &str, month, leap, day| {
        assert_eq!(lunar_birthday_in(year, birthday(b)), Some(ref_date(&months, year, month, leap, day)), "{b} {year}");
    };
    // 2020 had 闰四月, 2021 did not; 2025 has 闰六月.
    check(2020, "L04-15", 4, true, 15);
    check(2021, "L04-15", 4, false, 15);
    check(2025, "L06-10", 6, true, 10);
    check(2026, "L06-10", 6, false, 10);
    // A non-leap birthday is the ordinary month, even in a year that has that leap month.
    check(2020, "04-15", 4, false, 15);
    check(2025, "06-10", 6, false, 10);
    // A leap birthday of another month in a leap year: the ordinary month.
    check(2020, "L06-10", 6, false, 10);
}

#[test]
fn day_30_falls_on_the_29th_in_a_short_month() {
    let months = reference();
    let short = months.iter().filter(|m| m.year >= 2026 && !m.leap && m.days == 29).take(3);
    for m in short {
        let b = LunarBirthday { month: m.month, leap: false, day: 30 };
        assert_eq!(lunar_birthday_in(m.year, b), Some(m.last()), "{m:?}");
    }
    let long = months.iter().find(|m| m.year >= 2026 && !m.leap && m.days == 30).unwrap();
    let b = LunarBirthday { month: long.month, leap: false, day: 30 };
    assert_eq!(lunar_birthday_in(long.year, b), Some(long.last()));
}

#[test]
fn every_birthday_in_every_year_lands_in_its_month() {
    for year in 1902..=2099 {
        let leap_of_year = leap_month(year);
        for month in 1..=12 {
            for leap in [false, true] {
                for day in 1..=30 {
                    let b = LunarBirthday { month, leap, day };
                    let got = lunar_birthday_in(year, b).unwrap_or_else(|| panic!("{b} {year}"));
                    let l = to_lunar(got).unwrap();
                    let is_leap = leap && leap_of_year == Some(month);
                    assert_eq!((l.year, l.month, l.leap), (year, month, is_leap), "{b} {year}");
                    assert_eq!(l.day, day.min(month_days(year, month, is_leap).unwrap()), "{b} {year}");
                }
            }
        }
    }
    assert_eq!(lunar_birthday_in(2027, LunarBirthday { month: 13, leap: false, day: 1 }), None);
    assert_eq!(lunar_birthday_in(2027, LunarBirthday { month: 1, leap: false, day: 0 }), None);
}

#[test]
fn lunar_birthday_text() {
    let ok = |s: &str, month, leap, day, shown: &str| {
        let b = birthday(s);
        assert_eq!(b, LunarBirthday { month, leap, day }, "{s}");
        assert_eq!(b.to_string(), shown);
    };
    ok("08-15", 8, false, 15, "08-15");
    ok("8-15", 8, false, 15, "08-15");
    ok(" L04-15 ", 4, true, 15, "L04-15");
    ok("l4-15", 4, true, 15, "L04-15");
    ok("闰04-15", 4, true, 15, "L04-15");
    ok("12-30", 12, false, 30, "12-30");
    let err = |s: &str, msg: &str| assert_eq!(s.parse::<LunarBirthday>().unwrap_err(), msg, "{s}");
    err("13-01", "lunar month must be 1–12, got 13");
    err("00-01", "lunar month must be 1–12, got 0");
    err("01-31", "lunar day must be 1–30, got 31");
    err("01-00", "lunar day must be 1–30, got 0");
    err("x", r#"expected MM-DD or LMM-DD (leap month), got "x""#);
    err("123-1", r#"expected MM-DD or LMM-DD (leap month), got "123-1""#);
    err("L-04-15", r#"expected MM-DD or LMM-DD (leap month), got "L-04-15""#);
    err("+1-15", r#"expected MM-DD or LMM-DD (leap month), got "+1-15""#);

    let b = birthday("L04-15");
    assert_eq!(serde_json::to_string(&b).unwrap(), r#""L04-15""#);
    assert_eq!(serde_json::from_str::<LunarBirthday>(r#""闰4-15""#).unwrap(), b);
    let e = serde_json::from_str::<LunarBirthday>(r#""13-01""#).unwrap_err().to_string();
    assert!(e.contains("lunar month must be 1–12, got 13"), "{e}");
}

proptest! {
    #[test]
    fn lunar_birthday_text_round_trips(month in 1u8..=12, leap: bool, day in 1u8..=30) {
        let b = LunarBirthday { month, leap, day };
        prop_assert_eq!(b.to_string().parse::<LunarBirthday>(), Ok(b));
    }
}

#[test]
fn chinese_names() {
    let check = |month, leap, day, expected: &str| {
        let l = LunarDate { year: 2027, month, leap, day };
        assert_eq!(l.month_day_chinese(), expected);
        assert_eq!(l.to_chinese(), format!("农历{expected}"));
    };
    check(8, false, 15, "八月十五");
    check(4, true, 1, "闰四月初一");
    check(1, false, 1, "正月初一");
    check(11, false, 29, "冬月廿九");
    check(12, false, 30, "腊月三十");
    check(3, false, 10, "三月初十");
    check(6, false, 11, "六月十一");
    check(9, false, 19, "九月十九");
    check(10, false, 20, "十月二十");
    check(2, false, 21, "二月廿一");
    check(7, false, 5, "七月初五");
}

#[test]
fn zodiac_and_ganzhi() {
    let check = |year, gz: &str, animal, zh: &str| {
        assert_eq!(ganzhi(year), gz, "{year}");
        assert_eq!(zodiac(year), animal, "{year}");
        assert_eq!(zodiac(year).zh(), zh);
    };
    check(2026, "丙午", Zodiac::Horse, "马");
    check(2027, "丁未", Zodiac::Goat, "羊");
    check(1984, "甲子", Zodiac::Rat, "鼠");
    check(2020, "庚子", Zodiac::Rat, "鼠");
    check(1900, "庚子", Zodiac::Rat, "鼠");
    check(2000, "庚辰", Zodiac::Dragon, "龙");
    // The cycle: 60 distinct names, repeating.
    let names: std::collections::BTreeSet<String> = (1984..2044).map(ganzhi).collect();
    assert_eq!(names.len(), 60);
    assert_eq!(ganzhi(1924), ganzhi(1984));
    assert_eq!(Zodiac::Horse.name("zh-CN"), "马");
    assert_eq!(Zodiac::Horse.name("ZH"), "马");
    assert_eq!(Zodiac::Horse.name("en-US"), "Horse");
    assert_eq!(Zodiac::Goat.en(), "Goat");

    // The year turns at Spring Festival, which the reference puts on 2027-02-06.
    let new_year = ref_date(&reference(), 2027, 1, false, 1);
    assert_eq!(new_year, date(2027, 2, 6));
    assert_eq!(zodiac(to_lunar(new_year.yesterday().unwrap()).unwrap().year), Zodiac::Horse);
    assert_eq!(zodiac(to_lunar(new_year).unwrap().year), Zodiac::Goat);
    assert_eq!(zodiac(to_lunar(date(2027, 1, 15)).unwrap().year), Zodiac::Horse);
}
