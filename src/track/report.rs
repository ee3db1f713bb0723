//! Conversions and the experiment report. The store counts, per arm (variant or holdout) of a
//! rule, the members who were eligible, sent, delivered, failed and converted; this module turns
//! those counts into conversion rates and each variant's uplift over the holdout with a 95%
//! confidence interval. Pure: counts in, report out.

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// What counts as a conversion after a rule's message: an event of one of these kinds within
/// `window` after the member's first sent message (for the holdout, after the planned send).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub events: Vec<String>,
    pub window: SignedDuration,
}

/// The default attribution window: a week.
pub const DEFAULT_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);

impl Default for Conversion {
    fn default() -> Self {
        Conversion { events: vec!["purchase".into()], window: DEFAULT_WINDOW }
    }
}

/// One arm's counts as the store reads them. The unit is a member per occurrence: a rule with
/// several channels counts a member once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArmCounts {
    /// The variant's id, `holdout`, or `None` for a rule without an experiment.
    pub arm: Option<String>,
    /// Members planned (every arm, holdout included).
    pub eligible: u64,
    /// Members with a message handed to a provider and not failed (`sent` or `delivered`).
    pub sent: u64,
    /// Members with a delivery receipt.
    pub delivered: u64,
    /// Members with nothing sent and a message that failed (failed, dead or undelivered).
    pub failed: u64,
    /// Members with a conversion event within the window after their anchor.
    pub converted: u64,
}

/// An arm's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    /// The variant's id, `holdout`, or `all` for a rule without an experiment.
    pub arm: String,
    pub eligible: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub converted: u64,
    /// `converted / eligible`; `None` with nobody eligible.
    pub conversion_rate: Option<f64>,
    /// Against the holdout; `None` for the holdout itself, without a holdout, or with an empty arm.
    pub uplift: Option<Uplift>,
}

/// A variant's uplift over the holdout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uplift {
    /// The difference of conversion rates, variant minus holdout.
    pub absolute: f64,
    /// The 95% confidence interval of `absolute`.
    pub low: f64,
    pub high: f64,
    /// `absolute / holdout rate`; `None` when the holdout converted nobody.
    pub relative: Option<f64>,
}

/// The report of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub rule: String,
    pub experiment: Option<String>,
    pub conversion_events: Vec<String>,
    /// The attribution window, e.g. `7d`.
    pub window: String,
    /// Only members planned at or after this instant.
    pub since: Option<Timestamp>,
    pub arms: Vec<ArmReport>,
}

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Builds the report: arms in the order of `variants` (each shown even before anyone is in it),
/// then the holdout; any other arm the store found (a variant since removed) after them.
pub fn build(
    rule: &str,
    experiment: Option<(&str, &[String])>,
    conversion: &Conversion,
    since: Option<Timestamp>,
    counts: Vec<ArmCounts>,
) -> Report {
    let mut ordered: Vec<ArmCounts> = Vec::new();
    let mut counts = counts;
    let mut take = |arm: Option<&str>, ordered: &mut Vec<ArmCounts>| {
        let found = counts.iter().position(|c| c.arm.as_deref() == arm);
        ordered.push(match found {
            Some(i) => counts.remove(i),
            None => ArmCounts { arm: arm.map(str::to_string), ..ArmCounts::default() },
        });
    };
    match experiment {
        Some((_, variants)) => {
            for v in variants {
                take(Some(v), &mut ordered);
            }
            take(Some(crate::plan::experiment::HOLDOUT), &mut ordered);
        }
        None => take(None, &mut ordered),
    }
    ordered.extend(counts.into_iter().filter(|c| c.eligible > 0));
    let holdout = ordered
        .iter()
        .find(|c| c.arm.as_deref() == Some(crate::plan::experiment::HOLDOUT))
        .map(|c| (c.converted, c.eligible))
        .filter(|&(_, n)| n > 0);
    let arms = ordered
        .into_iter()
        .map(|c| {
            let is_holdout = c.arm.as_deref() == Some(crate::plan::experiment::HOLDOUT);
            let uplift = match holdout {
                Some((x0, n0)) if !is_holdout && c.eligible > 0 => Some(uplift(c.converted, c.eligible, x0, n0)),
                _ => None,
            };
            ArmReport {
                arm: c.arm.unwrap_or_else(|| "all".into()),
                eligible: c.eligible,
                sent: c.sent,
                delivered: c.delivered,
                failed: c.failed,
                converted: c.converted,
                conversion_rate: (c.eligible > 0).then(|| c.converted as f64 / c.eligible as f64),
                uplift,
            }
        })
        .collect();
    Report {
        rule: rule.to_string(),
        experiment: experiment.map(|(id, _)| id.to_string()),
        conversion_events: conversion.events.clone(),
        window: window_text(conversion.window),
        since,
        arms,
    }
}

