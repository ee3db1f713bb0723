//! Journeys and coupons end to end, on both backends, with the manual clock: the win-back journey
//! (SMS with a pool coupon on day 0, email on day 7, push on day 14), a purchase between steps
//! exiting it, a step's `unless` condition, re-entry refused within the gap and allowed after,
//! pools issuing each code once, an exhausted pool, and signed codes.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tidings::members::EventInput;
use tidings::store::MessageFilter;
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

/// The shipped win-back journey (see `journeys::config::default_journeys`), enabled, with no
/// rules beside it. Members are in UTC, so day 0 is the first 10:00Z after the crossing.
const WINBACK: &str = r#"
rules = []

[programme]
time_zone = "UTC"

[coupons]
warn_below = 2

[[journeys]]
id = "winback"
trigger = "inactivity"
days = 60
send_at = "10:00"
max_lateness = "12h"
exit_on = ["purchase"]
reentry = "after 90d"

[[journeys.steps]]
after = "0d"
channel = "sms"
template = "winback_journey"
coupon = "winback"

[[journeys.steps]]
after = "7d"
channel = "email"
template = "winback_journey"
unless = ["purchase"]

[[journeys.steps]]
after = "14d"
channel = "push"
template = "winback_journey"
unless = ["purchase"]
"#;

const START: &str = "2026-03-01T00:00:00Z";

async fn post(router: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string()));
    call(router, req.unwrap()).await
}

async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn router(t: &TestApp) -> Router {
    t.router()
}

/// Members in UTC with a phone and an email, last active at `last` (a purchase).
async fn members(t: &TestApp, ids: &[&str], last: &str) {
    let lines: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"external_id": id, "name": format!("Member {id}"), "phone": format!("+1415555{i:04}"),
                   "email": format!("{id}@example.com"), "time_zone": "UTC", "locale": "en"})
            .to_string()
        })
        .collect();
    let report = t.import_jsonl(&lines.join("\n")).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let events: Vec<EventInput> = ids
        .iter()
        .map(|id| EventInput {
            event_id: None,
            member: id.to_string(),
            kind: "purchase".into(),
            amount: Some(10.0),
            at: last.parse().unwrap(),
            data: None,
        })
        .collect();
    t.app.store.record_events(&events, t.now()).await.unwrap();
}

/// `(occurrence step and channel, state, reason)` of a member's messages of `rule`, by key.
async fn messages_of(t: &TestApp, rule: &str, member: &str) -> Vec<(String, String, Option<String>)> {
    let f = MessageFilter {
        rule_id: Some(rule.into()),
        member: Some(member.into()),
        limit: 100,
        ..MessageFilter::default()
    };
    let mut rows: Vec<_> = t
        .app
        .store
        .messages(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let step = m.occurrence.rsplit(':').next().unwrap().to_string();
            (format!("{step}:{}", m.channel), m.state, m.reason)
        })
        .collect();
    rows.sort();
    rows
}

/// The outbox lines for one member, as `(dedupe key, message text)`.
fn outbox_of(t: &TestApp, member: &str) -> Vec<(String, String)> {
    t.outbox()
        .into_iter()
        .filter(|l| l["member"] == member)
        .map(|l| (l["dedupe_key"].as_str().unwrap().to_string(), l["message"].to_string()))
        .collect()
}

