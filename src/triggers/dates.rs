//! Calendar arithmetic for yearly occurrences, including what a Feb 29 date becomes in a common year.

use jiff::civil::Date;

/// Where a Feb 29 birthday or anniversary falls in a common year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Feb29 {
    /// The last day of February, Feb 28 (the default).
    #[default]
    Feb28,
    /// The day after Feb 28, Mar 1.
    Mar1,
}

/// The yearly recurrence of `date` in `year`, or `None` when `year` is outside jiff's range.
pub fn anniversary_in(date: Date, year: i16, feb29: Feb29) -> Option<Date> {
    match Date::new(year, date.month(), date.day()) {
        Ok(d) => Some(d),
        // Only Feb 29 fails to exist in another year.
        Err(_) => match feb29 {
            Feb29::Feb28 => Date::new(year, 2, 28).ok(),
            Feb29::Mar1 => Date::new(year, 3, 1).ok(),
        },
    }
}
