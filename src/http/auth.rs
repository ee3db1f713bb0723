//! Who may call what. [`ROUTES`] is the one access table: every route the router has, by method
//! and path pattern, with the roles that may call it; [`access`] reads it, and one middleware,
//! [`authenticate`], applies it to every request (the route test walks the same table). A route
//! missing from the table is admin-only: deny by default.
//!
//! A caller is an API key (`Authorization: Bearer <key>`, or `X-Api-Key`) or a console session
//! (the `tidings_session` cookie, with the role of the key that logged in). A request made with
//! a session that is not a `GET` must carry the session's CSRF token in `X-CSRF-Token`. No
//! credentials or bad ones: 401; a role without access: 403. The caller is put in the request's
//! extensions, where handlers take it as a [`Caller`] (the actor of what they record).

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

use super::{ApiError, Http};
use crate::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials: health, metrics, webhooks (they check their own signatures
    /// or tokens), unsubscribe pages, the console's login.
    Public,
    /// Any key or session, whatever its role.
    AnyRole,
    /// Admin, and these roles.
    Roles(&'static [Role]),
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::AnyRole => true,
            Access::Roles(roles) => role == Role::Admin || roles.contains(&role),
        }
    }
}

use Role::{Integration, Marketer, Viewer};

const ADMIN: Access = Access::Roles(&[]);
const INTEGRATION: Access = Access::Roles(&[Integration]);
/// Reads of members and their consent: everyone but the admin-only export.
const MEMBER_READ: Access = Access::Roles(&[Marketer, Viewer, Integration]);
/// Reads of messages, reports, forecasts and journeys.
const MARKETING_READ: Access = Access::Roles(&[Marketer, Viewer]);
/// Changes to campaigns: rules, journeys, and a message's retry or cancel.
const MARKETING: Access = Access::Roles(&[Marketer]);

