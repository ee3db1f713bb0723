//! Templates as versions in the database, through the HTTP router and the CLI: the seeded set,
//! drafts validated on the way in (strict, against the fixture, naming locale and part),
//! warnings that hold a publish until acknowledged, history with pagination, diffs, rollback,
//! previews against a member or the fixture member, test sends through the provider, another
//! instance picking up a publish, and export/import round trips.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tidings::channels::{ChannelKind, Rendered};
use tidings::store::consent::AuditFilter;
use tower::ServiceExt;

use crate::support::app::{Backend, TestApp};

const NOW: &str = "2026-11-20T08:00:00Z";

const RULES: &str =
    "[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\nchannels = [\"sms\", \"email\"]\ntemplate = \"birthday\"\n";

struct Api {
    t: TestApp,
    router: Router,
}

impl Api {
    async fn start(backend: Backend) -> Api {
        let t = TestApp::start_on(backend, RULES, NOW).await;
        let router = t.router();
        Api { t, router }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.call(req).await
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(req).await.expect("the router answers");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The published birthday variants, with the English SMS replaced.
    async fn birthday_with_en_sms(&self, sms: &str) -> Value {
        let (status, body) = self.get("/api/templates/birthday").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut variants = body["published"]["variants"].clone();
        variants["en"]["sms"] = json!(sms);
        variants
    }

    fn sms_now(&self, locale: &str) -> String {
        let ctx = tidings::render::fixture_context(locale);
        match self.t.app.templates.current().render("birthday", ChannelKind::Sms, &ctx).unwrap() {
            Rendered::Sms { text, .. } => text,
            other => panic!("{other:?}"),
        }
    }
}

fn codes(warnings: &Value) -> Vec<(String, String)> {
    let list = warnings.as_array().unwrap_or_else(|| panic!("warnings in {warnings}"));
    list.iter().map(|w| (w["code"].as_str().unwrap().to_string(), w["locale"].as_str().unwrap().to_string())).collect()
}

async fn drafts_publish_history_diff_and_rollback(backend: Backend) {
    let api = Api::start(backend).await;
    let original = api.sms_now("en");

    // The configured set was seeded as version 1 of each key.
    let (status, list) = api.get("/api/templates").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let birthday = list["templates"].as_array().unwrap().iter().find(|t| t["key"] == "birthday").unwrap().clone();
    assert_eq!(birthday["published_version"], 1, "{birthday}");
    assert_eq!(birthday["draft_pending"], false);
    assert_eq!(birthday["locales"], json!(["en", "zh-CN"]));
    assert!(birthday["channels"].as_array().unwrap().contains(&json!("sms")), "{birthday}");

    // Bad drafts are refused, naming the field, or the locale and part.
    let (status, body) = api.post("/api/templates/birthday/drafts", json!({"note": "x"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("variants")));
    let (status, body) = api.post("/api/templates/birthday/drafts", json!({"variants": {"en": {"mms": "hi"}}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("variants.en")));
    let (status, body) = api.post("/api/templates/bad.key/drafts", json!({})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("key")));
    let broken = api.birthday_with_en_sms("Hi {{member.nickname}}").await;
    let (status, body) = api.post("/api/templates/birthday/drafts", json!({"variants": broken})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problems = body["error"]["problems"].to_string();
    assert!(problems.contains("birthday/en/sms.hbs") && problems.contains("member.nickname"), "{body}");
    for source in ["{{> /etc/passwd}}", "{{exec \"ls\"}}"] {
        let variants = api.birthday_with_en_sms(source).await;
        let (status, body) = api.post("/api/templates/birthday/drafts", json!({"variants": variants})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{source}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("partials are not supported") || message.contains("helper exec not found"), "{body}");
    }
    assert_eq!(api.t.app.store.template_versions("birthday", None, 10).await.unwrap().len(), 1, "nothing stored");

    // A draft with a warning (no opt-out footer on a marketing SMS) is stored and sends nothing.
    let edited = api.birthday_with_en_sms("Many happy returns, {{member.name}}!").await;
    let (status, draft) =
        api.post("/api/templates/birthday/drafts", json!({"variants": edited, "note": "shorter"})).await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    assert_eq!((draft["version"].as_i64(), draft["state"].as_str()), (Some(2), Some("draft")));
    assert!(codes(&draft["warnings"]).contains(&("sms_opt_out".into(), "en".into())), "{draft}");
    assert_eq!(api.sms_now("en"), original);
    let (_, list) = api.get("/api/templates").await;
    let birthday = list["templates"].as_array().unwrap().iter().find(|t| t["key"] == "birthday").unwrap().clone();
    assert_eq!((birthday["draft_pending"].as_bool(), birthday["draft_version"].as_i64()), (Some(true), Some(2)));
    let (_, both) = api.get("/api/templates/birthday").await;
    assert_eq!((both["published"]["version"].as_i64(), both["draft"]["version"].as_i64()), (Some(1), Some(2)));

    // Publishing needs the warnings acknowledged; then it sends at once.
    let (status, refused) = api.post("/api/templates/birthday/versions/2/publish", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(codes(&refused["warnings"]).contains(&("sms_opt_out".into(), "en".into())), "{refused}");
    let (status, body) =
        api.post("/api/templates/birthday/versions/2/publish", json!({"acknowledge_warnings": "yes"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("acknowledge_warnings"))
    );
    let (status, published) =
        api.post("/api/templates/birthday/versions/2/publish", json!({"acknowledge_warnings": true})).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["state"], "published");
    assert_eq!(api.sms_now("en"), "Many happy returns, Emma O'Neill!");
    assert_eq!(
        api.sms_now("zh-CN"),
        tidings::render::Templates::builtin()
            .render("birthday", ChannelKind::Sms, &tidings::render::fixture_context("zh-CN"))
            .map(|r| match r {
                Rendered::Sms { text, .. } => text,
                _ => unreachable!(),
            })
            .unwrap()
    );
    let (status, _) =
        api.post("/api/templates/birthday/versions/2/publish", json!({"acknowledge_warnings": true})).await;
    assert_eq!(status, StatusCode::CONFLICT, "published already");

    // History, newest first, a page at a time.
    let (_, page) = api.get("/api/templates/birthday/versions?limit=1").await;
    assert_eq!(page["versions"][0]["version"], 2);
    assert_eq!(page["next_before"], 2);
    let (_, page) = api.get("/api/templates/birthday/versions?limit=1&before=2").await;
    assert_eq!(
        (page["versions"][0]["version"].as_i64(), page["versions"][0]["state"].as_str()),
        (Some(1), Some("superseded"))
    );
    for (query, field) in [("limit=0", "limit"), ("limit=x", "limit"), ("before=two", "before")] {
        let (status, body) = api.get(&format!("/api/templates/birthday/versions?{query}")).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
    let (status, body) = api.get("/api/templates/birthday/versions/latest").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("version")));
    let (status, one) = api.get("/api/templates/birthday/versions/1").await;
    assert_eq!(status, StatusCode::OK);
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/birthday/en/sms.hbs"));
    assert_eq!(one["variants"]["en"]["sms"].as_str(), Some(shipped.unwrap().as_str()));
    let (status, _) = api.get("/api/templates/birthday/versions/99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The diff names the one part that changed.
    let (status, diff) = api.get("/api/templates/birthday/diff?from=1&to=2").await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let parts = diff["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{diff}");
    assert_eq!((parts[0]["locale"].as_str(), parts[0]["part"].as_str()), (Some("en"), Some("sms")));
    let text = parts[0]["diff"].as_str().unwrap();
    assert!(
        text.contains("--- birthday@1/en/sms.hbs") && text.contains("+Many happy returns, {{member.name}}!"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("-{{programme.name}}: Happy birthday")), "{text}");
    let (status, body) = api.get("/api/templates/birthday/diff?from=1").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("to")));

    // An old version is not published again as such: a rollback publishes a copy.
    let (status, _) =
        api.post("/api/templates/birthday/versions/1/publish", json!({"acknowledge_warnings": true})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, rolled) = api.post("/api/templates/birthday/rollback", json!({"version": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{rolled}");
    assert_eq!(
        (rolled["version"].as_i64(), rolled["state"].as_str(), rolled["rollback_of"].as_i64()),
        (Some(3), Some("published"), Some(1))
    );
    assert_eq!(api.sms_now("en"), original);
    let (status, body) = api.post("/api/templates/birthday/rollback", json!({"version": "one"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("version")));

    // Each change is in the audit log once, by the API.
    let entries = api
        .t
        .app
        .store
        .audit(&AuditFilter { subject: Some("template:birthday".into()), limit: 20, ..Default::default() })
        .await
        .unwrap();
    let got: Vec<(String, String)> = entries.iter().map(|e| (e.actor.clone(), e.action.clone())).collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        got,
        [
            pair("key:test-admin", "template.publish"),
            pair("key:test-admin", "template.rollback"),
            pair("key:test-admin", "template.publish"),
            pair("key:test-admin", "template.draft"),
            pair("seed", "template.publish"),
        ]
    );
    assert_eq!(api.t.app.audit_config().await.unwrap(), 0);
}

async fn previews_render_a_draft_for_a_member_or_the_fixture(backend: Backend) {
    let api = Api::start(backend).await;
    api.t
        .import_jsonl(
            &json!({"external_id": "wang", "name": "王小明", "phone": "+8613800000001", "locale": "zh-CN",
                    "time_zone": "Asia/Shanghai", "birth_date": "1990-11-23"})
            .to_string(),
        )
        .await;
    let variants = api.birthday_with_en_sms("Hi {{member.name}}, {{member.vip}}").await;
    // An unknown variable in a draft body is a load error (strict), so preview one behind #if.
    let (status, body) = api.post("/api/templates/birthday/preview", json!({"variants": variants})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let variants = api.birthday_with_en_sms("{{#if member.vip}}VIP {{/if}}Hi {{member.name}}").await;
    let (status, body) = api.post("/api/templates/birthday/preview", json!({"variants": variants})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The fixture member, every locale and channel.
    let rendered = body["rendered"].as_array().unwrap();
    assert_eq!(rendered.len(), 6, "{body}");
    let en_sms = rendered.iter().find(|r| r["channel"] == "sms" && r["locale"] == "en").unwrap();
    assert_eq!(en_sms["rendered"]["text"], "Hi Emma O'Neill");
    assert_eq!(en_sms["characters"], 15);
    assert_eq!(en_sms["segments"]["encoding"], "GSM-7");
    assert_eq!(en_sms["segments"]["count"], 1);
    assert!(codes(&body["warnings"]).contains(&("unknown_variable".into(), "en".into())), "{body}");

    // A member: each channel in the member's own locale.
    let (status, body) =
        api.post("/api/templates/birthday/preview", json!({"variants": variants, "member": "wang"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sms = body["rendered"].as_array().unwrap().iter().find(|r| r["channel"] == "sms").unwrap().clone();
    assert_eq!(sms["locale"], "zh-CN");
    let text = sms["rendered"]["text"].as_str().unwrap();
    assert!(text.contains("小明") && text.starts_with("【"), "{text}");
    assert_eq!(sms["segments"]["encoding"], "UCS-2");

    // The published version when no body is given; a version by number.
    let (status, body) = api.post("/api/templates/birthday/preview", json!({"member": "wang"})).await;
    assert_eq!((status, body["version"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    let (status, body) = api.post("/api/templates/birthday/preview", json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.post("/api/templates/birthday/preview", json!({"member": "nobody"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("member")));
    let (status, _) = api.post("/api/templates/nothing/preview", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_test_send_goes_through_the_provider_and_is_no_member_message(backend: Backend) {
    let api = Api::start(backend).await;
    let (status, sent) =
        api.post("/api/templates/birthday/test-send", json!({"channel": "sms", "to": "+86 138 0000 0009"})).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!((sent["outcome"].as_str(), sent["provider"].as_str()), (Some("sent"), Some("outbox")), "{sent}");
    assert_eq!(sent["version"], 1);
    let outbox = api.t.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["to"], "+8613800000009", "{:?}", outbox[0]);
    assert!(api.t.app.store.messages(&Default::default()).await.unwrap().is_empty(), "not a member message");

    let (status, sent) = api
        .post("/api/templates/birthday/test-send", json!({"channel": "email", "to": "qa@example.com", "version": 1}))
        .await;
    assert_eq!((status, sent["outcome"].as_str()), (StatusCode::OK, Some("sent")), "{sent}");
    for (body, field) in [
        (json!({"channel": "sms", "to": "12"}), "to"),
        (json!({"channel": "email", "to": "nobody"}), "to"),
        (json!({"channel": "fax", "to": "+8613800000009"}), "channel"),
        (json!({"to": "+8613800000009"}), "channel"),
        (json!({"channel": "sms", "to": "+8613800000009", "member": "ghost"}), "member"),
    ] {
        let (status, answer) = api.post("/api/templates/birthday/test-send", body.clone()).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, _) = api
        .post("/api/templates/birthday/test-send", json!({"channel": "sms", "to": "+8613800000009", "version": 9}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_store_seeds_once_and_keeps_one_published_version_per_key(backend: Backend) {
    use tidings::store::templates::{NewTemplateVersion, Published, SeedTemplate};
    let t = TestApp::start_on(backend, RULES, NOW).await;
    let store = &t.app.store;
    let mark = store.templates_mark().await.unwrap();
    let keys = store.published_templates().await.unwrap().len() as i64;
    assert_eq!(mark, keys, "the seed published each key once");
    let again = SeedTemplate { key: "birthday".into(), content: "{\"locales\":{}}".into(), digest: "x".into() };
    assert!(!store.seed_templates(&[again], t.now()).await.unwrap(), "a seeded database is not seeded again");

    let v1 = store.template_version("birthday", 1).await.unwrap().unwrap();
    let content = v1.content.to_string();
    let draft = NewTemplateVersion {
        key: "birthday",
        content: &content,
        digest: "d2",
        actor: "test",
        note: Some("same text"),
        rollback_of: None,
        publish: false,
    };
    let v2 = store.add_template_version(&draft, t.now()).await.unwrap();
    assert_eq!((v2.version, v2.state.as_str(), v2.published_at), (2, "draft", None));
    assert_eq!(store.templates_mark().await.unwrap(), mark, "a draft is not a publish");
    match store.publish_template_version("birthday", 2, "d2", "test", t.now()).await.unwrap() {
        Published::Done(v) => assert_eq!((v.version, v.state.as_str()), (2, "published")),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.templates_mark().await.unwrap(), mark + 1);
    let again = store.publish_template_version("birthday", 2, "d2", "test", t.now()).await.unwrap();
    assert_eq!(again, Published::NotDraft("published".into()));
    let missing = store.publish_template_version("birthday", 9, "d9", "test", t.now()).await.unwrap();
    assert_eq!(missing, Published::NoSuchVersion);
    let published: Vec<_> =
        store.published_templates().await.unwrap().into_iter().filter(|v| v.key == "birthday").collect();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].version, 2);
    let history: Vec<(i64, String)> = store
        .template_versions("birthday", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.state))
        .collect();
    assert_eq!(history, [(2, "published".to_string()), (1, "superseded".to_string())]);
    let older = store.template_versions("birthday", Some(2), 10).await.unwrap();
    assert_eq!(older.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
    let latest = store.latest_templates().await.unwrap();
    assert_eq!(latest.iter().find(|v| v.key == "birthday").unwrap().version, 2);
    assert_eq!(store.audited_config("template").await.unwrap()["birthday"], "d2");
}

on_both_backends!(
    the_store_seeds_once_and_keeps_one_published_version_per_key,
    drafts_publish_history_diff_and_rollback,
    previews_render_a_draft_for_a_member_or_the_fixture,
    a_test_send_goes_through_the_provider_and_is_no_member_message,
);

/// Two instances on one PostgreSQL database: a publish on one is sending on the other after
/// its next tick (one small query when nothing changed).
#[tokio::test]
async fn another_instance_picks_up_a_publish_on_its_next_tick() {
    let t = TestApp::start_on(Backend::Postgres, RULES, NOW).await;
    let other = t.another_instance().await;
    assert!(!other.refresh_templates().await.unwrap(), "nothing changed yet");
    let published = t.app.store.published_templates().await.unwrap();
    let mut content = tidings::templates::content_of(published.iter().find(|v| v.key == "birthday").unwrap()).unwrap();
    content.locales.get_mut("en").unwrap().sms =
        Some("From the other side, {{member.name}}. Reply STOP to opt out.".into());
    let (draft, _) = tidings::templates::create_draft(&t.app, "birthday", &content, "api", None).await.unwrap();
    tidings::templates::publish(&t.app, "birthday", draft.version, true, "api").await.unwrap();
    other.tick().await.unwrap();
    let ctx = tidings::render::fixture_context("en");
    let text = match other.templates.current().render("birthday", ChannelKind::Sms, &ctx).unwrap() {
        Rendered::Sms { text, .. } => text,
        r => panic!("{r:?}"),
    };
    assert_eq!(text, "From the other side, Emma O'Neill. Reply STOP to opt out.");
    assert!(!other.refresh_templates().await.unwrap());
}

/// `tidings templates export` writes what the directory loader reads; importing it into a fresh
/// database and publishing gives the same files back.
#[test]
fn templates_export_import_and_export_again_round_trip() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["--config", config])
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("tidings runs");
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.success(), text(out.stdout), text(out.stderr))
    };
    let ok = |r: (bool, String, String)| {
        assert!(r.0, "stdout:\n{}\nstderr:\n{}", r.1, r.2);
        r.1
    };
    std::fs::write(dir.path().join("a.toml"), format!("{RULES}[database]\nurl = \"sqlite://a.db\"\n")).unwrap();
    std::fs::write(dir.path().join("b.toml"), format!("{RULES}[database]\nurl = \"sqlite://b.db\"\n")).unwrap();

    // Database a: the built-in set, with an edited birthday SMS imported and published.
    ok(run("a.toml", &["templates", "export", "first"]));
    let sms = dir.path().join("first/birthday/en/sms.hbs");
    std::fs::write(&sms, "Happy birthday, {{member.name}}! Reply STOP to opt out.\n").unwrap();
    let out = ok(run("a.toml", &["templates", "import", "first"]));
    assert!(out.contains("birthday: draft version 2 created") && out.contains("holiday: unchanged"), "{out}");
    let out = ok(run("a.toml", &["templates", "import", "first"]));
    assert!(out.contains("birthday: unchanged"), "an import is a draft, never a duplicate: {out}");
    let (success, _, stderr) = run("a.toml", &["templates", "publish", "birthday", "2"]);
    assert!(!success && stderr.contains("--acknowledge-warnings"), "{stderr}");
    ok(run("a.toml", &["templates", "publish", "birthday", "2", "--acknowledge-warnings"]));
    let list = ok(run("a.toml", &["templates", "list"]));
    assert!(list.lines().any(|l| l.starts_with("birthday") && l.contains("v2")), "{list}");
    ok(run("a.toml", &["templates", "export", "one"]));
    let (success, _, stderr) = run("a.toml", &["templates", "export", "one"]);
    assert!(!success && stderr.contains("not empty"), "{stderr}");

    // Database b: import what a exported, publish it, export again: the same files.
    let out = ok(run("b.toml", &["templates", "import", "one"]));
    assert!(out.contains("birthday: draft version 2 created"), "{out}");
    ok(run("b.toml", &["templates", "publish", "birthday", "2", "--acknowledge-warnings"]));
    ok(run("b.toml", &["templates", "export", "two"]));
    assert_eq!(tree(&dir.path().join("one")), tree(&dir.path().join("two")));
    assert!(tree(&dir.path().join("two")).iter().any(|(p, _)| p == "birthday/zh-CN/sms.providers.toml"));
}

/// Every file below `root` as (relative path, contents), sorted.
fn tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
