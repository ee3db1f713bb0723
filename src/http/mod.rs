//! The HTTP face of the daemon: health and readiness for supervisors, and the ingest API the
//! host loyalty system calls (members, events), plus read-only views of messages.
//! `app()` builds the router so tests call it without a socket.

mod consent;
mod hooks;
mod journeys;
mod reach;
mod rights;
mod templates;
pub mod unsubscribe;

use crate::clock::InstantExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::members::EventInput;
use crate::members::validate::{FieldError, member_from_json};
use crate::store::{MessageFilter, State as MessageState};

/// Shared with handlers.
#[derive(Clone)]
pub struct Http {
    pub app: App,
    /// False once shutdown began: `/readyz` then answers 503 so traffic drains away.
    pub ready: Arc<AtomicBool>,
}

/// The router.
pub fn app(http: Http) -> Router {
    let limit = http.app.settings().raw.http.body_limit;
    // One-click unsubscribe links exist when SMTP signs them (`smtp.link_secret`).
    let secret = http.app.settings().raw.smtp.as_ref().and_then(|s| {
        crate::channels::email::list_unsubscribe::link_secret(s)
            .inspect_err(|p| tracing::error!(problem = %p, "unsubscribe links disabled"))
            .ok()
            .flatten()
    });
    let unsubscribe = match secret {
        Some(secret) => unsubscribe::router(unsubscribe::UnsubscribeState {
            secret,
            store: http.app.store.clone(),
            clock: http.app.clock.clone(),
        }),
        None => Router::new(),
    };
    Router::new()
        .merge(unsubscribe)
        .merge(journeys::routes())
        .merge(templates::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/members", post(upsert_members))
        .route("/api/members/{external_id}", get(get_member).delete(rights::erase))
        .route("/api/members/{external_id}/export", get(rights::export))
        .route("/api/events", post(record_events))
        .route("/api/messages", get(list_messages))
        .route("/api/messages/send", post(send_message))
        .route("/api/messages/{id}/history", get(message_history))
        .route("/api/forecast", get(forecast))
        .route("/api/reports/{rule}", get(report))
        .route("/api/members/{external_id}/devices", post(reach::add_device).delete(reach::remove_device))
        .route("/api/members/{external_id}/opt-outs", post(reach::opt_out))
        .route("/api/members/{external_id}/consent", get(consent::get_consent).post(consent::post_consent))
        .route("/api/audit", get(consent::audit))
        .route("/hooks/aliyun/inbound", post(consent::aliyun_inbound))
        .route("/hooks/tencent/inbound", post(consent::tencent_inbound))
        .route("/hooks/complaints", post(consent::complaint))
        .route("/api/suppressions", post(reach::add_suppressions).get(reach::list_suppressions))
        .route("/api/suppressions/{channel}/{address}", delete(reach::remove_suppression))
        .route("/hooks/twilio/status", post(hooks::twilio_status))
        .route("/hooks/twilio/inbound", post(hooks::twilio_inbound))
        .route("/hooks/aliyun/receipts", post(hooks::aliyun_receipts))
        .route("/hooks/tencent/receipts", post(hooks::tencent_receipts))
        .route("/api/push/vapid-public-key", get(vapid_public_key))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(http)
}

/// `GET /api/push/vapid-public-key`: the application server key browsers subscribe with
/// (`applicationServerKey`), base64url; 404 when Web Push is not configured.
async fn vapid_public_key(State(h): State<Http>) -> Response {
    let key = match h.app.channels.push.primary() {
        crate::channels::Provider::Push(p) => p.webpush_public_key().map(str::to_string),
        _ => None,
    };
    match key {
        Some(key) => Json(json!({"public_key": key})).into_response(),
        None => ApiError::not_found("web push is not configured").into_response(),
    }
}

impl unsubscribe::OptOut for crate::store::Store {
    type Error = crate::store::StoreError;

    async fn opt_out(
        &self,
        member: &str,
        channel: crate::channels::ChannelKind,
        purpose: crate::channels::Purpose,
        source: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, Self::Error> {
        crate::store::Store::opt_out(self, member, channel, purpose, source, now).await
    }
}

/// An error as JSON: `{"error": {"message": …, "field": …}}`. Internal details are logged, not sent.
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn bad(field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into(), field: field.map(str::to_string) }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into(), field: None }
    }

    /// 400: a request that cannot be acted on as written (a transactional send).
    fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_string()).filter(|f| !f.is_empty()),
        }
    }

    /// 409: the request clashes with an earlier one (an idempotency key reused).
    fn conflict(field: &str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::CONFLICT, message: message.into(), field: Some(field.to_string()) }
    }
}

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: "internal error".into(), field: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"message": self.message, "field": self.field}}))).into_response()
    }
}

