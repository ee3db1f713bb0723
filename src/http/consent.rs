//! Consent over HTTP: a member's consent and its history (`GET`/`POST
//! /api/members/{id}/consent`), the audit log (`GET /api/audit`), and the inbound SMS webhooks
//! of Aliyun and Tencent Cloud, whose opt-out keywords revoke SMS consent. Every change is
//! committed before the answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Caller, Http};
use crate::channels::{ChannelKind, Purpose};
use crate::store::consent::{ACTOR_MEMBER, AuditFilter, ConsentChange};

/// The actor of an API call: its key (`key:<name>`), followed by the `X-Tidings-Actor` header
/// when the caller names who it acts for (`key:crm/crm-sync`). A key cannot pass itself off as
/// someone else.
pub(super) fn actor(caller: &Caller, headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("x-tidings-actor") {
        None => Ok(caller.actor()),
        Some(v) => {
            let v = v.to_str().unwrap_or("").trim();
            if v.is_empty() || v.len() > 200 || v == ACTOR_MEMBER {
                return Err(ApiError::bad(
                    Some("X-Tidings-Actor"),
                    "1 to 200 visible characters naming the caller (not \"member\")",
                ));
            }
            Ok(format!("{}/{v}", caller.actor()))
        }
    }
}

/// `GET /api/members/{id}/consent`: the current consent per channel and purpose, and every
/// change oldest first.
pub async fn get_consent(State(h): State<Http>, Path(external_id): Path<String>) -> Result<Response, ApiError> {
    let Some((current, history)) = h.app.store.member_consent(&external_id).await? else {
        return Err(ApiError::not_found(format!("no member {external_id:?}")));
    };
    Ok(Json(json!({"member": external_id, "consent": current, "history": history})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    channel: String,
    #[serde(default)]
    purpose: Option<String>,
    /// `granted` or `revoked`.
    status: String,
    /// Where the decision came from (`app-settings`, `push-settings`, `store-counter`...);
    /// default `api`.
    #[serde(default)]
    source: Option<String>,
}

/// `POST /api/members/{id}/consent` `{channel, purpose, status, source}`: grants or revokes
/// consent (purpose default marketing). A push opt-out from an app is `{"channel": "push",
/// "status": "revoked", "source": "push-settings"}`. Committed, with its history and audit
/// entry, before the answer.
pub async fn post_consent(
    State(h): State<Http>,
    Path(external_id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<ConsentBody>,
) -> Result<Response, ApiError> {
    let actor = actor(&caller, &headers)?;
    let channel = ChannelKind::parse(&body.channel)
        .ok_or_else(|| ApiError::bad(Some("channel"), "sms, email, push or webhook"))?;
    let purpose = match body.purpose.as_deref() {
        None => Purpose::Marketing,
        Some(p) => Purpose::parse(p).ok_or_else(|| ApiError::bad(Some("purpose"), "marketing or service"))?,
    };
    let granted = match body.status.as_str() {
        "granted" => true,
        "revoked" => false,
        _ => return Err(ApiError::bad(Some("status"), "granted or revoked")),
    };
    let source = body.source.unwrap_or_else(|| "api".into());
    if source.trim().is_empty() || source.len() > 100 {
        return Err(ApiError::bad(Some("source"), "1 to 100 characters"));
    }
    let change = ConsentChange { member: external_id.clone(), channel, purpose, granted, source };
    let outcome = h.app.store.change_consent(&[change], &actor, h.app.now()).await?;
    if !outcome.unknown_members.is_empty() {
        return Err(ApiError::not_found(format!("no member {external_id:?}")));
    }
    Ok(Json(json!({"member": external_id, "channel": channel, "purpose": purpose,
        "status": body.status, "changed": outcome.changed > 0}))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    subject: Option<String>,
    action: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/audit?subject=&action=&before=&limit=`: the audit log, newest first (`before`: the
/// last id of the previous page).
pub async fn audit(State(h): State<Http>, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad(Some("limit"), "1 to 1000"));
    }
    let f = AuditFilter { subject: q.subject, action: q.action, before: q.before, limit };
    let entries = h.app.store.audit(&f).await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// Whether the webhook's token matches `[consent] inbound_token`: `Some` is the refusal to give
/// (404 when no token is configured, 403 when it is wrong or missing).
fn inbound_refused(h: &Http, given: Option<&str>) -> Option<Response> {
    let settings = h.app.settings();
    let Some(expected) = settings.raw.consent.inbound_token.as_ref().filter(|s| !s.expose().is_empty()) else {
        return Some(
            (StatusCode::NOT_FOUND, "inbound SMS is not configured (consent.inbound_token)\n").into_response(),
        );
    };
    if !super::hooks::constant_time_eq(expected.expose().as_bytes(), given.unwrap_or("").as_bytes()) {
        tracing::warn!("rejected an inbound SMS webhook with a missing or wrong token");
        return Some((StatusCode::FORBIDDEN, "wrong or missing token\n").into_response());
    }
    None
}

/// A reply that opts out: every member with the number loses SMS, marketing and service alike.
async fn sms_opt_out(h: &Http, phone: &str, text: &str, provider: &str) -> Result<(), ApiError> {
    if !crate::track::keywords::is_opt_out(text) {
        return Ok(());
    }
    let purposes = [Purpose::Marketing, Purpose::Service];
    let source = format!("sms-reply:{provider}");
    let members = h.app.store.opt_out_phone(phone, ChannelKind::Sms, &purposes, &source, h.app.now()).await?;
    tracing::info!(members, provider, "inbound SMS opt-out recorded");
    Ok(())
}

/// A number as E.164: kept when it has `+`, else prefixed with the country code (a Chinese
/// number when the provider gives none).
pub fn e164(number: &str, country_code: Option<&str>) -> Option<String> {
    let n: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let n = n.trim();
    if n.starts_with('+') {
        return crate::members::validate::normalize_phone(n).ok();
    }
    let cc = country_code.map(|c| c.trim().trim_start_matches('+')).filter(|c| !c.is_empty()).unwrap_or("86");
    let n = n.strip_prefix("00").map(|rest| rest.to_string()).unwrap_or_else(|| {
        // A national number may also arrive with its country code but without the `+`.
        if n.starts_with(cc) && n.len() > 11 { n.to_string() } else { format!("{cc}{}", n.trim_start_matches('0')) }
    });
    crate::members::validate::normalize_phone(&format!("+{n}")).ok()
}

/// One upstream message as Aliyun pushes them (`SmsUp`, a JSON array).
#[derive(Debug, Deserialize)]
struct AliyunUp {
    phone_number: String,
    content: String,
}

/// `POST /hooks/aliyun/inbound?token=…`: Aliyun's upstream messages (上行短信, `SmsUp`, pushed
/// as a JSON array of `{phone_number, send_time, content, sign_name, dest_code, sequence_id}`).
/// Opt-out keywords revoke SMS consent before the answer `{"code":0,"msg":"接收成功"}`; Aliyun
/// retries on anything but HTTP 200.
pub async fn aliyun_inbound(
    State(h): State<Http>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(refused) = inbound_refused(&h, q.token.as_deref()) {
        return Ok(refused);
    }
    let ups: Vec<AliyunUp> =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(None, format!("not an Aliyun SmsUp array: {e}")))?;
    for up in &ups {
        // Aliyun's upstream numbers are mainland numbers without a country code.
        match e164(&up.phone_number, None) {
            Some(phone) => sms_opt_out(&h, &phone, &up.content, "aliyun").await?,
            None => tracing::warn!(number = %up.phone_number, "inbound SMS from a number that is not a phone number"),
        }
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"code":0,"msg":"接收成功"}"#).into_response())
}

/// One reply as Tencent Cloud calls back (回复短信).
#[derive(Debug, Deserialize)]
struct TencentReply {
    mobile: String,
    nationcode: Option<String>,
    text: String,
}

/// `POST /hooks/tencent/inbound?token=…`: Tencent Cloud's SMS reply callback (`{extend, mobile,
/// nationcode, sign, text, time}`). Opt-out keywords revoke SMS consent before the answer
/// `{"result":0,"errmsg":"OK"}`.
pub async fn tencent_inbound(
    State(h): State<Http>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(refused) = inbound_refused(&h, q.token.as_deref()) {
        return Ok(refused);
    }
    let reply: TencentReply = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(None, format!("not a Tencent Cloud SMS reply: {e}")))?;
    match e164(&reply.mobile, reply.nationcode.as_deref()) {
        Some(phone) => sms_opt_out(&h, &phone, &reply.text, "tencent").await?,
        None => tracing::warn!(number = %reply.mobile, "inbound SMS from a number that is not a phone number"),
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"result":0,"errmsg":"OK"}"#).into_response())
}

/// `POST /hooks/complaints?token=…` (or `Authorization: Bearer …`): a raw feedback-loop
/// report (ARF, RFC 5965) as a mailbox provider sends it. An `abuse` report suppresses each
/// recipient's address and revokes their members' marketing email consent (their own
/// decision), committed before the answer; other feedback types are acknowledged and ignored.
pub async fn complaint(
    State(h): State<Http>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings = h.app.settings();
    let Some(expected) = settings.raw.consent.complaint_token.as_ref().filter(|s| !s.expose().is_empty()) else {
        return Ok((StatusCode::NOT_FOUND, "complaints are not configured (consent.complaint_token)\n").into_response());
    };
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = q.token.as_deref().or(bearer).unwrap_or("");
    if !super::hooks::constant_time_eq(expected.expose().as_bytes(), given.as_bytes()) {
        return Ok((StatusCode::FORBIDDEN, "wrong or missing token\n").into_response());
    }
    let report = crate::track::complaint::parse_arf(&body).map_err(|e| ApiError::bad(None, e))?;
    if !report.is_abuse() {
        return Ok(Json(json!({"feedback_type": report.feedback_type, "suppressed": 0})).into_response());
    }
    let now = h.app.now();
    let entries: Vec<crate::store::Suppression> = report
        .recipients
        .iter()
        .map(|a| crate::store::Suppression {
            channel: ChannelKind::Email,
            address: a.clone(),
            reason: "complaint".into(),
            source: "arf".into(),
        })
        .collect();
    let suppressed = h.app.store.suppress(&entries, now).await?;
    for a in &report.recipients {
        h.app
            .store
            .revoke_address(ChannelKind::Email, a, &[Purpose::Marketing], "complaint", ACTOR_MEMBER, now)
            .await?;
    }
    Ok(Json(json!({"feedback_type": report.feedback_type, "recipients": report.recipients, "suppressed": suppressed}))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn numbers_become_e164_with_the_country_code() {
        for (number, cc, want) in [
            ("13800138000", None, Some("+8613800138000")),
            ("13800138000", Some("86"), Some("+8613800138000")),
            ("8613800138000", Some("86"), Some("+8613800138000")),
            ("+8613800138000", Some("86"), Some("+8613800138000")),
            ("0085291234567", None, Some("+85291234567")),
            ("91234567", Some("852"), Some("+85291234567")),
            ("not a number", None, None),
        ] {
            assert_eq!(e164(number, cc).as_deref(), want, "{number} {cc:?}");
        }
    }
}
