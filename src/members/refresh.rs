//! The nightly value refresh: every member's purchase history is read in batches, the BG/NBD
//! model is fitted on it, and each member gets RFM scores, a segment, P(alive) and expected
//! purchases (`member_value`). A fit that does not converge is recorded but never replaces the
//! last good model; members are then scored with that one. Members whose P(alive) fell below a
//! `churn_risk` rule's threshold are marked changed, so the next tick writes to them.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use jiff::Timestamp;
use serde_json::json;

use crate::config::Settings;
use crate::members::MemberValue;
use crate::members::value::bgnbd::{self, Fit, FitError, FitOptions, Params};
use crate::members::value::rfm::{self, History, SegmentRules};
use crate::store::{ModelRecord, Previous, Store, ValueRow};
use crate::triggers::Trigger;

/// The model kind stored in `models`.
pub const BGNBD: &str = "bgnbd";

/// Members read per batch.
const READ_BATCH: u32 = 10_000;
/// Value rows written per transaction.
const WRITE_BATCH: usize = 5_000;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefreshReport {
    pub members: u64,
    /// Members with at least one purchase.
    pub customers: u64,
    /// This refresh's fit, accepted or not.
    pub fit: ModelRecord,
    /// The model members were scored with: this fit when accepted, else the last good one.
    pub model: Option<ModelRecord>,
    /// Members below `model.at_risk_below`.
    pub at_risk: u64,
    /// Members who crossed below a `churn_risk` rule's threshold in this refresh.
    pub crossed: u64,
    pub segments: BTreeMap<String, u64>,
    pub fit_ms: u64,
    pub total_ms: u64,
}

/// Runs the refresh at `now`.
pub async fn refresh(store: &Store, settings: &Settings, now: Timestamp) -> anyhow::Result<RefreshReport> {
    let started = Instant::now();
    let cfg = &settings.raw.model;
    let mut histories: Vec<History> = Vec::new();
    let mut previous: Vec<Option<Previous>> = Vec::new();
    let mut after = 0;
    // Purchase days are the programme's calendar days (its offset now; a DST change moves the
    // boundary by an hour, which only matters for purchases within that hour of midnight).
    let day_offset_ms = settings.programme_tz.to_offset(now).seconds() as i64 * 1000;
    loop {
        let batch = store.purchase_histories(&cfg.purchase_events, after, READ_BATCH, day_offset_ms).await?;
        let Some(last) = batch.last() else { break };
        after = last.history.member_id;
        for row in batch {
            histories.push(row.history);
            previous.push(row.previous);
        }
    }
    let summaries: Vec<bgnbd::Summary> = histories.iter().filter_map(|h| rfm::summary(h, now)).collect();
    let customers = summaries.len() as u64;

    let fit_started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || bgnbd::fit(&summaries, &FitOptions::default()))
        .await
        .context("the model fit panicked")?;
    let fit_ms = fit_started.elapsed().as_millis() as u64;
    let last_good = store.models(BGNBD, true, 1).await?.into_iter().next();
    let (mut record, accepted) = fit_record(outcome, customers, now, fit_ms);
    let model = if accepted { Some(record.clone()) } else { last_good };
    let params: Option<Params> = model.as_ref().and_then(|m| serde_json::from_value(m.params.clone()).ok());

    let rules = SegmentRules { new_days: cfg.new_days, lapsed_days: cfg.lapsed_days, at_risk_below: cfg.at_risk_below };
    let horizon = f64::from(cfg.horizon_days);
    let (histories, scores) = tokio::task::spawn_blocking(move || {
        let scores = rfm::score_all(&histories, params.as_ref(), now, &rules, horizon);
        (histories, scores)
    })
    .await
    .context("scoring panicked")?;

    let thresholds: Vec<f64> = settings
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| match r.trigger {
            Trigger::ChurnRisk { below } => Some(below),
            _ => None,
        })
        .collect();
    let mut at_risk = 0;
    let mut crossed = 0;
    let mut segments: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::with_capacity(WRITE_BATCH);
    let mut changed = Vec::new();
    for ((score, history), before) in scores.into_iter().zip(&histories).zip(&previous) {
        debug_assert_eq!(score.member_id, history.member_id);
        if score.p_alive.is_some_and(|p| p < cfg.at_risk_below) {
            at_risk += 1;
        }
        let churn = churn_crossing(&thresholds, params.as_ref(), history, score.p_alive, before.as_ref(), now);
        if churn.crossed_now {
            crossed += 1;
            changed.push(score.member_id);
        }
        *segments.entry(score.segment.as_str().to_string()).or_default() += 1;
        rows.push(ValueRow {
            member_id: score.member_id,
            value: MemberValue {
                recency_days: score.recency_days,
                frequency: score.frequency,
                monetary: score.monetary,
                r: score.r,
                f: score.f,
                m: score.m,
                segment: score.segment,
                p_alive: score.p_alive,
                expected_purchases: score.expected,
                last_purchase_at: history.last_purchase,
                churn_crossed_at: churn.crossed_at,
                scored_at: now,
            },
        });
        if rows.len() == WRITE_BATCH {
            store.write_member_values(&rows, &changed).await?;
            rows.clear();
            changed.clear();
        }
    }
    store.write_member_values(&rows, &changed).await?;

    record.at_risk = at_risk as i64;
    record.id = store.record_model(&record).await?;
    let model = if accepted { Some(record.clone()) } else { model };
    let report = RefreshReport {
        members: histories.len() as u64,
        customers,
        fit: record,
        model,
        at_risk,
        crossed,
        segments,
        fit_ms,
        total_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(
        members = report.members,
        customers = report.customers,
        accepted = report.fit.accepted,
        at_risk = report.at_risk,
        crossed = report.crossed,
        fit_ms = report.fit_ms,
        total_ms = report.total_ms,
        "member value refreshed"
    );
    Ok(report)
}

