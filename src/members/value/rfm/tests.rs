//! RFM: summaries in days, quintile edges and ties, each segment and its boundaries.

use jiff::{SignedDuration, Timestamp};

use super::*;

fn now() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn ago(days: f64) -> Timestamp {
    now() - SignedDuration::from_secs_f64(days * 86_400.0)
}

/// A member who joined `joined` days ago and bought on `purchase_days` days, the first `first`
/// and the last `last` days ago, spending `spend`.
fn buyer(id: i64, joined: f64, purchase_days: u32, first: f64, last: f64, spend: f64) -> History {
    History {
        member_id: id,
        joined: ago(joined),
        purchase_days,
        first_purchase: Some(ago(first)),
        last_purchase: Some(ago(last)),
        spend,
    }
}

fn never_bought(id: i64, joined: f64) -> History {
    History {
        member_id: id,
        joined: ago(joined),
        purchase_days: 0,
        first_purchase: None,
        last_purchase: None,
        spend: 0.0,
    }
}

fn scores(histories: &[History], model: Option<&Params>) -> Vec<Score> {
    score_all(histories, model, now(), &SegmentRules::default(), 90.0)
}

#[test]
fn summary_is_in_days_from_the_first_purchase() {
    let s = summary(&buyer(1, 400.0, 4, 300.0, 20.5, 10.0), now()).unwrap();
    assert_eq!(s, Summary { x: 3.0, t_x: 279.5, t: 300.0 });
    assert_eq!(summary(&never_bought(2, 10.0), now()), None);
    // One purchase day: t_x is 0 whatever the timestamps say.
    let s = summary(&buyer(3, 50.0, 1, 40.0, 39.9, 10.0), now()).unwrap();
    assert_eq!(s, Summary { x: 0.0, t_x: 0.0, t: 40.0 });
    // A missing last purchase is the first; a first purchase in the future is now.
    let h = History { last_purchase: None, ..buyer(4, 50.0, 2, 40.0, 0.0, 1.0) };
    assert_eq!(summary(&h, now()).unwrap(), Summary { x: 1.0, t_x: 0.0, t: 40.0 });
    let s = summary(&buyer(5, 50.0, 2, -1.0, -1.0, 1.0), now()).unwrap();
    assert_eq!(s, Summary { x: 1.0, t_x: 0.0, t: 0.0 });
}

/// Scores `values` as frequencies (purchase days) of otherwise equal long-standing buyers.
fn frequency_scores(values: &[u32]) -> Vec<u8> {
    let members: Vec<History> =
        values.iter().enumerate().map(|(i, &f)| buyer(i as i64, 500.0, f, 400.0, 10.0, 1.0)).collect();
    scores(&members, None).iter().map(|s| s.f).collect()
}

