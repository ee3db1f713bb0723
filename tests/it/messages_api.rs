//! The messages API: search with filters a page at a time, one message with its history,
//! and an operator's retry and cancel, fenced on the message's state (a cancel racing a
//! worker's claim either wins, and the message is never sent, or answers 409).

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use serde_json::{Value, json};

use tidings::store::{Finalize, MessageFilter};
use tower::ServiceExt;

use crate::api::Api;
use crate::support::app::Backend;

/// Members born on this day in Shanghai: each has an SMS and an email due at 01:30Z (the API
/// tests' clock is at 01:35Z).
async fn birthdays(api: &Api, ids: &[&str]) -> Vec<i64> {
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"external_id": id, "name": id, "phone": format!("+8613800{i:06}"),
                   "email": format!("{}@example.com", id.to_lowercase()),
                   "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10"})
        })
        .collect();
    let (status, body) = api.post("/api/members", Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.t.tick().await.enqueued as usize, 2 * ids.len());
    let mut ids: Vec<i64> = api
        .t
        .app
        .store
        .messages(&MessageFilter { limit: 10_000, ..Default::default() })
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

fn item_ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

async fn listed(api: &Api, uri: &str) -> Vec<i64> {
    let (status, page) = api.get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {page}");
    item_ids(&page)
}

async fn call(router: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn router(api: &Api) -> Router {
    api.t.router()
}

async fn messages_are_filtered_and_paged_newest_first(backend: Backend) {
    let api = Api::start(backend).await;
    let all = birthdays(&api, &["B1", "B2", "B3"]).await;
    let newest_first: Vec<i64> = all.iter().rev().copied().collect();
    assert_eq!(listed(&api, "/api/messages").await, newest_first);

    // Pages of four and two, with no message twice and none left out.
    let (_, first) = api.get("/api/messages?limit=4").await;
    assert_eq!(item_ids(&first), newest_first[..4]);
    let cursor = first["next"].as_str().expect("more follow");
    let (_, second) = api.get(&format!("/api/messages?limit=4&cursor={cursor}")).await;
    assert_eq!(item_ids(&second), newest_first[4..]);
    assert_eq!(second["next"], Value::Null);

    let b2 = listed(&api, "/api/messages?member=B2").await;
    assert_eq!(b2.len(), 2);
    let (_, page) = api.get("/api/messages?member=B2").await;
    assert!(page["items"].as_array().unwrap().iter().all(|m| m["member"] == "B2"), "{page}");
    assert_eq!(listed(&api, "/api/messages?channel=sms").await.len(), 3);
    assert_eq!(listed(&api, "/api/messages?rule=birthday&state=scheduled&channel=email").await.len(), 3);
    assert_eq!(listed(&api, "/api/messages?rule=anniversary").await, Vec::<i64>::new());
    assert_eq!(listed(&api, "/api/messages?member=nobody").await, Vec::<i64>::new());
    // `since` is inclusive, `until` exclusive, both on `run_at` (01:30Z).
    assert_eq!(listed(&api, "/api/messages?since=2026-03-10T01:30:00Z").await.len(), 6);
    assert_eq!(listed(&api, "/api/messages?since=2026-03-10T01:30:00.001Z").await.len(), 0);
    assert_eq!(listed(&api, "/api/messages?until=2026-03-10T01:30:00Z").await.len(), 0);
    assert_eq!(
        listed(&api, "/api/messages?since=2026-03-10T09:00:00%2B08:00&until=2026-03-10T01:31:00Z").await.len(),
        6
    );

    for (uri, field) in [
        ("/api/messages?limit=0", "limit"),
        ("/api/messages?limit=1001", "limit"),
        ("/api/messages?limit=1.5", "limit"),
        ("/api/messages?cursor=12", "cursor"),
        ("/api/messages?state=queued", "state"),
        ("/api/messages?channel=fax", "channel"),
        ("/api/messages?since=yesterday", "since"),
        ("/api/messages?until=2026-03-10", "until"),
        ("/api/messages?since=2026-03-10T02:00:00Z&until=2026-03-10T01:00:00Z", "until"),
        ("/api/messages?memebr=B1", "memebr"),
    ] {
        let (status, body) = api.get(uri).await;
        assert_eq!(
            (status, &body["error"]["field"]),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!(field)),
            "{uri}: {body}"
        );
    }
}

