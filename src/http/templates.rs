//! Templates over HTTP: the published set and each key's versions (history, one version, a
//! diff between two), drafts (validated on the way in), previews against a member or the
//! fixture member with warnings, publish (refused with the warnings until acknowledged),
//! rollback, and test sends through the configured provider. The work is in
//! [`crate::templates`]; this file parses, answers and names the field at fault.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{ApiError, Http};
use crate::render::content::{Content, Variant};
use crate::store::templates::TemplateVersion;
use crate::templates::{self as tpl, TemplateError};

pub fn routes() -> Router<Http> {
    Router::new()
        .route("/api/templates", get(list))
        .route("/api/templates/{key}", get(get_key))
        .route("/api/templates/{key}/versions", get(versions))
        .route("/api/templates/{key}/versions/{version}", get(get_version))
        .route("/api/templates/{key}/versions/{version}/publish", post(publish))
        .route("/api/templates/{key}/drafts", post(create_draft))
        .route("/api/templates/{key}/preview", post(preview))
        .route("/api/templates/{key}/rollback", post(rollback))
        .route("/api/templates/{key}/test-send", post(test_send))
        .route("/api/templates/{key}/diff", get(diff))
}

impl IntoResponse for TemplateError {
    fn into_response(self) -> Response {
        let (status, field, problems, warnings) = match &self {
            TemplateError::NotFound(_) => (StatusCode::NOT_FOUND, None, None, None),
            TemplateError::Invalid(p) => (StatusCode::UNPROCESSABLE_ENTITY, Some("variants"), Some(p), None),
            TemplateError::Warnings(w) => (StatusCode::CONFLICT, Some("acknowledge_warnings"), None, Some(w)),
            TemplateError::Conflict(_) => (StatusCode::CONFLICT, Some("version"), None, None),
            TemplateError::Bad { field, .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some(*field), None, None),
            TemplateError::Store(e) => return ApiError::from(e).into_response(),
        };
        let message = match &self {
            TemplateError::Bad { problem, .. } => problem.clone(),
            TemplateError::Invalid(p) => format!("the template does not load: {}", p.join("; ")),
            other => other.to_string(),
        };
        let mut error = json!({"message": message, "field": field});
        if let Some(p) = problems {
            error["problems"] = json!(p);
        }
        let mut body = json!({ "error": error });
        if let Some(w) = warnings {
            body["warnings"] = json!(w);
        }
        (status, Json(body)).into_response()
    }
}

/// Why a request failed: the API's own error (a bad field) or a template operation's.
enum Failure {
    Api(ApiError),
    Template(TemplateError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<TemplateError> for Failure {
    fn from(e: TemplateError) -> Self {
        Failure::Template(e)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Template(TemplateError::Store(e))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Template(e) => e.into_response(),
        }
    }
}

/// A version as the API shows it: its metadata and its variants by locale.
fn version_json(v: &TemplateVersion) -> Value {
    let mut out = json!({
        "key": v.key, "version": v.version, "state": v.state, "created_at": v.created_at,
        "created_by": v.created_by, "note": v.note, "rollback_of": v.rollback_of, "published_at": v.published_at,
    });
    out["variants"] = v.content.get("locales").cloned().unwrap_or_else(|| json!({}));
    out["fixture"] = v.content.get("fixture").cloned().unwrap_or_else(|| json!({}));
    out
}

fn check_key(key: &str) -> Result<(), ApiError> {
    let ok =
        !key.is_empty() && key.len() <= 100 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(ApiError::bad(Some("key"), "a template key is letters, digits, '-' and '_'")) }
}

/// A JSON object body; an empty body is `{}`.
fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad(None, "expected a JSON object")),
        Err(e) => Err(ApiError::bad(None, format!("not JSON: {e}"))),
    }
}

/// The content of a posted body: `variants` (by locale) and an optional `fixture`.
fn content_from(body: &Map<String, Value>) -> Result<Content, ApiError> {
    let variants = match body.get("variants") {
        Some(Value::Object(v)) if !v.is_empty() => v,
        Some(Value::Object(_)) => return Err(ApiError::bad(Some("variants"), "needs at least one locale")),
        Some(_) => return Err(ApiError::bad(Some("variants"), "must be an object of locales")),
        None => return Err(ApiError::bad(Some("variants"), "missing")),
    };
    let mut locales = BTreeMap::new();
    for (locale, v) in variants {
        let variant: Variant = serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad(Some(&format!("variants.{locale}")), e.to_string()))?;
        if variant.parts().is_empty() {
            return Err(ApiError::bad(Some(&format!("variants.{locale}")), "needs sms, email or push"));
        }
        locales.insert(locale.clone(), variant);
    }
    let fixture = match body.get("fixture") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(f)) => f.clone(),
        Some(_) => return Err(ApiError::bad(Some("fixture"), "must be an object (occurrence fields)")),
    };
    Ok(Content { fixture, locales })
}

