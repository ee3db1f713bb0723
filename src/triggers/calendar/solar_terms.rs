//! The solar terms (节气): the moments the Sun's apparent longitude reaches a multiple of 15°, and
//! their civil dates in China (UTC+8). Qingming, a public holiday, is the 15° term.
//!
//! calendrical_calculations (under icu_calendar) keeps its solar longitude private, so this follows
//! Meeus, Astronomical Algorithms (2nd ed.), ch. 25 "higher accuracy": VSOP87 (truncated, see
//! `vsop87.rs`) with the FK5 correction, nutation in longitude (ch. 22) and aberration, about one
//! arc second or 25 s of time; ΔT from the Espenak–Meeus polynomials. Root finding is Newton's
//! method on the mean motion of the Sun.

use jiff::Timestamp;
use jiff::civil::Date;

use super::lunar::{civil_from_days, epoch_day};
use super::vsop87;

/// The Gregorian years the solar-term functions answer for: where the ΔT polynomials hold.
pub const YEARS: std::ops::RangeInclusive<i16> = 1800..=2200;

/// The civil date in China (UTC+8) of Qingming (清明) in `year`: the day the apparent solar
/// longitude reaches 15°, April 4–6. `None` outside [`YEARS`].
pub fn qingming(year: i16) -> Option<Date> {
    solar_term_date(year, 15.0)
}

/// The civil date in China (UTC+8) in Gregorian `year` on which the Sun's apparent longitude
/// reaches `longitude` degrees (0: March equinox, 15: Qingming, 90: June solstice, 285: 小寒 in
/// early January). `None` outside [`YEARS`].
pub fn solar_term_date(year: i16, longitude: f64) -> Option<Date> {
    let at = solar_term_instant(year, longitude)?;
    let seconds = at.as_second() + 8 * 3600;
    Some(civil_from_days(seconds.div_euclid(86_400) as i32))
}

/// The instant in Gregorian `year` (by its UTC+8 date) at which the Sun's apparent longitude
/// reaches `longitude` degrees. `None` outside [`YEARS`].
pub fn solar_term_instant(year: i16, longitude: f64) -> Option<Timestamp> {
    if !YEARS.contains(&year) || !longitude.is_finite() {
        return None;
    }
    let target = longitude.rem_euclid(360.0);
    let jan1 = jd_of_day(epoch_day(Date::new(year, 1, 1).ok()?));
    // The mean Sun reaches 0° about March 20.5, day 79.5 of the year.
    let guess = (79.5 + target / 360.0 * TROPICAL_YEAR).rem_euclid(TROPICAL_YEAR);
    // A longitude reached about New Year may fall just outside the year from that guess.
    [0.0, -TROPICAL_YEAR, TROPICAL_YEAR].into_iter().find_map(|shift| {
        let at = to_timestamp(ut_from_tt(find(target, jan1 + guess + shift)))?;
        let day = civil_from_days((at.as_second() + 8 * 3600).div_euclid(86_400) as i32);
        (day.year() == year).then_some(at)
    })
}

const TROPICAL_YEAR: f64 = 365.242_189;
/// Degrees per day of the mean Sun.
const MEAN_MOTION: f64 = 360.0 / TROPICAL_YEAR;
/// The Julian Day of 1970-01-01 00:00 UT.
const UNIX_EPOCH_JD: f64 = 2_440_587.5;
const J2000: f64 = 2_451_545.0;

/// The Julian Ephemeris Day near `jde` at which the apparent longitude is `target`.
fn find(target: f64, mut jde: f64) -> f64 {
    for _ in 0..20 {
        let diff = (target - apparent_solar_longitude(jde) + 540.0).rem_euclid(360.0) - 180.0;
        jde += diff / MEAN_MOTION;
        if diff.abs() < 1e-8 {
            break;
        }
    }
    jde
}

