//! Security of the HTTP API, on both backends: every route of the router answered for every
//! role and for no key as the access table says (and no route missing from it); API keys made,
//! used, listed without secrets, revoked and audited; console sessions with their cookie, CSRF
//! token, expiry and logout; the body limit; the loopback default address; `tidings keys`.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tidings::auth::Role;
use tidings::http::{Access, ROUTES};
use tower::ServiceExt;

use crate::support::app::{ADMIN_KEY_NAME, Backend, TestApp};

const NOW: &str = "2026-03-10T01:35:00Z";

/// SMTP with a link secret, so the unsubscribe routes exist too.
const TOML: &str = r#"
[smtp]
host = "127.0.0.1"
port = 2525
from = "Club <club@example.com>"
unsubscribe_url = "http://127.0.0.1/unsubscribe"
link_secret = "0123456789abcdef0123456789abcdef"
"#;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(router: &Router, req: Request<Body>) -> Answer {
    let response = router.clone().oneshot(req).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer { status, headers, body }
}

fn request(method: &str, uri: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let body = if method == "GET" { Body::empty() } else { Body::from("{}") };
    b.body(body).unwrap()
}

/// A path matching the pattern: every `{param}` becomes `1`.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push('1');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether the answer is the access check's refusal (not a handler's own 401 or 403, as a
/// webhook with a bad signature gives).
fn refused(a: &Answer) -> bool {
    (a.status == StatusCode::UNAUTHORIZED && a.body["error"]["field"] == json!("Authorization"))
        || (a.status == StatusCode::FORBIDDEN
            && a.body["error"]["message"].as_str().is_some_and(|m| m.contains(" role may not call ")))
}

/// Keys of every role but admin (the test app's own key).
async fn role_keys(t: &TestApp) -> Vec<(Role, String)> {
    let mut keys = vec![(Role::Admin, t.admin_key.clone())];
    for role in [Role::Marketer, Role::Viewer, Role::Integration] {
        let (_, key) = tidings::auth::create(&t.app.store, role.as_str(), role, "test", t.now()).await.unwrap();
        keys.push((role, key));
    }
    keys
}

