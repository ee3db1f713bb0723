//! The console's static files through the daemon's router: each embedded asset with its content
//! type, the security headers on every answer (a CSP that allows no inline script, nosniff, no
//! referrer, no framing), revalidation by ETag, the shell without inline script, and every file
//! in `console/` embedded.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tidings::http::{Http, app, console};
use tower::ServiceExt;

use crate::support::app::TestApp;

async fn router() -> (TestApp, Router) {
    let t = TestApp::start("", "2026-03-10T01:35:00Z").await;
    let router = app(Http { app: t.app.clone(), ready: Arc::new(AtomicBool::new(true)) });
    (t, router)
}

async fn get(router: &Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.expect("the router answers");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, headers, body)
}

fn header(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

/// The headers every console answer carries, whatever its status.
fn assert_secure(h: &HeaderMap, what: &str) {
    let csp = header(h, header::CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'self'"), "{what}: {csp}");
    assert!(directives.contains(&"script-src 'self'"), "{what}: scripts only from the console itself: {csp}");
    assert!(directives.contains(&"frame-ancestors 'none'"), "{what}: {csp}");
    assert!(directives.contains(&"object-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(header(h, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{what}");
    assert_eq!(header(h, header::REFERRER_POLICY), "no-referrer", "{what}");
}

fn expected_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        other => panic!("an asset of unexpected kind {other:?}"),
    }
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_security_headers() {
    let (_t, router) = router().await;
    let names: Vec<&str> = console::asset_names().collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let uri = format!("/console/assets/{name}");
        let (status, h, body) = get(&router, &uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(header(&h, header::CONTENT_TYPE), expected_type(name), "{uri}");
        assert_secure(&h, &uri);
        assert_eq!(header(&h, header::CACHE_CONTROL), "no-cache", "{uri}: revalidated on every load");
        assert!(!body.is_empty(), "{uri}");
        let on_disk = std::fs::read(format!("{}/console/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(body, on_disk, "{uri}: the embedded bytes are the file's");

        // Unchanged: a 304 without a body, still with the headers.
        let etag = header(&h, header::ETAG).to_string();
        assert!(etag.starts_with('"') && etag.len() == 18, "{uri}: {etag}");
        let (status, h2, body) = get(&router, &uri, &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(body.is_empty(), "{uri}");
        assert_eq!(header(&h2, header::ETAG), etag);
        assert_secure(&h2, &uri);
        // A stale tag gets the file again.
        let (status, _, body) = get(&router, &uri, &[("if-none-match", "\"0000000000000000\"")]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(!body.is_empty());
    }
}

#[tokio::test]
async fn the_shell_has_no_inline_script() {
    let (_t, router) = router().await;
    let uri = "/console";
    let (status, h, body) = get(&router, uri, &[]).await;
    assert_eq!(status, StatusCode::OK, "{uri}");
    assert_eq!(header(&h, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_secure(&h, uri);
    let html = String::from_utf8(body).unwrap();
    // Each <script> loads a file of the console and has nothing between its tags.
    let mut scripts = 0;
    for (i, _) in html.match_indices("<script") {
        let open_end = i + html[i..].find('>').unwrap() + 1;
        let tag = &html[i..open_end];
        assert!(tag.contains("src=\"/console/assets/"), "a script that is not a console file: {tag}");
        assert!(html[open_end..].starts_with("</script>"), "inline script after {tag}");
        scripts += 1;
    }
    assert_eq!(scripts, 1, "the shell loads app.js, which imports the rest");
    // No inline event handlers or javascript: URLs, which the CSP would refuse anyway.
    let lower = html.to_lowercase();
    for bad in [" onclick=", " onload=", " onerror=", " onsubmit=", "javascript:", " style="] {
        assert!(!lower.contains(bad), "{uri} contains {bad}");
    }
}

#[tokio::test]
async fn scripts_never_build_markup_from_strings() {
    let (_t, router) = router().await;
    for name in console::asset_names().filter(|n| n.ends_with(".js")) {
        let (_, _, body) = get(&router, &format!("/console/assets/{name}"), &[]).await;
        // The SVG namespace is a name, not a request.
        let js = String::from_utf8(body).unwrap().replace("http://www.w3.org/2000/svg", "");
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "http://",
            "https://",
        ] {
            assert!(!js.contains(bad), "{name} uses {bad}");
        }
    }
}

#[tokio::test]
async fn unknown_files_are_not_found() {
    let (_t, router) = router().await;
    for uri in [
        "/console/assets/nope.js",
        "/console/assets/..%2F..%2FCargo.toml",
        "/console/assets/tests",
        "/console/assets/package.json",
    ] {
        let (status, h, _) = get(&router, uri, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_secure(&h, uri);
    }
}

#[test]
fn every_console_file_is_embedded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The node tests' module marker is not served.
        .filter(|n| n != "package.json")
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = console::asset_names().map(str::to_string).collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "console/ and the embedded list differ (src/http/console.rs ASSETS)");
}