/// Prometheus text exposition: this instance's id and the messages by state (the full set of
/// series comes with the observability work; these are the ones operators of several instances
/// need first).
async fn metrics(State(h): State<Http>) -> Result<Response, ApiError> {
    use std::fmt::Write;
    let instance = &h.app.instance_id;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP tidings_instance_info The daemon instance serving these metrics.");
    let _ = writeln!(out, "# TYPE tidings_instance_info gauge");
    let _ =
        writeln!(out, "tidings_instance_info{{instance=\"{instance}\",backend=\"{}\"}} 1", h.app.store.backend_name());
    let _ = writeln!(out, "# HELP tidings_messages Messages in the database by state.");
    let _ = writeln!(out, "# TYPE tidings_messages gauge");
    for (state, n) in h.app.store.count_by_state().await? {
        let _ = writeln!(out, "tidings_messages{{instance=\"{instance}\",state=\"{state}\"}} {n}");
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn readyz(State(h): State<Http>) -> Response {
    if !h.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match h.app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// One item of a batch that was rejected.
#[derive(Debug, Serialize)]
struct ItemError {
    index: usize,
    field: Option<String>,
    problem: String,
}

/// A JSON body that is one object or a list of them.
fn items(body: Value) -> Result<Vec<Value>, ApiError> {
    match body {
        Value::Array(items) => Ok(items),
        obj @ Value::Object(_) => Ok(vec![obj]),
        _ => Err(ApiError::bad(None, "expected a JSON object or a list of objects")),
    }
}

async fn upsert_members(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let mut good = Vec::new();
    let mut consent = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items(body)?.into_iter().enumerate() {
        let result = match item.as_object() {
            Some(obj) => crate::members::consent::both(member_from_json(obj), crate::members::consent::from_json(obj)),
            None => Err(vec![FieldError { field: String::new(), problem: "not an object".into() }]),
        };
        match result {
            Ok((m, given)) => {
                consent.extend(crate::members::consent::changes(&m.external_id, &given));
                good.push(m)
            }
            Err(fields) => errors.extend(fields.into_iter().map(|f| ItemError {
                index,
                field: Some(f.field).filter(|f| !f.is_empty()),
                problem: f.problem,
            })),
        }
    }
    let counts = h.app.store.upsert_members(&good, h.app.now()).await?;
    h.app.store.change_consent(&consent, crate::store::consent::ACTOR_IMPORT, h.app.now()).await?;
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((
        status,
        Json(json!({"inserted": counts.inserted, "updated": counts.updated,
        "unchanged": counts.unchanged, "errors": errors})),
    )
        .into_response())
}

async fn get_member(State(h): State<Http>, Path(external_id): Path<String>) -> Result<Response, ApiError> {
    match h.app.store.member_by_external_id(&external_id).await? {
        Some(m) => Ok(Json(m).into_response()),
        None => Err(ApiError::not_found(format!("no member {external_id:?}"))),
    }
}

/// An event as the API takes it; `at` defaults to now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(default)]
    event_id: Option<String>,
    member: String,
    kind: String,
    #[serde(default)]
    amount: Option<f64>,
    #[serde(default)]
    at: Option<jiff::Timestamp>,
    /// A JSON object, given to templates as `occurrence.event.*`.
    #[serde(default)]
    data: Option<Value>,
}

async fn record_events(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let now = h.app.now();
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items(body)?.into_iter().enumerate() {
        match serde_json::from_value::<EventBody>(item) {
            Ok(e) if e.kind.trim().is_empty() => {
                errors.push(ItemError { index, field: Some("kind".into()), problem: "missing".into() })
            }
            Ok(e) if e.at.is_some_and(|at| at > now.plus(jiff::SignedDuration::from_hours(24))) => {
                errors.push(ItemError {
                    index,
                    field: Some("at".into()),
                    problem: "is more than a day in the future".into(),
                })
            }
            Ok(e) => match crate::entry::event_data(e.data) {
                Ok(data) => good.push(EventInput {
                    event_id: e.event_id,
                    member: e.member,
                    kind: e.kind.trim().to_string(),
                    amount: e.amount,
                    at: e.at.unwrap_or(now),
                    data,
                }),
                Err(problem) => errors.push(ItemError { index, field: Some("data".into()), problem }),
            },
            Err(e) => errors.push(ItemError { index, field: serde_field(&e.to_string()), problem: e.to_string() }),
        }
    }
    let counts = h.app.store.record_events(&good, now).await?;
    // Before the answer: a purchase ends a win-back journey at once.
    crate::journeys::exit_on_events(&h.app.store, &h.app.settings().journeys, &good, now).await?;
    let status = if errors.is_empty() && counts.unknown_members.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({"recorded": counts.recorded, "duplicate": counts.duplicate,
        "unknown_members": counts.unknown_members, "errors": errors})),
    )
        .into_response())
}

