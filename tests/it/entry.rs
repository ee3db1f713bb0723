//! Entry triggers beyond the calendar and transactional sends, on both backends, with the clock
//! injected: a welcome on joining (once, not again on re-import), a thank-you for the first
//! purchase only, congratulations on a tier upgrade (not a downgrade), a host event's data in
//! its template, points expiring seven days before, an event recorded late still found, a new
//! rule not greeting past events, and the transactional API, idempotent on its key.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tidings::members::EventInput;
use tidings::store::{MessageFilter, MessageRow};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};
use crate::support::copy_dir;

const NOW: &str = "2026-11-23T08:00:00Z";

/// The repository's templates plus the ones these rules send, each with the fixture its
/// variables need.
fn templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"), dir.path());
    let write = |key: &str, sms: &str, fixture: Value| {
        std::fs::create_dir_all(dir.path().join(key).join("en")).unwrap();
        std::fs::write(dir.path().join(key).join("en/sms.hbs"), sms).unwrap();
        std::fs::write(dir.path().join(key).join("fixture.json"), fixture.to_string()).unwrap();
    };
    write("welcome", "Welcome to {{programme.name}}, {{member.name}}!", json!({}));
    write("thanks", "Thank you for your first order, {{member.name}}.", json!({}));
    write(
        "tier-up",
        "Congratulations {{member.name}}: you are {{occurrence.event.to}} now.",
        json!({"event": {"to": "gold"}}),
    );
    write("shipped", "Order {{occurrence.event.order}} is on its way.", json!({"event": {"order": "A-1"}}));
    write("expiring", "Your points expire on {{occurrence.attribute_date}}.", json!({"attribute_date": "2026-12-31"}));
    write("receipt", "Receipt {{occurrence.order}}: {{occurrence.total}}.", json!({"order": "A-1", "total": "9.90"}));
    dir
}

fn config(dir: &Path) -> String {
    format!(
        r#"
# A member here joins, buys and moves up a tier within a day or two: the triggers are what is
# tested, so the frequency caps (tests/it/caps.rs) are off.
caps = []
[programme]
time_zone = "UTC"
tiers = ["silver", "gold", "platinum"]
[templates]
dir = "{}"
[[rules]]
id = "welcome"
trigger = "event"
event = "member.joined"
channels = ["sms"]
template = "welcome"
[[rules]]
id = "thanks"
trigger = "event"
event = "member.first_purchase"
delay = "2h"
channels = ["sms"]
template = "thanks"
[[rules]]
id = "tier-up"
trigger = "event"
event = ["member.tier_upgraded"]
channels = ["sms"]
template = "tier-up"
[[rules]]
id = "shipped"
trigger = "event"
event = "order.shipped"
event_data = ["order"]
delay = "1h"
channels = ["sms"]
template = "shipped"
purpose = "service"
[[rules]]
id = "expiring"
trigger = "date"
attribute = "points_expire_on"
offset_days = -7
send_at = "10:00"
channels = ["sms"]
template = "expiring"
"#,
        dir.display()
    )
}

struct Entry {
    t: TestApp,
    _templates: tempfile::TempDir,
}

async fn start(backend: Backend) -> Entry {
    let dir = templates();
    let t = TestApp::start_on(backend, &config(dir.path()), NOW).await;
    Entry { t, _templates: dir }
}

fn member(id: &str, tier: &str) -> String {
    json!({"external_id": id, "name": id, "phone": "+14155550100", "locale": "en", "tier": tier}).to_string()
}

async fn messages(t: &TestApp, rule: &str) -> Vec<MessageRow> {
    let f = MessageFilter { rule_id: Some(rule.into()), limit: 1000, ..Default::default() };
    let mut rows = t.app.store.messages(&f).await.unwrap();
    rows.sort_by_key(|m| m.id);
    rows
}

fn event(member: &str, id: &str, kind: &str, at: jiff::Timestamp) -> EventInput {
    EventInput {
        event_id: Some(id.into()),
        member: member.into(),
        kind: kind.into(),
        amount: Some(20.0),
        at,
        data: None,
    }
}

fn router(t: &TestApp) -> Router {
    t.router()
}