fn int(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad(Some(field), "must be a positive integer")),
    }
}

/// A version number from the path or the query, or a 422 naming `field`.
fn number(raw: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad(Some(field), format!("{raw:?} is not a version number"))),
    }
}

fn text<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad(Some(field), "must be a string")),
    }
}

/// `GET /api/templates`: every key with its published version, channels and locales, and
/// whether a draft newer than it is pending.
async fn list(State(h): State<Http>) -> Result<Response, ApiError> {
    let published = h.app.store.published_templates().await?;
    let latest: BTreeMap<String, TemplateVersion> =
        h.app.store.latest_templates().await?.into_iter().map(|v| (v.key.clone(), v)).collect();
    let current = h.app.templates.current();
    let mut keys = Vec::new();
    for v in &published {
        let mut channels: Vec<String> = Vec::new();
        for locale in current.locales(&v.key) {
            for c in current.channels(&v.key, &locale) {
                if !channels.contains(&c.to_string()) {
                    channels.push(c.to_string());
                }
            }
        }
        let draft = latest.get(&v.key).filter(|l| l.state == "draft").map(|l| l.version);
        keys.push(json!({
            "key": v.key, "published_version": v.version, "published_at": v.published_at,
            "locales": current.locales(&v.key), "channels": channels,
            "draft_pending": draft.is_some(), "draft_version": draft,
        }));
    }
    // Keys with drafts only, never published.
    for (key, l) in &latest {
        if !published.iter().any(|p| &p.key == key) {
            keys.push(json!({
                "key": key, "published_version": null, "published_at": null, "locales": [], "channels": [],
                "draft_pending": true, "draft_version": l.version,
            }));
        }
    }
    Ok(Json(json!({ "templates": keys })).into_response())
}

/// `GET /api/templates/{key}`: the published version and the latest draft, if newer.
async fn get_key(State(h): State<Http>, Path(key): Path<String>) -> Result<Response, ApiError> {
    check_key(&key)?;
    let published = h.app.store.published_templates().await?.into_iter().find(|v| v.key == key);
    let latest = h.app.store.template_versions(&key, None, 1).await?.into_iter().next();
    let draft = latest.filter(|l| l.state == "draft");
    if published.is_none() && draft.is_none() {
        return Err(ApiError::not_found(format!("no template {key:?}")));
    }
    Ok(Json(json!({
        "key": key,
        "published": published.as_ref().map(version_json),
        "draft": draft.as_ref().map(version_json),
    }))
    .into_response())
}

/// `GET /api/templates/{key}/versions?limit=&before=`: the history, newest first; `next_before`
/// fetches the next page.
async fn versions(
    State(h): State<Http>,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    check_key(&key)?;
    let limit = match q.get("limit").map(|l| l.parse::<u32>()) {
        None => 20,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => return Err(ApiError::bad(Some("limit"), "must be between 1 and 200")),
    };
    let before = number(q.get("before").map(String::as_str), "before")?;
    let rows = h.app.store.template_versions(&key, before, limit).await?;
    if rows.is_empty() && before.is_none() {
        return Err(ApiError::not_found(format!("no template {key:?}")));
    }
    let next = if rows.len() == limit as usize { rows.last().map(|v| v.version) } else { None };
    let versions: Vec<Value> = rows
        .iter()
        .map(|v| {
            json!({"version": v.version, "state": v.state, "created_at": v.created_at, "created_by": v.created_by,
                   "note": v.note, "rollback_of": v.rollback_of, "published_at": v.published_at})
        })
        .collect();
    Ok(Json(json!({ "key": key, "versions": versions, "next_before": next })).into_response())
}

async fn get_version(State(h): State<Http>, Path((key, v)): Path<(String, String)>) -> Result<Response, Failure> {
    let v = number(Some(&v), "version")?.unwrap_or_default();
    let v = tpl::version(&h.app, &key, v).await?;
    Ok(Json(version_json(&v)).into_response())
}

