//! Provider callbacks: delivery receipts that providers post back. Each is authenticated the
//! way its provider allows (Twilio signs its requests), and answered only after the receipts
//! are committed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, Http};
use crate::channels::ChannelKind;
use crate::config::resolve_secret;

/// `POST /hooks/twilio/status`: Twilio's message status callback (form-encoded), verified with
/// `X-Twilio-Signature` against the configured `twilio.status_callback` URL, the exact URL
/// Twilio signs. An unsigned or wrongly signed callback gets 403 and changes nothing.
pub async fn twilio_status(State(h): State<Http>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let params = match twilio_verified(&h, &headers, &body, "status_callback", |c| c.status_callback.as_deref())? {
        Ok(params) => params,
        Err(refused) => return Ok(refused),
    };
    if let Some(receipt) = crate::channels::sms::twilio::status_receipt(&params) {
        h.app.store.record_receipts(&[receipt], h.app.now()).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A Twilio webhook's form parameters, once its `X-Twilio-Signature` checks out against the
/// URL configured as `twilio.<key>` (the exact URL Twilio signs); else the answer to give: 404
/// when Twilio or that URL is not configured, 403 for a missing or wrong signature.
fn twilio_verified(
    h: &Http,
    headers: &HeaderMap,
    body: &[u8],
    key: &str,
    url_of: impl Fn(&crate::channels::sms::twilio::TwilioConfig) -> Option<&str>,
) -> Result<Result<Vec<(String, String)>, Response>, ApiError> {
    let settings = h.app.settings();
    let Some(cfg) = settings.raw.twilio.as_ref() else {
        return Ok(Err((StatusCode::NOT_FOUND, "twilio is not configured\n").into_response()));
    };
    let Some(url) = url_of(cfg).map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(Err((StatusCode::NOT_FOUND, format!("twilio.{key} is not configured\n")).into_response()));
    };
    let token = resolve_secret(cfg.auth_token.as_ref(), cfg.auth_token_file.as_deref(), "twilio.auth_token")
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::channels::sms::twilio::signature_valid(token.expose(), url, &params, signature) {
        tracing::warn!(webhook = key, "rejected a twilio webhook with a missing or wrong signature");
        return Ok(Err((StatusCode::FORBIDDEN, "invalid X-Twilio-Signature\n").into_response()));
    }
    Ok(Ok(params))
}

/// `POST /hooks/twilio/inbound`: a message a member sent to the programme's number, verified
/// with `X-Twilio-Signature` against `twilio.inbound_url`. An opt-out keyword (STOP, T, 退订…)
/// opts every member with that number out of SMS, marketing and service alike, committed before
/// the answer; messages already scheduled for them are then skipped when due. Answers empty
/// TwiML (Twilio's own opt-out handling sends the confirmation reply).
pub async fn twilio_inbound(State(h): State<Http>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let params = match twilio_verified(&h, &headers, &body, "inbound_url", |c| c.inbound_url.as_deref())? {
        Ok(params) => params,
        Err(refused) => return Ok(refused),
    };
    let field = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let (Some(from), Some(text)) = (field("From"), field("Body"))
        && crate::track::keywords::is_opt_out(text)
    {
        let purposes = [crate::channels::Purpose::Marketing, crate::channels::Purpose::Service];
        let members =
            h.app.store.opt_out_phone(from, ChannelKind::Sms, &purposes, "sms-reply:twilio", h.app.now()).await?;
        tracing::info!(members, "inbound SMS opt-out recorded");
    }
    Ok(([("content-type", "text/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// `POST /hooks/aliyun/receipts?token=…`: Aliyun's delivery reports (a JSON array of
/// `SmsReport`), acknowledged with `{"code":0,"msg":"成功"}` once recorded.
pub async fn aliyun_receipts(
    State(h): State<Http>,
    axum::extract::Query(q): axum::extract::Query<TokenQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let expected = h.app.settings().raw.aliyun.as_ref().and_then(|c| c.receipt_token.clone());
    receipts(
        &h,
        expected,
        q.token,
        &body,
        crate::channels::sms::aliyun::parse_receipts,
        crate::channels::sms::aliyun::RECEIPT_ACK,
    )
    .await
}

/// `POST /hooks/tencent/receipts?token=…`: Tencent Cloud's status callback (a JSON array),
/// acknowledged with `{"result":0,"errmsg":"OK"}` once recorded.
pub async fn tencent_receipts(
    State(h): State<Http>,
    axum::extract::Query(q): axum::extract::Query<TokenQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let expected = h.app.settings().raw.tencent.as_ref().and_then(|c| c.receipt_token.clone());
    receipts(
        &h,
        expected,
        q.token,
        &body,
        crate::channels::sms::tencent::parse_receipts,
        crate::channels::sms::tencent::RECEIPT_ACK,
    )
    .await
}

async fn receipts(
    h: &Http,
    expected: Option<crate::config::Secret>,
    given: Option<String>,
    body: &[u8],
    parse: fn(&[u8]) -> Result<Vec<crate::channels::Receipt>, String>,
    ack: &'static str,
) -> Result<Response, ApiError> {
    let Some(expected) = expected.filter(|s| !s.expose().is_empty()) else {
        return Ok((StatusCode::NOT_FOUND, "receipts are not configured (receipt_token)\n").into_response());
    };
    let given = given.unwrap_or_default();
    if !constant_time_eq(expected.expose().as_bytes(), given.as_bytes()) {
        return Ok((StatusCode::FORBIDDEN, "wrong or missing token\n").into_response());
    }
    let receipts = match parse(body) {
        Ok(r) => r,
        Err(e) => return Err(ApiError::bad(None, format!("not a delivery report: {e}"))),
    };
    h.app.store.record_receipts(&receipts, h.app.now()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], ack).into_response())
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