async fn import_codes(router: &Router, pool: &str, codes: &[&str]) -> Value {
    let (status, body) = post(router, &format!("/api/coupons/{pool}"), json!({ "codes": codes })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn the_winback_journey_sends_day_0_7_and_14_and_a_purchase_between_steps_ends_it(backend: Backend) {
    let t = TestApp::start_on(backend, WINBACK, START).await;
    let api = router(&t);
    // Last purchase Jan 1st, 12:00: sixty days of silence end on Mar 2nd at 12:00, so day 0 is
    // Mar 3rd at 10:00, day 7 Mar 10th, day 14 Mar 17th.
    members(&t, &["stays", "buys"], "2026-01-01T12:00:00Z").await;
    let body = import_codes(&api, "winback", &["SAVE-AAA", "SAVE-BBB", "SAVE-CCC", "SAVE-AAA"]).await;
    assert_eq!((body["imported"].as_u64(), body["duplicate"].as_u64()), (Some(3), Some(0)), "{body}");

    t.run_until("2026-03-04T00:00:00Z", SignedDuration::from_hours(2)).await;
    for m in ["stays", "buys"] {
        assert_eq!(
            messages_of(&t, "winback", m).await,
            vec![
                ("s1:sms".into(), "sent".into(), None),
                ("s2:email".into(), "scheduled".into(), None),
                ("s3:push".into(), "scheduled".into(), None),
            ],
            "{m}: every step is enqueued at entry, the first sent"
        );
    }
    let mut codes = Vec::new();
    for m in ["stays", "buys"] {
        let sent = outbox_of(&t, m);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].0.ends_with(":s1:sms"), "{sent:?}");
        assert_eq!(t.outbox().iter().find(|l| l["member"] == m).unwrap()["at"], "2026-03-03T10:00:00Z");
        let code = ["SAVE-AAA", "SAVE-BBB", "SAVE-CCC"].into_iter().find(|c| sent[0].1.contains(c));
        codes.push(code.unwrap_or_else(|| panic!("no pool code in {}", sent[0].1)));
    }
    assert_ne!(codes[0], codes[1], "each code goes to one member");
    let (_, pools) = get(&api, "/api/coupons").await;
    assert_eq!(pools["pools"][0]["remaining"], 1, "{pools}");
    assert_eq!(pools["pools"][0]["low"], true, "below warn_below = 2: {pools}");

    // Sent on its day at send_at (the clock moves in two-hour steps, so it went out then).
    // "buys" makes a purchase on day 3: the journey ends at once, before the API answers.
    t.set("2026-03-06T16:00:00Z");
    let (status, body) = post(&api, "/api/events", json!({"member": "buys", "kind": "purchase", "amount": 30})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let exited = vec![
        ("s1:sms".to_string(), "sent".to_string(), None),
        ("s2:email".into(), "skipped".into(), Some("journey exited: purchase".to_string())),
        ("s3:push".into(), "skipped".into(), Some("journey exited: purchase".to_string())),
    ];
    assert_eq!(messages_of(&t, "winback", "buys").await, exited);

    t.run_until("2026-03-18T00:00:00Z", SignedDuration::from_hours(2)).await;
    assert_eq!(messages_of(&t, "winback", "buys").await, exited, "nothing more for the buyer");
    assert_eq!(outbox_of(&t, "buys").len(), 1);
    let stays = outbox_of(&t, "stays");
    let keys: Vec<&str> = stays.iter().map(|(k, _)| k.split_once(":inactive60:").unwrap().1).collect();
    assert_eq!(
        keys,
        ["2026-03-02T12:00:00Z:s1:sms", "2026-03-02T12:00:00Z:s2:email", "2026-03-02T12:00:00Z:s3:push"],
        "{stays:?}"
    );
    let at: Vec<String> =
        t.outbox().iter().filter(|l| l["member"] == "stays").map(|l| l["at"].as_str().unwrap().to_string()).collect();
    assert_eq!(at, ["2026-03-03T10:00:00Z", "2026-03-10T10:00:00Z", "2026-03-17T10:00:00Z"]);

    // The runs: the buyer's exited with the reason, the other completed with its last step.
    let (_, runs) = get(&api, "/api/journeys/runs?journey=winback").await;
    let mut runs: Vec<(String, Value)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["state"].as_str().unwrap().to_string(), r["exit_reason"].clone()))
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(runs, vec![("completed".into(), Value::Null), ("exited".into(), json!("journey exited: purchase"))]);
}