/// `POST /api/messages/send`: a transactional message now, idempotent on `idempotency_key`
/// (see `entry::send`). 202 with the messages; 200 when the key was used with this same request.
async fn send_message(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let request: crate::entry::SendRequest = serde_json::from_value(body).map_err(|e| {
        let field = serde_field(&e.to_string());
        ApiError::bad_request(field.as_deref().unwrap_or(""), e.to_string())
    })?;
    match crate::entry::send(&h.app, request).await {
        Ok(out) => {
            let status = if out.replayed { StatusCode::OK } else { StatusCode::ACCEPTED };
            Ok((status, Json(out)).into_response())
        }
        Err(crate::entry::SendError::Bad { field, problem }) => Err(ApiError::bad_request(field, problem)),
        Err(e @ crate::entry::SendError::NoMember(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ crate::entry::SendError::Conflict { field }) => Err(ApiError::conflict(field, e.to_string())),
        Err(crate::entry::SendError::Store(e)) => Err(e.into()),
    }
}

/// The field a serde error is about (`missing field \`kind\``, `unknown field \`x\``), if any.
fn serde_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[derive(Debug, Deserialize)]
struct MessageQuery {
    rule: Option<String>,
    member: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

async fn list_messages(State(h): State<Http>, Query(q): Query<MessageQuery>) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => {
            Some(MessageState::parse(s).ok_or_else(|| ApiError::bad(Some("state"), format!("unknown state {s:?}")))?)
        }
    };
    let filter = MessageFilter {
        id: None,
        rule_id: q.rule,
        member: q.member,
        state,
        channel: None,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    Ok(Json(h.app.store.messages(&filter).await?).into_response())
}

async fn message_history(State(h): State<Http>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let history = h.app.store.history(id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(format!("no message {id}")));
    }
    Ok(Json(history).into_response())
}

#[derive(Debug, Deserialize)]
struct ForecastQuery {
    days: Option<u32>,
}

async fn forecast(State(h): State<Http>, Query(q): Query<ForecastQuery>) -> Result<Response, ApiError> {
    let days = q.days.unwrap_or(7);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad(Some("days"), "must be between 1 and 366"));
    }
    Ok(Json(h.app.forecast(days).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    since: Option<String>,
}

async fn report(
    State(h): State<Http>,
    Path(rule): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let since = q
        .since
        .map(|s| crate::track::report::parse_since(&s, &h.app.settings().programme_tz))
        .transpose()
        .map_err(|e| ApiError::bad(Some("since"), e))?;
    match h.app.report(&rule, since).await? {
        Some(report) => Ok(Json(report).into_response()),
        None => Err(ApiError::not_found(format!("no rule {rule:?} in the configuration"))),
    }
}
