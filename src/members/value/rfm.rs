//! RFM scores and segments: how recently, how often and how much each member bought, as scores
//! from 1 to 5 against the other buyers, with the BG/NBD model's P(alive) and expected purchases
//! when a fitted model is given, and one segment per member that marketers can target.
//!
//! Pure: the members' purchase histories, `now` and the model come in as arguments.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::bgnbd::{self, Params, Summary};

/// What the store knows of a member's purchases.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub member_id: i64,
    pub joined: Timestamp,
    /// Distinct days with a purchase.
    pub purchase_days: u32,
    pub first_purchase: Option<Timestamp>,
    pub last_purchase: Option<Timestamp>,
    /// Total spend, in the programme's currency.
    pub spend: f64,
}

/// The segments, in the order they are decided: the first that fits a member is theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Just arrived: joined, or bought for the first time, less than `new_days` ago (30 by
    /// default), and has bought on one day at most.
    New,
    /// Gone quiet: no purchase for `lapsed_days` or more (180 by default); or never bought
    /// anything and joined that long ago or longer.
    Lapsed,
    /// Slipping away: the model gives them less than an `at_risk_below` chance (50% by default)
    /// of still being a customer. Without a model: used to buy often (frequency score 3 or more)
    /// but not lately (recency score 2 or less).
    AtRisk,
    /// Best customers: among the top fifth by spend (monetary score 5) and bought recently enough
    /// (recency score 3 or more).
    HighValue,
    /// Everyone else: buying normally, or members who have not bought yet and are neither new
    /// nor lapsed.
    Active,
}

impl Segment {
    pub const ALL: [Segment; 5] = [Segment::New, Segment::Active, Segment::HighValue, Segment::AtRisk, Segment::Lapsed];

    pub fn as_str(self) -> &'static str {
        match self {
            Segment::New => "new",
            Segment::Active => "active",
            Segment::HighValue => "high_value",
            Segment::AtRisk => "at_risk",
            Segment::Lapsed => "lapsed",
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Segment {
    type Err = String;

    fn from_str(s: &str) -> Result<Segment, String> {
        Segment::ALL.into_iter().find(|seg| seg.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Segment::ALL.iter().map(|seg| seg.as_str()).collect();
            format!("unknown segment {s:?}: expected one of {}", names.join(", "))
        })
    }
}

/// The thresholds of the segments (see [`Segment`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentRules {
    pub new_days: u32,
    pub lapsed_days: u32,
    pub at_risk_below: f64,
}

impl Default for SegmentRules {
    fn default() -> Self {
        SegmentRules { new_days: 30, lapsed_days: 180, at_risk_below: 0.5 }
    }
}

/// A member's scores and segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub member_id: i64,
    /// Days since the last purchase; `None` without a purchase.
    pub recency_days: Option<f64>,
    /// Distinct days with a purchase.
    pub frequency: u32,
    /// Total spend.
    pub monetary: f64,
    /// Recency, frequency and monetary scores: 1 to 5 against the other buyers (5 the most
    /// recent, most frequent, biggest spenders), 0 for members without a purchase.
    pub r: u8,
    pub f: u8,
    pub m: u8,
    /// From the model, for members with a purchase when a model is given.
    pub p_alive: Option<f64>,
    /// Purchases expected over the horizon, likewise.
    pub expected: Option<f64>,
    pub segment: Segment,
}

const MS_PER_DAY: f64 = 86_400_000.0;

fn days(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()) as f64 / MS_PER_DAY
}

/// The BG/NBD summary in days, or None without a purchase: x = purchase days − 1, t_x = last
/// purchase − first purchase, t = now − first purchase (fractional days). A missing last purchase
/// counts as the first; times after `now` (clock skew) count as `now`.
pub fn summary(h: &History, now: Timestamp) -> Option<Summary> {
    if h.purchase_days == 0 {
        return None;
    }
    let first = h.first_purchase?;
    let last = last_purchase(h)?;
    let x = f64::from(h.purchase_days - 1);
    let t = days(first, now).max(0.0);
    // Without a repeat purchase t_x means nothing to the model; 0 by its convention.
    let t_x = if x == 0.0 { 0.0 } else { days(first, last).clamp(0.0, t) };
    Some(Summary { x, t_x, t })
}

