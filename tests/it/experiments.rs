//! Experiments and conversions end to end: a win-back rule split between two variants and a
//! holdout, members who come back with a probability that depends on what they got, and the
//! report that must find the simulated truth.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tidings::config::Config;
use tidings::members::EventInput;
use tidings::store::{MessageFilter, MessageRow};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

const MEMBERS: usize = 10_000;

// Batches of 250 members: on SQLite the cost of enqueueing one batch grows faster than the
// batch (its INSERT … SELECT over json_each), and 10,000 members in batches of 2,000 take
// minutes there; in batches of 250, seconds.
const RULES: &str = r#"
[evaluation]
lookahead = "3h"
member_batch = 250

[[rules]]
id = "winback"
trigger = "inactivity"
days = 30
channels = ["sms"]
template = "winback"
send_at = "11:00"

[rules.experiment]
holdout = 0.2
variants = [
  { id = "a", weight = 1 },
  { id = "b", weight = 1, vars = { discount = "20%" } },
]

[rules.conversion]
window = "7d"
"#;

/// The simulated truth: the chance that a member of each arm comes back within the window.
fn truth(arm: &str) -> f64 {
    match arm {
        "holdout" => 0.05,
        "a" => 0.08,
        "b" => 0.12,
        other => panic!("unexpected arm {other:?}"),
    }
}

fn event(member: &str, id: String, kind: &str, at: Timestamp) -> EventInput {
    EventInput { event_id: Some(id), member: member.into(), kind: kind.into(), amount: Some(20.0), at, data: None }
}

async fn record(t: &TestApp, events: Vec<EventInput>) {
    for chunk in events.chunks(2000) {
        let counts = t.app.store.record_events(chunk, t.now()).await.unwrap();
        assert!(counts.unknown_members.is_empty(), "{:?}", counts.unknown_members);
    }
}