async fn post(t: &TestApp, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(t).oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The SMS texts the outbox wrote for a rule.
fn texts(t: &TestApp, rule: &str) -> Vec<String> {
    t.outbox()
        .iter()
        .filter(|m| m["rule"] == rule)
        .map(|m| m["message"]["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn a_new_member_is_welcomed_once_and_not_again_on_re_import(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("ada", "silver")).await;
    t.tick().await;
    let sent = messages(&t, "welcome").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].run_at, t.now(), "at once: no delay, no send_at");
    assert!(sent[0].occurrence.starts_with("event:"), "{sent:?}");
    t.dispatch_all().await;
    assert_eq!(texts(&t, "welcome"), ["Welcome to Tidings Club, ada!"]);

    // The same row again, and a changed one: neither is a join.
    t.advance(SignedDuration::from_mins(5));
    t.import_jsonl(&member("ada", "silver")).await;
    t.import_jsonl(&json!({"external_id": "ada", "name": "Ada L", "tier": "silver"}).to_string()).await;
    t.tick().await;
    t.advance(SignedDuration::from_mins(5));
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(messages(&t, "welcome").await.len(), 1);
    assert_eq!(t.outbox().iter().filter(|m| m["rule"] == "welcome").count(), 1);
}

async fn only_the_first_purchase_is_thanked(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("bo", "silver")).await;
    let store = &t.app.store;
    store.record_events(&[event("bo", "v1", "visit", t.now())], t.now()).await.unwrap();
    t.tick().await;
    assert!(messages(&t, "thanks").await.is_empty(), "a visit is not a purchase");

    t.advance(SignedDuration::from_mins(10));
    let first = t.now();
    store.record_events(&[event("bo", "p1", "purchase", first)], t.now()).await.unwrap();
    // Retried by the host: still one first purchase.
    store.record_events(&[event("bo", "p1", "purchase", first)], t.now()).await.unwrap();
    t.tick().await;
    t.advance(SignedDuration::from_mins(10));
    store.record_events(&[event("bo", "p2", "purchase", t.now())], t.now()).await.unwrap();
    t.tick().await;
    let thanks = messages(&t, "thanks").await;
    assert_eq!(thanks.len(), 1, "{thanks:?}");
    assert_eq!(thanks[0].run_at, first.checked_add(SignedDuration::from_hours(2)).unwrap(), "two hours after");
    t.run_until("2026-11-23T11:00:00Z", SignedDuration::from_mins(30)).await;
    assert_eq!(texts(&t, "thanks"), ["Thank you for your first order, bo."]);
}

async fn a_tier_upgrade_is_congratulated_and_a_downgrade_is_not(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("cy", "silver")).await;
    t.tick().await;
    t.advance(SignedDuration::from_mins(1));
    t.import_jsonl(&member("cy", "gold")).await;
    t.tick().await;
    t.advance(SignedDuration::from_mins(1));
    t.import_jsonl(&member("cy", "silver")).await;
    t.tick().await;
    t.dispatch_all().await;
    let up = messages(&t, "tier-up").await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(texts(&t, "tier-up"), ["Congratulations cy: you are gold now."]);
    // A tier outside the order is a change, neither up nor down.
    t.advance(SignedDuration::from_mins(1));
    t.import_jsonl(&member("cy", "diamond")).await;
    t.tick().await;
    assert_eq!(messages(&t, "tier-up").await.len(), 1);
}

async fn a_host_event_s_data_reaches_its_template(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("di", "gold")).await;
    let (status, body) = post(
        &t,
        "/api/events",
        json!([{"event_id": "s1", "member": "di", "kind": "order.shipped", "data": {"order": "A-100"}},
               {"event_id": "s2", "member": "di", "kind": "order.shipped", "data": "A-101"},
               {"event_id": "s3", "member": "di", "kind": "order.shipped", "data": {"kind": "x"}}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["recorded"], 1, "{body}");
    let fields: Vec<(&Value, &Value)> =
        body["errors"].as_array().unwrap().iter().map(|e| (&e["index"], &e["field"])).collect();
    assert_eq!(fields, [(&json!(1), &json!("data")), (&json!(2), &json!("data"))], "{body}");
    t.tick().await;
    let shipped = messages(&t, "shipped").await;
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].run_at, t.now().checked_add(SignedDuration::from_hours(1)).unwrap());
    t.dispatch_all().await;
    assert!(texts(&t, "shipped").is_empty(), "not before its delay");
    t.advance(SignedDuration::from_hours(1));
    t.dispatch_all().await;
    assert_eq!(texts(&t, "shipped"), ["Order A-100 is on its way."]);
}