/// Every route of the router, `(method, path pattern, access)`. `HEAD` is checked as `GET`.
/// A route added to the router must be added here (the route test fails otherwise).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("GET", "/api/push/vapid-public-key", Access::Public),
    ("GET", "/unsubscribe/{token}", Access::Public),
    ("POST", "/unsubscribe/{token}", Access::Public),
    ("POST", "/hooks/aliyun/inbound", Access::Public),
    ("POST", "/hooks/tencent/inbound", Access::Public),
    ("POST", "/hooks/complaints", Access::Public),
    ("POST", "/hooks/twilio/status", Access::Public),
    ("POST", "/hooks/twilio/inbound", Access::Public),
    ("POST", "/hooks/aliyun/receipts", Access::Public),
    ("POST", "/hooks/tencent/receipts", Access::Public),
    ("GET", "/console", Access::Public),
    ("GET", "/console/assets/{file}", Access::Public),
    ("POST", "/console/login", Access::Public),
    ("POST", "/console/logout", Access::Public),
    ("GET", "/console/session", Access::AnyRole),
    ("POST", "/api/members", INTEGRATION),
    ("GET", "/api/members/{external_id}", MEMBER_READ),
    ("DELETE", "/api/members/{external_id}", ADMIN),
    ("GET", "/api/members/{external_id}/export", ADMIN),
    ("POST", "/api/members/{external_id}/devices", INTEGRATION),
    ("DELETE", "/api/members/{external_id}/devices", INTEGRATION),
    ("POST", "/api/members/{external_id}/opt-outs", INTEGRATION),
    ("GET", "/api/members/{external_id}/consent", MEMBER_READ),
    ("POST", "/api/members/{external_id}/consent", INTEGRATION),
    ("POST", "/api/events", INTEGRATION),
    ("GET", "/api/messages", MARKETING_READ),
    ("POST", "/api/messages/send", INTEGRATION),
    ("GET", "/api/messages/{id}/history", MARKETING_READ),
    ("GET", "/api/forecast", MARKETING_READ),
    ("GET", "/api/reports/{rule}", MARKETING_READ),
    ("GET", "/api/audit", Access::Roles(&[Viewer])),
    ("GET", "/api/suppressions", Access::Roles(&[Viewer, Integration])),
    ("POST", "/api/suppressions", INTEGRATION),
    ("DELETE", "/api/suppressions/{channel}/{address}", INTEGRATION),
    ("GET", "/api/journeys", MARKETING_READ),
    ("GET", "/api/journeys/runs", MARKETING_READ),
    ("GET", "/api/members", MEMBER_READ),
    ("GET", "/api/members/{external_id}/devices", MEMBER_READ),
    ("GET", "/api/messages/{id}", MARKETING_READ),
    ("POST", "/api/messages/{id}/retry", MARKETING),
    ("POST", "/api/messages/{id}/cancel", MARKETING),
    ("GET", "/api/stats", MARKETING_READ),
    ("GET", "/api/openapi.json", Access::Public),
    ("POST", "/api/journeys", MARKETING),
    ("GET", "/api/journeys/{id}", MARKETING_READ),
    ("PUT", "/api/journeys/{id}", MARKETING),
    ("DELETE", "/api/journeys/{id}", MARKETING),
    ("POST", "/api/journeys/{id}/enable", MARKETING),
    ("POST", "/api/journeys/{id}/disable", MARKETING),
    ("GET", "/api/journeys/{id}/history", MARKETING_READ),
    ("GET", "/api/journeys/{id}/forecast", MARKETING_READ),
    ("GET", "/api/rules", MARKETING_READ),
    ("POST", "/api/rules", MARKETING),
    ("GET", "/api/rules/{id}", MARKETING_READ),
    ("PUT", "/api/rules/{id}", MARKETING),
    ("DELETE", "/api/rules/{id}", MARKETING),
    ("POST", "/api/rules/{id}/enable", MARKETING),
    ("POST", "/api/rules/{id}/disable", MARKETING),
    ("GET", "/api/rules/{id}/history", MARKETING_READ),
    ("GET", "/api/rules/{id}/forecast", MARKETING_READ),
    ("GET", "/api/templates", MARKETING_READ),
    ("GET", "/api/templates/{key}", MARKETING_READ),
    ("GET", "/api/templates/{key}/versions", MARKETING_READ),
    ("GET", "/api/templates/{key}/versions/{version}", MARKETING_READ),
    ("POST", "/api/templates/{key}/versions/{version}/publish", MARKETING),
    ("POST", "/api/templates/{key}/drafts", MARKETING),
    ("POST", "/api/templates/{key}/preview", MARKETING),
    ("POST", "/api/templates/{key}/rollback", MARKETING),
    ("POST", "/api/templates/{key}/test-send", MARKETING),
    ("GET", "/api/templates/{key}/diff", MARKETING_READ),
    ("GET", "/api/coupons", MEMBER_READ),
    ("POST", "/api/coupons/verify", INTEGRATION),
    ("POST", "/api/coupons/{pool}", INTEGRATION),
];

/// The access a request needs: its route's entry in [`ROUTES`]; admin-only for a route that has
/// none and for paths that match no route.
pub fn access(method: &Method, matched_path: Option<&str>) -> Access {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    matched_path
        .and_then(|path| ROUTES.iter().find(|(m, p, _)| *m == method && *p == path))
        .map_or(ADMIN, |(_, _, access)| *access)
}

/// The access table as the README shows it: one row per route, a column per role.
pub fn role_table() -> String {
    let mut out = String::from("| route | admin | marketer | viewer | integration |\n|---|---|---|---|---|\n");
    for (method, path, access) in ROUTES {
        let cells: Vec<&str> = Role::ALL
            .iter()
            .map(|&r| match access {
                Access::Public => "public",
                a if a.allows(r) => "yes",
                _ => "",
            })
            .collect();
        out.push_str(&format!("| `{method} {path}` | {} |\n", cells.join(" | ")));
    }
    out
}

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "tidings_session";
/// The header a session's non-`GET` requests carry their CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name (for a session, the key that logged in).
    pub key: String,
    pub role: Role,
    /// Set when the caller came with a session cookie rather than a key.
    pub session: Option<SessionInfo>,
}

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

