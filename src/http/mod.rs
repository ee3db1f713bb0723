//! The HTTP face of the daemon: health and readiness for supervisors, and the ingest API the
//! host loyalty system calls (members, events), plus messages: search, detail, retry, cancel.
//! `app()` builds the router so tests call it without a socket. Every route needs an API key or
//! a console session unless the access table (`auth::ROUTES`) makes it public.

pub mod auth;
mod consent;
pub mod console;
mod definitions;
mod hooks;
mod journeys;
mod members;
mod messages;
pub mod openapi;
pub mod page;
mod reach;
mod rights;
mod session;
mod templates;
pub mod unsubscribe;

pub use auth::{Access, Caller, ROUTES, access};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;

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
        .merge(definitions::routes())
        .merge(session::routes())
        .merge(console::routes())
        .merge(templates::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/members", post(members::upsert).get(members::list))
        .route("/api/members/{external_id}", get(members::get_one).delete(rights::erase))
        .route("/api/members/{external_id}/export", get(rights::export))
        .route("/api/events", post(members::record_events))
        .route("/api/messages", get(messages::list))
        .route("/api/messages/send", post(messages::send))
        .route("/api/messages/{id}", get(messages::get_one))
        .route("/api/messages/{id}/retry", post(messages::retry))
        .route("/api/messages/{id}/cancel", post(messages::cancel))
        .route("/api/messages/{id}/history", get(messages::history))
        .route("/api/forecast", get(forecast))
        .route("/api/stats", get(stats))
        .route("/api/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/api/reports/{rule}", get(report))
        .route(
            "/api/members/{external_id}/devices",
            get(members::devices).post(reach::add_device).delete(reach::remove_device),
        )
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
        .layer(axum::middleware::from_fn_with_state(http.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(json_errors))
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

/// Errors under `/api/` are JSON, those axum answers itself too (a body that is not JSON, one
/// over the size limit): its plain-text message becomes `{"error": {"message": …}}`.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let response = next.run(req).await;
    let failed = response.status().is_client_error() || response.status().is_server_error();
    let text = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain"));
    if !api || !failed || !text {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes).trim().to_string();
    (parts.status, Json(json!({"error": {"message": message, "field": null}}))).into_response()
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
    let _ = writeln!(out, "# HELP tidings_messages_by_rule Messages in the database by rule, channel and state.");
    let _ = writeln!(out, "# TYPE tidings_messages_by_rule gauge");
    for (rule, channel, state, n) in h.app.store.counts_by_rule().await? {
        let _ = writeln!(
            out,
            "tidings_messages_by_rule{{instance=\"{instance}\",rule=\"{}\",channel=\"{channel}\",state=\"{state}\"}} {n}",
            label(&rule)
        );
    }
    let _ =
        writeln!(out, "# HELP tidings_messages_by_provider Messages in the database by channel, provider and state.");
    let _ = writeln!(out, "# TYPE tidings_messages_by_provider gauge");
    for (channel, provider, state, n) in h.app.store.counts_by_provider().await? {
        let _ = writeln!(
            out,
            "tidings_messages_by_provider{{instance=\"{instance}\",channel=\"{channel}\",provider=\"{}\",state=\"{state}\"}} {n}",
            label(&provider)
        );
    }
    provider_metrics(&h.app, &mut out);
    model_metrics(&h.app, &mut out).await?;
    let now = h.app.now();
    let backlog = crate::track::stats::BacklogView::new(h.app.store.backlog(now).await?, now);
    let gauges = [
        ("tidings_queue_due", "Scheduled messages due now.", backlog.due as f64),
        ("tidings_queue_scheduled", "Scheduled messages, due now or later.", backlog.scheduled as f64),
        (
            "tidings_queue_oldest_due_seconds",
            "How long the oldest due message has waited (0 with none due).",
            backlog.oldest_due_seconds.unwrap_or(0) as f64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{instance=\"{instance}\"}} {value}");
    }
    let last = *h.app.last_tick.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, took)) = last {
        let _ =
            writeln!(out, "# HELP tidings_tick_duration_seconds How long this instance's last evaluation tick took.");
        let _ = writeln!(out, "# TYPE tidings_tick_duration_seconds gauge");
        let _ = writeln!(out, "tidings_tick_duration_seconds{{instance=\"{instance}\"}} {}", took.as_secs_f64());
        let _ =
            writeln!(out, "# HELP tidings_last_tick_timestamp_seconds When this instance last evaluated (Unix time).");
        let _ = writeln!(out, "# TYPE tidings_last_tick_timestamp_seconds gauge");
        let _ = writeln!(out, "tidings_last_tick_timestamp_seconds{{instance=\"{instance}\"}} {}", at.as_second());
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// This instance's providers: a latency histogram per outcome and the circuit state, from the
/// atomics the route keeps (no database read).
fn provider_metrics(app: &crate::app::App, out: &mut String) {
    use crate::channels::stats::{BUCKETS, Outcome};
    use std::fmt::Write;
    let instance = &app.instance_id;
    let name = "tidings_provider_request_duration_seconds";
    let _ = writeln!(out, "# HELP {name} Provider calls by channel, provider and outcome, and how long they took.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (channel, slot) in app.channels.health() {
        let provider = slot.provider.name();
        for outcome in Outcome::ALL {
            let h = slot.stats.snapshot(outcome);
            let labels = format!(
                "instance=\"{instance}\",channel=\"{channel}\",provider=\"{provider}\",outcome=\"{}\"",
                outcome.as_str()
            );
            for (le, n) in BUCKETS.iter().zip(h.cumulative) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
        }
    }
    let name = "tidings_provider_circuit_state";
    let _ = writeln!(
        out,
        "# HELP {name} A provider's circuit breaker here: 0 closed, 1 half-open (one trial out), 2 open."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (channel, slot) in app.channels.health() {
        let _ = writeln!(
            out,
            "{name}{{instance=\"{instance}\",channel=\"{channel}\",provider=\"{}\"}} {}",
            slot.provider.name(),
            slot.breaker.state().gauge()
        );
    }
}

/// The member value model: the last fit (from the database, so any instance's) and this
/// instance's last refresh.
async fn model_metrics(app: &crate::app::App, out: &mut String) -> Result<(), ApiError> {
    let instance = &app.instance_id;
    if let Some(fit) = app.store.models(crate::members::refresh::BGNBD, false, 1).await?.into_iter().next() {
        let gauges = [
            (
                "tidings_model_fit_duration_seconds",
                "How long the last member value model fit took.",
                fit.duration_ms as f64 / 1000.0,
            ),
            (
                "tidings_model_fit_timestamp_seconds",
                "When the last member value model was fitted (Unix time).",
                fit.fitted_at.as_second() as f64,
            ),
            (
                "tidings_model_fit_accepted",
                "Whether the last fit became the current model (1) or was refused (0).",
                if fit.accepted { 1.0 } else { 0.0 },
            ),
        ];
        instance_gauges(out, instance, &gauges);
    }
    let last = *app.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, took)) = last {
        let gauges = [
            (
                "tidings_value_refresh_duration_seconds",
                "How long this instance's last member value refresh took (read, fit, score, write).",
                took.as_secs_f64(),
            ),
            (
                "tidings_last_value_refresh_timestamp_seconds",
                "When this instance last refreshed member value (Unix time).",
                at.as_second() as f64,
            ),
        ];
        instance_gauges(out, instance, &gauges);
    }
    Ok(())
}

/// Gauges labelled only with the instance: (name, help, value) each.
fn instance_gauges(out: &mut String, instance: &str, gauges: &[(&str, &str, f64)]) {
    use std::fmt::Write;
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{instance=\"{instance}\"}} {value}");
    }
}

