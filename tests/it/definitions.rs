//! Rules and journeys defined through the API: created, checked as the file is (the field
//! named), in force at once and after a restart, overriding the file's rule and giving way to it
//! again, disabled with what they had waiting cancelled, audited with the caller, refused when
//! stale (`If-Match`), and picked up by another instance at its next tick.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tidings::store::MessageFilter;
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

const NO_RULES: &str = r#"
rules = []
journeys = []

[programme]
time_zone = "UTC"
"#;

const DEFAULT_RULES: &str = r#"
[programme]
time_zone = "UTC"
"#;

/// The day before a 1990-03-10 birthday, at noon UTC.
const START: &str = "2026-03-09T12:00:00Z";

fn router(t: &TestApp) -> Router {
    t.router()
}

/// A request with optional body and headers; answers the status, the body and the ETag.
async fn call(
    api: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    let response = api.clone().oneshot(req.unwrap()).await.expect("the router answers");
    let status = response.status();
    let etag = response.headers().get(header::ETAG).map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), etag)
}

async fn birthday_member(t: &TestApp, id: &str) {
    let line = json!({"external_id": id, "name": format!("Member {id}"), "phone": "+14155550100",
        "email": format!("{id}@example.com"), "time_zone": "UTC", "locale": "en", "birth_date": "1990-03-10"});
    let report = t.import_jsonl(&line.to_string()).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

async fn states_of(t: &TestApp, rule: &str) -> Vec<(String, Option<String>)> {
    let f = MessageFilter { rule_id: Some(rule.into()), limit: 100, ..MessageFilter::default() };
    let mut rows: Vec<_> =
        t.app.store.messages(&f).await.unwrap().into_iter().map(|m| (m.state.as_str().to_string(), m.reason)).collect();
    rows.sort();
    rows
}

async fn a_rule_created_through_the_api_sends_and_survives_a_restart(backend: Backend) {
    let t = TestApp::start_on(backend, NO_RULES, START).await;
    let api = router(&t);
    let rule = json!({"id": "bday", "trigger": "birthday", "channels": ["sms"], "template": "birthday",
        "send_at": "10:00"});
    let (status, body, etag) = call(&api, Method::POST, "/api/rules", Some(rule.clone()), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let d = &body["definition"];
    assert_eq!(
        (d["source"].as_str(), d["overrides_config"].as_bool(), d["enabled"].as_bool()),
        (Some("api"), Some(false), Some(true))
    );
    assert_eq!(d["definition"]["send_at"], "10:00");
    assert_eq!(etag, Some(format!("\"{}\"", d["version"])));
    assert!(t.app.settings().rules.iter().any(|r| r.id == "bday"), "in force at once");

    birthday_member(&t, "m1").await;
    t.run_until("2026-03-10T12:00:00Z", SignedDuration::from_hours(1)).await;
    let sent: Vec<_> = t.outbox().into_iter().filter(|m| m["rule"] == "bday").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["at"], "2026-03-10T10:00:00Z");

    let t = t.restart().await;
    let api = router(&t);
    let (status, body, _) = call(&api, Method::GET, "/api/rules/bday", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "api");
    assert!(t.app.settings().rules.iter().any(|r| r.id == "bday"), "stored rules are merged at start-up");
    let (_, body, _) = call(&api, Method::POST, "/api/rules", Some(rule), &[]).await;
    assert_eq!(body["error"]["field"], "id", "a second create of one id is a conflict: {body}");
}

async fn a_definition_is_checked_as_the_file_is_and_the_field_named(backend: Backend) {
    let t = TestApp::start_on(backend, NO_RULES, START).await;
    let api = router(&t);
    let good = json!({"id": "bday", "trigger": "birthday", "channels": ["sms"], "template": "birthday"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field, says) in [
        (with("send_at", json!("25:00")), "send_at", "25:00"),
        (with("sendat", json!("10:00")), "sendat", "unknown field"),
        (with("template", json!("nope")), "template", "nope"),
        (with("channels", json!(["fax"])), "channels", "fax"),
        (with("trigger", json!(7)), "trigger", "invalid type"),
        (with("id", json!("other")), "id", "the id in the path"),
    ] {
        let (status, answer, _) = call(&api, Method::PUT, "/api/rules/bday", Some(body.clone()), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{body} -> {answer}");
    }
    // A journey step whose template needs a coupon the step does not give is refused with the
    // step named, as the file's would stop the daemon.
    let journey = json!({"id": "lapsed", "trigger": "inactivity", "days": 60, "send_at": "10:00",
        "steps": [{"after": "0d", "channel": "sms", "template": "winback_journey"}]});
    let (status, answer, _) = call(&api, Method::POST, "/api/journeys", Some(journey), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "steps[0].template", "{answer}");
    let (status, answer, _) = call(
        &api,
        Method::POST,
        "/api/journeys",
        Some(json!({"id": "runs", "trigger": "inactivity", "days": 60})),
        &[],
    )
    .await;
    assert_eq!((status, answer["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("id")), "{answer}");
    assert!(t.app.store.definitions().await.unwrap().is_empty(), "nothing refused is stored");
    let (_, list, _) = call(&api, Method::GET, "/api/rules", None, &[]).await;
    assert_eq!(list["rules"], json!([]));
    let (status, _, _) = call(&api, Method::DELETE, "/api/rules/nothing", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn disabling_the_files_rule_cancels_what_waits_and_removing_the_override_restores_it(backend: Backend) {
    // Half an hour before the file's birthday rule sends (09:30), within the lookahead.
    let t = TestApp::start_on(backend, DEFAULT_RULES, "2026-03-10T09:00:00Z").await;
    let api = router(&t);
    birthday_member(&t, "m1").await;
    t.tick().await;
    assert_eq!(states_of(&t, "birthday").await, [("scheduled".to_string(), None), ("scheduled".to_string(), None)]);

    let (status, body, etag) = call(&api, Method::GET, "/api/rules/birthday", None, &[]).await;
    assert_eq!((status, body["source"].as_str(), etag.as_deref()), (StatusCode::OK, Some("config"), Some("\"0\"")));
    let actor = [("x-tidings-actor", "console-test")];
    let (status, body, etag) = call(&api, Method::POST, "/api/rules/birthday/disable", None, &actor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"], 2, "{body}");
    assert_eq!(
        (body["definition"]["enabled"].as_bool(), body["definition"]["overrides_config"].as_bool()),
        (Some(false), Some(true))
    );
    let why = Some("rule \"birthday\" disabled by key:test-admin/console-test".to_string());
    assert_eq!(states_of(&t, "birthday").await, [("skipped".to_string(), why.clone()), ("skipped".to_string(), why)]);
    // Its forecast still says what it would send if switched on again; an unknown id is a 404.
    let (status, rows, _) = call(&api, Method::GET, "/api/rules/birthday/forecast?days=1", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let sms = rows.as_array().unwrap().iter().find(|r| r["channel"] == "sms").cloned().unwrap_or_default();
    assert_eq!((sms["day"].as_str(), sms["messages"].as_u64()), (Some("2026-03-10"), Some(1)), "{rows}");
    let (status, body, _) = call(&api, Method::GET, "/api/forecast?rule=nope", None, &[]).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::NOT_FOUND, Some("rule")), "{body}");

    t.run_until("2026-03-11T00:00:00Z", SignedDuration::from_hours(1)).await;
    assert!(t.outbox().is_empty(), "nothing sent for a disabled rule: {:?}", t.outbox());

    // A stale write is refused: the caller read the file's version ("0") before the disable.
    let stale = [("if-match", "\"0\"")];
    let (status, body, _) = call(&api, Method::POST, "/api/rules/birthday/enable", None, &stale).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let current = [("if-match", etag.as_deref().unwrap())];
    let (_, history, _) = call(&api, Method::GET, "/api/rules/birthday/history", None, &[]).await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["versions"][0]["actor"], "key:test-admin/console-test");

    let (status, audit, _) = call(&api, Method::GET, "/api/audit?subject=rule:birthday", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = audit["entries"].as_array().or(audit.as_array()).cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["action"] == "rule.change" && e["actor"] == "key:test-admin/console-test"),
        "the change is audited with its caller: {audit}"
    );

    let (status, body, _) = call(&api, Method::DELETE, "/api/rules/birthday", None, &current).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["definition"]["source"].as_str(), body["definition"]["enabled"].as_bool()),
        (Some("config"), Some(true))
    );
    assert!(t.app.settings().rules.iter().any(|r| r.id == "birthday" && r.enabled), "the file's rule is back");
    let (status, body, _) = call(&api, Method::DELETE, "/api/rules/birthday", None, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "the file's own rule is not removed through the API: {body}");
}

async fn a_journey_defined_through_the_api_runs_and_disabling_it_ends_its_runs(backend: Backend) {
    let t = TestApp::start_on(backend, NO_RULES, "2026-03-01T00:00:00Z").await;
    let api = router(&t);
    let journey = json!({"id": "lapsed", "trigger": "inactivity", "days": 60, "send_at": "10:00",
        "max_lateness": "12h", "exit_on": ["purchase"],
        "steps": [{"after": "0d", "channel": "sms", "template": "winback"},
                  {"after": "7d", "channel": "email", "template": "winback", "unless": ["purchase"]}]});
    let (status, body, _) = call(&api, Method::POST, "/api/journeys", Some(journey), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["definition"]["definition"]["steps"][1]["after"], "7d");

    let line = json!({"external_id": "m1", "name": "Member m1", "phone": "+14155550100",
        "email": "m1@example.com", "time_zone": "UTC", "locale": "en"});
    assert!(t.import_jsonl(&line.to_string()).await.errors.is_empty());
    let purchase = tidings::members::EventInput {
        event_id: None,
        member: "m1".into(),
        kind: "purchase".into(),
        amount: Some(10.0),
        at: "2026-01-01T12:00:00Z".parse().unwrap(),
        data: None,
    };
    t.app.store.record_events(&[purchase], t.now()).await.unwrap();
    // The forecast counts the journey's steps due within its window: entry on day 0, day 7.
    let (status, rows, _) = call(&api, Method::GET, "/api/journeys/lapsed/forecast?days=10", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let rows: Vec<(&str, &str, &str, u64, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (day, rule, channel) =
                (r["day"].as_str().unwrap(), r["rule"].as_str().unwrap(), r["channel"].as_str().unwrap());
            (day, rule, channel, r["messages"].as_u64().unwrap(), r["sample"][0].as_str().unwrap())
        })
        .collect();
    assert_eq!(rows, [("2026-03-03", "lapsed", "sms", 1, "m1"), ("2026-03-10", "lapsed", "email", 1, "m1")]);
    t.run_until("2026-03-04T00:00:00Z", SignedDuration::from_hours(2)).await;
    assert_eq!(states_of(&t, "lapsed").await, [("scheduled".to_string(), None), ("sent".to_string(), None)]);

    let (status, body, _) = call(&api, Method::POST, "/api/journeys/lapsed/disable", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["cancelled"].as_u64(), body["runs_ended"].as_u64()), (Some(1), Some(1)), "{body}");
    let (_, runs, _) = call(&api, Method::GET, "/api/journeys/runs?journey=lapsed", None, &[]).await;
    assert_eq!(runs["runs"][0]["state"], "exited", "{runs}");
    assert_eq!(runs["runs"][0]["exit_reason"], "journey \"lapsed\" disabled by key:test-admin", "{runs}");
    t.run_until("2026-03-12T00:00:00Z", SignedDuration::from_hours(2)).await;
    assert_eq!(t.outbox().len(), 1, "the day-7 step of a disabled journey is not sent");

    let (_, list, _) = call(&api, Method::GET, "/api/journeys", None, &[]).await;
    let listed: Vec<(&str, bool)> = list["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, [("lapsed", false)]);
}

async fn a_stored_definition_the_file_no_longer_accepts_is_left_out_not_fatal(backend: Backend) {
    let t = TestApp::start_on(backend, NO_RULES, START).await;
    let bad =
        json!({"id": "broken", "trigger": "birthday", "channels": ["sms"], "template": "birthday", "send_at": "99:99"});
    let write = tidings::store::DefinitionWrite {
        kind: tidings::store::DefinitionKind::Rule,
        id: "broken",
        body: Some(&bad),
        expect: None,
        cancel: None,
        actor: "test",
        now: t.now(),
    };
    t.app.store.write_definition(&write).await.unwrap();
    let t = t.restart().await;
    assert!(t.app.settings().rules.is_empty(), "the daemon starts without it");
    assert_eq!(t.app.store.definitions().await.unwrap().len(), 1, "and keeps it, to be mended");
    // Not in force, but it can be removed.
    let (status, body, _) = call(&router(&t), Method::DELETE, "/api/rules/broken", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(t.app.store.definitions().await.unwrap().is_empty());
}

/// A tick that planned from settings held before a disable (another instance's, say) does not
/// get its messages sent: a worker skips a disabled rule's messages when it claims them.
async fn a_worker_skips_what_a_disabled_rule_planned_before_the_disable(backend: Backend) {
    let t = TestApp::start_on(backend, DEFAULT_RULES, "2026-03-10T09:00:00Z").await;
    birthday_member(&t, "m1").await;
    t.tick().await;
    // The disable lands without cancelling (as if written while this tick was planning).
    let off = json!({"id": "birthday", "trigger": "birthday", "channels": ["sms", "email"],
        "template": "birthday", "enabled": false});
    let write = tidings::store::DefinitionWrite {
        kind: tidings::store::DefinitionKind::Rule,
        id: "birthday",
        body: Some(&off),
        expect: None,
        cancel: None,
        actor: "test",
        now: t.now(),
    };
    t.app.store.write_definition(&write).await.unwrap();
    t.set("2026-03-10T09:31:00Z");
    t.tick().await;
    t.dispatch_all().await;
    let why = Some("rule \"birthday\" disabled".to_string());
    assert_eq!(states_of(&t, "birthday").await, [("skipped".to_string(), why.clone()), ("skipped".to_string(), why)]);
    assert!(t.outbox().is_empty());
}

/// A stored rule whose template is missing at start-up is left out, and comes into force at the
/// tick after the template is published.
async fn a_definition_left_out_for_a_missing_template_returns_once_it_is_published(backend: Backend) {
    let t = TestApp::start_on(backend, NO_RULES, START).await;
    let body = json!({"id": "greet", "trigger": "birthday", "channels": ["sms"], "template": "greeting"});
    let write = tidings::store::DefinitionWrite {
        kind: tidings::store::DefinitionKind::Rule,
        id: "greet",
        body: Some(&body),
        expect: None,
        cancel: None,
        actor: "test",
        now: t.now(),
    };
    t.app.store.write_definition(&write).await.unwrap();
    let t = t.restart().await;
    assert!(t.app.settings().rules.is_empty(), "no template \"greeting\" yet");
    let api = router(&t);
    let draft = json!({"variants": {"en": {"sms": "Happy birthday, {{member.name}}! Reply STOP to opt out."}}});
    let (status, body, _) = call(&api, Method::POST, "/api/templates/greeting/drafts", Some(draft), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let publish = json!({"acknowledge_warnings": true});
    let (status, body, _) =
        call(&api, Method::POST, "/api/templates/greeting/versions/1/publish", Some(publish), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.tick().await;
    assert_eq!(t.app.settings().rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["greet"]);
}

/// PostgreSQL: a second instance sharing the database puts a change in force at its next tick.
#[tokio::test]
async fn another_instance_picks_a_change_up_at_its_next_tick() {
    let t = TestApp::start_on(Backend::Postgres, NO_RULES, START).await;
    let other = t.another_instance().await;
    let rule = json!({"id": "bday", "trigger": "birthday", "channels": ["sms"], "template": "birthday"});
    let (status, body, _) = call(&router(&t), Method::POST, "/api/rules", Some(rule), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(other.settings().rules.is_empty(), "not yet");
    other.tick().await.unwrap();
    assert_eq!(other.settings().rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["bday"]);
}

on_both_backends!(
    a_rule_created_through_the_api_sends_and_survives_a_restart,
    a_definition_is_checked_as_the_file_is_and_the_field_named,
    disabling_the_files_rule_cancels_what_waits_and_removing_the_override_restores_it,
    a_journey_defined_through_the_api_runs_and_disabling_it_ends_its_runs,
    a_stored_definition_the_file_no_longer_accepts_is_left_out_not_fatal,
    a_definition_left_out_for_a_missing_template_returns_once_it_is_published,
    a_worker_skips_what_a_disabled_rule_planned_before_the_disable,
);