/// A journey where only the day-7 step has an `unless`: a purchase after entry skips it when it
/// comes due (the run is not exited), while the day-14 step, without a condition, still goes.
/// Day 0 carries a signed code.
const UNLESS: &str = r#"
rules = []

[programme]
time_zone = "UTC"

[coupons]
secret = "0123456789abcdef0123456789abcdef"

[[journeys]]
id = "nudge"
trigger = "inactivity"
days = 60
send_at = "10:00"

[[journeys.steps]]
after = "0d"
channel = "sms"
template = "winback_journey"
coupon = { signed = "WB" }

[[journeys.steps]]
after = "7d"
channel = "email"
template = "winback_journey"
unless = ["purchase"]

[[journeys.steps]]
after = "14d"
channel = "push"
template = "winback_journey"
"#;

async fn a_step_unless_condition_skips_that_step_only_and_signed_codes_verify(backend: Backend) {
    let t = TestApp::start_on(backend, UNLESS, START).await;
    let api = router(&t);
    members(&t, &["m1"], "2026-01-01T12:00:00Z").await;
    t.run_until("2026-03-04T00:00:00Z", SignedDuration::from_hours(3)).await;
    let sms = outbox_of(&t, "m1");
    assert_eq!(sms.len(), 1);
    let code = sms[0].1.split("code ").nth(1).unwrap().split('.').next().unwrap().to_string();
    assert!(code.starts_with("WB-"), "{code}");
    let (_, verdict) = post(&api, "/api/coupons/verify", json!({ "code": code })).await;
    assert_eq!(verdict, json!({"valid": true, "prefix": "WB"}));
    let (_, verdict) = post(&api, "/api/coupons/verify", json!({ "code": "WB-23456789ABCDEFGH" })).await;
    assert_eq!(verdict["valid"], false, "{verdict}");

    t.set("2026-03-05T09:00:00Z");
    let (status, _) = post(&api, "/api/events", json!({"member": "m1", "kind": "purchase"})).await;
    assert_eq!(status, StatusCode::OK);
    t.run_until("2026-03-18T00:00:00Z", SignedDuration::from_hours(3)).await;
    let rows = messages_of(&t, "nudge", "m1").await;
    assert_eq!(rows[0], ("s1:sms".into(), "sent".into(), None));
    assert_eq!(rows[1].0, "s2:email");
    assert_eq!(rows[1].1, "skipped");
    assert!(
        rows[1]
            .2
            .as_deref()
            .is_some_and(|r| r.starts_with("unless purchase: the member had one at 2026-03-05T09:00:00Z")),
        "{rows:?}"
    );
    assert_eq!(rows[2], ("s3:push".into(), "sent".into(), None), "no condition on day 14, no exit_on");
}

/// Ten days of silence enter; the journey may be entered again only 30 days after the last entry.
const REENTRY: &str = r#"
rules = []

[programme]
time_zone = "UTC"

[[journeys]]
id = "quiet"
trigger = "inactivity"
days = 10
send_at = "10:00"
reentry = "after 30d"

[[journeys.steps]]
after = "0d"
channel = "sms"
template = "winback_journey"
coupon = "quiet"
"#;

