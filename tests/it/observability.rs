//! What operators see, on both backends: `/metrics` by provider (messages, a latency histogram per
//! outcome, the circuit) after sends through a local Twilio peer, the member value model's fit
//! and refresh times, and `tidings status` (the real binary) reading each instance's heartbeat,
//! a stale one shown as such.

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};
use crate::support::twilio::{Reply, TwilioPeer};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "f00dcafef00dcafef00dcafef00dcafe";

/// Twilio for SMS, retried once on the spot, its circuit opening after two failures in a row.
fn config(peer: &TwilioPeer, send_at: &str) -> String {
    format!(
        r#"
[programme]
time_zone = "UTC"
[channels]
sms = "twilio"
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+14155550100"
base_url = "{base}"
timeout_secs = 5
[limits.twilio]
retries = 1
circuit_failures = 2
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "{send_at}"
"#,
        base = peer.base_url()
    )
}

fn member(id: &str, birth_date: &str) -> String {
    json!({"external_id": id, "name": format!("Member {id}"), "phone": "+14155550123",
        "time_zone": "UTC", "locale": "en", "birth_date": birth_date})
    .to_string()
}

async fn metrics(t: &TestApp) -> String {
    let response = t.bare_router().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn assert_lines(text: &str, lines: &[String]) {
    for line in lines {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
}

/// The value of the one series that starts with `series` (name and labels).
fn value(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn metrics_count_provider_calls_by_outcome_with_latency_and_show_the_circuit(backend: Backend) {
    let peer = TwilioPeer::start(SID, TOKEN).await;
    let t = TestApp::start_on(backend, &config(&peer, "09:30"), "2026-03-10T09:00:00Z").await;
    let lines = [member("m1", "1990-03-10"), member("m2", "1990-03-11")].join("\n");
    assert!(t.import_jsonl(&lines).await.errors.is_empty());
    let i = format!("instance=\"{}\"", t.app.instance_id);
    let twilio = format!("{i},channel=\"sms\",provider=\"twilio\"");
    let h = "tidings_provider_request_duration_seconds";

    // Day one: the first try fails (503), the retry on the spot goes through.
    t.tick().await;
    t.set("2026-03-10T09:35:00Z");
    peer.script(1, Reply::error(503, 20003, "Service Unavailable"));
    t.dispatch_all().await;
    let text = metrics(&t).await;
    assert_lines(
        &text,
        &[
            format!("tidings_messages_by_provider{{{i},channel=\"sms\",provider=\"twilio\",state=\"sent\"}} 1"),
            format!("{h}_count{{{twilio},outcome=\"sent\"}} 1"),
            format!("{h}_count{{{twilio},outcome=\"transient\"}} 1"),
            format!("{h}_count{{{twilio},outcome=\"permanent\"}} 0"),
            // A loopback answer takes well under ten seconds: every finite bucket but the
            // smallest may hold it, the last certainly does.
            format!("{h}_bucket{{{twilio},outcome=\"sent\",le=\"10\"}} 1"),
            format!("{h}_bucket{{{twilio},outcome=\"sent\",le=\"+Inf\"}} 1"),
            format!("tidings_provider_circuit_state{{{twilio}}} 0"),
            format!("tidings_provider_circuit_state{{{i},channel=\"email\",provider=\"outbox\"}} 0"),
        ],
    );
    assert!(value(&text, &format!("{h}_sum{{{twilio},outcome=\"sent\"}}")) > 0.0, "{text}");

    // Day two: both tries fail; two failures in a row open the circuit.
    t.set("2026-03-11T09:00:00Z");
    t.tick().await;
    t.set("2026-03-11T09:35:00Z");
    peer.script(2, Reply::error(503, 20003, "Service Unavailable"));
    t.dispatch_all().await;
    let text = metrics(&t).await;
    assert_lines(
        &text,
        &[
            format!("{h}_count{{{twilio},outcome=\"transient\"}} 3"),
            format!("{h}_count{{{twilio},outcome=\"sent\"}} 1"),
            format!("tidings_provider_circuit_state{{{twilio}}} 2"),
        ],
    );

    // The model: the last fit (from the database) and this instance's last refresh.
    t.app.refresh_value().await.expect("refresh").expect("the lock is free");
    let text = metrics(&t).await;
    let now = "2026-03-11T09:35:00Z".parse::<jiff::Timestamp>().unwrap().as_second();
    assert_lines(
        &text,
        &[
            format!("tidings_model_fit_timestamp_seconds{{{i}}} {now}"),
            format!("tidings_last_value_refresh_timestamp_seconds{{{i}}} {now}"),
        ],
    );
    assert!(value(&text, &format!("tidings_model_fit_duration_seconds{{{i}}}")) >= 0.0);
    assert!(value(&text, &format!("tidings_value_refresh_duration_seconds{{{i}}}")) > 0.0);
}

async fn status_shows_the_backlog_each_instance_and_its_providers_and_marks_stale_ones(backend: Backend) {
    let peer = TwilioPeer::start(SID, TOKEN).await;
    // `tidings status` reads on the system clock: run the app's clock near it, with a greeting
    // due half an hour ago.
    let now = jiff::Timestamp::now();
    let start = now.checked_sub(jiff::SignedDuration::from_hours(1)).unwrap();
    let due = now.checked_sub(jiff::SignedDuration::from_mins(30)).unwrap().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let send_at = format!("{:02}:{:02}", due.hour(), due.minute());
    let t = TestApp::start_on(backend, &config(&peer, &send_at), &start.to_string()).await;
    let line = member("m1", &format!("1990-{:02}-{:02}", due.month(), due.day()));
    assert!(t.import_jsonl(&line).await.errors.is_empty());
    t.tick().await;
    peer.script(2, Reply::error(503, 20003, "Service Unavailable"));
    t.set(&now.to_string());
    t.dispatch_all().await;
    t.app.heartbeat().await;
    // Another instance that stopped beating two hours ago.
    let gone = tidings::store::instances::Heartbeat {
        instance_id: "old-host-1234abcd".into(),
        started_at: now.checked_sub(jiff::SignedDuration::from_hours(30)).unwrap(),
        seen_at: now.checked_sub(jiff::SignedDuration::from_hours(2)).unwrap(),
        last_tick_at: None,
        last_tick_ms: None,
        providers: json!([]),
    };
    t.app.store.heartbeat(&gone).await.unwrap();

    let url = t.app.settings().raw.database.url.clone();
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
        cmd.arg("status").current_dir(t.dir.path()).env_clear().env("TIDINGS_DATABASE_URL", &url);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("tidings status runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let status: Value = serde_json::from_str(&run(true)).expect("--json prints JSON");
    let instances = status["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{status:#}");
    let me = &instances[0];
    assert_eq!(me["instance_id"], t.app.instance_id.as_str());
    assert_eq!(me["stale"], false);
    assert!(me["last_tick_ms"].as_i64().is_some(), "{me}");
    let twilio = me["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "twilio").unwrap();
    assert_eq!(twilio["channel"], "sms");
    assert_eq!(twilio["circuit"], "open", "{twilio}");
    assert_eq!(twilio["calls"]["transient"], 2, "{twilio}");
    assert_eq!(twilio["calls"]["sent"], 0, "{twilio}");
    assert!(twilio["mean_ms"].as_f64().is_some_and(|m| m > 0.0), "{twilio}");
    assert_eq!(
        (instances[1]["instance_id"].as_str(), &instances[1]["stale"]),
        (Some("old-host-1234abcd"), &json!(true))
    );
    // The message failed transiently and waits for its retry: scheduled, not yet due.
    assert_eq!(status["backlog"]["scheduled"], 1, "{status:#}");

    let human = run(false);
    assert!(human.starts_with("backlog: 0 due; 1 scheduled in all\n"), "{human}");
    assert!(human.contains(&format!("  {}  seen ", t.app.instance_id)), "{human}");
    assert!(human.contains("  old-host-1234abcd  STALE: last seen 2h 0m ago"), "{human}");
    assert!(
        human.lines().any(|l| l.contains("sms")
            && l.contains("twilio")
            && l.contains("circuit open")
            && l.contains("failed      2")),
        "{human}"
    );
}

on_both_backends!(
    metrics_count_provider_calls_by_outcome_with_latency_and_show_the_circuit,
    status_shows_the_backlog_each_instance_and_its_providers_and_marks_stale_ones,
);
