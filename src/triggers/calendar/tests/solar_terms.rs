//! Qingming against the reference every year; the solar longitude against Meeus.

use jiff::civil::Date;

use super::{QINGMING_CSV, data_rows};
use crate::triggers::calendar::solar_terms::{apparent_solar_longitude, delta_t};
use crate::triggers::calendar::*;

#[test]
fn qingming_matches_the_reference_every_year() {
    let mut worst = 0;
    let mut years = 0;
    for r in data_rows(QINGMING_CSV) {
        let year: i16 = r[0].parse().unwrap();
        let expected: Date = r[1].parse().unwrap();
        assert_eq!(qingming(year), Some(expected), "{year}");
        let at: jiff::Timestamp = r[2].parse().unwrap();
        let ours = solar_term_instant(year, 15.0).unwrap();
        let off = (ours.as_second() - at.as_second()).abs();
        assert!(off < 120, "{year}: {ours} vs the reference's {at}");
        worst = worst.max(off);
        years += 1;
    }
    assert_eq!(years, 200);
    eprintln!("qingming: worst difference from PyEphem {worst} s");
}

#[test]
fn solar_longitude_matches_meeus() {
    // Meeus, Astronomical Algorithms, example 27.a: the June solstice of 1962 at JDE 2437837.39245.
    let at = 2_437_837.392_45;
    let diff = apparent_solar_longitude(at) - 90.0;
    assert!(diff.abs() < 0.000_3, "{diff}");
    // Example 25.a gives ΔT-free moments; ΔT itself: about 64 s in 2000, 29 s in 1950.
    assert!((delta_t(2000.0) - 63.86).abs() < 0.01 && (delta_t(1950.0) - 29.07).abs() < 0.01);
    // Every term of a year, in order, 15 days apart on average, the June solstice in June.
    let terms: Vec<Date> = (0..24).map(|i| solar_term_date(2027, f64::from(i) * 15.0).unwrap()).collect();
    assert_eq!(terms[6].month(), 6);
    assert_eq!(terms[0].month(), 3);
    assert_eq!(solar_term_date(2027, 285.0).unwrap().month(), 1);
    assert_eq!(qingming(1700), None);
}
