//! Reaching members, on both backends: channel fallback, opt-outs and suppressed addresses
//! decide where a message goes; an address a provider says is gone is suppressed; Twilio's
//! signed status callbacks become delivery receipts; push devices and suppressions through the
//! API; the signed webhook channel.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tidings::channels::{ChannelKind, Purpose};
use tidings::store::{MessageFilter, MessageRow, Suppression};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};
use crate::support::twilio::{INVALID_NUMBER, TwilioPeer};

/// 01:35Z is 09:35 in Shanghai: five minutes after a 09:30 birthday send on 10 March.
const NOW: &str = "2026-03-10T01:35:00Z";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-token";
const CALLBACK: &str = "https://club.example.com/hooks/twilio/status";
const INBOUND: &str = "https://club.example.com/hooks/twilio/inbound";

fn member(id: &str, phone: Option<&str>, email: Option<&str>) -> String {
    json!({"external_id": id, "name": id, "phone": phone, "email": email, "locale": "en",
           "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10"})
    .to_string()
}

async fn messages(t: &TestApp) -> Vec<MessageRow> {
    let mut rows = t.app.store.messages(&MessageFilter { limit: 1000, ..Default::default() }).await.unwrap();
    rows.sort_by(|a, b| a.member.cmp(&b.member));
    rows
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn router(t: &TestApp) -> Router {
    t.router()
}

fn json_request(method: Method, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

const FALLBACK_RULE: &str = r#"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms", "email"]
fallback = true
template = "birthday"
send_at = "09:30"
"#;

async fn a_fallback_rule_sends_once_on_the_first_channel_the_member_can_be_reached_on(backend: Backend) {
    let t = TestApp::start_on(backend, FALLBACK_RULE, NOW).await;
    let members = [
        member("a-phone-and-email", Some("+14155550101"), Some("a@example.com")),
        member("b-email-only", None, Some("b@example.com")),
        member("c-opted-out-of-sms", Some("+14155550103"), Some("c@example.com")),
        member("d-suppressed-phone", Some("+14155550104"), Some("d@example.com")),
        member("e-nothing-left", Some("+14155550105"), None),
    ];
    t.import_jsonl(&members.join("\n")).await;
    let store = &t.app.store;
    assert!(store.opt_out("c-opted-out-of-sms", ChannelKind::Sms, Purpose::Marketing, "test", t.now()).await.unwrap());
    assert!(store.opt_out("e-nothing-left", ChannelKind::Sms, Purpose::Marketing, "test", t.now()).await.unwrap());
    let suppressed = Suppression {
        channel: ChannelKind::Sms,
        address: "+14155550104".into(),
        reason: "invalid number".into(),
        source: "test".into(),
    };
    assert_eq!(store.suppress(&[suppressed.clone(), suppressed], t.now()).await.unwrap(), 1);
    // A service opt-out does not stop marketing.
    store.opt_out("a-phone-and-email", ChannelKind::Sms, Purpose::Service, "test", t.now()).await.unwrap();

    t.tick().await;
    t.dispatch_all().await;

    let got: Vec<(String, String, String, Option<String>)> =
        messages(&t).await.into_iter().map(|m| (m.member, m.channel, m.state, m.reason)).collect();
    let row = |m: &str, c: &str, s: &str, r: Option<&str>| {
        (m.to_string(), c.to_string(), s.to_string(), r.map(str::to_string))
    };
    assert_eq!(
        got,
        [
            row("a-phone-and-email", "sms", "sent", None),
            row("b-email-only", "email", "sent", None),
            row("c-opted-out-of-sms", "email", "sent", None),
            row("d-suppressed-phone", "email", "sent", None),
            row("e-nothing-left", "sms", "skipped", Some("opted out of marketing sms; no email address")),
        ]
    );
    let outbox: Vec<(String, String)> = t
        .outbox()
        .iter()
        .map(|m| (m["member"].as_str().unwrap().to_string(), m["message"]["channel"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(outbox.len(), 4, "one message each, never one per channel: {outbox:?}");
}

fn twilio_toml(peer: &TwilioPeer, rules: &str) -> String {
    format!(
        r#"
[channels]
sms = "twilio"
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+14155550100"
base_url = "{base}"
status_callback = "{CALLBACK}"
inbound_url = "{INBOUND}"
timeout_secs = 5
{rules}
"#,
        base = peer.base_url()
    )
}

const SMS_RULE: &str = r#"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"

# A service notice: two marketing messages on one day would collide (see tests/it/caps.rs).
[[rules]]
id = "spring"
trigger = "holiday"
date = "03-10"
purpose = "service"
channels = ["sms"]
template = "holiday"
send_at = "09:30"
"#;

async fn a_number_the_provider_says_is_invalid_is_suppressed_and_never_tried_again(backend: Backend) {
    let peer = TwilioPeer::start(SID, TOKEN).await;
    let t = TestApp::start_on(backend, &twilio_toml(&peer, SMS_RULE), NOW).await;
    t.import_jsonl(&member("bad-number", Some(INVALID_NUMBER), None)).await;

    t.tick().await;
    t.dispatch_all().await;

    // Both rules were due at once; the first send found the number gone, and the second went
    // out in the same group, so at most both reached the provider; after the suppression is
    // recorded, nothing more does.
    let rows = messages(&t).await;
    assert!(rows.iter().all(|m| m.state == "failed" || m.state == "skipped"), "{rows:?}");
    let tried = peer.count();
    let listed = t.app.store.suppressed(&[(ChannelKind::Sms, INVALID_NUMBER.to_string())]).await.unwrap();
    assert_eq!(listed.len(), 1);
    let (s, _) = &t.app.store.suppressions(10).await.unwrap()[0];
    assert_eq!(s.source, "twilio");
    assert!(s.reason.contains("21211"), "{s:?}");

    // A new occurrence next year is skipped without a request, and a re-import does not lift it.
    t.import_jsonl(&member("bad-number", Some(INVALID_NUMBER), Some("x@example.com"))).await;
    t.set("2027-03-10T01:35:00Z");
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(peer.count(), tried);
    let next_year: Vec<MessageRow> = messages(&t).await.into_iter().filter(|m| m.occurrence.contains("2027")).collect();
    assert!(!next_year.is_empty());
    assert!(next_year.iter().all(|m| m.state == "skipped" && m.reason.as_deref() == Some("sms address suppressed")));
}

/// Signs a Twilio callback as Twilio would (the tested verifier's own algorithm, written out).
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A form POST to one of the Twilio webhooks, signed or not.
fn twilio_post(uri: &str, params: &[(&str, &str)], signature: Option<String>) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(sig) = signature {
        req = req.header("X-Twilio-Signature", sig);
    }
    req.body(Body::from(body)).unwrap()
}

fn status_callback(params: &[(&str, &str)], signature: Option<String>) -> Request<Body> {
    twilio_post("/hooks/twilio/status", params, signature)
}

async fn twilio_status_callbacks_are_verified_and_become_receipts(backend: Backend) {
    let peer = TwilioPeer::start(SID, TOKEN).await;
    let t = TestApp::start_on(backend, &twilio_toml(&peer, SMS_RULE), NOW).await;
    t.import_jsonl(&[member("m1", Some("+14155550101"), None)].join("\n")).await;
    t.tick().await;
    t.dispatch_all().await;
    let rows = messages(&t).await;
    assert_eq!(rows.len(), 2);
    let (first, second) = (&rows[0], &rows[1]);
    let sid = first.provider_id.clone().unwrap();
    let other_sid = second.provider_id.clone().unwrap();
    let router = router(&t);

    let delivered = [("AccountSid", SID), ("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    // Unsigned, signed with another token, or signed for other parameters: 403, nothing moves.
    assert_eq!(call(&router, status_callback(&delivered, None)).await.0, StatusCode::FORBIDDEN);
    let wrong = twilio_signature("another-token", CALLBACK, &delivered);
    assert_eq!(call(&router, status_callback(&delivered, Some(wrong))).await.0, StatusCode::FORBIDDEN);
    let for_other = twilio_signature(TOKEN, CALLBACK, &[("MessageSid", sid.as_str()), ("MessageStatus", "failed")]);
    assert_eq!(call(&router, status_callback(&delivered, Some(for_other))).await.0, StatusCode::FORBIDDEN);
    assert!(messages(&t).await.iter().all(|m| m.state == "sent"));

    // Progress is acknowledged but changes nothing; a final status is a receipt.
    let progress = [("MessageSid", sid.as_str()), ("MessageStatus", "sent")];
    let sig = twilio_signature(TOKEN, CALLBACK, &progress);
    assert_eq!(call(&router, status_callback(&progress, Some(sig))).await.0, StatusCode::NO_CONTENT);
    let sig = twilio_signature(TOKEN, CALLBACK, &delivered);
    assert_eq!(call(&router, status_callback(&delivered, Some(sig))).await.0, StatusCode::NO_CONTENT);
    let failed = [("MessageSid", other_sid.as_str()), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    let sig = twilio_signature(TOKEN, CALLBACK, &failed);
    assert_eq!(call(&router, status_callback(&failed, Some(sig))).await.0, StatusCode::NO_CONTENT);

    let rows = messages(&t).await;
    let by_sid = |s: &str| rows.iter().find(|m| m.provider_id.as_deref() == Some(s)).unwrap();
    assert_eq!(by_sid(&sid).state, "delivered");
    assert_eq!(by_sid(&other_sid).state, "undelivered");
    let history = t.app.store.history(by_sid(&other_sid).id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.state.as_str(), last.detail.as_deref()),
        ("undelivered", Some("twilio reported undelivered: 30003"))
    );
}

fn inbound(params: &[(&str, &str)], signature: Option<String>) -> Request<Body> {
    twilio_post("/hooks/twilio/inbound", params, signature)
}

async fn a_stop_reply_opts_the_number_out_before_its_scheduled_messages_go(backend: Backend) {
    let peer = TwilioPeer::start(SID, TOKEN).await;
    let t = TestApp::start_on(backend, &twilio_toml(&peer, SMS_RULE), NOW).await;
    // Two members share a number (a family account); a third has their own.
    let members = [
        member("m1", Some("+14155550101"), None),
        member("m2", Some("+14155550101"), None),
        member("m3", Some("+14155550103"), None),
    ];
    t.import_jsonl(&members.join("\n")).await;
    t.tick().await;
    assert!(messages(&t).await.iter().all(|m| m.state == "scheduled"));
    let router = router(&t);

    let reply = |from: &'static str, text: &'static str| {
        [("AccountSid", SID), ("MessageSid", "SM1"), ("From", from), ("To", "+14155550100"), ("Body", text)]
    };
    // Unsigned or signed with another token: refused, nothing recorded.
    let stop = reply("+14155550101", " 退订 ");
    assert_eq!(call(&router, inbound(&stop, None)).await.0, StatusCode::FORBIDDEN);
    let wrong = twilio_signature("another-token", INBOUND, &stop);
    assert_eq!(call(&router, inbound(&stop, Some(wrong))).await.0, StatusCode::FORBIDDEN);
    // A reply that is not a keyword is acknowledged and changes nothing.
    let chat = reply("+14155550103", "Thanks, don't stop!");
    let sig = twilio_signature(TOKEN, INBOUND, &chat);
    assert_eq!(call(&router, inbound(&chat, Some(sig))).await.0, StatusCode::OK);
    // The opt-out is committed before the answer.
    let sig = twilio_signature(TOKEN, INBOUND, &stop);
    let (status, body) = call(&router, inbound(&stop, Some(sig))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().is_some_and(|b| b.contains("<Response>")), "{body:?}");
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for id in ["m1", "m2", "m3"] {
            ids.push(t.app.store.member_by_external_id(id).await.unwrap().unwrap().id);
        }
        ids
    };
    let out = t.app.store.opted_out(&ids).await.unwrap();
    for id in &ids[..2] {
        assert!(out.contains(&(*id, ChannelKind::Sms, Purpose::Marketing)), "{out:?}");
        assert!(out.contains(&(*id, ChannelKind::Sms, Purpose::Service)), "{out:?}");
    }
    assert!(!out.iter().any(|(id, ..)| *id == ids[2]), "{out:?}");

    // The messages already scheduled for the number are skipped; the other member's go.
    t.dispatch_all().await;
    let rows = messages(&t).await;
    for m in &rows {
        if m.member == "m3" {
            assert_eq!(m.state, "sent", "{m:?}");
        } else {
            assert_eq!(m.state, "skipped", "{m:?}");
            assert!(m.reason.as_deref().is_some_and(|r| r.contains("opted out")), "{m:?}");
        }
    }
    assert!(peer.received().iter().all(|r| r.field("To") == Some("+14155550103")));
}

async fn devices_and_suppressions_are_managed_through_the_api(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    t.import_jsonl(&member("m1", None, None)).await;
    let router = router(&t);
    let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    let auth = "BTBZMqHH6r4Tts7J_aSIgg";
    let sub = json!({"platform": "webpush", "endpoint": "https://push.example.net/send/abc",
                     "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}});

    let (status, _) = call(&router, json_request(Method::POST, "/api/members/m1/devices", sub.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&router, json_request(Method::POST, "/api/members/m1/devices", sub.clone())).await;
    assert_eq!(status, StatusCode::OK, "registering again is not a new device");
    let (status, _) = call(&router, json_request(Method::POST, "/api/members/nobody/devices", sub.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let fcm = json!({"platform": "fcm", "token": "fcm-token-1"});
    assert_eq!(
        call(&router, json_request(Method::POST, "/api/members/m1/devices", fcm.clone())).await.0,
        StatusCode::CREATED
    );

    let m1 = t.app.store.member_by_external_id("m1").await.unwrap().unwrap();
    let devices = t.app.store.push_devices(&[m1.id]).await.unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].1.p256dh.as_deref(), Some(p256dh));

    // Bad input names the field.
    let cases = [
        (json!({"platform": "pager", "token": "x"}), "platform"),
        (json!({"platform": "apns", "token": "not hex"}), "token"),
        (
            json!({"platform": "webpush", "endpoint": "http://push.example.net/x", "keys": {"p256dh": p256dh, "auth": auth}}),
            "endpoint",
        ),
        (
            json!({"platform": "webpush", "endpoint": "https://push.example.net/x", "keys": {"p256dh": "AAAA", "auth": auth}}),
            "keys.p256dh",
        ),
        (
            json!({"platform": "webpush", "endpoint": "https://push.example.net/x", "keys": {"p256dh": p256dh, "auth": "AAAA"}}),
            "keys.auth",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = call(&router, json_request(Method::POST, "/api/members/m1/devices", body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    // Removing a device: once, then 404.
    let (status, _) = call(&router, json_request(Method::DELETE, "/api/members/m1/devices", fcm.clone())).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&router, json_request(Method::DELETE, "/api/members/m1/devices", fcm)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Suppressions: added in a batch (a repeat counted as already there), listed, lifted.
    let batch = json!([{"channel": "email", "address": "bounced@example.com", "reason": "hard bounce"},
                       {"channel": "email", "address": "bounced@example.com"},
                       {"channel": "sms", "address": "+14155550199", "reason": "complaint"}]);
    let (status, answer) = call(&router, json_request(Method::POST, "/api/suppressions", batch)).await;
    assert_eq!((status, answer["suppressed"].as_u64()), (StatusCode::OK, Some(2)), "{answer}");
    let (status, answer) =
        call(&router, json_request(Method::POST, "/api/suppressions", json!({"channel": "fax", "address": "x"}))).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("[0].channel")));
    let (_, list) = call(&router, Request::get("/api/suppressions").body(Body::empty()).unwrap()).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let lift = |uri: &str| Request::delete(uri).body(Body::empty()).unwrap();
    assert_eq!(call(&router, lift("/api/suppressions/email/bounced@example.com")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&router, lift("/api/suppressions/email/bounced@example.com")).await.0, StatusCode::NOT_FOUND);

    // An opt-out through the API.
    let (status, _) =
        call(&router, json_request(Method::POST, "/api/members/m1/opt-outs", json!({"channel": "push"}))).await;
    assert_eq!(status, StatusCode::OK);
    let opted = t.app.store.opted_out(&[m1.id]).await.unwrap();
    assert!(opted.contains(&(m1.id, ChannelKind::Push, Purpose::Marketing)));
}

async fn receipts_for_unknown_messages_change_nothing(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    let receipt = tidings::channels::Receipt {
        provider: "twilio",
        provider_id: "SMnope".into(),
        status: tidings::channels::DeliveryStatus::Delivered,
        code: None,
        at: None,
    };
    assert_eq!(t.app.store.record_receipts(&[receipt], t.now()).await.unwrap(), 0);
}

/// The host system's end of the webhook: records each request, answers 503 to the first one.
async fn webhook_host() -> (String, Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let seen: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let log = seen.clone();
    let router = Router::new().route(
        "/tidings",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push((headers, body));
                if log.len() == 1 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tidings", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

async fn the_webhook_channel_posts_signed_json_to_the_host(backend: Backend) {
    let (url, seen) = webhook_host().await;
    let secret = "a-webhook-secret-of-some-length";
    let toml = format!(
        r#"
[channels]
webhook = "webhook"
[webhook]
url = "{url}"
secret = "{secret}"
[dispatch]
backoff_base = "1m"
[[rules]]
id = "birthday-inbox"
trigger = "birthday"
channels = ["webhook"]
template = "birthday"
send_at = "09:30"
"#
    );
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&member("m1", None, None)).await;
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(messages(&t).await[0].state, "scheduled", "the host's 503 is retried later");
    t.advance(jiff::SignedDuration::from_mins(5));
    t.dispatch_all().await;
    let rows = messages(&t).await;
    assert_eq!(rows[0].state, "sent");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (headers, body) in seen.iter() {
        let ts = headers["x-tidings-timestamp"].to_str().unwrap();
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        hmac::Mac::update(&mut mac, format!("{ts}.{body}").as_bytes());
        let want: String = hmac::Mac::finalize(mac).into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(headers["x-tidings-signature"].to_str().unwrap(), format!("v1={want}"));
        assert_eq!(headers["content-type"], "application/json");
        let json: Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["member"], "m1");
        assert_eq!(json["rule"], "birthday-inbox");
        assert_eq!(json["payload"]["member"]["name"], "m1");
        assert_eq!(json["payload"]["template"], "birthday");
        assert_eq!(headers["idempotency-key"].to_str().unwrap(), json["id"].as_str().unwrap());
    }
    assert_eq!(seen[0].0["idempotency-key"], seen[1].0["idempotency-key"], "one key for every attempt");
}

/// Twilio down (503, then its circuit open), Aliyun up: every message fails over to Aliyun,
/// with its approved template, and Aliyun's delivery reports come back through the token-guarded
/// receipt endpoint.
async fn a_provider_that_fails_transiently_fails_over_to_the_next_and_receipts_follow(backend: Backend) {
    use crate::support::aliyun::AliyunPeer;
    use crate::support::twilio::Reply;
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    twilio.script(100, Reply::raw(503, "{}"));
    let aliyun = AliyunPeer::start("LTAI5tAbCdEfGhIjKlMnOpQr", "aliyun-secret").await;
    let toml = format!(
        r#"
[channels]
sms = ["twilio", "aliyun"]
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+14155550100"
base_url = "{twilio}"
[aliyun]
access_key_id = "LTAI5tAbCdEfGhIjKlMnOpQr"
access_key_secret = "aliyun-secret"
sign_name = "玉石会员"
base_url = "{aliyun}"
receipt_token = "receipts-token"
[limits.twilio]
circuit_failures = 2
circuit_cooldown = "1h"
[dispatch]
concurrency = 1                    # one send at a time, so the circuit's effect is exact
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"
"#,
        twilio = twilio.base_url(),
        aliyun = aliyun.base_url()
    );
    let t = TestApp::start_on(backend, &toml, NOW).await;
    let members: Vec<String> =
        (0..5).map(|i| member(&format!("m{i}"), Some(&format!("+86138001380{i:02}")), None)).collect();
    t.import_jsonl(&members.join("\n")).await;
    t.tick().await;
    t.dispatch_all().await;

    let rows = messages(&t).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|m| m.state == "sent" && m.provider.as_deref() == Some("aliyun")), "{rows:?}");
    assert_eq!(aliyun.count(), 5);
    assert_eq!(twilio.count(), 2, "two failures opened twilio's circuit; the rest went straight to aliyun");
    let sent = aliyun.received();
    assert!(sent.iter().all(|r| r.param("TemplateCode") == Some("SMS_0000101")), "the en mapping");

    // Aliyun's delivery report for the first: wrong token refused, right token recorded.
    let biz = rows[0].provider_id.clone().unwrap();
    let report = json!([{"phone_number": "8613800138000", "send_time": "2026-03-10 09:35:00",
        "report_time": "2026-03-10 09:35:05", "success": false, "err_code": "MK:0001",
        "err_msg": "用户停机", "sms_size": "1", "biz_id": biz, "out_id": "x"}]);
    let router = router(&t);
    let (status, _) =
        call(&router, json_request(Method::POST, "/hooks/aliyun/receipts?token=nope", report.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ack) =
        call(&router, json_request(Method::POST, "/hooks/aliyun/receipts?token=receipts-token", report)).await;
    assert_eq!((status, ack), (StatusCode::OK, json!({"code": 0, "msg": "成功"})));
    let rows = messages(&t).await;
    assert_eq!(rows[0].state, "undelivered");
    let history = t.app.store.history(rows[0].id).await.unwrap();
    assert_eq!(history.last().unwrap().detail.as_deref(), Some("aliyun reported undelivered: MK:0001"));
}

/// The daemon's own router and store: the List-Unsubscribe URL in a received marketing email,
/// POSTed one-click, records the opt-out; the member's next marketing email is not sent.
async fn a_one_click_unsubscribe_from_a_received_email_stops_the_next_one(backend: Backend) {
    use crate::support::smtp::{SmtpOptions, SmtpPeer};
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let toml = format!(
        r#"
[channels]
email = "smtp"
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Jade Club <club@example.com>"
unsubscribe_url = "https://club.example.com/unsubscribe"
link_secret = "a-link-signing-secret-of-32-chars-or-more"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["email"]
template = "birthday"
send_at = "09:30"
[[rules]]
id = "spring"
trigger = "holiday"
date = "03-11"
channels = ["email"]
template = "holiday"
send_at = "09:30"
"#,
        port = smtp.port()
    );
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&member("m1", None, Some("m1@example.com"))).await;
    t.tick().await;
    t.dispatch_all().await;
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let parsed = mail_parser::MessageParser::default().parse(&received[0].data).unwrap();
    let header = parsed.header_raw("List-Unsubscribe").unwrap().replace("\r\n", "");
    let url = header.trim().trim_start_matches('<').split('>').next().unwrap().to_string();
    assert_eq!(parsed.header_raw("List-Unsubscribe-Post").map(str::trim), Some("List-Unsubscribe=One-Click"));
    let path = url.strip_prefix("https://club.example.com").unwrap().to_string();

    let router = router(&t);
    let one_click = |p: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(p)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("List-Unsubscribe=One-Click"))
            .unwrap()
    };
    let tampered = format!("{}x", path);
    assert_eq!(call(&router, one_click(&tampered)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&router, one_click(&path)).await.0, StatusCode::OK);

    // The next day's holiday greeting is marketing email too: skipped, not sent.
    t.set("2026-03-11T01:35:00Z");
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(smtp.received().len(), 1);
    let spring: Vec<MessageRow> = messages(&t).await.into_iter().filter(|m| m.rule_id == "spring").collect();
    assert_eq!(spring[0].state, "skipped");
    assert_eq!(spring[0].reason.as_deref(), Some("opted out of marketing email"));
}

on_both_backends!(
    a_one_click_unsubscribe_from_a_received_email_stops_the_next_one,
    a_provider_that_fails_transiently_fails_over_to_the_next_and_receipts_follow,
    the_webhook_channel_posts_signed_json_to_the_host,
    a_fallback_rule_sends_once_on_the_first_channel_the_member_can_be_reached_on,
    a_number_the_provider_says_is_invalid_is_suppressed_and_never_tried_again,
    twilio_status_callbacks_are_verified_and_become_receipts,
    a_stop_reply_opts_the_number_out_before_its_scheduled_messages_go,
    devices_and_suppressions_are_managed_through_the_api,
    receipts_for_unknown_messages_change_nothing,
);
