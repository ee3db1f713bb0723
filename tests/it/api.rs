//! The HTTP API through its router, without a socket: health and readiness, member upserts and
//! their per-item errors, events moving `last_activity_at`, the message views after a real tick
//! and dispatch, the forecast, and the body limit. Lists answer one page, `{"items", "next"}`
//! (see `lists.rs`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tidings::http::{Http, app};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

/// A birthday today in Shanghai: 01:35Z is 09:35 there, five minutes after the 09:30 send time.
const NOW: &str = "2026-03-10T01:35:00Z";

pub(crate) struct Api {
    pub t: TestApp,
    router: Router,
}

impl Api {
    pub async fn start(backend: Backend) -> Api {
        Self::with_toml(backend, "").await
    }

    pub async fn with_toml(backend: Backend, toml: &str) -> Api {
        let t = TestApp::start_on(backend, toml, NOW).await;
        let router = t.router();
        Api { t, router }
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(uri, Some("application/json"), body.to_string()).await
    }

    pub async fn post_raw(&self, uri: &str, content_type: Option<&str>, body: String) -> (StatusCode, Value) {
        let mut req = Request::builder().method(Method::POST).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        call(&self.router, req).await
    }
}

/// The status and the body: JSON when it parses, otherwise the text as a JSON string.
async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `(inserted, updated, unchanged)` from an upsert answer.
fn counts(body: &Value) -> (u64, u64, u64) {
    let n = |k: &str| body[k].as_u64().unwrap_or_else(|| panic!("{k} in {body}"));
    (n("inserted"), n("updated"), n("unchanged"))
}

/// `(index, field)` of each item error.
fn item_errors(body: &Value) -> Vec<(u64, Option<String>)> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors in {body}"))
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().map(str::to_string)))
        .collect()
}

async fn last_activity(api: &Api, id: &str) -> Option<jiff::Timestamp> {
    let m = api.get(&format!("/api/members/{id}")).await.1;
    m["last_activity_at"].as_str().map(|s| s.parse().unwrap())
}

fn member(id: &str, name: &str) -> Value {
    json!({"external_id": id, "name": name, "phone": "+14155550100", "email": format!("{}@example.com", id.to_lowercase())})
}

async fn health_is_always_ok_and_readiness_follows_the_flag(backend: Backend) {
    let api = Api::start(backend).await;
    let (status, body) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!("ok\n"));
    assert_eq!(api.get("/readyz").await.0, StatusCode::OK);

    let draining = app(Http { app: api.t.app.clone(), ready: Arc::new(AtomicBool::new(false)) });
    let (status, _) = call(&draining, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(&draining, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "a draining daemon is still alive");

    // Metrics name the instance, so several instances' series stay apart.
    let (status, body) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap().to_string();
    let instance = &api.t.app.instance_id;
    assert!(text.contains(&format!("tidings_instance_info{{instance=\"{instance}\"")), "{text}");
}