impl Caller {
    /// The actor recorded in the audit log: `key:<name>`.
    pub fn actor(&self) -> String {
        format!("key:{}", self.key)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| unauthenticated("an API key is required"))
    }
}

/// The middleware: checks the caller against the route's access.
pub async fn authenticate(State(h): State<Http>, mut request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let access = access(request.method(), matched.as_deref());
    if access == Access::Public {
        return next.run(request).await;
    }
    let caller = match identify(&h, request.method(), request.headers()).await {
        Ok(caller) => caller,
        Err(e) => return challenge(e),
    };
    if !access.allows(caller.role) {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "the {} role may not call {} {}",
                caller.role,
                request.method(),
                matched.as_deref().unwrap_or("this path")
            ),
            field: None,
        }
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller a request's credentials name, or the error to answer with.
async fn identify(h: &Http, method: &Method, headers: &HeaderMap) -> Result<Caller, Response> {
    let now = h.app.now();
    if let Some(key) = presented_key(headers).map_err(IntoResponse::into_response)? {
        return match crate::auth::verify(&h.app.store, key, now).await {
            Ok(Some((key, role))) => Ok(Caller { key: key.name, role, session: None }),
            Ok(None) => Err(unauthenticated("the API key is not valid, or was revoked").into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        };
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(unauthenticated("an API key is required (Authorization: Bearer <key>)").into_response());
    };
    let (key, expires_at) = match h.app.store.session_key(&crate::auth::hash(token), now).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(unauthenticated("the session has ended: log in again").into_response()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let Some(role) = Role::parse(&key.role) else {
        return Err(unauthenticated("the session's key has an unknown role").into_response());
    };
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !crate::auth::csrf_matches(token, presented) {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: "a session's request must carry its CSRF token (from login or GET /console/session)".into(),
                field: Some("X-CSRF-Token".into()),
            }
            .into_response());
        }
    }
    let session = SessionInfo { csrf_token: crate::auth::csrf_token(token), expires_at };
    Ok(Caller { key: key.name, role, session: Some(session) })
}

/// The key in `Authorization: Bearer <key>` or `X-Api-Key`, if any.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("").trim();
        return match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(key.trim())),
            _ => Err(unauthenticated("Authorization: expected Bearer <key>")),
        };
    }
    Ok(headers.get("x-api-key").map(|v| v.to_str().unwrap_or("").trim()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// 401, naming the header credentials go in.
fn unauthenticated(message: &str) -> ApiError {
    ApiError { status: StatusCode::UNAUTHORIZED, message: message.into(), field: Some("Authorization".into()) }
}

/// Adds `WWW-Authenticate` to a 401 (as HTTP asks).
fn challenge(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_routes_and_methods_are_admin_only() {
        assert_eq!(access(&Method::GET, None), ADMIN);
        assert_eq!(access(&Method::PUT, Some("/api/members")), ADMIN);
        assert_eq!(access(&Method::GET, Some("/api/nothing")), ADMIN);
        assert_eq!(access(&Method::HEAD, Some("/healthz")), Access::Public);
        assert!(!ADMIN.allows(Role::Viewer));
        assert!(ADMIN.allows(Role::Admin));
    }

    #[test]
    fn viewers_read_every_api_get_but_the_export_and_write_nothing() {
        for (method, path, access) in ROUTES.iter().filter(|(_, p, _)| p.starts_with("/api/")) {
            let viewer = access.allows(Role::Viewer);
            let expected = *method == "GET" && !path.ends_with("/export");
            assert_eq!(viewer, expected, "{method} {path}");
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ROUTES {
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tidings_session=abc ; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
