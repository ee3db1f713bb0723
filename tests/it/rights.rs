//! Member rights, on both backends: the export holds every kind of data kept about a member; an
//! erasure leaves nothing linkable to the person in any table, keeps message states, skips what
//! was scheduled, and keeps suppressed and opted-out addresses as hashes that still stop a
//! re-imported member; every table with a `member_id` column is covered by both.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::{Column, Row};
use tidings::channels::{ChannelKind, Platform, Purpose, PushDevice};
use tidings::members::EventInput;
use tidings::store::{MEMBER_TABLES, MessageFilter, MessageRow, Suppression};
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

/// 01:35Z is 09:35 in Shanghai: five minutes after the 09:30 birthday send on 10 March; the
/// holiday rule's 10:30 send is still ahead.
const NOW: &str = "2026-03-10T01:35:00Z";
const KEY: &str = "0123456789abcdef0123456789abcdef";

const NAME: &str = "Zhang Wei";
const PHONE: &str = "+8613800138000";
const EMAIL: &str = "zhang.wei@example.com";
const EXTERNAL: &str = "host-4711";
const TOKEN: &str = "fcm-token-of-zhang-wei";

fn config(key: bool) -> String {
    let privacy = if key { format!("[privacy]\nhash_key = \"{KEY}\"\n") } else { String::new() };
    format!(
        r#"
{privacy}
[evaluation]
lookahead = "2h"

[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms", "email"]
fallback = true
template = "birthday"
send_at = "09:30"

[[rules]]
id = "spring"
trigger = "holiday"
date = "03-10"
channels = ["sms"]
template = "holiday"
send_at = "10:30"
"#
    )
}

fn person(external_id: &str, name: &str, phone: &str, email: &str) -> String {
    json!({"external_id": external_id, "name": name, "phone": phone, "email": email, "locale": "zh-CN",
           "time_zone": "Asia/Shanghai", "birth_date": "1990-03-10", "lunar_birthday": "08-15",
           "member_since": "2020-05-01", "tier": "gold", "points": 1200,
           "attributes": {"favourite_store": "Nanjing Road"}})
    .to_string()
}

fn router(t: &TestApp) -> Router {
    t.router()
}

async fn call(router: &Router, method: Method, uri: &str) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn messages(t: &TestApp) -> Vec<MessageRow> {
    let mut rows = t.app.store.messages(&MessageFilter { limit: 1000, ..Default::default() }).await.unwrap();
    rows.sort_by_key(|m| m.id);
    rows
}

/// A member with something in every table: two messages (one sent, one scheduled), a purchase,
/// a push device, an SMS opt-out (a STOP after the birthday message) and a bounced email.
async fn member_with_everything(backend: Backend, key: bool) -> TestApp {
    let t = TestApp::start_on(backend, &config(key), NOW).await;
    let report = t
        .import_jsonl(
            &[person(EXTERNAL, NAME, PHONE, EMAIL), person("other", "Li Na", "+8613900139000", "li.na@example.com")]
                .join("\n"),
        )
        .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let store = &t.app.store;
    let event = EventInput {
        event_id: Some("order-1".into()),
        member: EXTERNAL.into(),
        kind: "purchase".into(),
        amount: Some(88.5),
        data: None,
        at: "2026-03-01T04:00:00Z".parse().unwrap(),
    };
    assert_eq!(store.record_events(&[event], t.now()).await.unwrap().recorded, 1);
    let device = PushDevice { platform: Platform::Fcm, token: TOKEN.into(), p256dh: None, auth: None };
    assert_eq!(store.add_push_device(EXTERNAL, &device, t.now()).await.unwrap(), Some(true));

    t.tick().await;
    t.dispatch_all().await;

    assert!(store.opt_out(EXTERNAL, ChannelKind::Sms, Purpose::Marketing, "twilio inbound", t.now()).await.unwrap());
    let bounce = Suppression {
        channel: ChannelKind::Email,
        address: EMAIL.into(),
        reason: format!("hard bounce: 550 5.1.1 <{EMAIL}> user unknown"),
        source: "smtp".into(),
    };
    assert_eq!(store.suppress(&[bounce], t.now()).await.unwrap(), 1);
    t
}

async fn the_export_holds_every_kind_of_data_kept_about_the_member(backend: Backend) {
    let t = member_with_everything(backend, true).await;
    let (status, doc) = call(&router(&t), Method::GET, &format!("/api/members/{EXTERNAL}/export")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");

    assert_eq!(doc["format"], "tidings.member_export");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["exported_at"], NOW);
    let m = &doc["member"];
    assert_eq!((m["external_id"].as_str(), m["name"].as_str()), (Some(EXTERNAL), Some(NAME)));
    assert_eq!((m["phone"].as_str(), m["email"].as_str()), (Some(PHONE), Some(EMAIL)));
    assert_eq!((m["birth_date"].as_str(), m["lunar_birthday"].as_str()), (Some("1990-03-10"), Some("08-15")));
    assert_eq!(m["attributes"]["favourite_store"], "Nanjing Road");
    assert_eq!(m["last_activity_at"], "2026-03-01T04:00:00Z");

    // The host's purchase, and the built-in events it and the member's first import recorded.
    let events = doc["events"].as_array().unwrap();
    let mut kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["member.first_purchase", "member.joined", "purchase"], "{doc}");
    let purchase = events.iter().find(|e| e["kind"] == "purchase").unwrap();
    assert_eq!((purchase["event_id"].as_str(), purchase["amount"].as_f64()), (Some("order-1"), Some(88.5)));

    // The SMS opt-out is in the consent, its history and the audit log.
    let revoked = |v: &serde_json::Value| v["channel"] == "sms" && v["granted"] == false;
    assert!(doc["consent"].as_array().unwrap().iter().any(revoked), "{doc}");
    assert!(doc["consent_history"].as_array().unwrap().iter().any(revoked), "{doc}");
    assert!(doc["audit"].as_array().unwrap().iter().any(|a| a["action"] == "consent.revoke"), "{doc}");
    assert!(doc["journey_runs"].as_array().unwrap().is_empty());

    let msgs = doc["messages"].as_array().unwrap();
    let by_rule = |rule: &str| msgs.iter().find(|m| m["rule_id"] == rule).unwrap_or_else(|| panic!("{rule}: {doc}"));
    let sent = by_rule("birthday");
    assert_eq!((sent["state"].as_str(), sent["channel"].as_str()), (Some("sent"), Some("sms")));
    assert!(sent["provider_id"].as_str().is_some_and(|p| !p.is_empty()), "{sent}");
    assert!(sent["rendered"].is_object(), "the text that was sent: {sent}");
    let states: Vec<&str> = sent["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"scheduled"));
    assert_eq!(states.last(), Some(&"sent"));
    assert_eq!(by_rule("spring")["state"], "scheduled");
    assert_eq!(msgs.len(), 2, "only this member's messages");

    assert_eq!(
        doc["push_devices"],
        json!([{"platform": "fcm", "token": TOKEN, "p256dh": null, "auth": null,
                                             "created_at": NOW}])
    );
    assert_eq!(doc["opt_outs"][0]["channel"], "sms");
    assert_eq!(doc["opt_outs"][0]["purpose"], "marketing");
    assert_eq!(doc["opt_outs"].as_array().unwrap().len(), 1);
    let suppressions = doc["suppressions"].as_array().unwrap();
    assert_eq!(suppressions.len(), 1, "{suppressions:?}");
    assert_eq!(
        (suppressions[0]["channel"].as_str(), suppressions[0]["address"].as_str()),
        (Some("email"), Some(EMAIL))
    );

    let (status, body) = call(&router(&t), Method::GET, "/api/members/nobody/export").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no member \"nobody\"");
}