/// Where a member stands against the `churn_risk` thresholds after this refresh.
struct Churn {
    /// P(alive) went below a threshold since the last refresh (or since the last purchase).
    crossed_now: bool,
    /// The crossing churn rules fire on: this refresh's, or an earlier one's in the same
    /// purchase cycle; `None` once the member bought again.
    crossed_at: Option<Timestamp>,
}

/// A crossing is P(alive) going from at or above a threshold to below it. Within one purchase
/// cycle "before" is the last refresh's P(alive); after a new purchase (or at the first
/// refresh) it is P(alive) just after that purchase, so a threshold above what a member's
/// P(alive) is even right after buying never counts as crossed (no "we miss you" the morning
/// after a purchase).
fn churn_crossing(
    thresholds: &[f64],
    params: Option<&Params>,
    history: &History,
    p_now: Option<f64>,
    previous: Option<&Previous>,
    now: Timestamp,
) -> Churn {
    let none = Churn { crossed_now: false, crossed_at: None };
    let (Some(p_now), Some(last_purchase)) = (p_now, history.last_purchase) else { return none };
    let same_cycle = previous.is_some_and(|p| p.last_purchase_at == Some(last_purchase));
    let at_purchase = || params.and_then(|m| rfm::summary(history, last_purchase).map(|s| bgnbd::p_alive(m, &s)));
    let before = match previous {
        Some(p) if same_cycle => p.p_alive.or_else(at_purchase),
        _ => at_purchase(),
    };
    let crossed_now = before.is_some_and(|b| thresholds.iter().any(|&t| p_now < t && b >= t));
    let earlier = if same_cycle { previous.and_then(|p| p.churn_crossed_at) } else { None };
    Churn { crossed_now, crossed_at: if crossed_now { Some(now) } else { earlier } }
}

/// The record of a fit, and whether it may become the current model.
fn fit_record(outcome: Result<Fit, FitError>, customers: u64, now: Timestamp, fit_ms: u64) -> (ModelRecord, bool) {
    let record = |fit: Option<&Fit>, accepted: bool, note: Option<String>| ModelRecord {
        id: 0,
        kind: BGNBD.into(),
        fitted_at: now,
        params: fit.map_or(
            json!({}),
            |f| json!({"r": f.params.r, "alpha": f.params.alpha, "a": f.params.a, "b": f.params.b, "unit": "day"}),
        ),
        log_likelihood: fit.map(|f| f.log_likelihood),
        customers: customers as i64,
        iterations: fit.map_or(0, |f| f.iterations as i64),
        converged: fit.is_some_and(|f| f.converged),
        accepted,
        at_risk: 0,
        duration_ms: fit_ms as i64,
        note,
    };
    match outcome {
        Ok(fit) if fit.converged && fit.log_likelihood.is_finite() => (record(Some(&fit), true, None), true),
        Ok(fit) => (record(Some(&fit), false, Some("did not converge; the last good model stays".into())), false),
        Err(FitError::NotConverged { fit }) => {
            (record(Some(&fit), false, Some("did not converge; the last good model stays".into())), false)
        }
        Err(FitError::Degenerate { fit }) => (
            record(
                Some(&fit),
                false,
                Some("no maximum: a parameter ran to its bound; the last good model stays".into()),
            ),
            false,
        ),
        Err(e) => (record(None, false, Some(format!("{e}; the last good model stays"))), false),
    }
}

