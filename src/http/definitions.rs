//! Rules and journeys over HTTP: list, read, create, replace, enable, disable, remove, and each
//! one's history. A body is a `[[rules]]` or `[[journeys]]` entry written as JSON, checked as
//! the configuration file is (`crate::definitions`). Responses carry the version in force as an
//! `ETag`; a write with `If-Match` is refused with 409 when someone changed it in between.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, Caller, Http};
use crate::definitions::{Applied, Change, Defined, Refused};
use crate::store::DefinitionKind;

pub fn routes() -> Router<Http> {
    use DefinitionKind::{Journey, Rule};
    // Written out, path by path, so the access table's test finds each one.
    Router::new()
        .route("/api/rules", get(|s| list(s, Rule)).post(|s, c, h, b| create(s, c, h, b, Rule)))
        .route(
            "/api/rules/{id}",
            get(|s, p| one(s, p, Rule))
                .put(|s, p, c, h, b| put(s, p, c, h, b, Rule))
                .delete(|s, p, c, h| remove(s, p, c, h, Rule)),
        )
        .route("/api/rules/{id}/history", get(|s, p| history(s, p, Rule)))
        .route("/api/rules/{id}/forecast", get(forecast))
        .route("/api/rules/{id}/enable", post(|s, p, c, h| enable(s, p, c, h, Rule, true)))
        .route("/api/rules/{id}/disable", post(|s, p, c, h| enable(s, p, c, h, Rule, false)))
        .route("/api/journeys", get(|s| list(s, Journey)).post(|s, c, h, b| create(s, c, h, b, Journey)))
        .route(
            "/api/journeys/{id}",
            get(|s, p| one(s, p, Journey))
                .put(|s, p, c, h, b| put(s, p, c, h, b, Journey))
                .delete(|s, p, c, h| remove(s, p, c, h, Journey)),
        )
        .route("/api/journeys/{id}/history", get(|s, p| history(s, p, Journey)))
        .route("/api/journeys/{id}/forecast", get(forecast))
        .route("/api/journeys/{id}/enable", post(|s, p, c, h| enable(s, p, c, h, Journey, true)))
        .route("/api/journeys/{id}/disable", post(|s, p, c, h| enable(s, p, c, h, Journey, false)))
}

fn plural(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Rule => "rules",
        DefinitionKind::Journey => "journeys",
    }
}

fn etag(d: &Defined) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", d.version.unwrap_or(0))).expect("a number is a header value")
}

fn with_etag(status: StatusCode, d: &Defined, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(header::ETAG, etag(d));
    r
}

/// `If-Match: "7"`: the version the caller read (`"0"`: the file's, none stored).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = v.to_str().unwrap_or("").trim().trim_start_matches("W/").trim_matches('"');
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad(Some("If-Match"), "the ETag of a rule or journey as read, e.g. \"12\""))
}

fn refused(kind: DefinitionKind, id: &str, r: Refused) -> Response {
    match r {
        Refused::Invalid(problems) => {
            let first = problems.first().cloned();
            let message = first.as_ref().map_or("invalid".to_string(), |p| p.problem.clone());
            let field = first.map(|p| p.field).filter(|f| !f.is_empty());
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": {"message": message, "field": field, "problems": problems}})),
            )
                .into_response()
        }
        Refused::NotFound => ApiError::not_found(format!("no {} {id:?}", kind.as_str())).into_response(),
        Refused::InConfig => ApiError::conflict(
            "id",
            format!(
                "{} {id:?} is defined in the configuration file: disable it (POST …/disable), or remove it from the file",
                kind.as_str()
            ),
        )
        .into_response(),
        Refused::Conflict(message) => ApiError::conflict("id", message).into_response(),
        Refused::Failed(e) => ApiError::from(format!("{e:#}")).into_response(),
    }
}

fn applied(status: StatusCode, a: Applied) -> Response {
    let body = json!({"definition": a.definition, "cancelled": a.cancelled, "runs_ended": a.runs_ended});
    match &a.definition {
        Some(d) => with_etag(status, d, body),
        None => (status, Json(body)).into_response(),
    }
}

