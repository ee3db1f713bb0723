//! The Chinese lunisolar calendar: conversion both ways, leap months, month lengths, lunar
//! birthdays and their fallback rules, Chinese month/day names, zodiac animals and stem-branch
//! year names.
//!
//! The calendar itself comes from icu_calendar's `ChineseTraditional` (agreeing with the Hong Kong
//! Observatory tables through 2100). Asking icu per date is too slow for the evaluator, which
//! converts per member per day, so the month starts of Chinese years [`YEARS`] are derived from icu
//! once, on first use, and conversion is a binary search over them: no allocation, no icu call.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::OnceLock;

use icu_calendar::cal::ChineseTraditional;
use icu_calendar::types::{LeapStatus, Month};
use jiff::civil::Date;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The Chinese years (by related ISO year) that conversion supports. icu computes years after
/// 2100 by a simplified rule, so only 2101 (which ends in early 2102) is outside the HKO range.
pub const YEARS: RangeInclusive<i32> = 1899..=2101;

/// A date in the Chinese calendar. `year` is the Gregorian year in which that Chinese year begins
/// (the related ISO year): 2027 for the year starting at Spring Festival 2027-02-06.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LunarDate {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    pub leap: bool,
    /// 1..=30
    pub day: u8,
}

/// The Chinese date of `date`, or `None` outside the supported range ([`YEARS`]).
pub fn to_lunar(date: Date) -> Option<LunarDate> {
    let t = table();
    let d = epoch_day(date);
    if d < *t.starts.first()? || d >= *t.starts.last()? {
        return None;
    }
    // The last month starting on or before `d`; `starts` ends with a sentinel so it is a month.
    let i = t.starts.partition_point(|&s| s <= d) - 1;
    let m = t.months[i];
    Some(LunarDate { year: i32::from(m.year), month: m.number, leap: m.leap, day: (d - t.starts[i] + 1) as u8 })
}

/// The Gregorian date of a Chinese date, or `None` if that date does not exist (no such leap
/// month that year, day 30 of a 29-day month, out of range).
pub fn from_lunar(l: LunarDate) -> Option<Date> {
    let t = table();
    let i = t.month_index(l.year, l.month, l.leap)?;
    if l.day == 0 || i32::from(l.day) > t.starts[i + 1] - t.starts[i] {
        return None;
    }
    Some(civil_from_days(t.starts[i] + i32::from(l.day) - 1))
}

/// The leap month of Chinese year `year`, if it has one (`None` too outside [`YEARS`]).
pub fn leap_month(year: i32) -> Option<u8> {
    let t = table();
    match t.leap.get(t.year_slot(year)?) {
        Some(&m) if m > 0 => Some(m),
        _ => None,
    }
}

/// The length of a Chinese month, 29 or 30, or `None` if that month does not exist.
pub fn month_days(year: i32, month: u8, leap: bool) -> Option<u8> {
    let t = table();
    let i = t.month_index(year, month, leap)?;
    Some((t.starts[i + 1] - t.starts[i]) as u8)
}

/// A member's lunar birthday as registered: month, leap flag, day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LunarBirthday {
    pub month: u8,
    pub leap: bool,
    pub day: u8,
}

/// The Gregorian date of the birthday in Chinese year `year`, with the fallback rules: a leap-month
/// birthday falls on the ordinary month of the same number in years without that leap month; day
/// 30 falls on day 29 (the month's last day) in a 29-day month. A non-leap birthday is always the
/// ordinary month (never the leap month). `None` outside [`YEARS`] or for an invalid birthday.
pub fn lunar_birthday_in(year: i32, b: LunarBirthday) -> Option<Date> {
    if !(1..=12).contains(&b.month) || !(1..=30).contains(&b.day) {
        return None;
    }
    let leap = b.leap && leap_month(year) == Some(b.month);
    let day = b.day.min(month_days(year, b.month, leap)?);
    from_lunar(LunarDate { year, month: b.month, leap, day })
}

impl FromStr for LunarBirthday {
    type Err = String;

