//! The members and events API beyond upserts (see `api.rs`): searching and filtering members a
//! page at a time, a member's push devices, and idempotent event ingestion: a retried batch
//! records nothing twice, answers the same `accepted` count, and ends no journey run its first
//! delivery did not.

use axum::http::StatusCode;
use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::api::Api;
use crate::support::app::Backend;

fn external_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|m| m["external_id"].as_str().unwrap().to_string())
        .collect()
}

async fn ids_of(api: &Api, uri: &str) -> Vec<String> {
    let (status, page) = api.get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {page}");
    external_ids(&page)
}

async fn error_field(api: &Api, uri: &str) -> (StatusCode, Value) {
    let (status, body) = api.get(uri).await;
    (status, body["error"]["field"].clone())
}

async fn members_are_searched_filtered_and_paged_by_keyset(backend: Backend) {
    let api = Api::start(backend).await;
    let batch = json!([
        {"external_id": "A1", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550100",
         "tier": "gold", "locale": "en"},
        {"external_id": "A2", "name": "Adam Smith", "email": "adam@example.org", "phone": "+8613800138000",
         "tier": "silver", "locale": "zh-CN"},
        {"external_id": "B1", "name": "Bo", "email": "bo@example.com", "tier": "gold"},
        {"external_id": "C_1", "name": "Cy 100%"},
    ]);
    let (status, body) = api.post("/api/members", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Everyone, in the order they were stored; then a page at a time.
    assert_eq!(ids_of(&api, "/api/members").await, ["A1", "A2", "B1", "C_1"]);
    let (_, first) = api.get("/api/members?limit=3").await;
    assert_eq!(external_ids(&first), ["A1", "A2", "B1"]);
    let next = first["next"].as_str().expect("a next cursor");
    let (_, second) = api.get(&format!("/api/members?limit=3&cursor={next}")).await;
    assert_eq!((external_ids(&second), &second["next"]), (vec!["C_1".to_string()], &Value::Null));
    let (_, exact) = api.get("/api/members?limit=4").await;
    assert_eq!(exact["next"], Value::Null, "no cursor to an empty page: {exact}");

    // `q`: a prefix of the external id, name or email (any case), or of the phone's digits.
    for (q, want) in [
        ("ad", vec!["A1", "A2"]),
        ("ADA%40", vec!["A1"]),
        ("a2", vec!["A2"]),
        ("bo%40example", vec!["B1"]),
        ("%2B86138", vec!["A2"]),
        ("86%20138-0013", vec!["A2"]),
        ("1415", vec!["A1"]),
        ("lovelace", vec![]),
        // Wildcards are literal: `_` and `%` match only themselves.
        ("C_", vec!["C_1"]),
        ("c%25", vec![]),
        ("cy%20100%25", vec!["C_1"]),
    ] {
        assert_eq!(ids_of(&api, &format!("/api/members?q={q}")).await, want, "q={q}");
    }
    assert_eq!(ids_of(&api, "/api/members?tier=gold").await, ["A1", "B1"]);
    assert_eq!(ids_of(&api, "/api/members?locale=zh_CN").await, ["A2"]);
    assert_eq!(ids_of(&api, "/api/members?locale=EN&q=a").await, ["A1"]);
    assert_eq!(ids_of(&api, "/api/members?tier=gold&limit=1&q=b").await, ["B1"]);

    // Segments come from the value refresh: each member is found under their own.
    api.t.app.refresh_value().await.unwrap().expect("the evaluator lock is free");
    let (_, a1) = api.get("/api/members/A1").await;
    let segment = a1["value"]["segment"].as_str().unwrap_or_else(|| panic!("a segment: {a1}")).to_string();
    let listed = ids_of(&api, &format!("/api/members?segment={segment}")).await;
    assert!(listed.contains(&"A1".to_string()), "{segment}: {listed:?}");
    let other = if segment == "lapsed" { "high_value" } else { "lapsed" };
    assert!(!ids_of(&api, &format!("/api/members?segment={other}")).await.contains(&"A1".to_string()));

    // Every bad parameter is a 422 naming it.
    for (uri, field) in [
        ("/api/members?limit=0", "limit"),
        ("/api/members?limit=1001", "limit"),
        ("/api/members?limit=many", "limit"),
        ("/api/members?cursor=bm9wZQ", "cursor"),
        ("/api/members?cursor=!!", "cursor"),
        ("/api/members?segment=vip", "segment"),
        ("/api/members?tierr=gold", "tierr"),
        ("/api/members?tier=gold&tier=silver", "tier"),
    ] {
        assert_eq!(error_field(&api, uri).await, (StatusCode::UNPROCESSABLE_ENTITY, json!(field)), "{uri}");
    }
}

async fn a_member_s_devices_are_listed_a_page_at_a_time(backend: Backend) {
    let api = Api::start(backend).await;
    api.post("/api/members", json!({"external_id": "M1", "name": "Ada"})).await;
    api.post("/api/members", json!({"external_id": "M2", "name": "Bo"})).await;
    for token in ["tok-1", "tok-2", "tok-3"] {
        let (status, body) = api.post("/api/members/M1/devices", json!({"platform": "fcm", "token": token})).await;
        assert!(status.is_success(), "{body}");
    }
    let (status, page) = api.get("/api/members/M1/devices").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let tokens: Vec<&str> = page["items"].as_array().unwrap().iter().map(|d| d["token"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["tok-1", "tok-2", "tok-3"]);
    let first = &page["items"][0];
    assert_eq!((first["platform"].as_str(), first["registered_at"].is_string()), (Some("fcm"), true), "{first}");
    assert_eq!(page["next"], Value::Null);

    let (_, one) = api.get("/api/members/M1/devices?limit=2").await;
    assert_eq!(one["items"].as_array().unwrap().len(), 2);
    let (_, rest) = api.get(&format!("/api/members/M1/devices?limit=2&cursor={}", one["next"].as_str().unwrap())).await;
    assert_eq!(rest["items"][0]["token"], "tok-3", "{rest}");
    assert_eq!(rest["next"], Value::Null);

    assert_eq!(api.get("/api/members/M2/devices").await.1, json!({"items": [], "next": null}));
    let (status, body) = api.get("/api/members/nobody/devices").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nobody"), "{body}");
    assert_eq!(
        error_field(&api, "/api/members/M1/devices?limit=0").await,
        (StatusCode::UNPROCESSABLE_ENTITY, json!("limit"))
    );
    assert_eq!(
        error_field(&api, "/api/members/M1/devices?cursor=x").await,
        (StatusCode::UNPROCESSABLE_ENTITY, json!("cursor"))
    );
}

/// A journey entered on each `browse` event (again and again) and ended by a purchase.
const BROWSE_JOURNEY: &str = r#"
rules = []

[programme]
time_zone = "UTC"

[[journeys]]
id = "browsed"
trigger = "event"
event = "browse"
send_at = "10:00"
exit_on = ["purchase"]
reentry = "always"

[[journeys.steps]]
after = "1d"
channel = "email"
template = "winback_journey"
"#;

async fn a_retried_event_batch_changes_nothing_and_answers_the_same(backend: Backend) {
    let api = Api::with_toml(backend, BROWSE_JOURNEY).await;
    let t = &api.t;
    let member = json!({"external_id": "M1", "name": "Ada", "email": "ada@example.com", "time_zone": "UTC"});
    assert_eq!(api.post("/api/members", member).await.0, StatusCode::OK);
    let m1 = t.app.store.member_by_external_id("M1").await.unwrap().unwrap().id;
    let runs = || async { t.app.store.journey_runs_of(&[m1]).await.unwrap() };

    // The member browses: a run starts.
    let (status, body) = api.post("/api/events", json!({"id": "b1", "member": "M1", "kind": "browse"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.tick().await;
    assert_eq!(runs().await.len(), 1);

    // A purchase (no `at`: now) ends it; the batch also carries an unknown member, a bad item
    // and the same event twice.
    t.advance(SignedDuration::from_mins(1));
    let batch = json!([
        {"id": "p1", "member": "M1", "kind": "purchase", "amount": 10},
        {"id": "p1", "member": "M1", "kind": "purchase", "amount": 10},
        {"id": "g1", "member": "ghost", "kind": "visit"},
        {"id": "x1", "member": "M1"},
    ]);
    let (status, first) = api.post("/api/events", batch.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{first}");
    assert_eq!((first["recorded"].as_u64(), first["duplicate"].as_u64()), (Some(1), Some(1)), "{first}");
    assert_eq!(first["accepted"], 2);
    let exited = runs().await;
    assert_eq!(exited[0].state, "exited", "{exited:?}");

    // The member browses again: a second run, active.
    t.advance(SignedDuration::from_mins(1));
    api.post("/api/events", json!({"event_id": "b2", "member": "M1", "kind": "browse"})).await;
    t.tick().await;
    let before = runs().await;
    assert_eq!(before.iter().map(|r| r.state.as_str()).collect::<Vec<_>>(), ["exited", "active"], "{before:?}");

    // The host retries the purchase batch (its answer was lost): nothing is recorded, the new
    // run is not ended by the old purchase, and the answer is the same but for who recorded it.
    t.advance(SignedDuration::from_mins(1));
    for _ in 0..2 {
        let (status, again) = api.post("/api/events", batch.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
        assert_eq!((again["recorded"].as_u64(), again["duplicate"].as_u64()), (Some(0), Some(2)), "{again}");
        for same in ["accepted", "unknown_members", "errors"] {
            assert_eq!(again[same], first[same], "{same}");
        }
        assert_eq!(runs().await, before, "a retried purchase ended the second run");
    }

    // One purchase, one browse each: nothing stored twice, so nothing converts twice.
    let (status, export) = api.get("/api/members/M1/export").await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let mut kinds: Vec<&str> = export["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events in {export}"))
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| !k.starts_with("member."))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["browse", "browse", "purchase"]);

    // An idempotency key must be usable.
    let (status, body) = api.post("/api/events", json!({"id": " ", "member": "M1", "kind": "visit"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "id", "{body}");
}

/// The host's retry may arrive while the first delivery is still being written: between them,
/// each event is recorded once, and both answer the same `accepted`.
async fn two_deliveries_of_one_batch_at_once_record_it_once(backend: Backend) {
    let api = Api::start(backend).await;
    let members: Vec<Value> = (0..20).map(|i| json!({"external_id": format!("M{i}"), "name": "Ada"})).collect();
    assert_eq!(api.post("/api/members", Value::Array(members)).await.0, StatusCode::OK);
    let batch: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("order-{i}"), "member": format!("M{}", i % 20), "kind": "purchase", "amount": 5}))
        .collect();
    let batch = Value::Array(batch);
    let ((s1, a), (s2, b)) = tokio::join!(api.post("/api/events", batch.clone()), api.post("/api/events", batch));
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{a} {b}");
    assert_eq!(a["recorded"].as_u64().unwrap() + b["recorded"].as_u64().unwrap(), 200, "{a} {b}");
    assert_eq!((a["accepted"].as_u64(), b["accepted"].as_u64()), (Some(200), Some(200)));
    let (_, export) = api.get("/api/members/M3/export").await;
    let purchases = export["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "purchase").count();
    assert_eq!(purchases, 10, "{export}");
}

on_both_backends!(
    members_are_searched_filtered_and_paged_by_keyset,
    a_member_s_devices_are_listed_a_page_at_a_time,
    a_retried_event_batch_changes_nothing_and_answers_the_same,
    two_deliveries_of_one_batch_at_once_record_it_once,
);