/// The current model's parameters, if there is one.
pub async fn current_params(store: &Store) -> anyhow::Result<Option<(ModelRecord, Params)>> {
    let Some(model) = store.models(BGNBD, true, 1).await?.into_iter().next() else { return Ok(None) };
    let params = serde_json::from_value(model.params.clone()).context("stored model parameters")?;
    Ok(Some((model, params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(converged: bool, ll: f64) -> Fit {
        Fit {
            params: Params { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 },
            log_likelihood: ll,
            iterations: 40,
            converged,
            customers: 2357,
        }
    }

    fn history(last_purchase: &str) -> History {
        History {
            member_id: 1,
            joined: "2025-01-01T00:00:00Z".parse().unwrap(),
            purchase_days: 5,
            first_purchase: Some("2025-01-01T00:00:00Z".parse().unwrap()),
            last_purchase: Some(last_purchase.parse().unwrap()),
            spend: 100.0,
        }
    }

    #[test]
    fn a_crossing_is_going_below_a_threshold_not_being_below_it() {
        // CDNOW's parameters, read in days.
        let params = Params { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        let h = history("2025-06-01T00:00:00Z");
        let now: Timestamp = "2026-11-23T19:00:00Z".parse().unwrap();
        let earlier: Timestamp = "2026-11-01T19:00:00Z".parse().unwrap();
        let after_buying = bgnbd::p_alive(&params, &rfm::summary(&h, h.last_purchase.unwrap()).unwrap());
        let p_now = bgnbd::p_alive(&params, &rfm::summary(&h, now).unwrap());
        assert!(p_now < 0.5 && after_buying > 0.5, "{p_now} {after_buying}");
        let prev = |p: f64, last: &str, crossed: Option<Timestamp>| Previous {
            p_alive: Some(p),
            last_purchase_at: Some(last.parse().unwrap()),
            churn_crossed_at: crossed,
        };
        // First scoring ever: measured from just after the purchase, so it crossed.
        let c = churn_crossing(&[0.5], Some(&params), &h, Some(p_now), None, now);
        assert!(c.crossed_now && c.crossed_at == Some(now));
        // Above last night, below tonight: crossed tonight.
        let last = prev(0.6, "2025-06-01T00:00:00Z", None);
        let c = churn_crossing(&[0.5], Some(&params), &h, Some(p_now), Some(&last), now);
        assert!(c.crossed_now && c.crossed_at == Some(now));
        // Already below last night: no new crossing; the earlier one is kept.
        let last = prev(0.45, "2025-06-01T00:00:00Z", Some(earlier));
        let c = churn_crossing(&[0.5], Some(&params), &h, Some(p_now), Some(&last), now);
        assert!(!c.crossed_now && c.crossed_at == Some(earlier));
        // A purchase since: the old crossing is gone; and a threshold above even the P(alive)
        // right after buying is never crossed.
        let last = prev(0.45, "2025-03-01T00:00:00Z", Some(earlier));
        let c = churn_crossing(&[after_buying + 0.01], Some(&params), &h, Some(p_now), Some(&last), now);
        assert!(!c.crossed_now && c.crossed_at.is_none());
        // No model: no P(alive), no crossing.
        let c = churn_crossing(&[0.5], None, &h, None, None, now);
        assert!(!c.crossed_now && c.crossed_at.is_none());
    }

    #[test]
    fn only_a_converged_finite_fit_is_accepted() {
        let now: Timestamp = "2026-11-23T19:00:00Z".parse().unwrap();
        let (record, accepted) = fit_record(Ok(fit(true, -9582.4)), 2357, now, 12);
        assert!(accepted && record.accepted && record.converged);
        assert_eq!(record.params["alpha"], 4.414);
        assert_eq!(record.log_likelihood, Some(-9582.4));
        for outcome in
            [Ok(fit(false, -9582.4)), Ok(fit(true, f64::NAN)), Err(FitError::NotConverged { fit: fit(false, -1.0) })]
        {
            let (record, accepted) = fit_record(outcome, 2357, now, 12);
            assert!(!accepted && !record.accepted, "{record:?}");
            assert!(record.note.as_deref().is_some_and(|n| n.contains("last good model stays")), "{record:?}");
        }
        let (record, accepted) = fit_record(Err(FitError::Empty), 0, now, 1);
        assert!(!accepted);
        assert_eq!(record.params, json!({}));
        assert_eq!(record.log_likelihood, None);
    }
}