/// Scores every member: quintiles over the members with purchases, P(alive) and expected
/// purchases in `horizon_days` from `model` (fitted in days) when given, and the segment.
///
/// A score counts the buyers strictly behind the member: with `below` of the `n` buyers
/// behind, the score is 1 + ⌊5·below / n⌋. So the top fifth scores 5, the bottom fifth 1, and
/// members with equal values (equal fractional days for recency) always share a score, the one
/// the first of them would get. Recency: fewer days since the last purchase is ahead;
/// frequency and monetary: more is ahead. A spend that is not a finite number counts as 0.
/// O(n log n) in the number of members.
pub fn score_all(
    histories: &[History],
    model: Option<&Params>,
    now: Timestamp,
    rules: &SegmentRules,
    horizon_days: f64,
) -> Vec<Score> {
    let summaries: Vec<Option<Summary>> = histories.iter().map(|h| summary(h, now)).collect();
    let recency: Vec<Option<f64>> = histories
        .iter()
        .zip(&summaries)
        .map(|(h, s)| s.and(last_purchase(h)).map(|last| days(last, now).max(0.0)))
        .collect();
    let buyers = |value: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..histories.len()).filter(|&i| summaries[i].is_some()).map(value).collect()
    };
    let r_rank = Ranking::new(buyers(&|i| recency[i].unwrap_or(0.0)));
    let f_rank = Ranking::new(buyers(&|i| f64::from(histories[i].purchase_days)));
    let m_rank = Ranking::new(buyers(&|i| monetary(&histories[i])));
    histories
        .iter()
        .zip(summaries)
        .zip(recency)
        .map(|((h, s), recency_days)| {
            let (r, f, m) = match recency_days {
                Some(days) => (
                    r_rank.score_lower_is_better(days),
                    f_rank.score(f64::from(h.purchase_days)),
                    m_rank.score(monetary(h)),
                ),
                None => (0, 0, 0),
            };
            let (p_alive, expected) = match (model, s) {
                (Some(p), Some(s)) => {
                    (Some(bgnbd::p_alive(p, &s)), Some(bgnbd::expected_purchases(p, &s, horizon_days)))
                }
                _ => (None, None),
            };
            let mut score = Score {
                member_id: h.member_id,
                recency_days,
                frequency: h.purchase_days,
                monetary: h.spend,
                r,
                f,
                m,
                p_alive,
                expected,
                segment: Segment::Active,
            };
            score.segment = segment(h, &score, now, rules);
            score
        })
        .collect()
}

/// The last purchase, or the first when the last is missing or earlier.
fn last_purchase(h: &History) -> Option<Timestamp> {
    let first = h.first_purchase?;
    Some(h.last_purchase.map_or(first, |last| last.max(first)))
}

fn monetary(h: &History) -> f64 {
    if h.spend.is_finite() { h.spend } else { 0.0 }
}

/// The first segment that fits (see [`Segment`]).
fn segment(h: &History, score: &Score, now: Timestamp, rules: &SegmentRules) -> Segment {
    let new_days = f64::from(rules.new_days);
    let lapsed_days = f64::from(rules.lapsed_days);
    let recent_start =
        days(h.joined, now) < new_days || h.first_purchase.is_some_and(|first| days(first, now) < new_days);
    if recent_start && h.purchase_days <= 1 {
        return Segment::New;
    }
    let lapsed = match score.recency_days {
        Some(recency) => recency >= lapsed_days,
        None => days(h.joined, now) >= lapsed_days,
    };
    if lapsed {
        return Segment::Lapsed;
    }
    let at_risk = match score.p_alive {
        Some(p) => p < rules.at_risk_below,
        None => (1..=2).contains(&score.r) && score.f >= 3,
    };
    if at_risk {
        return Segment::AtRisk;
    }
    if score.m == 5 && score.r >= 3 {
        return Segment::HighValue;
    }
    Segment::Active
}

/// The buyers' values, sorted, to count how many are strictly below or above a value.
struct Ranking {
    sorted: Vec<f64>,
}

impl Ranking {
    fn new(mut values: Vec<f64>) -> Ranking {
        values.sort_unstable_by(f64::total_cmp);
        Ranking { sorted: values }
    }

    /// Higher is better: the members strictly below count.
    fn score(&self, value: f64) -> u8 {
        let below = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
        self.quintile(below)
    }

    /// Lower is better: the members strictly above count.
    fn score_lower_is_better(&self, value: f64) -> u8 {
        let above = self.sorted.len() - self.sorted.partition_point(|v| v.total_cmp(&value).is_le());
        self.quintile(above)
    }

    fn quintile(&self, behind: usize) -> u8 {
        // behind < n, so this is 0..=4.
        1 + (5 * behind / self.sorted.len()) as u8
    }
}

#[cfg(test)]
mod tests;