/// A label value as the Prometheus text format wants it: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

/// A JSON body that is one object or a list of them.
fn items(body: Value) -> Result<Vec<Value>, ApiError> {
    match body {
        Value::Array(items) => Ok(items),
        obj @ Value::Object(_) => Ok(vec![obj]),
        _ => Err(ApiError::bad(None, "expected a JSON object or a list of objects")),
    }
}

/// The field a serde error is about (`missing field \`kind\``, `unknown field \`x\``), if any.
fn serde_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[derive(Debug, Deserialize)]
struct ForecastQuery {
    days: Option<u32>,
    /// One rule or journey (forecast even while disabled).
    rule: Option<String>,
}

/// `GET /api/forecast?days=7&rule=`: per day, rule and channel, what would be sent and skipped,
/// with sample recipients.
async fn forecast(State(h): State<Http>, Query(q): Query<ForecastQuery>) -> Result<Response, ApiError> {
    forecast_of(&h, q.days, q.rule.as_deref(), Some("rule")).await
}

/// The forecast of every rule and journey, or of `only` (404 naming `field` when unknown).
async fn forecast_of(
    h: &Http,
    days: Option<u32>,
    only: Option<&str>,
    field: Option<&str>,
) -> Result<Response, ApiError> {
    let days = days.unwrap_or(7);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad(Some("days"), "must be between 1 and 366"));
    }
    if let Some(id) = only {
        let settings = h.app.settings();
        if !settings.rules.iter().any(|r| r.id == id) && !settings.journeys.iter().any(|j| j.id == id) {
            let mut e = ApiError::not_found(format!("no rule or journey {id:?}"));
            e.field = field.map(str::to_string);
            return Err(e);
        }
    }
    Ok(Json(h.app.forecast(days, only).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    days: Option<u32>,
}

/// `GET /api/stats?days=14`: the dashboard (see `track::stats`).
async fn stats(State(h): State<Http>, Query(q): Query<StatsQuery>) -> Result<Response, ApiError> {
    let days = q.days.unwrap_or(14);
    if !(1..=crate::track::stats::MAX_DAYS).contains(&days) {
        return Err(ApiError::bad(Some("days"), format!("must be between 1 and {}", crate::track::stats::MAX_DAYS)));
    }
    Ok(Json(h.app.stats(days).await?).into_response())
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
