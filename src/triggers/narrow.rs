//! Which members may have an occurrence of a rule in a window, as indexed columns can select
//! them: a superset of what [`super::evaluate`] finds, never a member fewer. The triggers stay the
//! authority on what fires; this only keeps the evaluator from reading every member each tick.
//!
//! Pure: the rule and the instants in, the candidate sources out. A rule that cannot be narrowed
//! (holidays and festivals go to everyone, churn risk, a date in a free attribute) or a window too
//! long to narrow usefully gives `None`: read every member.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::calendar::{self, LunarBirthday};
use super::{Rule, Trigger};

/// The member date column a month-day source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DateColumn {
    BirthDate,
    MemberSince,
}

/// One indexed selection of members (erased members are never selected).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Members whose date in `column` falls on this month and day (`MM-DD`), any year.
    MonthDay { column: DateColumn, md: String },
    /// Members whose lunar birthday is registered as exactly this (`MM-DD` or `LMM-DD`).
    LunarBirthday(String),
    /// Members whose last activity (their creation when they have none) is in `(from, to]`,
    /// epoch milliseconds.
    ActivityBetween { from: i64, to: i64 },
    /// Members whose change counter is above this.
    ChangedAfter(i64),
}

impl Source {
    /// The ordered key the store pages by for range sources (with the member id as tie-break);
    /// `None` for equality sources, paged by id alone.
    pub fn range_key(&self, member: &crate::members::Member) -> Option<i64> {
        match self {
            Source::ActivityBetween { .. } => Some(member.active_at().as_millisecond()),
            Source::ChangedAfter(_) => Some(member.change_seq),
            Source::MonthDay { .. } | Source::LunarBirthday(_) => None,
        }
    }

    /// Whether `member` is selected by this source: what the store's SQL selects, in Rust (for
    /// tests that hold the two to each other).
    pub fn matches(&self, member: &crate::members::Member) -> bool {
        let md = |d: Option<Date>| d.map(|d| format!("{:02}-{:02}", d.month(), d.day()));
        match self {
            Source::MonthDay { column: DateColumn::BirthDate, md: want } => {
                md(member.birth_date).as_ref() == Some(want)
            }
            Source::MonthDay { column: DateColumn::MemberSince, md: want } => {
                md(member.member_since).as_ref() == Some(want)
            }
            Source::LunarBirthday(want) => member.lunar_birthday.map(|b| b.to_string()).as_ref() == Some(want),
            Source::ActivityBetween { from, to } => {
                let key = member.active_at().as_millisecond();
                *from < key && key <= *to
            }
            Source::ChangedAfter(seq) => member.change_seq > *seq,
        }
    }

    /// The first cursor `(key, id)`: strictly after it is the first candidate.
    pub fn start(&self) -> (i64, i64) {
        match self {
            Source::ActivityBetween { from, .. } => (*from, i64::MAX),
            Source::ChangedAfter(seq) => (*seq, i64::MAX),
            Source::MonthDay { .. } | Source::LunarBirthday(_) => (0, 0),
        }
    }
}

/// More distinct days than this and the rule is read by a full scan (a long catch-up).
const MAX_DAYS: usize = 62;

/// Every real zone's UTC offset is within this, with room to spare (the triggers themselves also
/// look one day either side of the window).
const ZONE_MARGIN: SignedDuration = SignedDuration::from_hours(26);

/// The candidates for `rule` with occurrences due in `(from, to]` in any member's zone, or `None`
/// when the rule needs every member. `from` is the earliest instant the triggers look back to for
/// these members (a changed member's window reaches back `max_lateness`); `changed` says the
/// members are evaluated as changed (an inactivity crossing then fires however long ago it was).
pub fn sources(rule: &Rule, from: Timestamp, to: Timestamp, changed: bool) -> Option<Vec<Source>> {
    match &rule.trigger {
        Trigger::Birthday { .. } => month_days(rule, from, to, DateColumn::BirthDate),
        Trigger::Anniversary { .. } => month_days(rule, from, to, DateColumn::MemberSince),
        Trigger::Date { attribute, .. } => match attribute.as_str() {
            "birth_date" => month_days(rule, from, to, DateColumn::BirthDate),
            "member_since" => month_days(rule, from, to, DateColumn::MemberSince),
            _ => None,
        },
        Trigger::LunarBirthday => {
            let days = days(rule, from, to)?;
            let mut out = BTreeSet::new();
            for day in days {
                let lunar = calendar::to_lunar(day)?;
                for b in all_lunar_birthdays() {
                    if calendar::lunar_birthday_in(lunar.year, b) == Some(day) {
                        out.insert(Source::LunarBirthday(b.to_string()));
                    }
                }
            }
            Some(out.into_iter().collect())
        }
        Trigger::Inactivity { days } => {
            let span = SignedDuration::from_hours(24 * i64::from(*days));
            let hi = to.checked_sub(span).ok()?.as_millisecond();
            // The send slot is the first member-local send time at or after the crossing: within
            // a day (two with a DST change and a skipped local time, to be safe) after it.
            let lo = if changed {
                i64::MIN
            } else {
                from.checked_sub(span).ok()?.checked_sub(SignedDuration::from_hours(48)).ok()?.as_millisecond()
            };
            Some(vec![Source::ActivityBetween { from: lo, to: hi }])
        }
        Trigger::Holiday { .. } | Trigger::Festival { .. } | Trigger::ChurnRisk { .. } | Trigger::Event { .. } => None,
    }
}

/// The occurrence days (send day minus the rule's offset) any zone's member-local send days can
/// hold for a send instant in `(from, to]`; `None` when there are too many to narrow by.
fn days(rule: &Rule, from: Timestamp, to: Timestamp) -> Option<Vec<Date>> {
    if to <= from {
        return Some(Vec::new());
    }
    let utc = |t: Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
    let first = utc(from.checked_sub(ZONE_MARGIN).ok()?).checked_sub(1.day()).ok()?;
    let last = utc(to.checked_add(ZONE_MARGIN).ok()?).checked_add(1.day()).ok()?;
    if (last - first).get_days() as usize > MAX_DAYS {
        return None;
    }
    let mut out = Vec::new();
    let mut send_day = first;
    while send_day <= last {
        out.push(send_day.checked_sub(rule.offset_days.days()).ok()?);
        send_day = send_day.tomorrow().ok()?;
    }
    Some(out)
}

fn month_days(rule: &Rule, from: Timestamp, to: Timestamp, column: DateColumn) -> Option<Vec<Source>> {
    let mut mds: BTreeSet<(i8, i8)> = days(rule, from, to)?.iter().map(|d| (d.month(), d.day())).collect();
    // Feb 29 falls on Feb 28 or Mar 1 in a common year (`dates::anniversary_in`).
    if mds.contains(&(2, 28)) || mds.contains(&(3, 1)) {
        mds.insert((2, 29));
    }
    Some(mds.into_iter().map(|(m, d)| Source::MonthDay { column, md: format!("{m:02}-{d:02}") }).collect())
}

/// Every lunar birthday a member can register (as `LunarBirthday` parses them).
fn all_lunar_birthdays() -> impl Iterator<Item = LunarBirthday> {
    (1..=12u8).flat_map(|month| {
        [false, true].into_iter().flat_map(move |leap| (1..=30u8).map(move |day| LunarBirthday { month, leap, day }))
    })
}

#[cfg(test)]
mod tests;