async fn points_expiring_are_announced_seven_days_before(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.set("2026-12-20T00:00:00Z");
    let m = |date: &str| {
        json!({"external_id": "ed", "name": "Ed", "phone": "+14155550100", "locale": "en",
               "attributes": {"points_expire_on": date}})
        .to_string()
    };
    t.import_jsonl(&m("2026-12-31")).await;
    t.import_jsonl(
        &json!({"external_id": "no-date", "name": "Nd", "attributes": {"points_expire_on": "soon"}}).to_string(),
    )
    .await;
    t.run_until("2026-12-26T00:00:00Z", SignedDuration::from_hours(1)).await;
    let sent = messages(&t, "expiring").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].run_at, "2026-12-24T10:00:00Z".parse::<jiff::Timestamp>().unwrap());
    assert_eq!(sent[0].occurrence, "date:points_expire_on:2026-12-31");
    assert_eq!(texts(&t, "expiring"), ["Your points expire on 2026-12-31."]);
    // A new expiry date is a new occurrence.
    t.import_jsonl(&m("2027-01-31")).await;
    t.run_until("2027-01-25T00:00:00Z", SignedDuration::from_hours(6)).await;
    let sent = messages(&t, "expiring").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].run_at, "2027-01-24T10:00:00Z".parse::<jiff::Timestamp>().unwrap());
}

async fn an_event_recorded_after_a_tick_with_an_earlier_time_is_still_found(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("fa", "gold")).await;
    let before = t.now();
    t.advance(SignedDuration::from_mins(5));
    t.tick().await;
    // The host's event happened before that tick but was committed after it.
    t.app.store.record_events(&[event("fa", "late-1", "order.shipped", before)], t.now()).await.unwrap();
    t.advance(SignedDuration::from_mins(1));
    t.tick().await;
    let shipped = messages(&t, "shipped").await;
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    assert_eq!(shipped[0].run_at, before.checked_add(SignedDuration::from_hours(1)).unwrap());
    assert_eq!(shipped[0].state, "scheduled");
    // Far too late for its lateness: recorded as skipped, not sent.
    let long_ago = t.now().checked_sub(SignedDuration::from_hours(24)).unwrap();
    t.app.store.record_events(&[event("fa", "late-2", "order.shipped", long_ago)], t.now()).await.unwrap();
    t.tick().await;
    let shipped = messages(&t, "shipped").await;
    assert_eq!(shipped.len(), 2, "{shipped:?}");
    assert_eq!(shipped[1].state, "skipped");
    assert!(shipped[1].reason.as_deref().unwrap().starts_with("late"), "{shipped:?}");
}

async fn a_new_event_rule_does_not_greet_past_events(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    // Joined two days before the daemon first evaluates: past the rule's six hours of lateness.
    t.import_jsonl(&member("gu", "gold")).await;
    t.advance(SignedDuration::from_hours(48));
    t.import_jsonl(&member("ha", "gold")).await;
    t.tick().await;
    let welcomed: Vec<String> = messages(&t, "welcome").await.into_iter().map(|m| m.member).collect();
    assert_eq!(welcomed, ["ha"]);
}