    /// `08-15`, `8-15`; leap month: `L04-15`, `l4-15`, `闰04-15`.
    fn from_str(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let (leap, rest) = match s.strip_prefix(['L', 'l']).or_else(|| s.strip_prefix('闰')) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let bad = || format!("expected MM-DD or LMM-DD (leap month), got {s:?}");
        let number = |p: &str| {
            let digits = (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| p.parse::<u8>().ok()).flatten()
        };
        let (month, day) = rest.split_once('-').ok_or_else(bad)?;
        let (month, day) = (number(month).ok_or_else(bad)?, number(day).ok_or_else(bad)?);
        if !(1..=12).contains(&month) {
            return Err(format!("lunar month must be 1–12, got {month}"));
        }
        if !(1..=30).contains(&day) {
            return Err(format!("lunar day must be 1–30, got {day}"));
        }
        Ok(LunarBirthday { month, leap, day })
    }
}

impl fmt::Display for LunarBirthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leap = if self.leap { "L" } else { "" };
        write!(f, "{leap}{:02}-{:02}", self.month, self.day)
    }
}

impl Serialize for LunarBirthday {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LunarBirthday {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Indexed by value; 0 is never shown alone.
const DIGITS: [&str; 10] = ["〇", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
const MONTHS: [&str; 12] = ["正", "二", "三", "四", "五", "六", "七", "八", "九", "十", "冬", "腊"];

impl LunarDate {
    /// Chinese, e.g. "农历八月十五", "农历闰四月初一", "农历正月初一", "农历冬月廿九", "农历腊月三十".
    pub fn to_chinese(&self) -> String {
        format!("农历{}", self.month_day_chinese())
    }

    /// Without the 农历 prefix: "八月十五".
    pub fn month_day_chinese(&self) -> String {
        let leap = if self.leap { "闰" } else { "" };
        let month = MONTHS.get(usize::from(self.month).wrapping_sub(1)).copied().unwrap_or("?");
        let ones = DIGITS[usize::from(self.day % 10)];
        let day = match self.day {
            1..=9 => format!("初{ones}"),
            10 => "初十".to_string(),
            11..=19 => format!("十{ones}"),
            20 => "二十".to_string(),
            21..=29 => format!("廿{ones}"),
            30 => "三十".to_string(),
            _ => "?".to_string(),
        };
        format!("{leap}{month}月{day}")
    }
}

/// The zodiac animal of a Chinese year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zodiac {
    Rat,
    Ox,
    Tiger,
    Rabbit,
    Dragon,
    Snake,
    Horse,
    Goat,
    Monkey,
    Rooster,
    Dog,
    Pig,
}

const ANIMALS: [Zodiac; 12] = [
    Zodiac::Rat,
    Zodiac::Ox,
    Zodiac::Tiger,
    Zodiac::Rabbit,
    Zodiac::Dragon,
    Zodiac::Snake,
    Zodiac::Horse,
    Zodiac::Goat,
    Zodiac::Monkey,
    Zodiac::Rooster,
    Zodiac::Dog,
    Zodiac::Pig,
];

/// The zodiac animal of Chinese year `year` (2026 → Horse, 2027 → Goat). The year begins at Spring
/// Festival, so for a Gregorian date use `to_lunar(date).year`: 2027-01-15 is still the Horse.
pub fn zodiac(year: i32) -> Zodiac {
    // 4 CE was a Rat year (甲子), the start of a cycle.
    ANIMALS[(year - 4).rem_euclid(12) as usize]
}

impl Zodiac {
    pub fn zh(self) -> &'static str {
        ["鼠", "牛", "虎", "兔", "龙", "蛇", "马", "羊", "猴", "鸡", "狗", "猪"][self as usize]
    }

    pub fn en(self) -> &'static str {
        ["Rat", "Ox", "Tiger", "Rabbit", "Dragon", "Snake", "Horse", "Goat", "Monkey", "Rooster", "Dog", "Pig"]
            [self as usize]
    }

    /// The Chinese name for a `zh*` locale, else the English one.
    pub fn name(self, locale: &str) -> &'static str {
        if locale.get(..2).is_some_and(|l| l.eq_ignore_ascii_case("zh")) { self.zh() } else { self.en() }
    }
}

