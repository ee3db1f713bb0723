//! How members are reached: push devices (and Web Push subscriptions) registered by the host
//! system's apps, suppressed addresses, and opt-outs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Http};
use crate::channels::{ChannelKind, Platform, Purpose, PushDevice};
use crate::store::Suppression;
use crate::store::consent::ACTOR_MEMBER;

/// A device as the API takes it: `{"platform": "fcm"|"apns", "token": …}`, or a browser's
/// `PushSubscription.toJSON()` with `"platform": "webpush"`: `{"endpoint": …, "keys":
/// {"p256dh": …, "auth": …}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    platform: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    keys: Option<WebPushKeys>,
    /// Sent by some browsers; not needed.
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebPushKeys {
    p256dh: String,
    auth: String,
}

impl DeviceBody {
    fn device(self) -> Result<PushDevice, ApiError> {
        let platform = Platform::parse(&self.platform)
            .ok_or_else(|| ApiError::bad(Some("platform"), "use fcm, apns or webpush"))?;
        match platform {
            Platform::Fcm | Platform::Apns => {
                let token = self.token.unwrap_or_default();
                let token = token.trim();
                if token.is_empty() || token.len() > 4096 || token.contains(char::is_whitespace) {
                    return Err(ApiError::bad(Some("token"), "a device token: 1 to 4096 characters, no spaces"));
                }
                if platform == Platform::Apns
                    && !(token.len().is_multiple_of(2) && token.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(ApiError::bad(Some("token"), "an APNs device token is hexadecimal"));
                }
                Ok(PushDevice { platform, token: token.to_string(), p256dh: None, auth: None })
            }
            Platform::Webpush => {
                let endpoint = self.endpoint.unwrap_or_default();
                let keys =
                    self.keys.ok_or_else(|| ApiError::bad(Some("keys"), "a subscription has p256dh and auth keys"))?;
                validate_subscription(&endpoint, &keys.p256dh, &keys.auth)?;
                Ok(PushDevice { platform, token: endpoint, p256dh: Some(keys.p256dh), auth: Some(keys.auth) })
            }
        }
    }
}

/// A Web Push subscription, checked as the provider will use it (the key on the P-256 curve).
fn validate_subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<(), ApiError> {
    crate::channels::push::validate_subscription(endpoint, p256dh, auth).map_err(|e| {
        let field = match e.split(':').next() {
            Some("p256dh") => "keys.p256dh",
            Some("auth") => "keys.auth",
            _ => "endpoint",
        };
        ApiError::bad(Some(field), e)
    })
}

/// `POST /api/members/{id}/devices`: 201 when the device is new to the member, 200 when it was
/// already theirs (its keys are refreshed), 404 for an unknown member.
pub async fn add_device(
    State(h): State<Http>,
    Path(external_id): Path<String>,
    Json(body): Json<DeviceBody>,
) -> Result<Response, ApiError> {
    let device = body.device()?;
    match h.app.store.add_push_device(&external_id, &device, h.app.now()).await? {
        None => Err(ApiError::not_found(format!("no member {external_id:?}"))),
        Some(new) => {
            let status = if new { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(json!({"member": external_id, "platform": device.platform, "token": device.token})))
                .into_response())
        }
    }
}

/// `DELETE /api/members/{id}/devices` with the device in the body (a push opt-out from the app,
/// or a logout): 204, or 404 when the member has no such device.
pub async fn remove_device(
    State(h): State<Http>,
    Path(external_id): Path<String>,
    Json(body): Json<DeviceBody>,
) -> Result<Response, ApiError> {
    let platform =
        Platform::parse(&body.platform).ok_or_else(|| ApiError::bad(Some("platform"), "use fcm, apns or webpush"))?;
    let token = body.token.or(body.endpoint).unwrap_or_default();
    match h.app.store.remove_push_device(Some(&external_id), platform, &token).await? {
        0 => Err(ApiError::not_found("no such device for this member")),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    channel: String,
    address: String,
    #[serde(default)]
    reason: Option<String>,
}

fn channel(c: &str, field: &str) -> Result<ChannelKind, ApiError> {
    match ChannelKind::parse(c) {
        Some(k @ (ChannelKind::Sms | ChannelKind::Email)) => Ok(k),
        _ => Err(ApiError::bad(Some(field), "sms or email (push devices are removed, not suppressed)")),
    }
}

/// `POST /api/suppressions`: one `{channel, address, reason}` or a list (bounces and complaints
/// an email service reports to the host system). Suppressed addresses are never sent to again.
/// Reason `complaint` on an email address also revokes marketing email consent of the members
/// with that address (as their own decision).
pub async fn add_suppressions(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let items = super::items(body)?;
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let b: SuppressionBody =
            serde_json::from_value(item).map_err(|e| ApiError::bad(Some(&format!("[{i}]")), e.to_string()))?;
        let channel = channel(&b.channel, &format!("[{i}].channel"))?;
        let address = b.address.trim().to_string();
        if address.is_empty() {
            return Err(ApiError::bad(Some(&format!("[{i}].address")), "must not be empty"));
        }
        let reason = b.reason.unwrap_or_else(|| "reported through the api".into());
        entries.push(Suppression { channel, address, reason, source: "api".into() });
    }
    let added = h.app.store.suppress(&entries, h.app.now()).await?;
    // A complaint is also the member saying "no more marketing mail": their consent is revoked.
    for e in entries.iter().filter(|e| e.channel == ChannelKind::Email && e.reason == "complaint") {
        h.app
            .store
            .revoke_address(e.channel, &e.address, &[Purpose::Marketing], "complaint", ACTOR_MEMBER, h.app.now())
            .await?;
    }
    Ok(Json(json!({"suppressed": added, "already": entries.len() as u64 - added})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SuppressionQuery {
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/suppressions?limit=N`: the most recent first.
pub async fn list_suppressions(State(h): State<Http>, Query(q): Query<SuppressionQuery>) -> Result<Response, ApiError> {
    let rows = h.app.store.suppressions(q.limit.unwrap_or(100).min(10_000)).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(s, at)| {
            json!({"channel": s.channel, "address": s.address, "reason": s.reason, "source": s.source,
                   "at": at.to_string()})
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// `DELETE /api/suppressions/{channel}/{address}`: lifts a suppression (204), or 404.
pub async fn remove_suppression(
    State(h): State<Http>,
    Path((channel_name, address)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let channel = channel(&channel_name, "channel")?;
    match h.app.store.unsuppress(channel, &address).await? {
        0 => Err(ApiError::not_found("that address is not suppressed")),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutBody {
    channel: String,
    #[serde(default)]
    purpose: Option<String>,
}

/// `POST /api/members/{id}/opt-outs` `{channel, purpose}`: the member wants no more messages of
/// that purpose (default marketing) on that channel. Committed before the answer.
pub async fn opt_out(
    State(h): State<Http>,
    Path(external_id): Path<String>,
    Json(body): Json<OptOutBody>,
) -> Result<Response, ApiError> {
    let channel = ChannelKind::parse(&body.channel)
        .ok_or_else(|| ApiError::bad(Some("channel"), "sms, email, push or webhook"))?;
    let purpose = match body.purpose.as_deref() {
        None => Purpose::Marketing,
        Some(p) => Purpose::parse(p).ok_or_else(|| ApiError::bad(Some("purpose"), "marketing or service"))?,
    };
    if !h.app.store.opt_out(&external_id, channel, purpose, "api", h.app.now()).await? {
        return Err(ApiError::not_found(format!("no member {external_id:?}")));
    }
    Ok(Json(json!({"member": external_id, "channel": channel, "purpose": purpose})).into_response())
}