async fn a_transactional_message_goes_at_once_and_once_per_key(backend: Backend) {
    let Entry { t, _templates } = start(backend).await;
    t.import_jsonl(&member("io", "gold")).await;
    let request = json!({"member": "io", "template": "receipt", "channel": "sms",
                         "data": {"order": "A-7", "total": "12.50"}, "idempotency_key": "order-A-7"});
    let (status, first) = post(&t, "/api/messages/send", request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let ids = first["messages"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "{first}");
    assert_eq!(first["messages"][0]["channel"], "sms");
    assert_eq!(first["messages"][0]["state"], "scheduled");
    assert_eq!(t.dispatch_all().await, 1, "due at once");
    assert_eq!(texts(&t, "api"), ["Receipt A-7: 12.50."]);

    // Retried: the same message, nothing new.
    let (status, again) = post(&t, "/api/messages/send", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["messages"][0]["id"], first["messages"][0]["id"]);
    assert_eq!(again["messages"][0]["state"], "sent");
    assert_eq!(t.dispatch_all().await, 0);
    assert_eq!(messages(&t, "api").await.len(), 1);

    // The key with another body: refused, naming what differs.
    let mut other = request.clone();
    other["data"]["total"] = json!("99.00");
    let (status, body) = post(&t, "/api/messages/send", other).await;
    assert_eq!((status, &body["error"]["field"]), (StatusCode::CONFLICT, &json!("data")), "{body}");

    let bad = |patch: Value| {
        let mut r = request.clone();
        r["idempotency_key"] = json!("fresh");
        r.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        r
    };
    let (status, body) = post(&t, "/api/messages/send", bad(json!({"member": "nobody"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for (patch, field) in [
        (json!({"template": "no-such"}), "template"),
        (json!({"channel": "email"}), "channel"),
        (json!({"channel": null, "channels": ["sms", "email"]}), "channels"),
        (json!({"channel": "fax"}), "channel"),
        (json!({"data": {"order": "A-8"}}), "data"),
        (json!({"data": {"order": "A-9", "total": "1", "coupon_pool": "vip"}}), "data"),
        (json!({"purpose": "spam"}), "purpose"),
        (json!({"idempotency_key": ""}), "idempotency_key"),
    ] {
        let (status, body) = post(&t, "/api/messages/send", bad(patch.clone())).await;
        assert_eq!((status, &body["error"]["field"]), (StatusCode::BAD_REQUEST, &json!(field)), "{patch}: {body}");
    }
    assert_eq!(messages(&t, "api").await.len(), 1, "refused requests create nothing");
}

/// A journey can start on an event too: a welcome series entered when the member joins, its
/// steps planned on the journey's days.
fn welcome_series(dir: &Path, exit_on: &str) -> String {
    format!(
        r#"{}
[[journeys]]
id = "welcome-series"
trigger = "event"
event = "member.joined"
send_at = "10:00"
{}

[[journeys.steps]]
after = "0d"
channel = "sms"
template = "welcome"

[[journeys.steps]]
after = "2d"
channel = "sms"
template = "thanks"
unless = ["purchase"]
"#,
        config(dir),
        exit_on
    )
}

async fn a_welcome_series_journey_starts_when_a_member_joins(backend: Backend) {
    let dir = templates();
    let t = TestApp::start_on(backend, &welcome_series(dir.path(), ""), NOW).await;
    t.import_jsonl(&member("jo", "silver")).await;
    t.tick().await;
    let steps = messages(&t, "welcome-series").await;
    let run_at: Vec<String> = steps.iter().map(|m| m.run_at.to_string()).collect();
    assert_eq!(run_at, ["2026-11-23T10:00:00Z", "2026-11-25T10:00:00Z"], "{steps:?}");
    let runs = t.app.store.journey_runs(Some("welcome-series"), 10).await.unwrap();
    assert_eq!(runs.len(), 1, "one run entered: {runs:?}");
    // A second tick enters nothing new.
    t.advance(SignedDuration::from_mins(5));
    t.tick().await;
    assert_eq!(messages(&t, "welcome-series").await.len(), 2);
    t.run_until("2026-11-23T10:30:00Z", SignedDuration::from_mins(30)).await;
    assert_eq!(texts(&t, "welcome-series"), ["Welcome to Tidings Club, jo!"]);
}

/// An exit event between the entry event and the tick that enters the journey (before the run
/// exists, so nothing could end it then) still ends it when its steps come due.
async fn an_exit_event_before_the_run_was_recorded_still_ends_the_journey(backend: Backend) {
    let dir = templates();
    let t = TestApp::start_on(backend, &welcome_series(dir.path(), "exit_on = [\"purchase\"]"), NOW).await;
    t.import_jsonl(&member("ki", "silver")).await;
    let bought = t.now().checked_add(SignedDuration::from_secs(30)).unwrap();
    t.app.store.record_events(&[event("ki", "p-ki", "purchase", bought)], t.now()).await.unwrap();
    t.tick().await;
    assert_eq!(messages(&t, "welcome-series").await.len(), 2, "entered: its steps are planned");
    t.run_until("2026-11-25T11:00:00Z", SignedDuration::from_hours(1)).await;
    assert!(texts(&t, "welcome-series").is_empty(), "nothing follows the purchase");
    let steps = messages(&t, "welcome-series").await;
    assert!(
        steps.iter().all(|m| m.state == "skipped" && m.reason.as_deref() == Some("journey exited: purchase")),
        "{steps:?}"
    );
}

on_both_backends!(
    a_new_member_is_welcomed_once_and_not_again_on_re_import,
    only_the_first_purchase_is_thanked,
    a_tier_upgrade_is_congratulated_and_a_downgrade_is_not,
    a_host_event_s_data_reaches_its_template,
    points_expiring_are_announced_seven_days_before,
    an_event_recorded_after_a_tick_with_an_earlier_time_is_still_found,
    a_new_event_rule_does_not_greet_past_events,
    a_transactional_message_goes_at_once_and_once_per_key,
    a_welcome_series_journey_starts_when_a_member_joins,
    an_exit_event_before_the_run_was_recorded_still_ends_the_journey,
);