/// `POST /api/templates/{key}/drafts`: `{"variants": {"en": {"sms": …}}, "fixture"?, "note"?}`.
async fn create_draft(
    State(h): State<Http>,
    Path(key): Path<String>,
    caller: super::Caller,
    body: Bytes,
) -> Result<Response, Failure> {
    check_key(&key)?;
    let body = object(&body)?;
    let content = content_from(&body)?;
    let note = text(&body, "note")?;
    let (v, warnings) = tpl::create_draft(&h.app, &key, &content, &caller.actor(), note).await?;
    let mut out = version_json(&v);
    out["warnings"] = json!(warnings);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `POST /api/templates/{key}/preview`: `{"variants"?, "fixture"?, "version"?, "member"?}`;
/// without variants or a version, the published version.
async fn preview(State(h): State<Http>, Path(key): Path<String>, body: Bytes) -> Result<Response, Failure> {
    check_key(&key)?;
    let body = object(&body)?;
    let member = text(&body, "member")?;
    let (content, version) = if body.contains_key("variants") {
        if body.contains_key("version") {
            return Err(ApiError::bad(Some("version"), "give variants or a version, not both").into());
        }
        (content_from(&body)?, None)
    } else {
        let v = match int(&body, "version")? {
            Some(n) => tpl::version(&h.app, &key, n).await?,
            None => h
                .app
                .store
                .published_templates()
                .await?
                .into_iter()
                .find(|v| v.key == key)
                .ok_or_else(|| ApiError::not_found(format!("template {key:?} has no published version")))?,
        };
        (tpl::content_of(&v)?, Some(v.version))
    };
    let (rendered, warnings) = tpl::preview(&h.app, &key, &content, member).await?;
    Ok(Json(json!({"key": key, "version": version, "member": member, "rendered": rendered, "warnings": warnings}))
        .into_response())
}

/// `POST /api/templates/{key}/versions/{version}/publish`: `{"acknowledge_warnings": true}`
/// when the version has warnings (else 409 with them).
async fn publish(
    State(h): State<Http>,
    Path((key, v)): Path<(String, String)>,
    caller: super::Caller,
    body: Bytes,
) -> Result<Response, Failure> {
    let v = number(Some(&v), "version")?.unwrap_or_default();
    let body = object(&body)?;
    let ack = match body.get("acknowledge_warnings") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad(Some("acknowledge_warnings"), "must be true or false").into()),
    };
    let v = tpl::publish(&h.app, &key, v, ack, &caller.actor()).await?;
    Ok(Json(version_json(&v)).into_response())
}

/// `POST /api/templates/{key}/rollback`: `{"version": n}` publishes a new version with n's content.
async fn rollback(
    State(h): State<Http>,
    Path(key): Path<String>,
    caller: super::Caller,
    body: Bytes,
) -> Result<Response, Failure> {
    let body = object(&body)?;
    let Some(to) = int(&body, "version")? else {
        return Err(ApiError::bad(Some("version"), "missing").into());
    };
    let v = tpl::rollback(&h.app, &key, to, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(version_json(&v))).into_response())
}

/// `POST /api/templates/{key}/test-send`: `{"channel", "to", "version"?, "member"?}`; answers
/// with the provider's outcome.
async fn test_send(State(h): State<Http>, Path(key): Path<String>, body: Bytes) -> Result<Response, Failure> {
    let body = object(&body)?;
    let req: tpl::TestSend = serde_json::from_value(Value::Object(body)).map_err(|e| {
        let field = super::serde_field(&e.to_string());
        ApiError::bad(field.as_deref(), e.to_string())
    })?;
    let sent = tpl::test_send(&h.app, &key, &req).await?;
    Ok(Json(sent).into_response())
}

/// `GET /api/templates/{key}/diff?from=a&to=b`: a line-based unified diff of each part that
/// differs (`<locale>/<part>`, `fixture.json`).
async fn diff(
    State(h): State<Http>,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, Failure> {
    let from = number(q.get("from").map(String::as_str), "from")?;
    let to = number(q.get("to").map(String::as_str), "to")?;
    let (Some(from), Some(to)) = (from, to) else {
        let field = if from.is_none() { "from" } else { "to" };
        return Err(ApiError::bad(Some(field), "missing: a version number").into());
    };
    let a = tpl::version(&h.app, &key, from).await?;
    let b = tpl::version(&h.app, &key, to).await?;
    let files = |v: &TemplateVersion| -> Result<BTreeMap<String, String>, Failure> {
        let c = tpl::content_of(v)?;
        Ok(c.files(&key).into_iter().map(|(rel, text)| (rel[1..].join("/"), text)).collect())
    };
    let (fa, fb) = (files(&a)?, files(&b)?);
    let mut names: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    names.sort();
    names.dedup();
    let mut parts = Vec::new();
    for name in names {
        let (old, new) = (fa.get(name).map_or("", String::as_str), fb.get(name).map_or("", String::as_str));
        if old == new {
            continue;
        }
        let diff = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{key}@{from}/{name}"), &format!("{key}@{to}/{name}"))
            .to_string();
        let (locale, part) = name.split_once('/').map_or((None, name.as_str()), |(l, p)| (Some(l), p));
        let part = part.strip_suffix(".hbs").unwrap_or(part);
        parts.push(json!({"locale": locale, "part": part, "diff": diff}));
    }
    Ok(Json(json!({"key": key, "from": from, "to": to, "parts": parts})).into_response())
}
