//! The calendars greetings are timed by: the Chinese lunisolar calendar (lunar birthdays, zodiac,
//! Chinese date names).
//!
//! Pure functions: no I/O, no clock. Conversion to and from the Chinese calendar is a table lookup
//! (the table is derived from icu_calendar once, on first use), cheap enough to run per member per
//! day in the evaluator.
//!
//! - `lunar`: Gregorian ⇄ Chinese dates, leap months, lunar birthdays and their fallbacks.

pub mod lunar;

pub use lunar::{
    LunarBirthday, LunarDate, Zodiac, from_lunar, ganzhi, leap_month, lunar_birthday_in, month_days, to_lunar, zodiac,
};

#[cfg(test)]
mod tests;