/// The Sun's apparent geocentric longitude in degrees, `0..360`, at Julian Ephemeris Day `jde`.
pub(crate) fn apparent_solar_longitude(jde: f64) -> f64 {
    let tau = (jde - J2000) / 365_250.0;
    let t = tau * 10.0;
    let l = series(vsop87::L, tau);
    let r = series(vsop87::R, tau);
    // Geocentric, in the FK5 frame (Meeus 25.9 and 32.3; the latitude part is negligible).
    let geometric = l.to_degrees() + 180.0 - 0.090_33 / 3600.0;
    let aberration = -20.4898 / r / 3600.0;
    (geometric + nutation_in_longitude(t) + aberration).rem_euclid(360.0)
}

/// Σ (Σ A cos(B + C τ)) τ^i over the series, scaled from 1e-8.
fn series(terms: &[&[(f64, f64, f64)]], tau: f64) -> f64 {
    let sums = terms.iter().map(|s| s.iter().map(|&(a, b, c)| a * (b + c * tau).cos()).sum::<f64>());
    sums.rev().fold(0.0, |acc, s| acc * tau + s) / 1e8
}

/// Nutation in longitude in degrees, Meeus ch. 22 (the 0.5″ formula), `t` in Julian centuries.
fn nutation_in_longitude(t: f64) -> f64 {
    let omega = (125.04452 - 1934.136261 * t + 0.0020708 * t * t + t * t * t / 450000.0).to_radians();
    let sun = (280.4665 + 36000.7698 * t).to_radians();
    let moon = (218.3165 + 481267.8813 * t).to_radians();
    let arcsec =
        -17.20 * omega.sin() - 1.32 * (2.0 * sun).sin() - 0.23 * (2.0 * moon).sin() + 0.21 * (2.0 * omega).sin();
    arcsec / 3600.0
}

fn jd_of_day(epoch_day: i32) -> f64 {
    UNIX_EPOCH_JD + f64::from(epoch_day)
}

fn to_timestamp(jd_ut: f64) -> Option<Timestamp> {
    Timestamp::from_second(((jd_ut - UNIX_EPOCH_JD) * 86_400.0).round() as i64).ok()
}

/// Universal Time from Terrestrial (dynamical) Time, both as Julian Days.
fn ut_from_tt(jde: f64) -> f64 {
    let year = 2000.0 + (jde - J2000) / 365.25;
    jde - delta_t(year) / 86_400.0
}

/// ΔT = TT − UT in seconds: the Espenak–Meeus polynomials (NASA's Five Millennium Canon of
/// Solar Eclipses), 1800–2150, and their long-term parabola outside.
pub(crate) fn delta_t(y: f64) -> f64 {
    let poly = |t: f64, c: &[f64]| c.iter().rev().fold(0.0, |acc, &k| acc * t + k);
    let u = (y - 1820.0) / 100.0;
    match y {
        y if y < 1800.0 => -20.0 + 32.0 * u * u,
        y if y < 1860.0 => poly(
            y - 1800.0,
            &[
                13.72,
                -0.332_447,
                0.006_861_2,
                0.004_111_6,
                -0.000_374_36,
                0.000_012_127_2,
                -0.000_000_169_9,
                0.000_000_000_875,
            ],
        ),
        y if y < 1900.0 => {
            poly(y - 1860.0, &[7.62, 0.5737, -0.251_754, 0.016_806_68, -0.000_447_362_4, 1.0 / 233_174.0])
        }
        y if y < 1920.0 => poly(y - 1900.0, &[-2.79, 1.494_119, -0.059_893_9, 0.006_196_6, -0.000_197]),
        y if y < 1941.0 => poly(y - 1920.0, &[21.20, 0.844_93, -0.076_100, 0.002_093_6]),
        y if y < 1961.0 => poly(y - 1950.0, &[29.07, 0.407, -1.0 / 233.0, 1.0 / 2547.0]),
        y if y < 1986.0 => poly(y - 1975.0, &[45.45, 1.067, -1.0 / 260.0, -1.0 / 718.0]),
        y if y < 2005.0 => poly(y - 2000.0, &[63.86, 0.3345, -0.060_374, 0.001_727_5, 0.000_651_814, 0.000_023_735_99]),
        y if y < 2050.0 => poly(y - 2000.0, &[62.92, 0.322_17, 0.005_589]),
        y if y < 2150.0 => -20.0 + 32.0 * u * u - 0.5628 * (2150.0 - y),
        _ => -20.0 + 32.0 * u * u,
    }
}