async fn reentry_is_refused_within_the_gap_and_allowed_after(backend: Backend) {
    let t = TestApp::start_on(backend, REENTRY, START).await;
    let api = router(&t);
    import_codes(&api, "quiet", &["Q1", "Q2", "Q3"]).await;
    members(&t, &["m1"], "2026-03-01T00:00:00Z").await;
    let visit = |at: &str| EventInput {
        event_id: None,
        member: "m1".into(),
        kind: "visit".into(),
        amount: None,
        at: at.parse().unwrap(),
        data: None,
    };
    // Crossing Mar 11th: entered, one SMS.
    t.run_until("2026-03-12T00:00:00Z", SignedDuration::from_hours(3)).await;
    assert_eq!(outbox_of(&t, "m1").len(), 1, "{:?}", messages_of(&t, "quiet", "m1").await);
    // A visit on Mar 13th: silent again from Mar 23rd, 12 days after entry: refused.
    t.set("2026-03-13T00:00:00Z");
    t.app.store.record_events(&[visit("2026-03-13T00:00:00Z")], t.now()).await.unwrap();
    t.run_until("2026-04-05T00:00:00Z", SignedDuration::from_hours(3)).await;
    assert_eq!(outbox_of(&t, "m1").len(), 1, "re-entry within 30 days is refused");
    assert_eq!(t.app.store.journey_runs(Some("quiet"), 10).await.unwrap().len(), 1);
    // A visit on Apr 5th: silent again from Apr 15th, 35 days after entry: a second run.
    t.app.store.record_events(&[visit("2026-04-05T00:00:00Z")], t.now()).await.unwrap();
    t.run_until("2026-04-16T00:00:00Z", SignedDuration::from_hours(3)).await;
    let sent = outbox_of(&t, "m1");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1].0.contains("inactive10:2026-04-15"), "{sent:?}");
    assert_eq!(t.app.store.journey_runs(Some("quiet"), 10).await.unwrap().len(), 2);
}

async fn a_pool_issues_each_code_once_and_an_exhausted_pool_skips_with_a_reason(backend: Backend) {
    let t = TestApp::start_on(backend, REENTRY, START).await;
    let api = router(&t);
    let body = import_codes(&api, "quiet", &["ONLY-ONE", " ", "ONLY-ONE"]).await;
    assert_eq!(body["imported"], 1, "{body}");
    let (status, body) = post(&api, "/api/coupons/quiet", json!({"codes": ["has space"]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "codes[0]", "{body}");
    members(&t, &["a", "b"], "2026-03-01T00:00:00Z").await;
    t.run_until("2026-03-12T00:00:00Z", SignedDuration::from_hours(3)).await;
    let mut rows = [messages_of(&t, "quiet", "a").await, messages_of(&t, "quiet", "b").await].concat();
    rows.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(rows[0], ("s1:sms".into(), "sent".into(), None), "{rows:?}");
    assert_eq!(rows[1], ("s1:sms".into(), "skipped".into(), Some("coupon pool \"quiet\" exhausted".into())));
    let sent: Vec<Value> = t.outbox();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["message"].to_string().contains("ONLY-ONE"));
    let (_, pools) = get(&api, "/api/coupons").await;
    assert_eq!(pools["pools"], json!([{"pool": "quiet", "total": 1, "remaining": 0, "warn_below": 100, "low": true}]));

    // Issuing is idempotent per message: a retry of the sent message gets its code again, and
    // the skipped one takes a code imported since, not that one.
    let id = t.outbox()[0]["id"].as_i64().unwrap();
    let again = t.app.store.issue_coupons("quiet", &[(id, 1)], t.now()).await.unwrap();
    assert_eq!(again, vec![(id, "ONLY-ONE".to_string())]);
    let f = MessageFilter { rule_id: Some("quiet".into()), limit: 10, ..MessageFilter::default() };
    let rows = t.app.store.messages(&f).await.unwrap();
    let skipped = rows.iter().find(|m| m.state == "skipped").unwrap();
    t.app.store.import_coupons("quiet", &["NEXT".into()], t.now()).await.unwrap();
    let mut both =
        t.app.store.issue_coupons("quiet", &[(id, 1), (skipped.id, skipped.member_id)], t.now()).await.unwrap();
    both.sort();
    let mut expected = vec![(id, "ONLY-ONE".to_string()), (skipped.id, "NEXT".to_string())];
    expected.sort();
    assert_eq!(both, expected);
}

on_both_backends!(
    the_winback_journey_sends_day_0_7_and_14_and_a_purchase_between_steps_ends_it,
    a_step_unless_condition_skips_that_step_only_and_signed_codes_verify,
    reentry_is_refused_within_the_gap_and_allowed_after,
    a_pool_issues_each_code_once_and_an_exhausted_pool_skips_with_a_reason,
);