async fn get(t: &TestApp, uri: &str) -> (StatusCode, Value) {
    let router = t.router();
    let response = router.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn a_win_back_experiment_reports_the_simulated_uplift(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, "2026-11-01T00:00:00Z").await;
    let members: String = (0..MEMBERS)
        .map(|i| {
            json!({"external_id": format!("w{i:05}"), "name": "Lapsed", "phone": format!("+1415{i:07}"),
                        "time_zone": "UTC"})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(t.import_jsonl(&members).await.counts.inserted, MEMBERS as u64);
    // Everyone last bought on Oct 1: 30 days of silence end on Oct 31.
    let last: Timestamp = "2026-10-01T09:00:00Z".parse().unwrap();
    record(&t, (0..MEMBERS).map(|i| event(&format!("w{i:05}"), format!("old{i}"), "purchase", last)).collect()).await;

    t.set("2026-11-01T09:00:00Z");
    assert_eq!(t.tick().await.enqueued, MEMBERS as u64);
    t.set("2026-11-01T11:00:00Z");
    t.tick().await;
    t.dispatch_all().await;

    let filter = MessageFilter { rule_id: Some("winback".into()), limit: 2 * MEMBERS as u32, ..Default::default() };
    let rows: Vec<MessageRow> = t.app.store.messages(&filter).await.unwrap();
    assert_eq!(rows.len(), MEMBERS);
    let mut eligible: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        let arm = r.variant.clone().expect("every message records its arm");
        assert_eq!(r.experiment.as_deref(), Some("winback"));
        if arm == "holdout" {
            assert_eq!((r.state.as_str(), r.reason.as_deref()), ("skipped", Some("holdout")), "{r:?}");
        } else {
            assert_eq!(r.state, "sent", "{r:?}");
        }
        *eligible.entry(arm).or_default() += 1;
    }
    assert!((eligible["holdout"] as f64 / MEMBERS as f64 - 0.2).abs() < 0.02, "{eligible:?}");
    assert!((eligible["a"] as f64 - eligible["b"] as f64).abs() < 400.0, "{eligible:?}");
    // The outbox saw exactly the variants' members, with the variant's variables.
    let outbox = t.outbox();
    assert_eq!(outbox.len() as u64, eligible["a"] + eligible["b"]);

    // Each member comes back with their arm's probability, two days after the message (the
    // holdout: after the planned send). Noise that must not count: a visit (not a conversion
    // kind) inside the window, a purchase after it.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261101);
    let mut converted: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = Vec::new();
    for r in &rows {
        let arm = r.variant.clone().unwrap();
        let anchor = r.sent_at.unwrap_or(r.run_at);
        if rng.random::<f64>() < truth(&arm) {
            *converted.entry(arm.clone()).or_default() += 1;
            let at = anchor + SignedDuration::from_hours(48);
            events.push(event(&r.member, format!("buy-{}", r.id), "purchase", at));
        } else if rng.random::<f64>() < 0.1 {
            let at = anchor + SignedDuration::from_hours(24 * 8);
            events.push(event(&r.member, format!("late-{}", r.id), "purchase", at));
        } else if rng.random::<f64>() < 0.1 {
            let at = anchor + SignedDuration::from_hours(24);
            events.push(event(&r.member, format!("visit-{}", r.id), "visit", at));
        }
    }
    t.set("2026-11-20T00:00:00Z");
    record(&t, events).await;

    let report = t.app.report("winback", None).await.unwrap().expect("the rule exists");
    assert_eq!(report.arms.iter().map(|a| a.arm.as_str()).collect::<Vec<_>>(), ["a", "b", "holdout"]);
    for arm in &report.arms {
        let n = eligible[&arm.arm];
        let x = converted.get(&arm.arm).copied().unwrap_or(0);
        let sent = if arm.arm == "holdout" { 0 } else { n };
        assert_eq!(
            (arm.eligible, arm.sent, arm.delivered, arm.failed, arm.converted),
            (n, sent, 0, 0, x),
            "{}: counts as simulated",
            arm.arm
        );
        assert_eq!(arm.conversion_rate, Some(x as f64 / n as f64));
        if arm.arm == "holdout" {
            assert_eq!(arm.uplift, None);
            continue;
        }
        let u = arm.uplift.expect("a variant has an uplift over the holdout");
        let true_uplift = truth(&arm.arm) - truth("holdout");
        assert!(u.low <= true_uplift && true_uplift <= u.high, "{}: {u:?} misses {true_uplift}", arm.arm);
        assert!(u.low < u.absolute && u.absolute < u.high, "{u:?}");
    }
    // b's true uplift (7 points) is far from zero: the interval excludes no effect.
    assert!(report.arms[1].uplift.unwrap().low > 0.0, "{report:?}");

    // The API gives the same report; an unknown rule is named.
    let (status, body) = get(&t, "/api/reports/winback").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::to_value(&report).unwrap());
    let (status, body) = get(&t, "/api/reports/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].as_str().unwrap().contains("no rule \"nope\""), "{body}");
    let (status, body) = get(&t, "/api/reports/winback?since=yesterday").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("since")));
    // Members planned after the run: nobody.
    let (_, later) = get(&t, "/api/reports/winback?since=2026-11-02").await;
    assert!(later["arms"].as_array().unwrap().iter().all(|a| a["eligible"] == 0), "{later}");
    // The message API shows each message's arm.
    let (_, messages) = get(&t, "/api/messages?rule=winback&limit=5").await;
    assert!(
        messages["items"].as_array().unwrap().iter().all(|m| m["experiment"] == "winback" && m["variant"].is_string())
    );
}