async fn one_message_reads_with_its_rendered_content_and_history(backend: Backend) {
    let api = Api::start(backend).await;
    let ids = birthdays(&api, &["B1"]).await;
    let (status, m) = api.get(&format!("/api/messages/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(
        (m["state"].as_str(), m["rendered"].is_null(), m["attempts"].as_i64()),
        (Some("scheduled"), true, Some(0))
    );
    assert_eq!(m["history"].as_array().unwrap().len(), 1, "{m}");

    assert_eq!(api.t.dispatch_all().await, 2);
    let (_, m) = api.get(&format!("/api/messages/{}", ids[0])).await;
    assert_eq!((m["state"].as_str(), m["attempts"].as_i64()), (Some("sent"), Some(1)), "{m}");
    assert!(m["rendered"].is_object(), "what went out is kept: {m}");
    assert!(m["provider_id"].is_string(), "{m}");
    let states: Vec<&str> = m["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["scheduled", "sending", "sent"]);

    for (uri, status, field) in [
        ("/api/messages/999999", StatusCode::NOT_FOUND, Value::Null),
        ("/api/messages/abc", StatusCode::UNPROCESSABLE_ENTITY, json!("id")),
        ("/api/messages/-1", StatusCode::UNPROCESSABLE_ENTITY, json!("id")),
        ("/api/messages/abc/history", StatusCode::UNPROCESSABLE_ENTITY, json!("id")),
    ] {
        let (got, body) = api.get(uri).await;
        assert_eq!((got, &body["error"]["field"]), (status, &field), "{uri}: {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

async fn retry_and_cancel_move_only_the_states_they_name(backend: Backend) {
    let api = Api::start(backend).await;
    let t = &api.t;
    let ids = birthdays(&api, &["A", "B", "C", "D", "E"]).await;
    let r = router(&api);
    let post = |uri: String, body: &'static str| {
        let r = r.clone();
        async move { call(&r, Method::POST, &uri, body).await }
    };
    let last_history = |m: &Value| m["history"].as_array().unwrap().last().unwrap().clone();

    // A due message is cancelled, with who and why in its history.
    let (status, m) = post(format!("/api/messages/{}/cancel", ids[0]), r#"{"reason": "wrong list"}"#).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!((m["state"].as_str(), m["reason"].as_str()), (Some("skipped"), Some("cancelled by key:test-admin")));
    let (_, detail) = api.get(&format!("/api/messages/{}", ids[0])).await;
    assert_eq!(last_history(&detail)["detail"], "cancelled by key:test-admin: wrong list");
    // Twice is a conflict naming the state; so is retrying a cancelled message.
    for action in ["cancel", "retry"] {
        let (status, body) = post(format!("/api/messages/{}/{action}", ids[0]), "").await;
        assert_eq!((status, &body["error"]["field"]), (StatusCode::CONFLICT, &json!("state")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("skipped"), "{body}");
    }

    // Whoever authenticated the request is the actor: the key's name.
    let (_, key) = tidings::auth::create(&api.t.app.store, "ops-key", tidings::auth::Role::Admin, "test", api.t.now())
        .await
        .unwrap();
    let req = Request::post(format!("/api/messages/{}/cancel", ids[1]))
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = api.t.bare_router().oneshot(req).await.unwrap();
    let status = response.status();
    let m: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!((status, m["reason"].as_str()), (StatusCode::OK, Some("cancelled by key:ops-key")), "{m}");
    // Without it, the `X-Tidings-Actor` header names the caller, as for consent changes.
    let req = |id: i64, actor: &str| {
        Request::post(format!("/api/messages/{id}/retry")).header("x-tidings-actor", actor).body(Body::empty()).unwrap()
    };
    let response = r.clone().oneshot(req(ids[1], "member")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "the member is not an operator");

    // A worker claims the rest: claimed messages cannot be cancelled (nor retried).
    let lease = t.now().checked_add(SignedDuration::from_mins(5)).unwrap();
    let claimed = t.app.store.claim("w1", t.now(), lease, 100).await.unwrap();
    assert_eq!(claimed.len(), 8);
    for action in ["cancel", "retry"] {
        let (status, body) = post(format!("/api/messages/{}/{action}", ids[2]), "").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("claimed"), "{body}");
    }
    // It finishes them: one failed, one dead, one ambiguous, one deferred (a retry later), and
    // the rest sent.
    let later = t.now().checked_add(SignedDuration::from_hours(2)).unwrap();
    let outcome = |id: i64| match ids.iter().position(|&i| i == id) {
        Some(2) => Finalize::Failed { error: "invalid number".into() },
        Some(3) => Finalize::Dead { error: "timeout".into() },
        Some(4) => Finalize::Ambiguous { error: "connection reset".into() },
        Some(5) => Finalize::Retry { at: later, error: "rate limited".into() },
        _ => Finalize::Sent { provider: "outbox".into(), provider_id: format!("p{id}") },
    };
    let results: Vec<_> = claimed.iter().map(|c| (c.id, c.attempt, outcome(c.id))).collect();
    assert_eq!(t.app.store.finalize("w1", &results, t.now()).await.unwrap(), 8);

    // Failed, dead and ambiguous go back to the queue, due now, with fresh attempts.
    let response = r.clone().oneshot(req(ids[2], "support desk")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, detail) = api.get(&format!("/api/messages/{}", ids[2])).await;
    assert_eq!(last_history(&detail)["detail"], "retried by key:test-admin/support desk");
    assert_eq!(post(format!("/api/messages/{}/cancel", ids[2]), "").await.0, StatusCode::OK);
    let failed = t.app.store.messages(&MessageFilter { id: Some(ids[2]), ..Default::default() }).await.unwrap();
    assert_eq!(failed[0].state, "skipped");
    let again = t.app.store.claim("w2", t.now(), lease, 100).await.unwrap();
    assert!(again.is_empty(), "a cancelled message is not claimed: {again:?}");
    for &id in &ids[3..5] {
        let (status, m) = post(format!("/api/messages/{id}/retry"), r#"{"reason": "provider fixed"}"#).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        assert_eq!((m["state"].as_str(), m["attempts"].as_i64()), (Some("scheduled"), Some(0)), "{m}");
        assert_eq!(m["run_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap(), t.now());
        let (_, detail) = api.get(&format!("/api/messages/{id}")).await;
        assert_eq!(
            last_history(&detail),
            json!({"at": detail["history"].as_array().unwrap().last().unwrap()["at"], "state": "scheduled", "detail": "retried by key:test-admin: provider fixed"})
        );
    }
    // A sent message is neither retried nor cancelled.
    for action in ["retry", "cancel"] {
        let (status, body) = post(format!("/api/messages/{}/{action}", ids[6]), "").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("is sent"), "{body}");
    }
    // A deferred message (scheduled for later) can be cancelled; it is then never sent.
    let (status, m) = post(format!("/api/messages/{}/cancel", ids[5]), "").await;
    assert_eq!((status, m["state"].as_str()), (StatusCode::OK, Some("skipped")), "{m}");

    // The two retried and left alone go out on the next pass; the cancelled ones never do.
    assert_eq!(t.dispatch_all().await, 2);
    t.set("2026-03-10T04:00:00Z");
    assert_eq!(t.dispatch_all().await, 0);
    let states = t.states().await;
    assert_eq!((states.get("sent"), states.get("skipped")), (Some(&6), Some(&4)), "{states:?}");

    // Unknown ids are 404; bad ids and bodies name what is wrong.
    for action in ["retry", "cancel"] {
        let (status, body) = post(format!("/api/messages/999999/{action}"), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        for (uri, body, field) in [
            (format!("/api/messages/x/{action}"), "", "id"),
            (format!("/api/messages/{}/{action}", ids[7]), r#"{"why": "x"}"#, "why"),
            (format!("/api/messages/{}/{action}", ids[7]), r#"{"reason": 5}"#, "reason"),
            (format!("/api/messages/{}/{action}", ids[7]), "[1]", "body"),
        ] {
            let (status, got) = post(uri.clone(), body).await;
            assert_eq!(
                (status, &got["error"]["field"]),
                (StatusCode::UNPROCESSABLE_ENTITY, &json!(field)),
                "{uri} {body}: {got}"
            );
        }
    }
}

/// Cancels and a worker's claims at once, on every message: each message is either cancelled
/// (and not in any claim) or claimed (and its cancel answered 409), never both.
async fn a_cancel_racing_a_claim_never_cancels_a_claimed_message(backend: Backend) {
    let api = Api::start(backend).await;
    let names: Vec<String> = (0..30).map(|i| format!("R{i}")).collect();
    let ids = birthdays(&api, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let t = &api.t;
    let lease = t.now().checked_add(SignedDuration::from_mins(5)).unwrap();
    let store = t.app.store.clone();
    let now = t.now();
    // Each side waits for the other's first move, so both are under way when they meet.
    let (claimed_once, first_claim) = tokio::sync::oneshot::channel::<()>();
    let (cancelled_once, first_cancel) = tokio::sync::oneshot::channel::<()>();
    let claims = tokio::spawn(async move {
        first_cancel.await.unwrap();
        let mut claimed = Vec::new();
        let mut claimed_once = Some(claimed_once);
        loop {
            let batch = store.claim("racer", now, lease, 3).await.unwrap();
            if batch.is_empty() {
                return claimed;
            }
            claimed.extend(batch.into_iter().map(|c| c.id));
            if let Some(tx) = claimed_once.take() {
                tx.send(()).unwrap();
            }
            tokio::task::yield_now().await;
        }
    });
    // One task cancels from the newest message down while the worker claims from the oldest
    // up, three at a time: they meet in the middle, where both go for the same messages.
    let r = router(&api);
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    let cancels = tokio::spawn(async move {
        let mut answers = Vec::new();
        let mut cancelled_once = Some(cancelled_once);
        let mut first_claim = Some(first_claim);
        for id in newest_first {
            answers.push((id, call(&r, Method::POST, &format!("/api/messages/{id}/cancel"), "").await));
            if let Some(tx) = cancelled_once.take() {
                tx.send(()).unwrap();
                first_claim.take().unwrap().await.unwrap();
            }
        }
        answers
    });
    let claimed = claims.await.unwrap();
    let mut cancelled = Vec::new();
    for (id, (status, body)) in cancels.await.unwrap() {
        match status {
            StatusCode::OK => cancelled.push(id),
            StatusCode::CONFLICT => assert!(claimed.contains(&id), "{id} refused but not claimed: {body}"),
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(!cancelled.is_empty() && !claimed.is_empty(), "both sides won some: the two met");
    assert!(cancelled.iter().all(|id| !claimed.contains(id)), "a claimed message was cancelled");
    assert_eq!(cancelled.len() + claimed.len(), ids.len(), "every message was either claimed or cancelled");
    for m in t.app.store.messages(&MessageFilter { limit: 1000, ..Default::default() }).await.unwrap() {
        if cancelled.contains(&m.id) {
            assert_eq!((m.state.as_str(), m.reason.as_deref()), ("skipped", Some("cancelled by key:test-admin")));
        } else {
            assert_eq!(m.state, "claimed", "{m:?}");
        }
    }
}

on_both_backends!(
    messages_are_filtered_and_paged_newest_first,
    one_message_reads_with_its_rendered_content_and_history,
    retry_and_cancel_move_only_the_states_they_name,
);

/// The race on a runtime with two threads, so the cancels and the claims run in parallel.
mod race {
    use crate::support::app::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_cancel_racing_a_claim_never_cancels_a_claimed_message() {
        super::a_cancel_racing_a_claim_never_cancels_a_claimed_message(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_cancel_racing_a_claim_never_cancels_a_claimed_message() {
        super::a_cancel_racing_a_claim_never_cancels_a_claimed_message(Backend::Postgres).await
    }
}