async fn member_upserts_count_what_changed_and_repeat_harmlessly(backend: Backend) {
    let api = Api::start(backend).await;
    let (status, body) = api.post("/api/members", member("M1", "Ada")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (1, 0, 0));
    assert_eq!(body["errors"], json!([]));

    let batch = json!([member("M1", "Ada"), member("M2", "Bo"), member("M3", "Cy")]);
    let (status, body) = api.post("/api/members", batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (2, 0, 1));

    let (status, body) = api.post("/api/members", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (0, 0, 3), "the same batch again changes nothing");

    // The host system corrects one email, within the same millisecond on this clock.
    let mut changed = member("M2", "Bo");
    changed["email"] = json!("bo@example.org");
    let (status, body) = api.post("/api/members", json!([member("M1", "Ada"), changed, member("M3", "Cy")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (0, 1, 2));
    assert_eq!(api.get("/api/members/M2").await.1["email"], "bo@example.org");
}

async fn a_batch_with_bad_items_names_each_and_stores_the_good_ones(backend: Backend) {
    let api = Api::start(backend).await;
    let mut bad_phone = member("B1", "Bad Phone");
    bad_phone["phone"] = json!("13800138000");
    let mut bad_zone = member("B2", "Bad Zone");
    bad_zone["time_zone"] = json!("Mars/Base");
    let mut unknown = member("B3", "Unknown Field");
    unknown["nickname"] = json!("x");
    let batch = json!([member("G1", "Good One"), bad_phone, bad_zone, unknown, member("G2", "Good Two")]);

    let (status, body) = api.post("/api/members", batch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        item_errors(&body),
        [(1, Some("phone".into())), (2, Some("time_zone".into())), (3, Some("nickname".into()))]
    );
    assert_eq!(counts(&body), (2, 0, 0));
    for id in ["G1", "G2"] {
        let (status, got) = api.get(&format!("/api/members/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id}: {got}");
        assert_eq!(got["external_id"], id);
    }
    for id in ["B1", "B2", "B3"] {
        assert_eq!(api.get(&format!("/api/members/{id}")).await.0, StatusCode::NOT_FOUND, "{id}");
    }
}

async fn a_body_that_is_not_json_is_a_client_error(backend: Backend) {
    let api = Api::start(backend).await;
    // axum's own rejections come as the API's JSON error too, with axum's message.
    let (status, body) = api.post_raw("/api/members", Some("application/json"), "{not json".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|t| t.contains("JSON")), "{body}");
    let (status, body) = api.post_raw("/api/members", None, member("M1", "Ada").to_string()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|t| t.contains("Content-Type")), "{body}");
    // JSON, but neither an object nor a list: the API's own error.
    let (status, body) = api.post("/api/members", json!(42)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(api.t.app.store.member_count().await.unwrap(), 0);
}

async fn a_member_reads_back_normalized_and_an_unknown_one_is_a_json_404(backend: Backend) {
    let api = Api::start(backend).await;
    let input = json!({
        "external_id": "W1", "name": "王小明", "phone": "+86 138-0013 8000", "email": "wang@example.com",
        "locale": "zh_CN", "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10",
        "member_since": "2020-01-15", "tier": "gold", "points": 1200, "attributes": {"city": "杭州"}
    });
    assert_eq!(api.post("/api/members", input).await.0, StatusCode::OK);

    let (status, m) = api.get("/api/members/W1").await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["name"], "王小明");
    assert_eq!(m["phone"], "+8613800138000");
    assert_eq!(m["locale"], "zh-CN");
    assert_eq!(m["time_zone"], "Asia/Shanghai");
    assert_eq!(m["birth_date"], "1990-03-10");
    assert_eq!(m["member_since"], "2020-01-15");
    assert_eq!(m["tier"], "gold");
    assert_eq!(m["points"], 1200);
    assert_eq!(m["attributes"], json!({"city": "杭州"}));
    assert_eq!(m["last_activity_at"], Value::Null);

    let (status, body) = api.get("/api/members/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("a JSON error: {body}"));
    assert!(message.contains("nobody"), "{message}");
}

async fn events_move_last_activity_forward_only_and_once_per_event_id(backend: Backend) {
    let api = Api::start(backend).await;
    api.post("/api/members", member("M1", "Ada")).await;
    let event =
        |id: &str, at: &str| json!({"event_id": id, "member": "M1", "kind": "purchase", "amount": 12.5, "at": at});

    let (status, body) = api.post("/api/events", event("e1", "2026-03-09T10:00:00Z")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["recorded"].as_u64(), body["duplicate"].as_u64()), (Some(1), Some(0)));
    assert_eq!(last_activity(&api, "M1").await, Some("2026-03-09T10:00:00Z".parse().unwrap()));

    let (status, body) = api.post("/api/events", event("e0", "2026-03-01T10:00:00Z")).await;
    assert_eq!((status, body["recorded"].as_u64()), (StatusCode::OK, Some(1)), "{body}");
    assert_eq!(
        last_activity(&api, "M1").await,
        Some("2026-03-09T10:00:00Z".parse().unwrap()),
        "an older event moved it back"
    );

    // A retry of e1, even one claiming a later time, is recognised by its id and changes nothing.
    for retry in [event("e1", "2026-03-09T10:00:00Z"), event("e1", "2026-03-10T01:00:00Z")] {
        let (status, body) = api.post("/api/events", retry).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!((body["recorded"].as_u64(), body["duplicate"].as_u64()), (Some(0), Some(1)), "{body}");
        assert_eq!(last_activity(&api, "M1").await, Some("2026-03-09T10:00:00Z".parse().unwrap()));
    }

    let (status, _) = api.post("/api/events", event("e2", "2026-03-10T01:00:00Z")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(last_activity(&api, "M1").await, Some("2026-03-10T01:00:00Z".parse().unwrap()));

    // Without `at` the event happened now.
    let (status, _) = api.post("/api/events", json!({"event_id": "e3", "member": "M1", "kind": "visit"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(last_activity(&api, "M1").await, Some(NOW.parse().unwrap()));
}

async fn bad_events_are_rejected_with_what_was_wrong(backend: Backend) {
    let api = Api::start(backend).await;
    api.post("/api/members", member("M1", "Ada")).await;

    let (status, body) =
        api.post("/api/events", json!([{"member": "ghost", "kind": "visit"}, {"member": "M1", "kind": "visit"}])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["unknown_members"], json!(["ghost"]));
    assert_eq!(body["recorded"], 1, "the known member's event still counts");

    // A day ahead is clock skew; more than that is a mistake.
    let (status, body) =
        api.post("/api/events", json!({"member": "M1", "kind": "visit", "at": "2026-03-11T01:30:00Z"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        api.post("/api/events", json!({"member": "M1", "kind": "visit", "at": "2026-03-11T01:36:00Z"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(item_errors(&body), [(0, Some("at".into()))]);
    assert_eq!(body["recorded"], 0);

    for (event, what) in
        [(json!({"member": "M1"}), "missing kind"), (json!({"member": "M1", "kind": "  "}), "blank kind")]
    {
        let (status, body) = api.post("/api/events", event).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{what}: {body}");
        assert_eq!(errors[0]["index"], 0);
        assert_eq!(errors[0]["field"], "kind", "{what}: the error should name kind: {body}");
    }
}

async fn a_birthday_message_is_listed_as_sent_with_its_history(backend: Backend) {
    let api = Api::start(backend).await;
    let (status, body) = api.get("/api/messages?state=nonsense").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "state");

    let birthday = json!({"external_id": "B1", "name": "Li Lei", "phone": "+8613800138000",
        "email": "lilei@example.com", "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10"});
    assert_eq!(api.post("/api/members", birthday).await.0, StatusCode::OK);
    assert_eq!(api.get("/api/messages?state=sent").await.1, json!({"items": [], "next": null}));

    let report = api.t.tick().await;
    assert_eq!(report.enqueued, 2, "{report:?}");
    assert_eq!(api.get("/api/messages?state=scheduled").await.1["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.t.dispatch_all().await, 2);

    let (status, sent) = api.get("/api/messages?state=sent").await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let sent = sent["items"].as_array().unwrap();
    let mut channels: Vec<&str> = sent.iter().map(|m| m["channel"].as_str().unwrap()).collect();
    channels.sort();
    assert_eq!(channels, ["email", "sms"]);
    for m in sent {
        assert_eq!((m["rule_id"].as_str(), m["member"].as_str()), (Some("birthday"), Some("B1")), "{m}");
        assert_eq!(m["run_at"], "2026-03-10T01:30:00Z", "09:30 in Shanghai");
        let (status, history) = api.get(&format!("/api/messages/{}/history", m["id"])).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let states: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["scheduled", "sending", "sent"], "{history}");
    }
    assert_eq!(api.get("/api/messages?state=scheduled").await.1["items"], json!([]));
    assert_eq!(api.get("/api/messages?member=B1&rule=birthday").await.1["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.get("/api/messages/999999/history").await.0, StatusCode::NOT_FOUND);
    let mut to: Vec<String> = api.t.outbox().iter().map(|m| m["to"].as_str().unwrap().to_string()).collect();
    to.sort();
    assert_eq!(to, ["+8613800138000", "lilei@example.com"]);

    // Restarted ten minutes later, the daemon finds nothing new to send.
    let t = api.t.restart().await;
    t.advance(jiff::SignedDuration::from_mins(10));
    assert_eq!(t.tick().await.enqueued, 0);
    assert_eq!(t.dispatch_all().await, 0);
    assert_eq!(t.outbox().len(), 2);
    let router = t.router();
    let (_, sent) = call(&router, Request::get("/api/messages?state=sent").body(Body::empty()).unwrap()).await;
    assert_eq!(sent["items"].as_array().unwrap().len(), 2, "{sent}");
}

async fn the_forecast_counts_the_coming_birthdays_per_day_and_channel(backend: Backend) {
    let api = Api::start(backend).await;
    for days in ["0", "367"] {
        let (status, body) = api.get(&format!("/api/forecast?days={days}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{days}: {body}");
        assert_eq!(body["error"]["field"], "days");
    }

    // In UTC, the programme's zone; now is 01:35 on 03-10, so today's 09:30 is still ahead.
    let born = |id: &str, date: &str| {
        let mut m = member(id, id);
        m["birth_date"] = json!(date);
        m
    };
    let mut no_phone = born("F", "1991-03-12");
    no_phone["phone"] = Value::Null;
    let batch = json!([
        born("A", "1980-03-11"),
        born("B", "1985-03-11"),
        born("C", "2000-03-16"),
        born("D", "1970-03-18"),
        born("E", "1990-03-10"),
        born("G", "2026-03-12"),
        no_phone,
    ]);
    assert_eq!(api.post("/api/members", batch).await.0, StatusCode::OK);

    let (status, rows) = api.get("/api/forecast?days=7").await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let mut got: Vec<(String, String, u64, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == "birthday")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("day"), s("channel"), r["messages"].as_u64().unwrap(), r["skipped"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    let row = |day: &str, channel: &str, messages: u64, skipped: u64| {
        (day.to_string(), channel.to_string(), messages, skipped)
    };
    // D (03-18) is past the seven days; G is born this year, so has no birthday yet.
    assert_eq!(
        got,
        [
            row("2026-03-10", "email", 1, 0),
            row("2026-03-10", "sms", 1, 0),
            row("2026-03-11", "email", 2, 0),
            row("2026-03-11", "sms", 2, 0),
            row("2026-03-12", "email", 1, 0),
            row("2026-03-12", "sms", 0, 1),
            row("2026-03-16", "email", 1, 0),
            row("2026-03-16", "sms", 1, 0),
        ]
    );
    assert_eq!(api.t.states().await.len(), 0, "a forecast stores nothing");

    // What the week then actually sends matches the forecast, day by day.
    api.t.run_until("2026-03-17T01:35:00Z", jiff::SignedDuration::from_hours(1)).await;
    let mut sent: Vec<(String, String)> = api
        .t
        .outbox()
        .iter()
        .filter(|m| m["rule"] == "birthday")
        .map(|m| {
            let at: jiff::Timestamp = m["at"].as_str().unwrap().parse().unwrap();
            let day = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string();
            (day, m["message"]["channel"].as_str().unwrap().to_string())
        })
        .collect();
    sent.sort();
    let forecast: Vec<(String, String)> = got
        .iter()
        .flat_map(|(day, channel, messages, _)| std::iter::repeat_n((day.clone(), channel.clone()), *messages as usize))
        .collect();
    assert_eq!(sent, forecast);
}

async fn a_body_over_the_limit_is_refused_with_413(backend: Backend) {
    let api = Api::with_toml(backend, "[http]\nbody_limit = 1024").await;
    let small = json!([member("S1", "Small")]);
    assert!(small.to_string().len() < 1024);
    assert_eq!(api.post("/api/members", small).await.0, StatusCode::OK);

    let big = Value::Array((0..20).map(|i| member(&format!("L{i}"), "A rather long name to fill the body")).collect());
    assert!(big.to_string().len() > 1024);
    let (status, body) = api.post("/api/members", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(api.t.app.store.member_count().await.unwrap(), 1);
}

on_both_backends!(
    health_is_always_ok_and_readiness_follows_the_flag,
    member_upserts_count_what_changed_and_repeat_harmlessly,
    a_batch_with_bad_items_names_each_and_stores_the_good_ones,
    a_body_that_is_not_json_is_a_client_error,
    a_member_reads_back_normalized_and_an_unknown_one_is_a_json_404,
    events_move_last_activity_forward_only_and_once_per_event_id,
    bad_events_are_rejected_with_what_was_wrong,
    a_birthday_message_is_listed_as_sent_with_its_history,
    the_forecast_counts_the_coming_birthdays_per_day_and_channel,
    a_body_over_the_limit_is_refused_with_413,
);
