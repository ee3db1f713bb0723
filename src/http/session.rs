//! Console sessions: `POST /console/login` trades an API key (a form field or JSON `key`) for a
//! session cookie and a CSRF token; `GET /console/session` says who is logged in (and the CSRF
//! token again, for a reloaded page); `POST /console/logout` ends the session. The session has
//! the role of the key that logged in and ends with it (revoked) or after `http.session_ttl`.
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` over HTTPS (or always,
//! with `http.secure_cookies`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::auth::{Caller, SESSION_COOKIE, cookie};
use super::{ApiError, Http};

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/session", get(session))
}

/// The key of a login body: JSON `{"key": …}` only. A form is refused: another site can make a
/// browser post a form (logging the victim into the attacker's key), but not JSON without a
/// preflight this daemon never answers.
fn login_key(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !json {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "send the key as JSON: {\"key\": \"tdk_…\"} with Content-Type: application/json".into(),
            field: Some("Content-Type".into()),
        });
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad(None, format!("not JSON: {e}")))?;
    let key = v.get("key").and_then(|k| k.as_str()).map(str::to_string);
    key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).ok_or_else(|| ApiError::bad(Some("key"), "missing"))
}

async fn login(State(h): State<Http>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let presented = login_key(&headers, &body)?;
    let now = h.app.now();
    let Some((key, role)) = crate::auth::verify(&h.app.store, &presented, now).await? else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "not a valid API key, or it was revoked".into(),
            field: Some("key".into()),
        });
    };
    let settings = h.app.settings();
    let ttl = settings.session_ttl;
    let expires_at = now.saturating_add(ttl).expect("a session ttl within range");
    let token = crate::auth::session_token();
    h.app.store.insert_session(&crate::auth::hash(&token), key.id, now, expires_at).await?;
    tracing::info!(key = %key.name, role = %role, "console login");
    let secure = settings.raw.http.secure_cookies || over_https(&headers);
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let body = json!({"key": key.name, "role": role, "csrf_token": crate::auth::csrf_token(&token),
        "expires_at": expires_at});
    Ok(with_cookie(Json(body).into_response(), &cookie))
}

async fn logout(State(h): State<Http>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        h.app.store.delete_session(&crate::auth::hash(token)).await?;
    }
    let secure = h.app.settings().raw.http.secure_cookies || over_https(&headers);
    let cookie = format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    Ok(with_cookie(Json(json!({"logged_out": true})).into_response(), &cookie))
}

/// Who is calling: the key's name and role; for a session, its CSRF token and expiry.
async fn session(caller: Caller) -> Response {
    Json(json!({
        "key": caller.key,
        "role": caller.role,
        "csrf_token": caller.session.as_ref().map(|s| s.csrf_token.clone()),
        "expires_at": caller.session.as_ref().map(|s| s.expires_at),
    }))
    .into_response()
}

/// Whether the request came over HTTPS: the daemon speaks plain HTTP, so only a proxy in front
/// of it can say (`X-Forwarded-Proto: https`).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
