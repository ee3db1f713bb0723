//! Provider callbacks: delivery receipts that providers post back. Each is authenticated the
//! way its provider allows (Twilio signs its requests), and answered only after the receipts
//! are committed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, Http};
use crate::config::resolve_secret;

/// `POST /hooks/twilio/status`: Twilio's message status callback (form-encoded), verified with
/// `X-Twilio-Signature` against the configured `twilio.status_callback` URL, the exact URL
/// Twilio signs. An unsigned or wrongly signed callback gets 403 and changes nothing.
pub async fn twilio_status(State(h): State<Http>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let Some(cfg) = h.app.settings.raw.twilio.as_ref() else {
        return Ok((StatusCode::NOT_FOUND, "twilio is not configured\n").into_response());
    };
    let Some(url) = cfg.status_callback.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok((StatusCode::NOT_FOUND, "twilio.status_callback is not configured\n").into_response());
    };
    let token = resolve_secret(cfg.auth_token.as_ref(), cfg.auth_token_file.as_deref(), "twilio.auth_token")
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::channels::sms::twilio::signature_valid(token.expose(), url, &params, signature) {
        tracing::warn!("rejected a twilio status callback with a missing or wrong signature");
        return Ok((StatusCode::FORBIDDEN, "invalid X-Twilio-Signature\n").into_response());
    }
    if let Some(receipt) = crate::channels::sms::twilio::status_receipt(&params) {
        h.app.store.record_receipts(&[receipt], h.app.now()).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