async fn several_channels_count_a_member_once_with_receipts_and_failures(backend: Backend) {
    let rules = r#"
[[rules]]
id = "bday"
trigger = "birthday"
channels = ["sms", "email"]
template = "birthday"
send_at = "09:30"
[rules.conversion]
events = ["visit"]
window = "2d"
"#;
    let t = TestApp::start_on(backend, rules, "2026-05-01T00:00:00Z").await;
    let members = ["m1", "m2"]
        .iter()
        .map(|id| {
            json!({"external_id": id, "name": "Ada", "phone": "+14155550100", "email": format!("{id}@example.com"),
                   "time_zone": "UTC", "birth_date": "1990-05-01"})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    t.import_jsonl(&members).await;
    t.set("2026-05-01T09:30:00Z");
    t.tick().await;
    t.dispatch_all().await;
    let sent_at = t.now();
    // m1's SMS is delivered; both of m2's messages come back undelivered.
    let rows = t.app.store.messages(&MessageFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 4);
    let receipts: Vec<_> = rows
        .iter()
        .filter(|r| r.member == "m2" || r.channel == "sms")
        .map(|r| tidings::channels::Receipt {
            provider: "outbox",
            provider_id: r.provider_id.clone().expect("sent"),
            status: if r.member == "m1" {
                tidings::channels::DeliveryStatus::Delivered
            } else {
                tidings::channels::DeliveryStatus::Undelivered
            },
            code: None,
            at: None,
        })
        .collect();
    assert_eq!(t.app.store.record_receipts(&receipts, t.now()).await.unwrap(), 3);
    record(
        &t,
        vec![
            event("m1", "v1".into(), "visit", sent_at + SignedDuration::from_hours(1)),
            event("m1", "v2".into(), "visit", sent_at + SignedDuration::from_hours(2)),
            event("m2", "p1".into(), "purchase", sent_at + SignedDuration::from_hours(1)),
        ],
    )
    .await;
    let report = t.app.report("bday", None).await.unwrap().unwrap();
    assert_eq!(report.arms.len(), 1);
    let all = &report.arms[0];
    // Two members, two channels each: two units. m1 got through (one delivered, one sent), m2
    // got nothing (both undelivered). Only m1 visited: a purchase is not this rule's conversion.
    assert_eq!(
        (all.arm.as_str(), all.eligible, all.sent, all.delivered, all.failed, all.converted, all.uplift),
        ("all", 2, 1, 1, 1, 1, None)
    );
    assert_eq!((report.window.as_str(), report.conversion_events.clone()), ("2d", vec!["visit".to_string()]));
}

on_both_backends!(
    a_win_back_experiment_reports_the_simulated_uplift,
    several_channels_count_a_member_once_with_receipts_and_failures
);

fn problems(toml: &str) -> String {
    match Config::from_toml(toml, "test.toml", Vec::new()).and_then(Config::check) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

const RULE: &str =
    "[[rules]]\nid = \"w\"\ntrigger = \"inactivity\"\ndays = 30\nchannels = [\"sms\"]\ntemplate = \"winback\"\n";

#[test]
fn experiment_settings_are_checked_with_their_keys() {
    let e = problems(&format!(
        "{RULE}[rules.experiment]\nholdout = 1.0\nvariants = [{{ id = \"a\", weight = 0 }}, {{ id = \"a\" }}, \
         {{ id = \"holdout\" }}, {{ id = \"c\", vars = {{ days = 3 }} }}]\n\
         [rules.conversion]\nwindow = \"soon\"\nevents = []\n"
    ));
    for expected in [
        "rules[0].experiment.holdout",
        "rules[0].experiment.variants[0].weight",
        "rules[0].experiment.variants[1].id: \"a\" is used by another variant",
        "rules[0].experiment.variants[2].id",
        "rules[0].experiment.variants[3].vars: \"days\" would hide",
        "rules[0].conversion.window",
        "rules[0].conversion.events",
    ] {
        assert!(e.contains(expected), "{expected} missing from:\n{e}");
    }
    let e = problems(&format!("{RULE}[rules.experiment]\nvariants = []\n"));
    assert!(e.contains("rules[0].experiment.variants: name at least one variant"), "{e}");
    let e = problems(&format!("{RULE}[rules.experiment]\nvariants = [{{ id = \"a\" }}]\nsplit = 2\n"));
    assert!(e.contains("split"), "unknown keys are rejected: {e}");
    // A variant's template must exist: a start-up check, naming the variant.
    let settings = Config::from_toml(
        &format!("{RULE}[rules.experiment]\nvariants = [{{ id = \"a\" }}, {{ id = \"b\", template = \"nope\" }}]\n"),
        "test.toml",
        Vec::new(),
    )
    .and_then(Config::check)
    .unwrap();
    let Err(e) = tidings::app::App::check(&settings) else { panic!("a missing template is refused") };
    let e = e.to_string();
    assert!(e.contains("rules[0].experiment.variants[1].template: \"nope\""), "{e}");
}