/// Every text value in every table of the database, as (table, column, value).
async fn every_text(url: &str, backend: Backend) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .unwrap();
            for table in tables {
                let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\""));
                for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
                    for (i, c) in row.columns().iter().enumerate() {
                        if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                            out.push((table.clone(), c.name().to_string(), v));
                        }
                    }
                }
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            for table in tables {
                let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\""));
                for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
                    for (i, c) in row.columns().iter().enumerate() {
                        if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                            out.push((table.clone(), c.name().to_string(), v));
                        }
                    }
                }
            }
            pool.close().await;
        }
    }
    out
}

async fn erasure_leaves_nothing_linkable_keeps_states_and_still_stops_a_re_imported_member(backend: Backend) {
    let t = member_with_everything(backend, true).await;
    let url = t.app.settings().raw.database.url.clone();
    let before = messages(&t).await;
    let old_id = t.app.store.member_by_external_id(EXTERNAL).await.unwrap().unwrap().id;
    let theirs = |rows: &[MessageRow]| -> Vec<(String, String)> {
        rows.iter().filter(|m| m.member_id == old_id).map(|m| (m.rule_id.clone(), m.state.clone())).collect()
    };
    assert_eq!(theirs(&before), [("birthday".into(), "sent".into()), ("spring".into(), "scheduled".into())]);
    // Before: the person is all over the database.
    let texts = every_text(&url, backend).await;
    for needle in [NAME, PHONE, EMAIL, EXTERNAL, TOKEN] {
        assert!(texts.iter().any(|(_, _, v)| v.contains(needle)), "{needle} is stored before");
    }

    let (status, report) = call(&router(&t), Method::DELETE, &format!("/api/members/{EXTERNAL}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["member_id"], old_id);
    assert!(report["tombstone"].as_str().unwrap().starts_with("erased:"));
    for (field, n) in [
        ("events_deleted", 3),
        ("push_devices_deleted", 1),
        ("opt_outs_deleted", 1),
        ("messages_anonymised", 2),
        ("messages_skipped", 1),
        ("suppressions_removed", 1),
        ("suppressions_hashed", 2),
    ] {
        assert_eq!(report[field], n, "{field}: {report}");
    }

    // No table keeps the name, phone, email, the host's id or the device token.
    let texts = every_text(&url, backend).await;
    for needle in [NAME, PHONE, EMAIL, EXTERNAL, TOKEN] {
        let found: Vec<_> = texts.iter().filter(|(_, _, v)| v.contains(needle)).collect();
        assert!(found.is_empty(), "{needle} is still stored: {found:?}");
    }
    // Counts and states stay for statistics; what was scheduled is skipped.
    let after = messages(&t).await;
    assert_eq!(after.len(), before.len());
    assert_eq!(theirs(&after), [("birthday".into(), "sent".into()), ("spring".into(), "skipped".into())]);
    let skipped = after.iter().find(|m| m.member_id == old_id && m.rule_id == "spring").unwrap();
    assert_eq!(skipped.reason.as_deref(), Some("member erased"));
    let sent = after.iter().find(|m| m.member_id == old_id && m.rule_id == "birthday").unwrap();
    assert_eq!((sent.provider_id.as_ref(), sent.rendered.as_ref()), (None, None));
    assert!(sent.sent_at.is_some(), "instants are kept");
    let history = t.app.store.history(sent.id).await.unwrap();
    assert_eq!(history.last().map(|h| h.state.as_str()), Some("sent"));
    // The other member is untouched.
    assert!(after.iter().any(|m| m.member == "other" && m.rule_id == "spring" && m.state == "scheduled"));
    assert_eq!(t.app.store.member_count().await.unwrap(), 1);

    // Suppressions survive only as keyed hashes.
    let listed = t.app.store.suppressions(10).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|(s, _)| s.address.starts_with("hmac-sha256:")), "{listed:?}");

    // The id is gone: erasing again or exporting finds nobody, and changes nothing.
    let (status, body) = call(&router(&t), Method::DELETE, &format!("/api/members/{EXTERNAL}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], format!("no member \"{EXTERNAL}\""));
    let (status, _) = call(&router(&t), Method::GET, &format!("/api/members/{EXTERNAL}/export")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The same person imported again is a new member, and their opted-out number and bounced
    // address are still not written to; the tombstone gets nothing.
    t.import_jsonl(&person(EXTERNAL, NAME, PHONE, EMAIL)).await;
    let new_id = t.app.store.member_by_external_id(EXTERNAL).await.unwrap().unwrap().id;
    assert_ne!(new_id, old_id);
    t.set("2027-03-10T01:35:00Z");
    t.tick().await;
    t.dispatch_all().await;
    let next = messages(&t).await;
    let birthday = next.iter().find(|m| m.member_id == new_id && m.rule_id == "birthday").unwrap();
    assert_eq!(birthday.state, "skipped");
    assert_eq!(birthday.reason.as_deref(), Some("sms address suppressed; email address suppressed"));
    assert!(next.iter().any(|m| m.member == "other" && m.rule_id == "birthday" && m.state == "sent"));
    assert_eq!(next.iter().filter(|m| m.member_id == old_id).count(), 2, "the tombstone is not evaluated");
    let listed = t.app.store.suppressed(&[(ChannelKind::Sms, PHONE.into()), (ChannelKind::Email, EMAIL.into())]).await;
    assert_eq!(listed.unwrap().len(), 2);
    // An operator lifting the plain address lifts its hashed entry.
    let (status, _) = call(&router(&t), Method::DELETE, &format!("/api/suppressions/email/{EMAIL}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let listed = t.app.store.suppressed(&[(ChannelKind::Sms, PHONE.into()), (ChannelKind::Email, EMAIL.into())]).await;
    assert_eq!(listed.unwrap().into_iter().collect::<Vec<_>>(), [(ChannelKind::Sms, PHONE.to_string())]);
}

async fn erasure_without_a_hash_key_is_refused_and_changes_nothing(backend: Backend) {
    let t = member_with_everything(backend, false).await;
    let (status, body) = call(&router(&t), Method::DELETE, &format!("/api/members/{EXTERNAL}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("privacy.hash_key"), "{body}");
    let m = t.app.store.member_by_external_id(EXTERNAL).await.unwrap().expect("still there");
    assert_eq!(m.name, NAME);
    let (status, _) = call(&router(&t), Method::DELETE, "/api/members/nobody").await;
    assert_eq!(status, StatusCode::CONFLICT, "the key is checked first");
}

/// Fails when a migration adds a table with a `member_id` column that export and erasure do
/// not cover: add a step for it to both on both backends, and its name to `MEMBER_TABLES`.
async fn every_table_with_a_member_id_is_covered_by_export_and_erasure(backend: Backend) {
    let t = TestApp::start_on(backend, &config(true), NOW).await;
    let tables = t.app.store.tables_with_member_id().await.unwrap();
    assert!(tables.contains(&"messages".to_string()), "the schema query works: {tables:?}");
    let missing: Vec<&String> = tables.iter().filter(|t| !MEMBER_TABLES.contains(&t.as_str())).collect();
    assert!(missing.is_empty(), "tables with member_id not covered by export and erasure: {missing:?}");
}

/// The real binary: `members export --out`, `members erase` refusing without `--yes` or a key,
/// then erasing.
#[test]
fn the_members_commands_export_and_erase() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("run tidings");
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code(), text(out.stdout), text(out.stderr))
    };
    std::fs::write(dir.path().join("members.jsonl"), person(EXTERNAL, NAME, PHONE, EMAIL) + "\n").unwrap();
    assert_eq!(run(&["import", "members.jsonl"], &[]).0, Some(0));

    let (code, _, err) = run(&["members", "export", EXTERNAL, "--out", "export.json"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("export.json")).unwrap()).unwrap();
    assert_eq!(doc["member"]["name"], NAME);

    let (code, _, err) = run(&["members", "erase", EXTERNAL], &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--yes"), "{err}");
    let (code, _, err) = run(&["members", "erase", EXTERNAL, "--yes"], &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("privacy.hash_key"), "{err}");
    let (code, _, err) = run(&["members", "erase", "nobody", "--yes"], &[("TIDINGS_PRIVACY_HASH_KEY", KEY)]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no member \"nobody\""), "{err}");

    let (code, out, err) = run(&["members", "erase", EXTERNAL, "--yes"], &[("TIDINGS_PRIVACY_HASH_KEY", KEY)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with(&format!("erased \"{EXTERNAL}\"")), "{out}");
    let (code, out, err) = run(&["members", "export", EXTERNAL], &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(err.contains("no member"), "{err}");
}

on_both_backends!(
    the_export_holds_every_kind_of_data_kept_about_the_member,
    erasure_leaves_nothing_linkable_keeps_states_and_still_stops_a_re_imported_member,
    erasure_without_a_hash_key_is_refused_and_changes_nothing,
    every_table_with_a_member_id_is_covered_by_export_and_erasure,
);