async fn every_route_answers_each_role_and_no_key_as_the_access_table_says(backend: Backend) {
    let t = TestApp::start_on(backend, TOML, NOW).await;
    let router = t.bare_router();
    let keys = role_keys(&t).await;
    for (method, pattern, access) in ROUTES {
        let uri = concrete(pattern);
        let anonymous = call(&router, request(method, &uri, None)).await;
        if *access == Access::Public {
            assert!(!refused(&anonymous), "{method} {pattern} without a key: {} {}", anonymous.status, anonymous.body);
        } else {
            assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {pattern} without a key");
            assert!(refused(&anonymous), "{method} {pattern}: {}", anonymous.body);
            assert_eq!(anonymous.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        }
        for (role, key) in &keys {
            let a = call(&router, request(method, &uri, Some(key))).await;
            if access.allows(*role) {
                assert!(!refused(&a), "{method} {pattern} as {role}: {} {}", a.status, a.body);
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {pattern} as {role}: {}", a.body);
                assert!(refused(&a), "{method} {pattern} as {role}: {}", a.body);
            }
            if *role == Role::Admin {
                // The route exists: the router's own 404 and 405 have empty bodies.
                let missing =
                    matches!(a.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) && a.body == json!("");
                assert!(!missing, "{method} {pattern} is in the access table but not in the router ({})", a.status);
            }
        }
    }
    // Paths no route matches are admin-only, as is any method a listed path has no entry for.
    let a = call(&router, request("GET", "/api/nothing-here", None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let viewer = &keys.iter().find(|(r, _)| *r == Role::Viewer).unwrap().1;
    let a = call(&router, request("GET", "/api/nothing-here", Some(viewer))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(&router, request("GET", "/api/nothing-here", Some(&t.admin_key))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// No route escapes the table: every method the table does not list for a path is one the router
/// has no handler for (405), and every path the HTTP sources register is in the table.
async fn no_route_is_missing_from_the_access_table(backend: Backend) {
    let t = TestApp::start_on(backend, TOML, NOW).await;
    let router = t.bare_router();
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, p, _)| *p).collect();
    paths.sort();
    paths.dedup();
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if ROUTES.iter().any(|(m, p, _)| *m == method && p == path) {
                continue;
            }
            let a = call(&router, request(method, &concrete(path), Some(&t.admin_key))).await;
            assert_eq!(
                a.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} has a handler but no entry in http::auth::ROUTES"
            );
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut registered = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            // `.route("/path", …)`, the path on the same line or, as rustfmt wraps it, the next.
            while let Some(i) = rest.find(".route(") {
                rest = rest[i + 7..].trim_start();
                let Some(quoted) = rest.strip_prefix('"') else { continue };
                let end = quoted.find('"').unwrap();
                registered.push((path.file_name().unwrap().to_string_lossy().to_string(), quoted[..end].to_string()));
            }
        }
    }
    assert!(registered.len() >= paths.len(), "{registered:?}");
    for (file, path) in registered {
        assert!(paths.contains(&path.as_str()), "{file} registers {path} with no entry in http::auth::ROUTES");
    }
}

async fn keys_are_made_used_listed_and_revoked_with_an_audit_trail(backend: Backend) {
    let t = TestApp::start_on(backend, TOML, NOW).await;
    let router = t.bare_router();
    let (made, key) = tidings::auth::create(&t.app.store, "crm", Role::Integration, "cli", t.now()).await.unwrap();
    assert!(key.starts_with(&format!("tdk_{}_", made.prefix)), "{key}");
    let again = tidings::auth::create(&t.app.store, "crm", Role::Viewer, "cli", t.now()).await;
    assert!(matches!(again, Err(tidings::auth::KeyError::Taken(_))));
    let bad = tidings::auth::create(&t.app.store, "no spaces", Role::Viewer, "cli", t.now()).await;
    assert!(matches!(bad, Err(tidings::auth::KeyError::BadName)));

    // Both headers work; a member posted by the key; its use is recorded.
    let post = |header: &'static str, value: String| {
        Request::post("/api/members")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header, value)
            .body(Body::from(json!({"external_id": "m1", "name": "Ann", "email": "ann@example.com"}).to_string()))
            .unwrap()
    };
    assert_eq!(call(&router, post("authorization", format!("Bearer {key}"))).await.status, StatusCode::OK);
    assert_eq!(call(&router, post("x-api-key", key.clone())).await.status, StatusCode::OK);
    // The consent it records names the key.
    let consent = Request::post("/api/members/m1/consent")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", key.clone())
        .body(Body::from(json!({"channel": "email", "status": "granted"}).to_string()))
        .unwrap();
    assert_eq!(call(&router, consent).await.status, StatusCode::OK);
    let (_, history) = t.app.store.member_consent("m1").await.unwrap().unwrap();
    assert_eq!(history.last().unwrap().actor, "key:crm");

    let listed = t.app.store.api_keys().await.unwrap();
    let crm = listed.iter().find(|k| k.name == "crm").unwrap();
    assert_eq!((crm.role.as_str(), crm.last_used_at), ("integration", Some(t.now())));
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&key[13..]) && !text.contains("hash"), "{text}");

    // A wrong secret with a real prefix, a malformed key, a non-Bearer scheme: 401.
    let wrong = format!("{}{}", &key[..13], "x".repeat(40));
    for value in [format!("Bearer {wrong}"), "Bearer nonsense".into(), format!("Basic {key}")] {
        let a = call(&router, post("authorization", value.clone())).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{value}: {}", a.body);
    }

    let revoked = tidings::auth::revoke(&t.app.store, "crm", "key:test-admin", t.now()).await.unwrap();
    assert_eq!(revoked, tidings::store::auth::Revoked::Now);
    let again = tidings::auth::revoke(&t.app.store, "crm", "key:test-admin", t.now()).await.unwrap();
    assert_eq!(again, tidings::store::auth::Revoked::Already);
    let a = call(&router, post("authorization", format!("Bearer {key}"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["message"], json!("the API key is not valid, or was revoked"));

    let filter =
        tidings::store::consent::AuditFilter { subject: Some("key:crm".into()), limit: 10, ..Default::default() };
    let audit: Vec<(String, String)> =
        t.app.store.audit(&filter).await.unwrap().into_iter().map(|e| (e.actor, e.action)).collect();
    assert_eq!(audit, [("key:test-admin".into(), "key.revoke".into()), ("cli".into(), "key.create".into())]);
}

async fn erasure_is_audited_as_the_key_that_asked(backend: Backend) {
    let toml = format!("{TOML}\n[privacy]\nhash_key = \"0123456789abcdef0123456789abcdef\"\n");
    let t = TestApp::start_on(backend, &toml, NOW).await;
    t.import_jsonl(&json!({"external_id": "m1", "name": "Ann", "email": "ann@example.com"}).to_string()).await;
    let a = call(&t.router(), Request::delete("/api/members/m1").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let filter =
        tidings::store::consent::AuditFilter { action: Some("member.erase".into()), limit: 10, ..Default::default() };
    let entries = t.app.store.audit(&filter).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, format!("key:{ADMIN_KEY_NAME}"));
}

fn login(body: Body, content_type: &str, forwarded_https: bool) -> Request<Body> {
    let mut b = Request::post("/console/login").header(header::CONTENT_TYPE, content_type);
    if forwarded_https {
        b = b.header("x-forwarded-proto", "https");
    }
    b.body(body).unwrap()
}

/// The session cookie's value and attributes from a login answer.
fn session_cookie(a: &Answer) -> (String, String) {
    let set = a.headers.get(header::SET_COOKIE).expect("a cookie is set").to_str().unwrap().to_string();
    let value = set.split(';').next().unwrap().strip_prefix("tidings_session=").unwrap().to_string();
    (value, set)
}

fn with_session(method: Method, uri: &str, cookie: &str, csrf: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::COOKIE, format!("other=1; tidings_session={cookie}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = csrf {
        b = b.header("x-csrf-token", c);
    }
    let body = if method == Method::GET { Body::empty() } else { Body::from("[]") };
    b.body(body).unwrap()
}

async fn console_sessions_carry_the_role_a_csrf_token_and_an_expiry(backend: Backend) {
    let t = TestApp::start_on(backend, TOML, NOW).await;
    let router = t.bare_router();
    let (_, viewer) = tidings::auth::create(&t.app.store, "support", Role::Viewer, "test", t.now()).await.unwrap();

    // A wrong key or none: 401 / 422, and no cookie.
    let a = call(&router, login(Body::from(json!({"key": "tdk_nope"}).to_string()), "application/json", false)).await;
    assert_eq!((a.status, &a.body["error"]["field"]), (StatusCode::UNAUTHORIZED, &json!("key")));
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let a = call(&router, login(Body::from("{}"), "application/json", false)).await;
    assert_eq!((a.status, &a.body["error"]["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("key")));

    // Login with JSON: the cookie's attributes, no Secure over plain HTTP.
    let body = Body::from(json!({"key": t.admin_key}).to_string());
    let a = call(&router, login(body, "application/json", false)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!((&a.body["key"], &a.body["role"]), (&json!(ADMIN_KEY_NAME), &json!("admin")));
    let (cookie, set) = session_cookie(&a);
    assert_eq!(set, format!("tidings_session={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"));
    let csrf = a.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(a.body["expires_at"], json!("2026-03-10T13:35:00Z"));

    // The session says who it is; reads need no CSRF token, writes do.
    let me = call(&router, with_session(Method::GET, "/console/session", &cookie, None)).await;
    assert_eq!((me.status, &me.body["role"], &me.body["csrf_token"]), (StatusCode::OK, &json!("admin"), &json!(csrf)));
    assert_eq!(call(&router, with_session(Method::GET, "/api/messages", &cookie, None)).await.status, StatusCode::OK);
    let a = call(&router, with_session(Method::POST, "/api/members", &cookie, None)).await;
    assert_eq!((a.status, &a.body["error"]["field"]), (StatusCode::FORBIDDEN, &json!("X-CSRF-Token")));
    let a = call(&router, with_session(Method::POST, "/api/members", &cookie, Some("wrong"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(&router, with_session(Method::POST, "/api/members", &cookie, Some(&csrf))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // A key needs no CSRF token, even with a cookie beside it.
    let mut req = with_session(Method::POST, "/api/members", &cookie, None);
    req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", t.admin_key).parse().unwrap());
    assert_eq!(call(&router, req).await.status, StatusCode::OK);

    // A form login is refused (another site could post one); behind an HTTPS proxy the cookie
    // is Secure, and the session has the key's role.
    let form = format!("key={}", viewer);
    let a = call(&router, login(Body::from(form), "application/x-www-form-urlencoded", true)).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    let a = call(&router, login(Body::from(json!({"key": viewer}).to_string()), "application/json", true)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (viewer_cookie, set) = session_cookie(&a);
    assert!(set.ends_with("; Secure"), "{set}");
    let viewer_csrf = a.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&router, with_session(Method::GET, "/api/messages", &viewer_cookie, None)).await.status,
        StatusCode::OK
    );
    let a = call(&router, with_session(Method::POST, "/api/members", &viewer_cookie, Some(&viewer_csrf))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(refused(&a), "{}", a.body);

    // Revoking the key ends its sessions.
    tidings::auth::revoke(&t.app.store, "support", "test", t.now()).await.unwrap();
    let a = call(&router, with_session(Method::GET, "/api/messages", &viewer_cookie, None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // Logout ends the admin's session.
    let a = call(&router, with_session(Method::POST, "/console/logout", &cookie, None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    let a = call(&router, with_session(Method::GET, "/console/session", &cookie, None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // A new session lasts http.session_ttl (12 h by default), not a moment longer.
    let a = call(&router, login(Body::from(json!({"key": t.admin_key}).to_string()), "application/json", false)).await;
    let (cookie, _) = session_cookie(&a);
    t.advance(jiff::SignedDuration::from_hours(12) - jiff::SignedDuration::from_secs(1));
    assert_eq!(
        call(&router, with_session(Method::GET, "/console/session", &cookie, None)).await.status,
        StatusCode::OK
    );
    t.advance(jiff::SignedDuration::from_secs(1));
    let a = call(&router, with_session(Method::GET, "/console/session", &cookie, None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

on_both_backends!(
    every_route_answers_each_role_and_no_key_as_the_access_table_says,
    no_route_is_missing_from_the_access_table,
    keys_are_made_used_listed_and_revoked_with_an_audit_trail,
    erasure_is_audited_as_the_key_that_asked,
    console_sessions_carry_the_role_a_csrf_token_and_an_expiry,
);

#[tokio::test]
async fn secure_cookies_and_the_session_ttl_come_from_the_configuration() {
    let toml = format!("{TOML}\n[http]\nsecure_cookies = true\nsession_ttl = \"30m\"\n");
    let t = TestApp::start(&toml, NOW).await;
    let body = Body::from(json!({"key": t.admin_key}).to_string());
    let a = call(&t.bare_router(), login(body, "application/json", false)).await;
    let (_, set) = session_cookie(&a);
    assert!(set.contains("Max-Age=1800") && set.ends_with("; Secure"), "{set}");
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_and_an_anonymous_one_with_401() {
    let t = TestApp::start_with_env(TOML, NOW, &[("TIDINGS_HTTP_BODY_LIMIT", "1024")]).await;
    let big = json!({"external_id": "m1", "name": "x".repeat(2000)}).to_string();
    let req = |key: Option<&str>| {
        let mut b = Request::post("/api/members").header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        b.body(Body::from(big.clone())).unwrap()
    };
    assert_eq!(call(&t.bare_router(), req(Some(&t.admin_key))).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(call(&t.bare_router(), req(None)).await.status, StatusCode::UNAUTHORIZED);
    let small = json!({"external_id": "m1", "name": "Ann"}).to_string();
    let ok = Request::post("/api/members")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin_key))
        .body(Body::from(small))
        .unwrap();
    assert_eq!(call(&t.bare_router(), ok).await.status, StatusCode::OK);
}

#[test]
fn the_daemon_binds_loopback_unless_told_otherwise() {
    let settings = tidings::config::Config::from_toml("", "empty.toml", Vec::new())
        .and_then(tidings::config::Config::check)
        .expect("the defaults are valid");
    let addr: std::net::SocketAddr = settings.raw.http.addr.parse().unwrap();
    assert_eq!(addr.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
    // The example configuration keeps it so.
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tidings.example.toml")).unwrap();
    let parsed: toml::Table = toml::from_str(&example).unwrap();
    if let Some(addr) = parsed.get("http").and_then(|h| h.get("addr")).and_then(|a| a.as_str()) {
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    }
}

/// `tidings keys`: the key printed once, a list without secrets, revocation, and errors that
/// name the problem.
#[test]
fn the_keys_command_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .output()
            .expect("run tidings");
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, stdout, stderr) = run(&["keys", "create", "--name", "crm", "--role", "integration"]);
    assert_eq!(code, Some(0), "{stderr}");
    let key = stdout.trim().to_string();
    assert!(tidings::auth::prefix_of(&key).is_some(), "{stdout}");
    assert!(stderr.contains("not shown again"), "{stderr}");

    let (code, _, stderr) = run(&["keys", "create", "--name", "crm", "--role", "viewer"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("name") && stderr.contains("exists"), "{stderr}");
    let (code, _, stderr) = run(&["keys", "create", "--name", "x", "--role", "root"]);
    assert_eq!(code, Some(2), "{stderr}");

    let (code, stdout, _) = run(&["keys", "list", "--json"]);
    assert_eq!(code, Some(0));
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["name"], json!("crm"));
    assert_eq!(listed[0]["role"], json!("integration"));
    assert!(!stdout.contains(&key[13..]), "{stdout}");
    let (_, table, _) = run(&["keys", "list"]);
    assert!(table.contains("crm") && !table.contains(&key[13..]), "{table}");

    let (code, stdout, _) = run(&["keys", "revoke", "crm"]);
    assert_eq!((code, stdout.trim()), (Some(0), "revoked \"crm\""));
    let (_, stdout, _) = run(&["keys", "list", "--json"]);
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert!(listed[0]["revoked_at"].is_string(), "{stdout}");
    let (code, _, stderr) = run(&["keys", "revoke", "nobody"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no key named \"nobody\""), "{stderr}");
    let (_, stdout, _) = run(&["audit", "--json"]);
    assert!(stdout.contains("key.create") && stdout.contains("key.revoke"), "{stdout}");
}

/// The README's role table is the access table itself (regenerate it with
/// `tidings::http::auth::role_table()` when a route is added).
#[test]
fn the_readme_shows_the_access_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = tidings::http::auth::role_table();
    assert!(readme.contains(&table), "README.md: the role table should read\n{table}");
}