/// A window as the configuration writes it: `7d`, `36h`, `90m`.
fn window_text(d: SignedDuration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A `--since` or `?since=`: an RFC 3339 instant, or a date (its midnight in `zone`).
pub fn parse_since(text: &str, zone: &jiff::tz::TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .map(|d| crate::plan::send_time::local_instant(d, jiff::civil::Time::midnight(), zone))
        .ok_or_else(|| format!("{text:?} is not a date (2026-11-01) or an instant (2026-11-01T09:00:00Z)"))
}

/// The uplift of `x1` of `n1` over `x0` of `n0` (both `n` positive).
pub fn uplift(x1: u64, n1: u64, x0: u64, n0: u64) -> Uplift {
    let (absolute, low, high) = newcombe(x1, n1, x0, n0, Z95);
    let p0 = x0 as f64 / n0 as f64;
    Uplift { absolute, low, high, relative: (x0 > 0).then(|| absolute / p0) }
}

/// Wilson's score interval for `x` successes in `n` trials (`n > 0`).
pub fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    let n = n as f64;
    let p = x as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The difference `p1 - p2` of two independent proportions with Newcombe's hybrid score
/// interval (Newcombe 1998, method 10): each proportion's Wilson interval, combined.
///
/// Why not Wald (`d ± z·se`): conversion rates are small (a few percent) and arms are unequal
/// (a 10% holdout against 45% variants), where Wald's interval is too narrow (its coverage
/// falls well below 95% near 0) and can leave `[-1, 1]`. Newcombe's keeps close to its nominal
/// coverage there, needs no iteration, and agrees with Wald on large balanced arms.
pub fn newcombe(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> (f64, f64, f64) {
    let p1 = x1 as f64 / n1 as f64;
    let p2 = x2 as f64 / n2 as f64;
    let (l1, u1) = wilson(x1, n1, z);
    let (l2, u2) = wilson(x2, n2, z);
    let d = p1 - p2;
    let low = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (d, low, high)
}

impl Report {
    /// The report as a text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rule {}{}: conversions are {} within {} of the first message sent{}",
            self.rule,
            self.experiment.as_deref().map(|e| format!(" (experiment {e})")).unwrap_or_default(),
            self.conversion_events.join(", "),
            self.window,
            self.since.map(|s| format!("; members planned since {s}")).unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9} {:>20} {:>9}",
            "arm", "eligible", "sent", "delivered", "failed", "converted", "rate", "uplift", "95% interval", "relative"
        );
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        let pp = |x: f64| format!("{:+.2}pp", x * 100.0);
        for a in &self.arms {
            let (uplift, interval, relative) = match &a.uplift {
                Some(u) => (
                    pp(u.absolute),
                    format!("[{}, {}]", pp(u.low), pp(u.high)),
                    u.relative.map(|r| format!("{:+.1}%", r * 100.0)).unwrap_or_else(|| "-".into()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9} {:>20} {:>9}",
                a.arm,
                a.eligible,
                a.sent,
                a.delivered,
                a.failed,
                a.converted,
                a.conversion_rate.map(pct).unwrap_or_else(|| "-".into()),
                uplift,
                interval,
                relative
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_the_textbook() {
        // Newcombe (1998), Table I: 81/263 → 0.2553 to 0.3662; 15/148 → 0.0624 to 0.1605.
        let check = |x, n, lo, hi| {
            let (l, h) = wilson(x, n, Z95);
            assert!(close(l, lo) && close(h, hi), "{x}/{n}: ({l:.4}, {h:.4}), expected ({lo}, {hi})");
        };
        check(81, 263, 0.2553, 0.3662);
        check(15, 148, 0.0624, 0.1605);
        check(0, 10, 0.0, 0.2775);
        check(10, 10, 0.7225, 1.0);
    }

    #[test]
    fn newcombe_matches_the_published_examples() {
        // Newcombe (1998), Table II, method 10: 56/70 − 48/80 → 0.0524 to 0.3339;
        // 9/10 − 3/10 → 0.1705 to 0.8090; 5/56 − 0/29 → −0.0381 to 0.1926.
        let check = |x1, n1, x2, n2, lo, hi| {
            let (_, l, h) = newcombe(x1, n1, x2, n2, Z95);
            assert!(close(l, lo) && close(h, hi), "{x1}/{n1} − {x2}/{n2}: ({l:.4}, {h:.4}), expected ({lo}, {hi})");
        };
        check(56, 70, 48, 80, 0.0524, 0.3339);
        check(9, 10, 3, 10, 0.1705, 0.8090);
        check(5, 56, 0, 29, -0.0381, 0.1926);
    }

    #[test]
    fn the_report_orders_arms_and_measures_against_the_holdout() {
        let counts = vec![
            ArmCounts { arm: Some("holdout".into()), eligible: 100, converted: 5, ..Default::default() },
            ArmCounts { arm: Some("b".into()), eligible: 400, sent: 390, delivered: 300, failed: 10, converted: 48 },
        ];
        let variants = ["a".to_string(), "b".to_string()];
        let r = build("winback", Some(("winback", &variants)), &Conversion::default(), None, counts);
        assert_eq!(r.arms.iter().map(|a| a.arm.as_str()).collect::<Vec<_>>(), ["a", "b", "holdout"]);
        assert_eq!((r.arms[0].eligible, r.arms[0].conversion_rate, r.arms[0].uplift), (0, None, None));
        let b = &r.arms[1];
        assert_eq!(b.conversion_rate, Some(0.12));
        let u = b.uplift.unwrap();
        assert!(close(u.absolute, 0.07) && u.low < 0.07 && u.high > 0.07, "{u:?}");
        assert!(close(u.relative.unwrap(), 1.4));
        assert_eq!(r.arms[2].uplift, None);
        assert_eq!(r.window, "7d");
        let table = r.table();
        assert!(table.contains("+7.00pp"), "{table}");
        // Without an experiment: one line, no uplift.
        let plain = build(
            "bday",
            None,
            &Conversion::default(),
            None,
            vec![ArmCounts { arm: None, eligible: 3, ..Default::default() }],
        );
        assert_eq!((plain.arms.len(), plain.arms[0].arm.as_str(), plain.arms[0].uplift), (1, "all", None));
    }
}
