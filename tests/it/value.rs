//! Member value end to end on both backends: purchase events in, the nightly refresh fits the
//! BG/NBD model and scores every member, a `churn_risk` rule writes to the members who drifted
//! away once (and again only after they bought and drifted away again), and a fit that cannot
//! converge never replaces the last good model.

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tidings::members::EventInput;
use tidings::members::refresh::BGNBD;
use tidings::store::{MessageFilter, ModelRecord};

use crate::support::app::{Backend, TestApp};

const RULES: &str = r#"
[evaluation]
lookahead = "2h"
[[rules]]
id = "drifting"
trigger = "churn_risk"
below = 0.5
channels = ["sms"]
template = "churn"
send_at = "10:00"
[[rules]]
id = "hair-trigger"
trigger = "churn_risk"
below = 0.999
channels = ["sms"]
template = "churn"
send_at = "10:00"
"#;

fn purchase(member: &str, id: String, at: Timestamp) -> EventInput {
    EventInput {
        event_id: Some(id),
        member: member.into(),
        kind: "purchase".into(),
        amount: Some(25.0),
        at,
        data: None,
    }
}

/// 300 customers whose habits the model can learn (a purchase every 10 to 60 days, some stop
/// after a few), plus `loyal` (buys every week) and `gone` (bought weekly for two months a year
/// ago, then nothing).
async fn customers(t: &TestApp) {
    let now = t.now();
    let day = |d: i64| SignedDuration::from_hours(24 * d);
    let mut rng = StdRng::seed_from_u64(7);
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for i in 0..300 {
        let id = format!("c{i}");
        lines.push(
            json!({"external_id": id, "name": format!("C {i}"), "phone": format!("+1415555{i:04}"),
                          "time_zone": "UTC"})
            .to_string(),
        );
        let mut at = now - day(rng.random_range(200..400));
        let gap = rng.random_range(10..60);
        let stops_after = if rng.random_bool(0.4) { rng.random_range(1..4) } else { 1000 };
        let mut n = 0;
        while at < now && n <= stops_after {
            events.push(purchase(&id, format!("c{i}-{n}"), at));
            at += day(gap + rng.random_range(0..10));
            n += 1;
        }
    }
    for (id, zone) in [("loyal", "Asia/Shanghai"), ("gone", "Asia/Shanghai")] {
        lines.push(json!({"external_id": id, "name": id, "phone": "+8613800138000", "time_zone": zone}).to_string());
    }
    for w in 0..50 {
        events.push(purchase("loyal", format!("loyal-{w}"), now - day(7 * w + 1)));
    }
    for w in 0..8 {
        events.push(purchase("gone", format!("gone-{w}"), now - day(365 - 7 * w)));
    }
    let report = t.import_jsonl(&lines.join("\n")).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let counts = t.app.store.record_events(&events, now).await.unwrap();
    assert_eq!(counts.recorded as usize, events.len());
}

async fn member(t: &TestApp, id: &str) -> tidings::members::Member {
    t.app.store.member_by_external_id(id).await.unwrap().unwrap()
}

async fn churn_messages(t: &TestApp) -> Vec<tidings::store::MessageRow> {
    let filter = MessageFilter { rule_id: Some("drifting".into()), limit: 100_000, ..Default::default() };
    t.app.store.messages(&filter).await.unwrap()
}

