//! Festivals: what day each falls on ([`When`]), the built-in set with English and Chinese names,
//! and [`Calendar`], festivals indexed by date for the evaluator's per-day lookups.
//!
//! A [`When`] has a text form for configuration (`"lunar 08-15"`, `"2nd sunday of may"`) that
//! round-trips through `FromStr` and `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;

use jiff::civil::{Date, Weekday};

use super::lunar::{LunarDate, from_lunar};
use super::solar_terms::qingming;

/// The kind of festival, for grouping in the console and in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Lunar festivals.
    Chinese,
    SolarTerm,
    /// Fixed-date holidays.
    Fixed,
    /// Rule-based: the nth weekday of a month.
    Observance,
    Custom,
}

impl Group {
    pub const ALL: [Group; 5] = [Group::Chinese, Group::SolarTerm, Group::Fixed, Group::Observance, Group::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Chinese => "chinese",
            Group::SolarTerm => "solar_term",
            Group::Fixed => "fixed",
            Group::Observance => "observance",
            Group::Custom => "custom",
        }
    }
}

impl FromStr for Group {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Group::ALL.into_iter().find(|g| g.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            format!("unknown festival group {s:?}: expected chinese, solar_term, fixed, observance or custom")
        })
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which day a festival falls on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// The same Gregorian month and day every year (Feb 29 only in leap years).
    Fixed { month: i8, day: i8 },
    /// A day of an ordinary (non-leap) Chinese month. A day 30 does not occur in years where that
    /// month has 29 days (use [`When::LunarNewYearsEve`] for the last day of the 12th month).
    Lunar { month: u8, day: u8 },
    /// The last day of the Chinese year (除夕), the 29th or 30th of the 12th month.
    LunarNewYearsEve,
    /// The Qingming solar term (the Sun at 15°), by its date in China.
    Qingming,
    /// The `nth` (1..=5, or -1 for the last) `weekday` of `month`; none in a month without a 5th.
    NthWeekday { month: i8, weekday: Weekday, nth: i8 },
    /// Operator-maintained explicit dates (China's yearly adjusted holidays, one-off events).
    Dates(Vec<Date>),
}

impl When {
    /// Every date of this festival that falls in Gregorian `year`, in order. Lunar festivals of the
    /// 12th month can occur 0, 1 or 2 times in a Gregorian year, so both Chinese years that overlap
    /// it are asked. Empty outside the supported ranges.
    pub fn dates_in(&self, year: i16) -> Vec<Date> {
        let y = i32::from(year);
        let mut dates: Vec<Date> = match self {
            When::Fixed { month, day } => Date::new(year, *month, *day).ok().into_iter().collect(),
            When::Lunar { month, day } => [y - 1, y]
                .into_iter()
                .filter_map(|cy| from_lunar(LunarDate { year: cy, month: *month, leap: false, day: *day }))
                .collect(),
            // The day before the next Spring Festival: right even in a year with a leap 12th month.
            When::LunarNewYearsEve => [y, y + 1]
                .into_iter()
                .filter_map(|cy| from_lunar(LunarDate { year: cy, month: 1, leap: false, day: 1 })?.yesterday().ok())
                .collect(),
            When::Qingming => qingming(year).into_iter().collect(),
            When::NthWeekday { month, weekday, nth } => Date::new(year, *month, 1)
                .and_then(|first| first.nth_weekday_of_month(*nth, *weekday))
                .ok()
                .into_iter()
                .collect(),
            When::Dates(dates) => dates.clone(),
        };
        dates.retain(|d| d.year() == year);
        dates.sort();
        dates.dedup();
        dates
    }
}

const FORMS: &str =
    r#"expected MM-DD, "lunar MM-DD", "lunar 12-last", "qingming", "2nd sunday of may" or "YYYY-MM-DD, YYYY-MM-DD""#;

impl FromStr for When {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let lower = s.to_ascii_lowercase();
        if lower == "qingming" {
            return Ok(When::Qingming);
        }
        if let Some(rest) = lower.strip_prefix("lunar ") {
            return parse_lunar(rest.trim());
        }
        // A list of ISO dates: its first item starts with a four-digit year.
        if s.split(['-', ',']).next().is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())) {
            let dates = s
                .split(',')
                .map(|d| d.trim().parse::<Date>().map_err(|e| format!("invalid date {:?} in date list: {e}", d.trim())))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(When::Dates(dates));
        }
        if let Some((m, d)) = month_day(s) {
            if !(1..=12).contains(&m) {
                return Err(format!("month must be 1–12, got {m}"));
            }
            // A leap year, so that Feb 29 is accepted.
            if Date::new(2024, m as i8, d as i8).is_err() {
                return Err(format!("no day {d} in month {m}"));
            }
            return Ok(When::Fixed { month: m as i8, day: d as i8 });
        }
        if lower.split_whitespace().count() == 4 {
            return parse_nth_weekday(&lower);
        }
        Err(format!("unknown festival date {s:?}: {FORMS}"))
    }
}

