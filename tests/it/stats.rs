//! The dashboard's numbers over HTTP, on both backends: messages per day by channel and state,
//! each channel's rates, and the backlog with the oldest due message's age.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

const CONFIG: &str = r#"
[programme]
time_zone = "UTC"
"#;

async fn get(t: &TestApp, uri: &str) -> (StatusCode, Value) {
    let router = t.router();
    let response = router.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.expect("answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn the_dashboard_counts_messages_per_day_and_the_backlog(backend: Backend) {
    // 09:00 on a birthday: the 09:30 greetings are planned (lookahead 1h), then due.
    let t = TestApp::start_on(backend, CONFIG, "2026-03-10T09:00:00Z").await;
    let line = json!({"external_id": "m1", "name": "Member m1", "phone": "+14155550100",
        "email": "m1@example.com", "time_zone": "UTC", "locale": "en", "birth_date": "1990-03-10"});
    assert!(t.import_jsonl(&line.to_string()).await.errors.is_empty());
    t.tick().await;
    let (status, body) = get(&t, "/api/stats?days=3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["backlog"], json!({"due": 0, "scheduled": 2, "oldest_due_seconds": null}));

    t.set("2026-03-10T09:35:00Z");
    let (_, body) = get(&t, "/api/stats?days=3").await;
    assert_eq!(body["backlog"], json!({"due": 2, "scheduled": 2, "oldest_due_seconds": 300}), "{body}");
    assert_eq!(
        body["days"],
        json!([{"day": "2026-03-10", "channel": "email", "state": "scheduled", "count": 1},
               {"day": "2026-03-10", "channel": "sms", "state": "scheduled", "count": 1}])
    );

    assert_eq!(t.dispatch_all().await, 2);
    let (_, body) = get(&t, "/api/stats?days=3").await;
    assert_eq!(body["backlog"]["due"], 0);
    let states: Vec<(&str, &str, i64)> = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["channel"].as_str().unwrap(), d["state"].as_str().unwrap(), d["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(states, [("email", "sent", 1), ("sms", "sent", 1)]);
    assert_eq!(
        body["channels"]["sms"],
        json!({"sent": 1, "delivered": 0, "failed": 0, "delivery_rate": null, "failure_rate": 0.0})
    );
    assert_eq!(body["experiments"], json!([]));

    // Yesterday's window does not hold today's messages.
    t.set("2026-03-12T09:00:00Z");
    let (_, body) = get(&t, "/api/stats?days=2").await;
    assert_eq!(body["days"], json!([]), "{body}");
    let (status, body) = get(&t, "/api/stats?days=0").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("days")));
}

/// `/metrics`: messages by rule, channel and state, the queue, and the last tick.
async fn metrics_show_the_queue_the_rules_and_the_last_tick(backend: Backend) {
    let t = TestApp::start_on(backend, CONFIG, "2026-03-10T09:00:00Z").await;
    let line = json!({"external_id": "m1", "name": "Member m1", "phone": "+14155550100",
        "email": "m1@example.com", "time_zone": "UTC", "locale": "en", "birth_date": "1990-03-10"});
    assert!(t.import_jsonl(&line.to_string()).await.errors.is_empty());
    t.tick().await;
    t.set("2026-03-10T09:35:00Z");
    let response = t.bare_router().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "public, for the scraper");
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let i = format!("instance=\"{}\"", t.app.instance_id);
    for line in [
        format!("tidings_messages_by_rule{{{i},rule=\"birthday\",channel=\"sms\",state=\"scheduled\"}} 1"),
        format!("tidings_queue_due{{{i}}} 2"),
        format!("tidings_queue_scheduled{{{i}}} 2"),
        format!("tidings_queue_oldest_due_seconds{{{i}}} 300"),
        format!(
            "tidings_last_tick_timestamp_seconds{{{i}}} {}",
            "2026-03-10T09:00:00Z".parse::<jiff::Timestamp>().unwrap().as_second()
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    assert!(text.contains("tidings_tick_duration_seconds{"), "{text}");
}

on_both_backends!(
    the_dashboard_counts_messages_per_day_and_the_backlog,
    metrics_show_the_queue_the_rules_and_the_last_tick,
);
