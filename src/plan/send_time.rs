//! Member-local send times: a civil day and time of day in a zone, made an instant, with DST
//! handled explicitly. A time that falls in a gap (spring forward) is sent at the first valid
//! instant after it, the end of the gap; a time that occurs twice (fall back) is sent at the first.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// The instant at which `day` `time` happens in `tz`.
pub fn local_instant(day: Date, time: Time, tz: &TimeZone) -> Timestamp {
    let dt = day.to_datetime(time);
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset.to_timestamp(dt).expect("civil times in use are in range")
        }
        AmbiguousOffset::Gap { before, .. } => {
            // Read with the offset before the gap, the civil time lands after the transition;
            // the transition itself is the first valid instant at or after the wanted time.
            // `preceding` is strictly before its argument, and a time at the very start of the
            // gap lands exactly on the transition: look from just after it.
            let late = before.to_timestamp(dt).expect("civil times in use are in range");
            let just_after = late.checked_add(jiff::SignedDuration::from_nanos(1)).unwrap_or(late);
            tz.preceding(just_after).next().map(|t| t.timestamp()).unwrap_or(late)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn check(zone: &str, day: Date, at: Time, expected: &str) {
        let tz = TimeZone::get(zone).unwrap();
        assert_eq!(local_instant(day, at, &tz).to_string(), expected, "{zone} {day} {at}");
    }

    #[test]
    fn ordinary_days_use_the_zone_offset() {
        check("Asia/Shanghai", date(2026, 11, 23), time(9, 30, 0, 0), "2026-11-23T01:30:00Z");
        check("America/New_York", date(2026, 7, 1), time(9, 30, 0, 0), "2026-07-01T13:30:00Z");
        check("Asia/Kolkata", date(2026, 1, 1), time(9, 0, 0, 0), "2026-01-01T03:30:00Z");
        check("Asia/Kathmandu", date(2026, 1, 1), time(9, 0, 0, 0), "2026-01-01T03:15:00Z");
    }

    #[test]
    fn a_time_in_the_spring_gap_goes_at_the_end_of_the_gap() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT in New York: 02:30 does not exist.
        check("America/New_York", date(2026, 3, 8), time(2, 30, 0, 0), "2026-03-08T07:00:00Z");
        // Europe: 2026-03-29 02:00 CET becomes 03:00 CEST.
        check("Europe/Berlin", date(2026, 3, 29), time(2, 15, 0, 0), "2026-03-29T01:00:00Z");
        // Exactly at the start of the gap.
        check("America/New_York", date(2026, 3, 8), time(2, 0, 0, 0), "2026-03-08T07:00:00Z");
        check("Europe/Berlin", date(2026, 3, 29), time(2, 0, 0, 0), "2026-03-29T01:00:00Z");
        check("Europe/London", date(2026, 3, 29), time(1, 0, 0, 0), "2026-03-29T01:00:00Z");
        // Santiago springs forward at midnight: 00:00 on 2026-09-06 does not exist.
        check("America/Santiago", date(2026, 9, 6), time(0, 0, 0, 0), "2026-09-06T04:00:00Z");
    }

    #[test]
    fn a_time_in_the_autumn_fold_goes_at_its_first_occurrence() {
        // 2026-11-01 01:30 happens twice in New York; the first is EDT (-04).
        check("America/New_York", date(2026, 11, 1), time(1, 30, 0, 0), "2026-11-01T05:30:00Z");
        check("Europe/London", date(2026, 10, 25), time(1, 30, 0, 0), "2026-10-25T00:30:00Z");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use jiff::civil::date;
    use jiff::{SignedDuration, ToSpan};
    use proptest::prelude::*;

    /// Zones whose rules are hard: half-hour DST (Lord Howe), midnight transitions (Santiago,
    /// Havana), negative DST (Dublin), a skipped day (Apia), Ramadan suspensions (Casablanca),
    /// quarter-hour offsets (Kathmandu, Chatham), and the ordinary ones.
    const ZONES: &[&str] = &[
        "America/New_York",
        "Europe/London",
        "Europe/Berlin",
        "Europe/Dublin",
        "Australia/Lord_Howe",
        "Australia/Sydney",
        "America/Santiago",
        "America/Havana",
        "America/St_Johns",
        "Africa/Casablanca",
        "Pacific/Apia",
        "Pacific/Chatham",
        "Asia/Kathmandu",
        "Asia/Shanghai",
        "Asia/Tehran",
        "UTC",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The send instant is the first instant whose local time is the wanted one, or, when
        /// that time does not exist that day, the first instant after it.
        #[test]
        fn the_send_instant_is_the_first_valid_instant_at_or_after_the_local_time(
            zone in 0..ZONES.len(),
            day in 0i32..(366 * 30),
            minute in 0i32..(24 * 60),
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let day = date(2005, 1, 1).checked_add(day.days()).unwrap();
            let time = Time::midnight().checked_add(SignedDuration::from_mins(i64::from(minute))).unwrap();
            let wanted = day.to_datetime(time);
            let t = local_instant(day, time, &tz);
            let local = |t: Timestamp| t.to_zoned_datetime(tz.clone()).datetime();
            let got = local(t);
            if got == wanted {
                // The first occurrence: no earlier instant (within a fold's reach) reads the same.
                for back in [15, 30, 60, 90, 120] {
                    prop_assert_ne!(local(t.checked_sub(SignedDuration::from_mins(back)).unwrap()), wanted);
                }
            } else {
                // A gap: later than wanted, and the instant just before was still before it.
                prop_assert!(got > wanted, "{} {wanted}: got {got}", ZONES[zone]);
                let before = local(t.checked_sub(SignedDuration::from_nanos(1)).unwrap());
                prop_assert!(before < wanted, "{} {wanted}: {t} is not the end of the gap ({before})", ZONES[zone]);
            }
        }
    }
}