async fn the_refresh_scores_every_member_and_churn_risk_writes_once_until_the_next_purchase(backend: Backend) {
    // 19:00 UTC: the nightly refresh's default time; 03:00 in Shanghai.
    let t = TestApp::start_on(backend, RULES, "2026-11-22T19:00:00Z").await;
    customers(&t).await;
    t.tick().await;
    assert!(churn_messages(&t).await.is_empty(), "nobody is scored yet");

    let report = t.app.refresh_value().await.unwrap().expect("the evaluator lock is free");
    assert!(report.fit.accepted, "{report:?}");
    assert_eq!(report.members, 302);
    assert_eq!(report.customers, 302);
    let params = &report.fit.params;
    for k in ["r", "alpha", "a", "b"] {
        assert!(params[k].as_f64().is_some_and(|v| v > 0.0 && v.is_finite()), "{k} in {params}");
    }
    assert_eq!(t.app.store.models(BGNBD, true, 1).await.unwrap()[0].id, report.fit.id);

    let loyal = member(&t, "loyal").await.value.expect("scored");
    let gone = member(&t, "gone").await.value.expect("scored");
    assert!(loyal.p_alive.unwrap() > 0.9, "{loyal:?}");
    assert!(gone.p_alive.unwrap() < 0.2, "{gone:?}");
    assert!(loyal.expected_purchases.unwrap() > gone.expected_purchases.unwrap());
    assert_eq!((loyal.r, loyal.f), (5, 5), "{loyal:?}");
    assert_eq!(loyal.frequency, 50);
    assert_eq!(gone.segment.as_str(), "lapsed", "no purchase for 300 days");
    assert!(report.crossed >= 1 && report.at_risk >= 1, "{report:?}");
    assert_eq!(report.segments.values().sum::<u64>(), 302);
    let stored: std::collections::BTreeMap<String, u64> =
        t.app.store.segment_counts().await.unwrap().into_iter().map(|(s, n)| (s, n as u64)).collect();
    assert_eq!(stored, report.segments);
    assert_eq!(t.app.store.count_below(0.5).await.unwrap() as u64, report.at_risk);

    // `gone` is written to at the next 10:00 in Shanghai, 02:00 UTC; `loyal` is not.
    t.run_until("2026-11-23T03:00:00Z", SignedDuration::from_mins(30)).await;
    let planned = churn_messages(&t).await;
    let gone_id = member(&t, "gone").await.id;
    let to_gone: Vec<_> = planned.iter().filter(|m| m.member == "gone").collect();
    assert_eq!(to_gone.len(), 1, "{planned:?}");
    assert_eq!(to_gone[0].run_at.to_string(), "2026-11-23T02:00:00Z");
    assert_eq!(to_gone[0].state.as_str(), "sent");
    assert!(planned.iter().all(|m| m.member != "loyal"));
    // Just after buying, `loyal`'s P(alive) is already below 0.999 (it is below 1 for anyone who
    // bought twice): that is not a crossing, so the hair-trigger rule never writes to them.
    assert!(member(&t, "loyal").await.value.unwrap().p_alive.unwrap() < 0.999);
    let filter = MessageFilter { rule_id: Some("hair-trigger".into()), limit: 100_000, ..Default::default() };
    let hair = t.app.store.messages(&filter).await.unwrap();
    assert!(hair.iter().any(|m| m.member == "gone"), "{hair:?}");
    assert!(hair.iter().all(|m| m.member != "loyal"), "{hair:?}");
    let sent: Vec<_> =
        t.outbox().into_iter().filter(|m| m["to"] == "+8613800138000" && m["rule"] == "drifting").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");

    // The next night: still below, the same last purchase: nothing new.
    t.set("2026-11-23T19:00:00Z");
    let again = t.app.refresh_value().await.unwrap().unwrap();
    assert_eq!(again.crossed, 0, "already below since last night");
    t.run_until("2026-11-24T03:00:00Z", SignedDuration::from_mins(30)).await;
    let after = churn_messages(&t).await;
    assert_eq!(after.iter().filter(|m| m.member == "gone").count(), 1, "{after:?}");

    // `gone` comes back and buys, then drifts away again: a new key, one more message.
    let back = t.now();
    t.app.store.record_events(&[purchase("gone", "gone-back".into(), back)], back).await.unwrap();
    t.set("2026-11-24T19:00:00Z");
    t.app.refresh_value().await.unwrap().unwrap();
    assert!(member(&t, "gone").await.value.unwrap().p_alive.unwrap() > 0.5, "just bought");
    t.set("2027-11-24T19:00:00Z");
    let later = t.app.refresh_value().await.unwrap().unwrap();
    assert!(later.crossed >= 1);
    assert!(member(&t, "gone").await.value.unwrap().p_alive.unwrap() < 0.5);
    t.run_until("2027-11-25T03:00:00Z", SignedDuration::from_mins(30)).await;
    let keys: Vec<String> =
        churn_messages(&t).await.into_iter().filter(|m| m.member == "gone").map(|m| m.dedupe_key).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(&format!(":{gone_id}:churn:2026-11-24T03:00:00Z:"))), "{keys:?}");
}

async fn a_fit_that_fails_keeps_the_last_good_model(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, "2026-11-22T19:00:00Z").await;
    // The model fitted on some earlier, healthier night.
    let good = ModelRecord {
        id: 0,
        kind: BGNBD.into(),
        fitted_at: "2026-11-01T19:00:00Z".parse().unwrap(),
        params: json!({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "unit": "day"}),
        log_likelihood: Some(-9582.4),
        customers: 2357,
        iterations: 40,
        converged: true,
        accepted: true,
        at_risk: 12,
        duration_ms: 5,
        note: None,
    };
    let good_id = t.app.store.record_model(&good).await.unwrap();
    // Tonight every customer has bought once: no repeat purchase to fit on.
    let now = t.now();
    let lines: Vec<String> = (0..20)
        .map(|i| json!({"external_id": format!("o{i}"), "name": "One", "time_zone": "UTC"}).to_string())
        .collect();
    t.import_jsonl(&lines.join("\n")).await;
    let events: Vec<EventInput> = (0..20)
        .map(|i| purchase(&format!("o{i}"), format!("o{i}"), now - SignedDuration::from_hours(24 * (i + 1))))
        .collect();
    t.app.store.record_events(&events, now).await.unwrap();

    let report = t.app.refresh_value().await.unwrap().unwrap();
    assert!(!report.fit.accepted, "{report:?}");
    assert!(report.fit.note.as_deref().is_some_and(|n| n.contains("last good model stays")), "{report:?}");
    assert_eq!(report.model.as_ref().map(|m| m.id), Some(good_id));
    let current = t.app.store.models(BGNBD, true, 5).await.unwrap();
    assert_eq!(current.iter().map(|m| m.id).collect::<Vec<_>>(), vec![good_id]);
    let attempts = t.app.store.models(BGNBD, false, 5).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].accepted && attempts[0].id > good_id);
    // Members were still scored, with the last good model: one purchase, so P(alive) is 1.
    let v = member(&t, "o3").await.value.expect("scored");
    assert_eq!(v.p_alive, Some(1.0));
    assert_eq!(v.frequency, 1);
}

on_both_backends!(
    the_refresh_scores_every_member_and_churn_risk_writes_once_until_the_next_purchase,
    a_fit_that_fails_keeps_the_last_good_model,
);
