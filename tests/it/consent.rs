//! Consent, on both backends: marketing needs a granted consent, service follows its own rule;
//! every change is kept with its source, actor and time, and audited; an import does not undo a
//! member's STOP; Aliyun and Tencent Cloud replies opt out (and a wrong token is refused); a
//! complaint suppresses the address for good; push opt-out through the API; and an opt-out that
//! arrives while the member's message is being dispatched stops it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::FutureExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tidings::channels::{ChannelKind, Purpose};
use tidings::store::MessageFilter;
use tidings::store::consent::{ACTOR_IMPORT, AuditFilter, ConsentChange};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

/// 01:35Z is 09:35 in Shanghai: five minutes after a 09:30 birthday send on 10 March.
const NOW: &str = "2026-03-10T01:35:00Z";

/// Consent as the default policy has it, spelled out; a marketing and a service rule.
const RULES: &str = r#"
[consent]
marketing = "required"
service = "unless_revoked"
inbound_token = "inbound-secret"

[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"

[[rules]]
id = "points"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"
purpose = "service"
"#;

fn member(id: &str, phone: &str) -> String {
    json!({"external_id": id, "name": id, "phone": phone, "email": format!("{id}@example.com"), "locale": "en",
           "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10"})
    .to_string()
}

fn router(t: &TestApp) -> Router {
    t.router()
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn request(method: Method, uri: &str, body: Value, actor: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = actor {
        b = b.header("x-tidings-actor", a);
    }
    b.body(Body::from(if body.is_null() { String::new() } else { body.to_string() })).unwrap()
}

fn grant(member: &str, channel: ChannelKind, purpose: Purpose, granted: bool, source: &str) -> ConsentChange {
    ConsentChange { member: member.into(), channel, purpose, granted, source: source.into() }
}

/// (member, rule, state, reason) of every message, sorted.
async fn outcomes(t: &TestApp) -> Vec<(String, String, String, Option<String>)> {
    let rows = t.app.store.messages(&MessageFilter { limit: 1000, ..Default::default() }).await.unwrap();
    let mut out: Vec<_> = rows.into_iter().map(|m| (m.member, m.rule_id, m.state, m.reason)).collect();
    out.sort();
    out
}

fn row(m: &str, rule: &str, state: &str, reason: Option<&str>) -> (String, String, String, Option<String>) {
    (m.into(), rule.into(), state.into(), reason.map(str::to_string))
}

async fn marketing_needs_consent_and_service_follows_its_own_rule(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    t.import_jsonl(
        &[
            member("a-granted", "+8613800000001"),
            member("b-never-said", "+8613800000002"),
            member("c-revoked", "+8613800000003"),
        ]
        .join("\n"),
    )
    .await;
    let r = router(&t);
    for (id, status) in [("a-granted", "granted"), ("c-revoked", "granted"), ("c-revoked", "revoked")] {
        let (code, body) = call(
            &r,
            request(
                Method::POST,
                &format!("/api/members/{id}/consent"),
                json!({"channel": "sms", "status": status}),
                None,
            ),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let (code, body) = call(
        &r,
        request(Method::POST, "/api/members/a-granted/consent", json!({"channel": "sms", "status": "maybe"}), None),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "status", "{body}");

    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(
        outcomes(&t).await,
        [
            row("a-granted", "birthday", "sent", None),
            row("a-granted", "points", "sent", None),
            row("b-never-said", "birthday", "skipped", Some("no marketing consent for sms")),
            row("b-never-said", "points", "sent", None),
            row("c-revoked", "birthday", "skipped", Some("opted out of marketing sms")),
            row("c-revoked", "points", "sent", None),
        ]
    );
    assert_eq!(t.outbox().len(), 4);
}

async fn service_can_require_consent_too(backend: Backend) {
    let toml = RULES
        .replace("service = \"unless_revoked\"", "service = \"required\"")
        .replace("marketing = \"required\"", "marketing = \"unless_revoked\"");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&[member("a", "+8613800000001"), member("b", "+8613800000002")].join("\n")).await;
    let store = &t.app.store;
    store.change_consent(&[grant("a", ChannelKind::Sms, Purpose::Service, true, "app")], "api", t.now()).await.unwrap();
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(
        outcomes(&t).await,
        [
            row("a", "birthday", "sent", None),
            row("a", "points", "sent", None),
            row("b", "birthday", "sent", None),
            row("b", "points", "skipped", Some("no service consent for sms")),
        ]
    );
}

async fn history_keeps_every_change_with_source_actor_and_time_and_the_audit_log_says_who(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    t.import_jsonl(&member("m1", "+8613800000001")).await;
    let r = router(&t);
    let first = t.now();
    let (code, body) = call(
        &r,
        request(
            Method::POST,
            "/api/members/m1/consent",
            json!({"channel": "email", "status": "granted", "source": "app-settings"}),
            Some("crm-sync"),
        ),
    )
    .await;
    assert_eq!((code, &body["changed"]), (StatusCode::OK, &json!(true)), "{body}");
    // The same decision again changes nothing and records nothing.
    let (_, body) = call(
        &r,
        request(Method::POST, "/api/members/m1/consent", json!({"channel": "email", "status": "granted"}), None),
    )
    .await;
    assert_eq!(body["changed"], json!(false));
    t.advance(jiff::SignedDuration::from_hours(2));
    let second = t.now();
    assert!(
        t.app
            .store
            .opt_out("m1", ChannelKind::Email, Purpose::Marketing, "unsubscribe-one-click", t.now())
            .await
            .unwrap()
    );

    let (code, body) = call(&r, request(Method::GET, "/api/members/m1/consent", Value::Null, None)).await;
    assert_eq!(code, StatusCode::OK);
    let history: Vec<(String, bool, String, String, String)> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["channel"].as_str().unwrap().into(),
                h["granted"].as_bool().unwrap(),
                h["source"].as_str().unwrap().into(),
                h["actor"].as_str().unwrap().into(),
                h["at"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("email".into(), true, "app-settings".into(), "key:test-admin/crm-sync".into(), first.to_string()),
            ("email".into(), false, "unsubscribe-one-click".into(), "member".into(), second.to_string()),
        ]
    );
    assert_eq!(body["consent"][0]["granted"], json!(false));
    assert_eq!(body["consent"].as_array().unwrap().len(), 1);

    let (code, body) = call(&r, request(Method::GET, "/api/audit?subject=member:m1", Value::Null, None)).await;
    assert_eq!(code, StatusCode::OK);
    let entries: Vec<(String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().into(), e["action"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        entries,
        [("member".into(), "consent.revoke".into()), ("key:test-admin/crm-sync".into(), "consent.grant".into())],
        "newest first"
    );
    let (code, body) = call(&r, request(Method::GET, "/api/members/nobody/consent", Value::Null, None)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
}

async fn an_import_does_not_undo_a_members_stop(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    t.import_jsonl(&[member("m1", "+8613800000001"), member("m2", "+8613800000002")].join("\n")).await;
    let store = &t.app.store;
    let import = [
        grant("m1", ChannelKind::Sms, Purpose::Marketing, true, "import"),
        grant("m2", ChannelKind::Sms, Purpose::Marketing, true, "import"),
    ];
    let out = store.change_consent(&import, ACTOR_IMPORT, t.now()).await.unwrap();
    assert_eq!(out.changed, 2);
    // m1 replies STOP; an operator revokes m2 through the API.
    store
        .opt_out_phone("+8613800000001", ChannelKind::Sms, &[Purpose::Marketing], "sms-reply:twilio", t.now())
        .await
        .unwrap();
    store
        .change_consent(&[grant("m2", ChannelKind::Sms, Purpose::Marketing, false, "crm")], "api", t.now())
        .await
        .unwrap();
    t.advance(jiff::SignedDuration::from_mins(1));
    // The nightly import still says granted: it does not override the member's own STOP, but
    // does override the operator's revocation.
    let out = store.change_consent(&import, ACTOR_IMPORT, t.now()).await.unwrap();
    assert_eq!((out.changed, out.unchanged), (1, 1));
    let m1 = store.member_by_external_id("m1").await.unwrap().unwrap().id;
    let m2 = store.member_by_external_id("m2").await.unwrap().unwrap().id;
    let states = store.consents(&[m1, m2]).await.unwrap();
    assert_eq!(states.get(&(m1, ChannelKind::Sms, Purpose::Marketing)), Some(&false));
    assert_eq!(states.get(&(m2, ChannelKind::Sms, Purpose::Marketing)), Some(&true));
    // Re-importing the member record itself changes nothing either.
    t.import_jsonl(&member("m1", "+8613800000001")).await;
    t.tick().await;
    t.dispatch_all().await;
    let got: Vec<_> = outcomes(&t).await.into_iter().filter(|o| o.1 == "birthday").collect();
    assert_eq!(
        got,
        [row("m1", "birthday", "skipped", Some("opted out of marketing sms")), row("m2", "birthday", "sent", None)]
    );
    // The member can still change their mind themselves (or through the API).
    let (_, body) = call(
        &router(&t),
        request(
            Method::POST,
            "/api/members/m1/consent",
            json!({"channel": "sms", "status": "granted", "source": "app"}),
            None,
        ),
    )
    .await;
    assert_eq!(body["changed"], json!(true));
}

async fn aliyun_and_tencent_replies_opt_out_and_a_wrong_token_is_refused(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    t.import_jsonl(
        &[member("ali", "+8613800000001"), member("ten", "+8613800000002"), member("hk", "+85291234567")].join("\n"),
    )
    .await;
    let r = router(&t);
    let store = &t.app.store;
    let everyone: Vec<ConsentChange> =
        ["ali", "ten", "hk"].iter().map(|m| grant(m, ChannelKind::Sms, Purpose::Marketing, true, "signup")).collect();
    store.change_consent(&everyone, "api", t.now()).await.unwrap();

    let aliyun = json!([
        {"phone_number": "13800000001", "send_time": "2026-03-10 09:31:00", "content": "退订", "sign_name": "会员俱乐部",
         "dest_code": "1234", "sequence_id": 1234567890},
        {"phone_number": "13800000002", "send_time": "2026-03-10 09:31:05", "content": "谢谢", "sign_name": "会员俱乐部",
         "dest_code": "1234", "sequence_id": 1234567891}
    ]);
    for uri in ["/hooks/aliyun/inbound", "/hooks/aliyun/inbound?token=wrong"] {
        let (code, _) = call(&r, request(Method::POST, uri, aliyun.clone(), None)).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{uri}");
    }
    let tencent = json!({"extend": "", "mobile": "13800000002", "nationcode": "86", "sign": "会员俱乐部",
                         "text": "STOP", "time": 1773106260});
    let (code, _) = call(&r, request(Method::POST, "/hooks/tencent/inbound?token=nope", tencent.clone(), None)).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        for m in ["ali", "ten", "hk"] {
            v.push(store.member_by_external_id(m).await.unwrap().unwrap().id);
        }
        v
    };
    assert!(store.opted_out(&ids).await.unwrap().is_empty(), "refused webhooks change nothing");

    let (code, body) =
        call(&r, request(Method::POST, "/hooks/aliyun/inbound?token=inbound-secret", aliyun, None)).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"code": 0, "msg": "接收成功"})));
    let (code, body) =
        call(&r, request(Method::POST, "/hooks/tencent/inbound?token=inbound-secret", tencent, None)).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"result": 0, "errmsg": "OK"})));
    let hk = json!({"extend": "", "mobile": "91234567", "nationcode": "852", "sign": "会员俱乐部", "text": "td", "time": 1773106270});
    let (code, _) = call(&r, request(Method::POST, "/hooks/tencent/inbound?token=inbound-secret", hk, None)).await;
    assert_eq!(code, StatusCode::OK);

    let out = store.opted_out(&ids).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        for p in [Purpose::Marketing, Purpose::Service] {
            assert!(out.contains(&(*id, ChannelKind::Sms, p)), "member {i} {p:?}: {out:?}");
        }
    }
    let (_, history) = store.member_consent("ali").await.unwrap().unwrap();
    assert_eq!(history.last().map(|h| (h.source.as_str(), h.actor.as_str())), Some(("sms-reply:aliyun", "member")));
    let (_, history) = store.member_consent("ten").await.unwrap().unwrap();
    assert_eq!(history.last().map(|h| h.source.as_str()), Some("sms-reply:tencent"));

    t.tick().await;
    t.dispatch_all().await;
    assert!(t.outbox().is_empty(), "nothing goes to a number that replied STOP");
}