/// `GET /api/rules`: every rule in force, the file's and the API's, with where each comes from.
async fn list(State(h): State<Http>, kind: DefinitionKind) -> Result<Response, ApiError> {
    let all = h.app.definitions(kind).await?;
    Ok(Json(json!({ plural(kind): all })).into_response())
}

async fn one(State(h): State<Http>, Path(id): Path<String>, kind: DefinitionKind) -> Result<Response, ApiError> {
    match h.app.definitions(kind).await?.into_iter().find(|d| d.id == id) {
        Some(d) => Ok(with_etag(StatusCode::OK, &d, json!(d))),
        None => Err(ApiError::not_found(format!("no {} {id:?}", kind.as_str()))),
    }
}

/// Applies one change as the caller asks it: the actor from the key (and `X-Tidings-Actor`),
/// `If-Match` when `guarded`, and the answer's status when it succeeds.
async fn apply(
    h: &Http,
    kind: DefinitionKind,
    id: &str,
    change: Change,
    (caller, headers): (&Caller, &HeaderMap),
    guarded: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let actor = super::consent::actor(caller, headers)?;
    let expect = if guarded { if_match(headers)? } else { None };
    Ok(match h.app.change_definition(kind, id, change, expect, &actor).await {
        Ok(a) => applied(status, a),
        Err(r) => refused(kind, id, r),
    })
}

/// `POST /api/rules`: a new rule (409 when the id is taken).
async fn create(
    State(h): State<Http>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<Value>,
    kind: DefinitionKind,
) -> Result<Response, ApiError> {
    let Some(id) = body.get("id").and_then(|v| v.as_str()).map(str::to_string) else {
        return Err(ApiError::bad(Some("id"), "required: the new definition's id"));
    };
    let change = Change::Put { body, create_only: true };
    apply(&h, kind, &id, change, (&caller, &headers), false, StatusCode::CREATED).await
}

/// `PUT /api/rules/{id}`: creates or replaces it (a rule of the file's is overridden).
async fn put(
    State(h): State<Http>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<Value>,
    kind: DefinitionKind,
) -> Result<Response, ApiError> {
    let change = Change::Put { body, create_only: false };
    apply(&h, kind, &id, change, (&caller, &headers), true, StatusCode::OK).await
}

/// `POST /api/rules/{id}/enable` and `…/disable`.
async fn enable(
    State(h): State<Http>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    kind: DefinitionKind,
    on: bool,
) -> Result<Response, ApiError> {
    apply(&h, kind, &id, Change::Enable(on), (&caller, &headers), true, StatusCode::OK).await
}

/// `DELETE /api/rules/{id}`: removes a rule defined through the API; one that overrode the
/// file's gives way to it again.
async fn remove(
    State(h): State<Http>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    kind: DefinitionKind,
) -> Result<Response, ApiError> {
    apply(&h, kind, &id, Change::Remove, (&caller, &headers), true, StatusCode::OK).await
}

#[derive(Debug, serde::Deserialize)]
struct ForecastQuery {
    days: Option<u32>,
}

/// `GET /api/rules/{id}/forecast?days=7`: what it would send (even while disabled), per day and
/// channel, with sample recipients; as `GET /api/forecast?rule=`.
async fn forecast(
    State(h): State<Http>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    super::forecast_of(&h, q.days, Some(&id), None).await
}

/// `GET /api/rules/{id}/history`: every version stored through the API, newest first.
async fn history(State(h): State<Http>, Path(id): Path<String>, kind: DefinitionKind) -> Result<Response, ApiError> {
    let versions = h.app.store.definition_history(kind, &id).await?;
    if versions.is_empty() && !h.app.definitions(kind).await?.iter().any(|d| d.id == id) {
        return Err(ApiError::not_found(format!("no {} {id:?}", kind.as_str())));
    }
    Ok(Json(json!({ "versions": versions })).into_response())
}