#[test]
fn quintile_edges() {
    assert_eq!(frequency_scores(&[1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]);
    assert_eq!(frequency_scores(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]), [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
    // 7 buyers: 0..6 behind → 1 + ⌊5·behind/7⌋ = 1, 1, 2, 3, 3, 4, 5.
    assert_eq!(frequency_scores(&[1, 2, 3, 4, 5, 6, 7]), [1, 1, 2, 3, 3, 4, 5]);
    assert_eq!(frequency_scores(&[4]), [1]);
}

#[test]
fn ties_share_a_score() {
    // 1, 1, 1 have nobody behind; 2, 2 have three of six; 3 has five of six.
    assert_eq!(frequency_scores(&[1, 2, 1, 3, 2, 1]), [1, 3, 1, 5, 3, 1]);
    assert_eq!(frequency_scores(&[6, 6, 6, 6]), [1, 1, 1, 1]);
}

#[test]
fn recency_scores_the_most_recent_highest_and_monetary_the_biggest() {
    let members: Vec<History> = [(50.0, 10.0), (1.0, 30.0), (20.0, 20.0), (20.0, 40.0), (100.0, 50.0)]
        .iter()
        .enumerate()
        .map(|(i, &(last, spend))| buyer(i as i64, 500.0, 2, 400.0, last, spend))
        .collect();
    let s = scores(&members, None);
    // Days since: 50, 1, 20, 20, 100 → behind (more days): 1, 4, 2, 2, 0.
    assert_eq!(s.iter().map(|s| s.r).collect::<Vec<_>>(), [2, 5, 3, 3, 1]);
    assert_eq!(s.iter().map(|s| s.m).collect::<Vec<_>>(), [1, 3, 2, 4, 5]);
    assert_eq!(s[1].recency_days, Some(1.0));
}

#[test]
fn members_without_purchases_score_zero_and_do_not_count() {
    let members = [
        never_bought(1, 100.0),
        buyer(2, 500.0, 1, 400.0, 400.0, 1.0),
        buyer(3, 500.0, 2, 400.0, 10.0, 2.0),
        never_bought(4, 100.0),
    ];
    let s = scores(&members, Some(&Params { r: 0.243, alpha: 30.9, a: 0.793, b: 2.426 }));
    assert_eq!((s[0].r, s[0].f, s[0].m, s[0].recency_days, s[0].p_alive, s[0].expected), (0, 0, 0, None, None, None));
    // Two buyers: 0 and 1 behind → 1 and 3.
    assert_eq!((s[1].f, s[2].f), (1, 3));
    assert!(s[1].p_alive.is_some() && s[2].expected.is_some());
}

#[test]
fn non_finite_spend_counts_as_nothing() {
    let members = [buyer(1, 500.0, 2, 400.0, 10.0, f64::NAN), buyer(2, 500.0, 2, 400.0, 10.0, 0.0)];
    let s = scores(&members, None);
    assert_eq!((s[0].m, s[1].m), (1, 1));
}

fn segment_of(h: History, others: &[History], model: Option<&Params>) -> Segment {
    let mut all = vec![h];
    all.extend_from_slice(others);
    scores(&all, model)[0].segment
}

/// Buyers that make the member under test's scores what a test needs: ten steady customers.
fn crowd() -> Vec<History> {
    (0..10).map(|i| buyer(100 + i, 700.0, 3 + i as u32, 600.0, 40.0 + i as f64, 100.0 + i as f64)).collect()
}

#[test]
fn new_members() {
    let c = crowd();
    assert_eq!(segment_of(never_bought(1, 29.9), &c, None), Segment::New);
    assert_eq!(segment_of(never_bought(1, 30.0), &c, None), Segment::Active);
    // Joined long ago, first purchase within 30 days and only one purchase day.
    assert_eq!(segment_of(buyer(1, 400.0, 1, 5.0, 5.0, 10.0), &c, None), Segment::New);
    // Joined recently but already bought on two days: not new any more.
    assert_ne!(segment_of(buyer(1, 10.0, 2, 9.0, 1.0, 10.0), &c, None), Segment::New);
}

#[test]
fn lapsed_members() {
    let c = crowd();
    assert_eq!(segment_of(buyer(1, 400.0, 5, 300.0, 180.0, 10.0), &c, None), Segment::Lapsed);
    assert_ne!(segment_of(buyer(1, 400.0, 5, 300.0, 179.9, 10.0), &c, None), Segment::Lapsed);
    assert_eq!(segment_of(never_bought(1, 180.0), &c, None), Segment::Lapsed);
    assert_eq!(segment_of(never_bought(1, 179.9), &c, None), Segment::Active);
    // Lapsed comes before at risk and high value: a big spender gone for a year is lapsed.
    assert_eq!(segment_of(buyer(1, 900.0, 40, 800.0, 365.0, 1e6), &c, None), Segment::Lapsed);
}

#[test]
fn at_risk_by_the_model() {
    // The CDNOW estimates with α in units of 5 days: the customer (x = 3, t_x = 5, T = 39) in
    // weeks has P(alive) = 0.0378 and 0.0904 purchases expected in 39 weeks by lifetimes
    // (reference.csv); in 5-day units it is the same customer.
    let model = Params { r: 0.243, alpha: 4.414 * 5.0, a: 0.793, b: 2.426 };
    let h = buyer(1, 400.0, 4, 39.0 * 5.0, 34.0 * 5.0, 10.0);
    let s = score_all(&[h], Some(&model), now(), &SegmentRules::default(), 39.0 * 5.0);
    assert!((s[0].p_alive.unwrap() - 0.037_768_861_406_537_98).abs() < 1e-9, "{:?}", s[0]);
    assert!((s[0].expected.unwrap() - 0.090_449_461_838_861_45).abs() < 1e-8, "{:?}", s[0]);
    assert_eq!(s[0].segment, Segment::AtRisk);
    let model = Params { alpha: 4.414 * 7.0, ..model };
    // The customer (x = 10, t_x = 38, T = 39): P(alive) = 0.919, not at risk; the biggest spender
    // of the crowd and recent, so high value.
    let h = buyer(1, 400.0, 11, 39.0 * 7.0, 7.0, 1000.0);
    let s = scores(&[vec![h], crowd()].concat(), Some(&model));
    assert!((s[0].p_alive.unwrap() - 0.919_021_515_682_759_6).abs() < 1e-9);
    assert_eq!(s[0].segment, Segment::HighValue);
    // A threshold above its P(alive) makes it at risk.
    let rules = SegmentRules { at_risk_below: 0.95, ..SegmentRules::default() };
    let h = buyer(1, 400.0, 11, 39.0 * 7.0, 7.0, 1000.0);
    assert_eq!(score_all(&[h], Some(&model), now(), &rules, 90.0)[0].segment, Segment::AtRisk);
}

#[test]
fn at_risk_without_a_model() {
    // Frequent (f ≥ 3) but not recent (r ≤ 2) against the crowd: the crowd last bought 40 to 49
    // days ago; 100 days ago puts this member last.
    let c = crowd();
    let h = buyer(1, 700.0, 12, 600.0, 100.0, 50.0);
    let s = scores(&[vec![h.clone()], c.clone()].concat(), None);
    assert_eq!((s[0].r, s[0].f), (1, 5));
    assert_eq!(s[0].segment, Segment::AtRisk);
    // Not recent but infrequent (one purchase day, f = 1): not at risk.
    let h = buyer(1, 700.0, 1, 100.0, 100.0, 50.0);
    assert_eq!(segment_of(h, &c, None), Segment::Active);
}

#[test]
fn high_value_members() {
    let c = crowd();
    // The biggest spend and the most recent purchase.
    let h = buyer(1, 700.0, 3, 600.0, 1.0, 5000.0);
    let s = scores(&[vec![h], c.clone()].concat(), None);
    assert_eq!((s[0].r, s[0].m), (5, 5));
    assert_eq!(s[0].segment, Segment::HighValue);
    // r exactly 3: 5 of 11 behind (last bought 44.5 days ago; the crowd: 40..49).
    let h = buyer(1, 700.0, 3, 600.0, 44.5, 5000.0);
    let s = scores(&[vec![h], c.clone()].concat(), None);
    assert_eq!((s[0].r, s[0].m, s[0].segment), (3, 5, Segment::HighValue));
    // r = 2 (3 of 11 behind) and infrequent: big spender but not recent enough: active.
    let h = buyer(1, 700.0, 1, 600.0, 46.5, 5000.0);
    let s = scores(&[vec![h], c].concat(), None);
    assert_eq!((s[0].r, s[0].m, s[0].segment), (2, 5, Segment::Active));
}

#[test]
fn segment_names() {
    let names: Vec<&str> = Segment::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["new", "active", "high_value", "at_risk", "lapsed"]);
    for s in Segment::ALL {
        assert_eq!(s.to_string().parse::<Segment>(), Ok(s));
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
    }
    let err = "vip".parse::<Segment>().unwrap_err();
    assert_eq!(err, "unknown segment \"vip\": expected one of new, active, high_value, at_risk, lapsed");
}