/// `MM-DD` as two numbers of one or two digits.
fn month_day(s: &str) -> Option<(u8, u8)> {
    let (m, d) = s.split_once('-')?;
    let number = |p: &str| {
        ((1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u8>().ok()).flatten()
    };
    Some((number(m)?, number(d)?))
}

fn parse_lunar(rest: &str) -> Result<When, String> {
    if let Some(month) = rest.strip_suffix("-last") {
        return match month.parse::<u8>() {
            Ok(12) => Ok(When::LunarNewYearsEve),
            _ => Err(format!(r#"only the 12th month's last day has a form ("lunar 12-last"), got "lunar {rest}""#)),
        };
    }
    let (month, day) = month_day(rest).ok_or_else(|| format!(r#"expected "lunar MM-DD", got "lunar {rest}""#))?;
    if !(1..=12).contains(&month) {
        return Err(format!("lunar month must be 1–12, got {month}"));
    }
    if !(1..=30).contains(&day) {
        return Err(format!("lunar day must be 1–30, got {day}"));
    }
    Ok(When::Lunar { month, day })
}

const ORDINALS: [&str; 5] = ["1st", "2nd", "3rd", "4th", "5th"];
const ORDINAL_WORDS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];
const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];
const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `"2nd sunday of may"`, `"last monday of may"` (already lower case).
fn parse_nth_weekday(s: &str) -> Result<When, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let [nth, weekday, of, month] = words[..] else {
        return Err(format!(r#"expected "<nth> <weekday> of <month>", got {s:?}"#));
    };
    if of != "of" {
        return Err(format!(r#"expected "<nth> <weekday> of <month>", got {s:?}"#));
    }
    let nth = match nth {
        "last" => -1,
        _ => match ORDINALS.iter().chain(&ORDINAL_WORDS).position(|o| *o == nth) {
            Some(i) => (i % 5) as i8 + 1,
            None => return Err(format!("nth must be 1st–5th or last, got {nth:?}")),
        },
    };
    // Full names, or their first three letters.
    let named = |name: &str, word: &str| word == name || (word.len() == 3 && name.starts_with(word));
    let weekday = WEEKDAYS
        .iter()
        .find(|(name, _)| named(name, weekday))
        .map(|(_, w)| *w)
        .ok_or_else(|| format!("unknown weekday {weekday:?}"))?;
    let month =
        MONTH_NAMES.iter().position(|name| named(name, month)).ok_or_else(|| format!("unknown month {month:?}"))?;
    Ok(When::NthWeekday { month: month as i8 + 1, weekday, nth })
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Fixed { month, day } => write!(f, "{month:02}-{day:02}"),
            When::Lunar { month, day } => write!(f, "lunar {month:02}-{day:02}"),
            When::LunarNewYearsEve => f.write_str("lunar 12-last"),
            When::Qingming => f.write_str("qingming"),
            When::NthWeekday { month, weekday, nth } => {
                let nth = match nth {
                    -1 => "last",
                    n => ORDINALS.get((*n as usize).wrapping_sub(1)).copied().unwrap_or("?"),
                };
                let weekday = WEEKDAYS.iter().find(|(_, w)| w == weekday).map_or("?", |(name, _)| name);
                let month = MONTH_NAMES.get((*month as usize).wrapping_sub(1)).copied().unwrap_or("?");
                write!(f, "{nth} {weekday} of {month}")
            }
            When::Dates(dates) => {
                for (i, d) in dates.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A festival: its id, display names by locale, group and date rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Festival {
    pub id: String,
    /// Locale → name: "en", "zh-CN".
    pub names: BTreeMap<String, String>,
    pub group: Group,
    pub when: When,
}

impl Festival {
    /// The display name for `locale`: exact locale, then same language, then English, then any,
    /// then the id.
    pub fn name(&self, locale: &str) -> String {
        localized(&self.names, locale).map_or_else(|| self.id.clone(), Clone::clone)
    }
}

/// The name for `locale` among names by locale: exact locale, then same language, then English,
/// then any.
pub fn localized<'a>(names: &'a BTreeMap<String, String>, locale: &str) -> Option<&'a String> {
    let lang = |l: &str| l.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    names
        .iter()
        .find(|(l, _)| l.eq_ignore_ascii_case(locale))
        .or_else(|| names.iter().find(|(l, _)| lang(l) == lang(locale)))
        .or_else(|| names.iter().find(|(l, _)| lang(l) == "en"))
        .or_else(|| names.iter().next())
        .map(|(_, n)| n)
}

/// The built-in festivals, with English and Chinese (zh-CN) names.
///
/// 小年 is the northern custom, 腊月廿三; southern regions keep 廿四 and can add that as a custom
/// holiday (`"lunar 12-24"`).
pub fn builtin() -> Vec<Festival> {
    use Group::*;
    let lunar = |month, day| When::Lunar { month, day };
    let fixed = |month, day| When::Fixed { month, day };
    let nth = |nth, weekday, month| When::NthWeekday { month, weekday, nth };
    [
        ("spring_festival", "Spring Festival", "春节", Chinese, lunar(1, 1)),
        ("lantern", "Lantern Festival", "元宵节", Chinese, lunar(1, 15)),
        ("dragon_boat", "Dragon Boat Festival", "端午节", Chinese, lunar(5, 5)),
        ("qixi", "Qixi Festival", "七夕", Chinese, lunar(7, 7)),
        ("mid_autumn", "Mid-Autumn Festival", "中秋节", Chinese, lunar(8, 15)),
        ("double_ninth", "Double Ninth Festival", "重阳节", Chinese, lunar(9, 9)),
        ("laba", "Laba Festival", "腊八节", Chinese, lunar(12, 8)),
        ("little_new_year", "Little New Year", "小年", Chinese, lunar(12, 23)),
        ("new_years_eve", "Chinese New Year's Eve", "除夕", Chinese, When::LunarNewYearsEve),
        ("qingming", "Qingming Festival", "清明节", SolarTerm, When::Qingming),
        ("new_year", "New Year's Day", "元旦", Fixed, fixed(1, 1)),
        ("valentines", "Valentine's Day", "情人节", Fixed, fixed(2, 14)),
        ("womens_day", "International Women's Day", "妇女节", Fixed, fixed(3, 8)),
        ("labour_day", "Labour Day", "劳动节", Fixed, fixed(5, 1)),
        ("national_day", "National Day", "国庆节", Fixed, fixed(10, 1)),
        ("christmas", "Christmas Day", "圣诞节", Fixed, fixed(12, 25)),
        ("mothers_day", "Mother's Day", "母亲节", Observance, nth(2, Weekday::Sunday, 5)),
        ("fathers_day", "Father's Day", "父亲节", Observance, nth(3, Weekday::Sunday, 6)),
        ("thanksgiving", "Thanksgiving", "感恩节", Observance, nth(4, Weekday::Thursday, 11)),
    ]
    .into_iter()
    .map(|(id, en, zh, group, when)| Festival {
        id: id.to_string(),
        names: BTreeMap::from([("en".to_string(), en.to_string()), ("zh-CN".to_string(), zh.to_string())]),
        group,
        when,
    })
    .collect()
}

/// Festivals indexed by date for fast lookup (built once at configuration load). Cheap to clone;
/// two calendars are equal when their festivals are.
#[derive(Debug, Clone)]
pub struct Calendar {
    inner: Arc<Indexed>,
}

#[derive(Debug)]
struct Indexed {
    festivals: Vec<Festival>,
    years: RangeInclusive<i16>,
    /// Date → indexes into `festivals`, in festival order.
    by_date: BTreeMap<Date, Vec<usize>>,
}

impl Calendar {
    /// Indexes `festivals` over the Gregorian `years`.
    pub fn new(festivals: Vec<Festival>, years: RangeInclusive<i16>) -> Calendar {
        let mut by_date: BTreeMap<Date, Vec<usize>> = BTreeMap::new();
        for year in years.clone() {
            for (i, f) in festivals.iter().enumerate() {
                for date in f.when.dates_in(year) {
                    by_date.entry(date).or_default().push(i);
                }
            }
        }
        Calendar { inner: Arc::new(Indexed { festivals, years, by_date }) }
    }

    pub fn festivals(&self) -> &[Festival] {
        &self.inner.festivals
    }

    /// The Gregorian years the date index covers.
    pub fn years(&self) -> RangeInclusive<i16> {
        self.inner.years.clone()
    }

    /// The festivals falling on `date` (empty outside the indexed years).
    pub fn on(&self, date: Date) -> impl Iterator<Item = &Festival> {
        self.inner.by_date.get(&date).into_iter().flatten().map(|&i| &self.inner.festivals[i])
    }

    /// A Gregorian year's festivals in date order (computed on demand, any supported year).
    pub fn year(&self, year: i16) -> Vec<(Date, &Festival)> {
        let mut out: Vec<(Date, &Festival)> =
            self.inner.festivals.iter().flat_map(|f| f.when.dates_in(year).into_iter().map(move |d| (d, f))).collect();
        // Stable: festivals on the same day keep their configured order.
        out.sort_by_key(|(d, _)| *d);
        out
    }
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.inner.festivals == other.inner.festivals
    }
}
