//! The marketer's console: a static single-page app (`console/` at the repository root) embedded
//! in the binary and served at `/console` (the shell) and `/console/assets/{file}`. It holds no
//! data of its own: every page calls the JSON API with the session cookie and CSRF token.
//!
//! Every answer carries a strict Content-Security-Policy (scripts only from this origin, never
//! inline; no framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! Caching: `Cache-Control: no-cache` with a strong `ETag` (a hash of the file's bytes), so a
//! browser revalidates each load (a 304 without a body when unchanged) and never runs a stale
//! script after an upgrade. Long-lived caching would need hashed URLs inside the ES modules'
//! own `import` lines, a build step the console deliberately does without; the assets are small
//! and served from the daemon itself, so a revalidation costs one short round trip.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The policy on every console answer. `style-src` allows inline styles only because the email
/// preview shows the template's own inline-styled HTML (in a sandboxed frame without scripts);
/// the console's markup has none, and scripts are never inline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-src 'self'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/assets/`, bytes and content type.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset { name: $name, body: include_bytes!(concat!("../../console/", $name)), content_type: $ct }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves; anything else under `/console/assets/` is a 404.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("i18n.js", JS),
    asset!("charts.js", JS),
    asset!("text.js", JS),
    asset!("page-login.js", JS),
    asset!("page-dashboard.js", JS),
    asset!("page-templates.js", JS),
    asset!("page-rules.js", JS),
    asset!("page-members.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Each asset's ETag: the first 16 hex digits of its SHA-256, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The names of the embedded assets (for tests and the README).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// The console's routes; public (the shell and its assets hold no data). Exactly these two
/// paths, which the access table lists as public.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/console", get(shell)).route("/console/assets/{file}", get(asset))
}

async fn shell(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return secure((StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n"))
            .into_response();
    };
    let (a, etag) = (&ASSETS[i], &ETAGS[i]);
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex is a header value"));
    secure(response).into_response()
}

/// The security headers every console answer carries.
fn secure(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}