async fn a_complaint_suppresses_the_address_and_survives_reimport(backend: Backend) {
    let toml = RULES.replace("channels = [\"sms\"]", "channels = [\"email\"]");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&member("m1", "+8613800000001")).await;
    let store = &t.app.store;
    let signup = [
        grant("m1", ChannelKind::Email, Purpose::Marketing, true, "signup"),
        grant("m1", ChannelKind::Email, Purpose::Service, true, "signup"),
    ];
    store.change_consent(&signup, "api", t.now()).await.unwrap();
    let r = router(&t);
    let (code, body) = call(
        &r,
        request(
            Method::POST,
            "/api/suppressions",
            json!({"channel": "email", "address": "m1@example.com", "reason": "complaint"}),
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let id = store.member_by_external_id("m1").await.unwrap().unwrap().id;
    assert!(store.opted_out(&[id]).await.unwrap().contains(&(id, ChannelKind::Email, Purpose::Marketing)));
    // The host system re-imports the member, and even grants consent again.
    t.import_jsonl(&member("m1", "+8613800000001")).await;
    store
        .change_consent(&[grant("m1", ChannelKind::Email, Purpose::Marketing, true, "import")], ACTOR_IMPORT, t.now())
        .await
        .unwrap();
    t.tick().await;
    t.dispatch_all().await;
    // Marketing: the complaint revoked it. Service, still consented: the address is suppressed.
    assert_eq!(
        outcomes(&t).await,
        [
            row("m1", "birthday", "skipped", Some("opted out of marketing email")),
            row("m1", "points", "skipped", Some("email address suppressed")),
        ]
    );
    let suppressed = store.suppressed(&[(ChannelKind::Email, "m1@example.com".to_string())]).await.unwrap();
    assert_eq!(suppressed.len(), 1);
    assert!(t.outbox().is_empty());
}

async fn push_opt_out_through_the_api(backend: Backend) {
    let toml = RULES.replace("channels = [\"sms\"]", "channels = [\"push\"]");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&[member("p1", "+8613800000001"), member("p2", "+8613800000002")].join("\n")).await;
    let r = router(&t);
    for m in ["p1", "p2"] {
        let (code, _) = call(
            &r,
            request(
                Method::POST,
                &format!("/api/members/{m}/consent"),
                json!({"channel": "push", "status": "granted"}),
                None,
            ),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
    }
    // p2 turns notifications off in the app, which tells the host system, which tells us.
    for purpose in ["marketing", "service"] {
        let (code, body) = call(
            &r,
            request(
                Method::POST,
                "/api/members/p2/consent",
                json!({"channel": "push", "purpose": purpose, "status": "revoked", "source": "push-settings"}),
                Some("mobile-app"),
            ),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(
        outcomes(&t).await,
        [
            row("p1", "birthday", "sent", None),
            row("p1", "points", "sent", None),
            row("p2", "birthday", "skipped", Some("opted out of marketing push")),
            row("p2", "points", "skipped", Some("opted out of service push")),
        ]
    );
}

async fn an_opt_out_during_dispatch_stops_the_claimed_message(backend: Backend) {
    let toml = RULES.replace("\n[[rules]]\nid = \"points\"", "\n[[rules]]\nenabled = false\nid = \"points\"");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&[member("race", "+8613800000001"), member("calm", "+8613800000002")].join("\n")).await;
    let store = t.app.store.clone();
    let both = [
        grant("race", ChannelKind::Sms, Purpose::Marketing, true, "signup"),
        grant("calm", ChannelKind::Sms, Purpose::Marketing, true, "signup"),
    ];
    store.change_consent(&both, "api", t.now()).await.unwrap();
    t.tick().await;

    // The batch is claimed and rendered; then, before it is marked sending, "race" replies STOP.
    let mut dispatcher = t.app.dispatcher();
    let clock = t.app.clock.clone();
    let hook_store = store.clone();
    dispatcher.before_sending = Some(Arc::new(move |_ids: Vec<i64>| {
        let store = hook_store.clone();
        let now = clock.now();
        async move {
            store
                .opt_out_phone("+8613800000001", ChannelKind::Sms, &[Purpose::Marketing], "sms-reply:twilio", now)
                .await
                .unwrap();
        }
        .boxed()
    }));
    dispatcher.drain().await.unwrap();
    assert_eq!(
        outcomes(&t).await,
        [row("calm", "birthday", "sent", None), row("race", "birthday", "skipped", Some("opted out of marketing sms"))]
    );
    let sent: Vec<String> = t.outbox().iter().map(|m| m["member"].as_str().unwrap().to_string()).collect();
    assert_eq!(sent, ["calm"]);
}

async fn mark_sending_rechecks_consent_in_the_same_statement(backend: Backend) {
    let toml = RULES.replace("\n[[rules]]\nid = \"points\"", "\n[[rules]]\nenabled = false\nid = \"points\"");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&[member("x", "+8613800000001"), member("y", "+8613800000002")].join("\n")).await;
    let store = &t.app.store;
    let both = [
        grant("x", ChannelKind::Sms, Purpose::Marketing, true, "signup"),
        grant("y", ChannelKind::Sms, Purpose::Marketing, true, "signup"),
    ];
    store.change_consent(&both, "api", t.now()).await.unwrap();
    t.tick().await;
    let lease = t.now().checked_add(jiff::SignedDuration::from_mins(5)).unwrap();
    let claimed = store.claim("w", t.now(), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store.opt_out("x", ChannelKind::Sms, Purpose::Marketing, "unsubscribe-page", t.now()).await.unwrap();
    let marks: Vec<(i64, u32, ChannelKind, String)> =
        claimed.iter().map(|c| (c.id, c.attempt, c.channel, "{}".to_string())).collect();
    let policy = tidings::plan::consent::ConsentPolicy::default();
    let mut moved = store.mark_sending_consented("w", &marks, policy, t.now()).await.unwrap();
    moved.sort_unstable();
    let x = store.member_by_external_id("x").await.unwrap().unwrap().id;
    let mut expected: Vec<i64> = claimed.iter().filter(|c| c.member_id != x).map(|c| c.id).collect();
    expected.sort_unstable();
    assert_eq!(moved, expected);
}

async fn rule_and_template_changes_are_audited_across_a_reload_and_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"), dir.path());
    let toml = format!("{RULES}\n[templates]\ndir = \"{}\"\n", dir.path().display());
    let t = TestApp::start_on(backend, &toml, NOW).await;
    let actions = |entries: Vec<tidings::store::consent::AuditEntry>| -> Vec<(String, String, String)> {
        entries.into_iter().map(|e| (e.actor, e.action, e.subject)).collect()
    };
    let all = AuditFilter { limit: 100, ..Default::default() };
    let first = actions(t.app.store.audit(&all).await.unwrap());
    // The default configuration's (disabled) win-back journey and the sending policies too.
    let expected = ["rule:birthday", "rule:points", "journey:winback-journey"];
    for expected in expected.into_iter().chain(["policy:policy"]) {
        assert!(
            first
                .iter()
                .any(|(actor, action, subject)| actor == "config" && action.ends_with(".add") && subject == expected),
            "{expected} in {first:?}"
        );
    }
    // The templates were seeded into the database: version 1 of each, published by `seed`,
    // recorded once (not again as a configuration change).
    for expected in ["template:birthday", "template:winback"] {
        let seeded: Vec<_> = first.iter().filter(|(_, _, subject)| subject == expected).collect();
        assert_eq!(seeded, [&("seed".to_string(), "template.publish".to_string(), expected.to_string())]);
    }
    // Nothing changed: a second look records nothing.
    assert_eq!(t.app.audit_config().await.unwrap(), 0);

    // A marketer edits the birthday SMS as a draft and publishes it: each recorded once, by the
    // API; the configuration audit does not record it again, nor does a reload.
    let published = t.app.store.published_templates().await.unwrap();
    let birthday = published.iter().find(|v| v.key == "birthday").unwrap();
    let mut content = tidings::templates::content_of(birthday).unwrap();
    content.locales.get_mut("en").unwrap().sms =
        Some("Many happy returns, {{member.name}}! Reply STOP to opt out.\n".into());
    let (draft, _) = tidings::templates::create_draft(&t.app, "birthday", &content, "api", None).await.unwrap();
    tidings::templates::publish(&t.app, "birthday", draft.version, true, "api").await.unwrap();
    t.app.reload_templates().await.unwrap();
    assert_eq!(t.app.audit_config().await.unwrap(), 0);
    let last = actions(t.app.store.audit(&AuditFilter { limit: 2, ..Default::default() }).await.unwrap());
    assert_eq!(
        last,
        [
            ("api".to_string(), "template.publish".to_string(), "template:birthday".to_string()),
            ("api".to_string(), "template.draft".to_string(), "template:birthday".to_string())
        ]
    );
    // A restart with the same configuration and files records nothing new (and does not seed
    // again over the published edit).
    let t = t.restart().await;
    let after = t.app.store.audit(&all).await.unwrap();
    assert_eq!(after.len(), first.len() + 2);
    let publishes = t
        .app
        .store
        .audit(&AuditFilter {
            action: Some("template.publish".into()),
            subject: Some("template:birthday".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(publishes.len(), 2);
    assert_eq!(publishes[0].detail["version"], 2, "{:?}", publishes[0].detail);
    assert_eq!(publishes[0].detail["previous"], 1, "{:?}", publishes[0].detail);
    assert!(publishes[0].detail["digest"].is_string(), "{:?}", publishes[0].detail);
    let ctx = tidings::render::fixture_context("en");
    let sms = t.app.templates.current().render("birthday", tidings::channels::ChannelKind::Sms, &ctx).unwrap();
    assert!(matches!(sms, tidings::channels::Rendered::Sms { text, .. } if text.starts_with("Many happy returns")));
}

async fn consent_arrives_with_the_member_record(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    let with = |id: &str, phone: &str, consent: Value| {
        let mut m: Value = serde_json::from_str(&member(id, phone)).unwrap();
        m["consent"] = consent;
        m.to_string()
    };
    let report = t
        .import_jsonl(
            &[
                with("yes", "+8613800000001", json!({"sms": "granted", "email.service": "revoked"})),
                member("silent", "+8613800000002"),
                with("bad", "+8613800000003", json!({"sms": "sure", "fax": "granted"})),
            ]
            .join("\n"),
        )
        .await;
    let errors: Vec<(u64, Option<String>)> = report.errors.iter().map(|e| (e.line, e.field.clone())).collect();
    assert_eq!(errors, [(3, Some("consent.fax".into())), (3, Some("consent.sms".into()))]);
    assert_eq!(report.counts.inserted, 2);
    let (current, _) = t.app.store.member_consent("yes").await.unwrap().unwrap();
    let got: Vec<(ChannelKind, Purpose, bool, &str, &str)> =
        current.iter().map(|c| (c.channel, c.purpose, c.granted, c.source.as_str(), c.actor.as_str())).collect();
    assert_eq!(
        got,
        [
            (ChannelKind::Email, Purpose::Service, false, "import", "import"),
            (ChannelKind::Sms, Purpose::Marketing, true, "import", "import")
        ]
    );
    // Through the API too; a bad value is refused naming the item and field.
    let r = router(&t);
    let (code, body) = call(
        &r,
        request(
            Method::POST,
            "/api/members",
            json!([{"external_id": "api1", "name": "A", "phone": "+8613800000009", "consent": {"sms": "granted"}},
                   {"external_id": "api2", "name": "B", "consent": "yes"}]),
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "consent", "{body}");
    let (current, _) = t.app.store.member_consent("api1").await.unwrap().unwrap();
    assert_eq!(current.len(), 1);
    assert!(current[0].granted);
    t.tick().await;
    t.dispatch_all().await;
    let marketing: Vec<_> = outcomes(&t).await.into_iter().filter(|o| o.1 == "birthday").collect();
    assert_eq!(
        marketing,
        [
            row("silent", "birthday", "skipped", Some("no marketing consent for sms")),
            row("yes", "birthday", "sent", None)
        ]
    );
}

/// `tidings import` carries consent from JSON Lines (actor `import`), and `tidings audit` lists
/// who changed it.
#[test]
fn the_audit_command_lists_consent_given_in_an_import() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tidings.toml"),
        "[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\n",
    )
    .unwrap();
    let line = json!({"external_id": "m1", "name": "M", "phone": "+8613800000001", "consent": {"sms": "granted", "email": "revoked"}});
    std::fs::write(dir.path().join("members.jsonl"), format!("{line}\n")).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["--config", "tidings.toml"])
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("tidings runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["import", "members.jsonl"]);
    let entries: Value = serde_json::from_str(&run(&["audit", "--subject", "member:m1", "--json"])).unwrap();
    let got: Vec<(String, String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
                e["detail"]["channel"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        [
            ("import".into(), "consent.grant".into(), "sms".into()),
            ("import".into(), "consent.revoke".into(), "email".into())
        ]
    );
    let text = run(&["audit", "--action", "consent.revoke"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("import") && lines[0].contains("member:m1") && lines[0].contains("\"email\""), "{text}");
}

/// A feedback-loop report as RFC 5965 (appendix B) shapes it.
fn arf(recipient: &str) -> String {
    [
        "From: <fbl@mailbox.example>",
        "Date: Tue, 10 Mar 2026 09:40:36 +0800",
        "Subject: FW: Happy birthday",
        "To: <fbl-reports@club.example.com>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=feedback-report;",
        "     boundary=\"part1_13d.2e68ed54_boundary\"",
        "",
        "--part1_13d.2e68ed54_boundary",
        "Content-Type: text/plain; charset=\"US-ASCII\"",
        "",
        "This is an email abuse report for an email message received from IP 192.0.2.1.",
        "",
        "--part1_13d.2e68ed54_boundary",
        "Content-Type: message/feedback-report",
        "",
        "Feedback-Type: abuse",
        "User-Agent: SomeGenerator/1.0",
        "Version: 1",
        "Original-Mail-From: <bounces@club.example.com>",
        &format!("Original-Rcpt-To: <{recipient}>"),
        "Arrival-Date: Tue, 10 Mar 2026 09:31:00 +0800",
        "Source-IP: 192.0.2.1",
        "",
        "--part1_13d.2e68ed54_boundary",
        "Content-Type: text/rfc822-headers",
        "",
        "From: Jade Club <club@club.example.com>",
        &format!("To: <{recipient}>"),
        "Subject: Happy birthday",
        "",
        "--part1_13d.2e68ed54_boundary--",
        "",
    ]
    .join("\r\n")
}

async fn an_arf_complaint_suppresses_the_address_and_survives_reimport(backend: Backend) {
    let toml = RULES.replace("channels = [\"sms\"]", "channels = [\"email\"]").replace(
        "inbound_token = \"inbound-secret\"",
        "inbound_token = \"inbound-secret\"\ncomplaint_token = \"fbl-secret\"",
    );
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&[member("m1", "+8613800000001"), member("m2", "+8613800000002")].join("\n")).await;
    let store = &t.app.store;
    let signup = [
        grant("m1", ChannelKind::Email, Purpose::Marketing, true, "signup"),
        grant("m2", ChannelKind::Email, Purpose::Marketing, true, "signup"),
    ];
    store.change_consent(&signup, "api", t.now()).await.unwrap();
    let r = router(&t);
    let post = |uri: &str, auth: Option<&str>| {
        let mut b = Request::builder().method(Method::POST).uri(uri).header(header::CONTENT_TYPE, "message/rfc822");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::from(arf("M1@example.com"))).unwrap()
    };
    for req in [post("/hooks/complaints", None), post("/hooks/complaints?token=nope", Some("Bearer nope"))] {
        let (code, _) = call(&r, req).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
    }
    assert!(store.suppressed(&[(ChannelKind::Email, "m1@example.com".into())]).await.unwrap().is_empty());
    let (code, body) = call(&r, post("/hooks/complaints", Some("Bearer fbl-secret"))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["recipients"], json!(["m1@example.com"]));
    let (code, body) = call(&r, post("/hooks/complaints?token=fbl-secret", None)).await;
    assert_eq!((code, &body["suppressed"]), (StatusCode::OK, &json!(0)), "already suppressed");

    // The member is re-imported (and the import says granted): the address stays suppressed and
    // the member's complaint stays a revocation.
    let again = member("m1", "+8613800000001").replace("}", ",\"consent\":{\"email\":\"granted\"}}");
    t.import_jsonl(&again).await;
    t.tick().await;
    t.dispatch_all().await;
    let got: Vec<_> = outcomes(&t).await.into_iter().filter(|o| o.1 == "birthday").collect();
    assert_eq!(
        got,
        [row("m1", "birthday", "skipped", Some("opted out of marketing email")), row("m2", "birthday", "sent", None)]
    );
    let got: Vec<_> = outcomes(&t).await.into_iter().filter(|o| o.1 == "points" && o.0 == "m1").collect();
    assert_eq!(got, [row("m1", "points", "skipped", Some("email address suppressed"))]);
    let (_, history) = store.member_consent("m1").await.unwrap().unwrap();
    assert_eq!(history.last().map(|h| (h.source.as_str(), h.actor.as_str())), Some(("complaint", "member")));
}

/// Code written against the old `opt_outs` table still reads it, and deleting a revocation
/// through it (a member's erasure) deletes it.
async fn the_old_opt_outs_table_still_reads_and_deletes(backend: Backend) {
    use sqlx::Connection;
    let t = TestApp::start_on(backend, RULES, NOW).await;
    t.import_jsonl(&member("m1", "+8613800000001")).await;
    let store = &t.app.store;
    store.opt_out("m1", ChannelKind::Email, Purpose::Marketing, "unsubscribe-page", t.now()).await.unwrap();
    let id = store.member_by_external_id("m1").await.unwrap().unwrap().id;
    let url = t.app.settings().raw.database.url.clone();
    let rows = match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows: Vec<(i64, String, String)> =
                sqlx::query_as("SELECT member_id, channel, source FROM opt_outs").fetch_all(&mut c).await.unwrap();
            sqlx::query("DELETE FROM opt_outs WHERE member_id = ?").bind(id).execute(&mut c).await.unwrap();
            rows
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows: Vec<(i64, String, String)> =
                sqlx::query_as("SELECT member_id, channel, source FROM opt_outs").fetch_all(&mut c).await.unwrap();
            sqlx::query("DELETE FROM opt_outs WHERE member_id = $1").bind(id).execute(&mut c).await.unwrap();
            rows
        }
    };
    assert_eq!(rows, [(id, "email".to_string(), "unsubscribe-page".to_string())]);
    assert!(store.opted_out(&[id]).await.unwrap().is_empty());
}

/// The forecast counts what would go: a marketing message to a member without consent is counted
/// as skipped, as the dispatcher would skip it; a service message follows its own rule.
async fn the_forecast_counts_only_what_consent_allows(backend: Backend) {
    let t = TestApp::start_on(backend, RULES, NOW).await;
    let tomorrow = |id: &str, phone: &str| {
        let mut m: Value = serde_json::from_str(&member(id, phone)).unwrap();
        m["birth_date"] = json!("1990-03-11");
        m.to_string()
    };
    t.import_jsonl(&[tomorrow("a-granted", "+8613800000001"), tomorrow("b-never-said", "+8613800000002")].join("\n"))
        .await;
    let (code, body) = call(
        &router(&t),
        request(Method::POST, "/api/members/a-granted/consent", json!({"channel": "sms", "status": "granted"}), None),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let rows = t.app.forecast(2, None).await.unwrap();
    let counts = |rule: &str| {
        let r = rows.iter().find(|r| r.rule == rule).unwrap_or_else(|| panic!("{rule}: {rows:?}"));
        (r.messages, r.skipped, r.sample.clone())
    };
    assert_eq!(counts("birthday"), (1, 1, vec!["a-granted".to_string()]));
    assert_eq!(counts("points").0, 2, "service needs no grant");
}

on_both_backends!(
    the_old_opt_outs_table_still_reads_and_deletes,
    an_arf_complaint_suppresses_the_address_and_survives_reimport,
    consent_arrives_with_the_member_record,
    rule_and_template_changes_are_audited_across_a_reload_and_a_restart,
    marketing_needs_consent_and_service_follows_its_own_rule,
    service_can_require_consent_too,
    history_keeps_every_change_with_source_actor_and_time_and_the_audit_log_says_who,
    an_import_does_not_undo_a_members_stop,
    aliyun_and_tencent_replies_opt_out_and_a_wrong_token_is_refused,
    a_complaint_suppresses_the_address_and_survives_reimport,
    push_opt_out_through_the_api,
    an_opt_out_during_dispatch_stops_the_claimed_message,
    mark_sending_rechecks_consent_in_the_same_statement,
    the_forecast_counts_only_what_consent_allows,
);
