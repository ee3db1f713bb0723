//! The calendars greetings are timed by: the Chinese lunisolar calendar (lunar birthdays, zodiac,
//! Chinese date names), the solar terms (Qingming), and festivals with a by-date index.
//!
//! Pure functions: no I/O, no clock. Conversion to and from the Chinese calendar is a table lookup
//! (the table is derived from icu_calendar once, on first use), cheap enough to run per member per
//! day in the evaluator.
//!
//! - `lunar`: Gregorian ⇄ Chinese dates, leap months, lunar birthdays and their fallbacks.
//! - `solar_terms`: the Sun's apparent longitude (VSOP87, `vsop87`) and the solar-term dates.
//! - `festivals`: festival date rules, the built-in festivals, [`Calendar`].

pub mod festivals;
pub mod lunar;
pub mod solar_terms;
mod vsop87;

pub use festivals::{Calendar, Festival, Group, When, builtin};
pub use lunar::{
    LunarBirthday, LunarDate, Zodiac, from_lunar, ganzhi, leap_month, lunar_birthday_in, month_days, to_lunar, zodiac,
};
pub use solar_terms::{qingming, solar_term_date, solar_term_instant};

#[cfg(test)]
mod tests;