/// The sexagenary (stem-branch) name of Chinese year `year`: 2026 → "丙午".
pub fn ganzhi(year: i32) -> String {
    const STEMS: [&str; 10] = ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"];
    const BRANCHES: [&str; 12] = ["子", "丑", "寅", "卯", "辰", "巳", "午", "未", "申", "酉", "戌", "亥"];
    let n = year - 4;
    format!("{}{}", STEMS[n.rem_euclid(10) as usize], BRANCHES[n.rem_euclid(12) as usize])
}

/// One Chinese month, as the table stores it.
#[derive(Debug, Clone, Copy)]
struct MonthId {
    year: i16,
    number: u8,
    leap: bool,
}

/// The month starts of Chinese years [`YEARS`], derived from icu once.
#[derive(Debug)]
struct Table {
    /// Days since 1970-01-01 of the first day of each month, in order, then of the day after the
    /// last month: month `i` is `starts[i]..starts[i + 1]`.
    starts: Vec<i32>,
    months: Vec<MonthId>,
    /// Index in `months` of each year's first month (from `YEARS.start()`), then `months.len()`.
    year_start: Vec<u16>,
    /// Each year's leap month, 0 for none.
    leap: Vec<u8>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

fn build() -> Table {
    use icu_calendar::Date as IcuDate;
    let cal = ChineseTraditional::new();
    let new_year = |year: i32| {
        IcuDate::try_new_chinese_traditional(year, Month::new(1), 1)
            .expect("icu has every Chinese year in range")
            .to_rata_die()
    };
    let epoch = IcuDate::try_new_iso(1970, 1, 1).expect("1970-01-01 is a date").to_rata_die();
    let to_epoch_day = |rd: icu_calendar::types::RataDie| (rd - epoch) as i32;

    let (mut rd, end) = (new_year(*YEARS.start()), new_year(YEARS.end() + 1));
    let mut t = Table { starts: Vec::new(), months: Vec::new(), year_start: Vec::new(), leap: Vec::new() };
    while rd < end {
        let date = IcuDate::from_rata_die(rd, cal);
        let year = date.cyclic_year().related_iso;
        let month = date.month();
        let leap = month.leap_status() == LeapStatus::Leap;
        if month.number() == 1 && !leap {
            debug_assert_eq!(year - YEARS.start(), t.year_start.len() as i32);
            t.year_start.push(t.months.len() as u16);
            t.leap.push(0);
        }
        if leap {
            *t.leap.last_mut().expect("a leap month follows the year's first month") = month.number();
        }
        t.starts.push(to_epoch_day(rd));
        t.months.push(MonthId { year: year as i16, number: month.number(), leap });
        rd += i64::from(date.days_in_month());
    }
    t.starts.push(to_epoch_day(end));
    t.year_start.push(t.months.len() as u16);
    t
}

impl Table {
    fn year_slot(&self, year: i32) -> Option<usize> {
        YEARS.contains(&year).then(|| (year - YEARS.start()) as usize)
    }

    /// The index in `months` of that month, if it exists.
    fn month_index(&self, year: i32, month: u8, leap: bool) -> Option<usize> {
        let slot = self.year_slot(year)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        let leap_month = self.leap[slot];
        if leap && leap_month != month {
            return None;
        }
        // Months after the leap month (and the leap month itself) are one further on.
        let after_leap = leap_month != 0 && (month > leap_month || leap);
        Some(usize::from(self.year_start[slot]) + usize::from(month - 1) + usize::from(after_leap))
    }
}

/// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's `days_from_civil`).
pub(crate) fn epoch_day(date: Date) -> i32 {
    let (m, d) = (i32::from(date.month()), i32::from(date.day()));
    let y = i32::from(date.year()) - i32::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`epoch_day`] (H. Hinnant's `civil_from_days`), for days within jiff's range.
pub(crate) fn civil_from_days(days: i32) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i32::from(m <= 2);
    Date::constant(y as i16, m as i8, d as i8)
}
