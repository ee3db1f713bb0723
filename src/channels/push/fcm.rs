//! Push through Firebase Cloud Messaging, HTTP v1 API.
//!
//! Authentication is OAuth 2.0 with a service account: an RS256 JWT signed with the key file's
//! private key (`iss` the account's email, `scope` firebase.messaging, `aud` the token URI) is
//! exchanged at the token endpoint for an access token (the JWT bearer grant), which is cached
//! until shortly before it expires and shared by every send. A 401 from FCM drops it and the
//! send is tried once more with a fresh one.
//!
//! One request per message: `POST {base_url}/v1/projects/{project}/messages:send` with
//! `{"message": {"token", "notification": {"title", "body"}, "data"}}`. The answer is mapped
//! onto a [`SendOutcome`] from the `google.rpc` error body and its FCM `errorCode`: an
//! unregistered token is gone, quota and server errors retry (honouring `Retry-After`), a bad
//! request or a sender mismatch is permanent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::{
    base_url, check_timeout, excerpt, http_client, jwt_signing_input, parts, permanent, retry_after, transport_failure,
};
use crate::channels::{Outgoing, Platform, SendOutcome};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// The OAuth scope FCM's send API needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The JWT bearer grant type (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint, when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// `[fcm]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The service account key (the JSON Google hands out) inline; or `service_account_file`,
    /// or `TIDINGS_FCM_SERVICE_ACCOUNT`.
    #[serde(default)]
    pub service_account: Option<Secret>,
    /// The service account key file (`…-firebase-adminsdk-….json`).
    #[serde(default)]
    pub service_account_file: Option<PathBuf>,
    /// The Firebase project; the key file's `project_id` when unset.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Where access tokens are fetched; the key file's `token_uri` when unset. The JWT's `aud`
    /// stays the key file's `token_uri` (what Google checks), so this may point at a proxy.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// The API base; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Seconds a request (to the token endpoint or to FCM) may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    "https://fcm.googleapis.com".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// How long an access token's JWT assertion asks to be valid (Google's maximum).
const ASSERTION_LIFETIME: i64 = 3600;
/// An access token is replaced this long before it expires (or at half its life, if shorter),
/// so a send never carries a token that expires on the way.
const TOKEN_MARGIN: i64 = 300;

/// The FCM provider. Cheap to clone: the HTTP client and the token cache are shared.
#[derive(Clone)]
pub struct Fcm {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `…/v1/projects/{project}/messages:send`.
    send_url: Url,
    token_url: Url,
    /// The JWT's `aud`: the key file's `token_uri`.
    audience: String,
    client_email: String,
    private_key_id: Option<String>,
    key: ring::signature::RsaKeyPair,
    clock: SharedClock,
    /// The cached access token. An async mutex, so concurrent sends wait for one fetch instead
    /// of each fetching its own.
    token: tokio::sync::Mutex<Option<AccessToken>>,
    timeout: Duration,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm")
            .field("send_url", &self.inner.send_url.as_str())
            .field("client_email", &self.inner.client_email)
            .finish_non_exhaustive()
    }
}

/// An access token and the instant after which it is no longer used.
#[derive(Clone)]
struct AccessToken {
    value: Secret,
    usable_until: Timestamp,
}

/// When a token fetched at `fetched_at` that lives `expires_in` seconds stops being used.
fn usable_until(fetched_at: Timestamp, expires_in: i64) -> Timestamp {
    let margin = TOKEN_MARGIN.min(expires_in / 2);
    fetched_at.checked_add(SignedDuration::from_secs(expires_in.max(0) - margin)).unwrap_or(fetched_at)
}

/// The fields of a service account key file the provider uses (the file has more).
#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    token_uri: Option<String>,
}

/// A configuration that passed [`Fcm::check`].
struct Checked {
    send_url: Url,
    token_url: Url,
    audience: String,
    client_email: String,
    private_key_id: Option<String>,
    key: ring::signature::RsaKeyPair,
    timeout: Duration,
}

impl Fcm {
    /// Builds the provider on the system clock.
    pub fn new(cfg: &FcmConfig) -> anyhow::Result<Self> {
        Fcm::with_clock(cfg, Arc::new(SystemClock))
    }

    /// Builds the provider reading "now" (JWT claims, token lifetimes) from `clock`.
    pub fn with_clock(cfg: &FcmConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid fcm configuration: {}", list.join("; "))
        })?;
        let client = http_client("fcm", checked.timeout, |b| b)?;
        Ok(Fcm {
            inner: Arc::new(Inner {
                client,
                send_url: checked.send_url,
                token_url: checked.token_url,
                audience: checked.audience,
                client_email: checked.client_email,
                private_key_id: checked.private_key_id,
                key: checked.key,
                clock,
                token: tokio::sync::Mutex::new(None),
                timeout: checked.timeout,
            }),
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &FcmConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one notification to the FCM registration token in `msg.device`.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let parts = match parts("fcm", Platform::Fcm, msg) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let token = parts.device.token.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return SendOutcome::Gone { error: "fcm: the registration token is empty or malformed".to_string() };
        }
        let body = json!({
            "message": {
                "token": token,
                "notification": { "title": parts.title, "body": parts.body },
                "data": { "rule_id": msg.rule_id, "message_key": msg.idempotency_key() },
            }
        });

        // At most two requests: the second only after a 401, with a freshly fetched token.
        let mut refreshed = false;
        loop {
            let access = match self.access_token().await {
                Ok(t) => t,
                Err(outcome) => return outcome,
            };
            let response = self
                .inner
                .client
                .post(self.inner.send_url.clone())
                .bearer_auth(access.expose())
                .json(&body)
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) => return transport_failure("fcm", e, self.inner.timeout),
            };
            let status = response.status();
            let retry_after = retry_after(response.headers(), self.inner.clock.now());
            let answer = match response.bytes().await {
                Ok(b) => b,
                Err(e) if status.is_success() => {
                    tracing::warn!(message.id = msg.id, error = %crate::channels::wire::describe(e), "fcm accepted the message but its answer broke off");
                    return SendOutcome::Sent { provider_id: String::new() };
                }
                Err(e) => return transport_failure("fcm", e, self.inner.timeout),
            };
            match classify(status, &answer, retry_after) {
                Answer::Done(outcome) => {
                    tracing::debug!(message.id = msg.id, status = status.as_u16(), ?outcome, "fcm answered");
                    return outcome;
                }
                Answer::Unauthenticated(error) => {
                    self.invalidate(&access).await;
                    if refreshed {
                        return SendOutcome::Transient { error, retry_after };
                    }
                    tracing::info!(message.id = msg.id, "fcm refused the access token; fetching a new one");
                    refreshed = true;
                }
            }
        }
    }

    /// The cached access token, or a new one when there is none or it is about to expire.
    async fn access_token(&self) -> Result<Secret, SendOutcome> {
        let mut slot = self.inner.token.lock().await;
        let now = self.inner.clock.now();
        if let Some(token) = slot.as_ref()
            && now < token.usable_until
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token(now).await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// Forgets `used` if it is still the cached token (a concurrent send may have replaced it).
    async fn invalidate(&self, used: &Secret) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == *used) {
            *slot = None;
        }
    }

    /// The JWT bearer grant. Nothing has been sent to FCM yet, so every failure here is safe to
    /// retry; only a refusal of the service account itself (a revoked key, a wrong email) is
    /// permanent.
    async fn fetch_token(&self, now: Timestamp) -> Result<AccessToken, SendOutcome> {
        let assertion = self.assertion(now.as_second()).map_err(permanent)?;
        let response = self
            .inner
            .client
            .post(self.inner.token_url.clone())
            .form(&[("grant_type", GRANT_TYPE), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| SendOutcome::Transient {
                error: format!("fcm: cannot get an access token: {}", crate::channels::wire::describe(e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), now);
        let body = response.bytes().await.map_err(|e| SendOutcome::Transient {
            error: format!("fcm: the token endpoint's answer broke off: {}", crate::channels::wire::describe(e)),
            retry_after: None,
        })?;
        let token = classify_token(status, &body, retry_after)?;
        let fetched_at = self.inner.clock.now();
        tracing::debug!(expires_in = token.1, "fcm: fetched an access token");
        Ok(AccessToken { value: token.0, usable_until: usable_until(fetched_at, token.1) })
    }

    /// The signed JWT asserting the service account's identity.
    fn assertion(&self, iat: i64) -> Result<String, String> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.inner.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.inner.client_email,
            "scope": SCOPE,
            "aud": self.inner.audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        });
        let input = jwt_signing_input(&header, &claims);
        let key = &self.inner.key;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "fcm: cannot sign the token request".to_string())?;
        Ok(format!("{input}.{}", super::b64url(&signature)))
    }
}

/// Validates the configuration; on success, everything [`Fcm::with_clock`] needs.
fn checked(cfg: &FcmConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();

    // Problems with the key's content are named after where it came from.
    let inline = cfg.service_account.as_ref().is_some_and(|s| !s.expose().is_empty());
    let source_key = if inline { "fcm.service_account" } else { "fcm.service_account_file" };
    let account = match resolve_secret(
        cfg.service_account.as_ref(),
        cfg.service_account_file.as_deref(),
        "fcm.service_account",
    ) {
        Ok(text) => match serde_json::from_str::<ServiceAccount>(text.expose()) {
            Ok(account) => Some(account),
            Err(e) => {
                problems.push(ConfigProblem::new(source_key, format!("not a service account key (json): {e}")));
                None
            }
        },
        Err(p) => {
            problems.push(p);
            None
        }
    };

    let mut client_email = None;
    let mut key = None;
    let mut audience = None;
    let mut file_project = None;
    let mut private_key_id = None;
    if let Some(account) = account {
        if let Some(kind) = account.kind.as_deref()
            && kind != "service_account"
        {
            problems.push(ConfigProblem::new(source_key, format!("type is {kind:?}, expected \"service_account\"")));
        }
        match account.client_email.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(email) if email.contains('@') => client_email = Some(email.to_string()),
            _ => problems.push(ConfigProblem::new(source_key, "has no client_email")),
        }
        match account.private_key.as_deref().map(rsa_key) {
            Some(Ok(k)) => key = Some(k),
            Some(Err(e)) => problems.push(ConfigProblem::new(source_key, format!("private_key: {e}"))),
            None => problems.push(ConfigProblem::new(source_key, "has no private_key")),
        }
        let uri = account.token_uri.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_TOKEN_URI);
        match http_url(uri) {
            Ok(_) => audience = Some(uri.to_string()),
            Err(e) => problems.push(ConfigProblem::new(source_key, format!("token_uri: {e}"))),
        }
        file_project = account.project_id.filter(|s| !s.trim().is_empty());
        private_key_id = account.private_key_id.filter(|s| !s.trim().is_empty());
    }

    let project = match cfg.project_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(p) => Some(("fcm.project_id", p.to_string())),
        None => file_project.map(|p| (source_key, p)),
    };
    let project = match project {
        Some((_, p)) if is_project_id(&p) => Some(p),
        Some((key, p)) => {
            problems.push(ConfigProblem::new(key, format!("{p:?} is not a firebase project id")));
            None
        }
        None if problems.iter().any(|p| p.key.starts_with("fcm.service_account")) => None,
        None => {
            problems.push(ConfigProblem::new("fcm.project_id", "set fcm.project_id or use a key file with project_id"));
            None
        }
    };

    let token_url = match cfg.token_uri.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(uri) => http_url(uri).map_err(|e| problems.push(ConfigProblem::new("fcm.token_uri", e))).ok(),
        None => audience.as_deref().and_then(|a| http_url(a).ok()),
    };

    let send_url = match (base_url(&cfg.base_url), &project) {
        (Ok(base), Some(project)) => base.join(&format!("v1/projects/{project}/messages:send")).ok(),
        (Ok(_), None) => None,
        (Err(e), _) => {
            problems.push(ConfigProblem::new("fcm.base_url", e));
            None
        }
    };
    check_timeout("fcm.timeout_secs", cfg.timeout_secs, &mut problems);

    match (send_url, token_url, audience, client_email, key) {
        (Some(send_url), Some(token_url), Some(audience), Some(client_email), Some(key)) if problems.is_empty() => {
            Ok(Checked {
                send_url,
                token_url,
                audience,
                client_email,
                private_key_id,
                key,
                timeout: Duration::from_secs(cfg.timeout_secs),
            })
        }
        _ => Err(problems),
    }
}

/// An RSA private key in PEM: PKCS#8 (`PRIVATE KEY`, as in Google's key files) or PKCS#1.
fn rsa_key(pem: &str) -> Result<ring::signature::RsaKeyPair, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("not a PEM private key: {e}"))?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(d) => ring::signature::RsaKeyPair::from_pkcs8(d.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(d) => ring::signature::RsaKeyPair::from_der(d.secret_pkcs1_der()),
        _ => return Err("not an RSA key".to_string()),
    };
    parsed.map_err(|e| format!("not a usable RSA key: {e}"))
}

fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) url".to_string());
    }
    Ok(url)
}

/// Google project ids: lower-case letters, digits and hyphens, optionally `domain:` scoped.
fn is_project_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':'))
}

/// What the send endpoint's answer means.
#[derive(Debug, PartialEq)]
enum Answer {
    Done(SendOutcome),
    /// 401: the access token was refused; fetch a new one.
    Unauthenticated(String),
}

/// The `google.rpc.Status` error body: `{"error": {"code", "message", "status", "details"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: RpcStatus,
}

#[derive(Deserialize)]
struct RpcStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl RpcStatus {
    /// FCM's own code, from the `google.firebase.fcm.v1.FcmError` detail.
    fn fcm_code(&self) -> Option<&str> {
        self.details.iter().find_map(|d| {
            let is_fcm = d.get("@type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("fcm.v1.FcmError"));
            if is_fcm { d.get("errorCode").and_then(|c| c.as_str()) } else { None }
        })
    }

    /// Whether a `google.rpc.BadRequest` detail blames the registration token.
    fn blames_token(&self) -> bool {
        self.details.iter().any(|d| {
            d.get("fieldViolations")
                .and_then(|v| v.as_array())
                .is_some_and(|v| v.iter().any(|f| f.get("field").and_then(|f| f.as_str()) == Some("message.token")))
        })
    }
}

/// Maps FCM's answer onto an outcome. Pure, so it is tested without a server.
fn classify(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Answer {
    #[derive(Deserialize)]
    struct Sent {
        name: Option<String>,
    }
    if status.is_success() {
        // FCM has the message: whatever the body says, it is sent (resending would notify twice).
        let name = serde_json::from_slice::<Sent>(body).ok().and_then(|s| s.name).unwrap_or_default();
        return Answer::Done(SendOutcome::Sent { provider_id: name });
    }
    let rpc = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let code = rpc.as_ref().and_then(RpcStatus::fcm_code).filter(|c| *c != "UNSPECIFIED_ERROR");
    let rpc_status = rpc.as_ref().map(|r| r.status.as_str()).filter(|s| !s.is_empty());
    let error = match (&rpc, code.or(rpc_status)) {
        (Some(rpc), Some(code)) if !rpc.message.is_empty() => {
            format!("fcm {code}: {}", rpc.message.trim().trim_end_matches('.'))
        }
        (_, Some(code)) => format!("fcm {code}: {status}"),
        (_, None) if body.is_empty() => format!("fcm: {status}"),
        (_, None) => format!("fcm: {status}: {}", excerpt(body)),
    };
    let transient = |error| Answer::Done(SendOutcome::Transient { error, retry_after });
    match code {
        Some("UNREGISTERED") => return Answer::Done(SendOutcome::Gone { error }),
        // A malformed token is as useless as an unregistered one; other bad arguments are ours.
        Some("INVALID_ARGUMENT") if rpc.as_ref().is_some_and(RpcStatus::blames_token) => {
            return Answer::Done(SendOutcome::Gone { error });
        }
        Some("INVALID_ARGUMENT" | "SENDER_ID_MISMATCH" | "THIRD_PARTY_AUTH_ERROR") => {
            return Answer::Done(SendOutcome::Permanent { error });
        }
        Some("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL") => return transient(error),
        _ => {}
    }
    if status == StatusCode::NOT_FOUND || rpc_status == Some("NOT_FOUND") {
        Answer::Done(SendOutcome::Gone { error })
    } else if status == StatusCode::UNAUTHORIZED {
        Answer::Unauthenticated(error)
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        transient(error)
    } else {
        Answer::Done(SendOutcome::Permanent { error })
    }
}

/// Maps the token endpoint's answer: the token and its lifetime in seconds, or the outcome for
/// the message that needed it.
fn classify_token(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<(Secret, i64), SendOutcome> {
    #[derive(Deserialize)]
    struct Token {
        access_token: Option<String>,
        expires_in: Option<i64>,
    }
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    if status.is_success() {
        let token = serde_json::from_slice::<Token>(body).ok();
        return match token {
            Some(Token { access_token: Some(t), expires_in }) if !t.is_empty() => {
                Ok((Secret::new(t), expires_in.unwrap_or(ASSERTION_LIFETIME)))
            }
            _ => Err(SendOutcome::Transient {
                error: "fcm: the token endpoint answered without an access_token".to_string(),
                retry_after: None,
            }),
        };
    }
    let oauth = serde_json::from_slice::<OAuthError>(body).ok();
    let reason = match oauth {
        Some(OAuthError { error: Some(e), error_description: Some(d) }) => format!("{e}: {d}"),
        Some(OAuthError { error: Some(e), .. }) => e,
        _ if body.is_empty() => status.to_string(),
        _ => format!("{status}: {}", excerpt(body)),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Err(SendOutcome::Transient { error: format!("fcm: the token endpoint failed: {reason}"), retry_after })
    } else {
        // invalid_grant (a deleted key, a wrong account), invalid_scope: fixing it needs the
        // operator, and every retry would get the same answer.
        Err(permanent(format!("fcm: the token endpoint refused the service account: {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(code: u16, status: &str, message: &str, fcm_code: Option<&str>) -> String {
        let mut details = vec![];
        if let Some(c) = fcm_code {
            details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}));
        }
        json!({"error": {"code": code, "message": message, "status": status, "details": details}}).to_string()
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: Answer| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, body.as_bytes(), None), expected, "{status} {body}");
        };
        let done = Answer::Done;
        let sent = |id: &str| done(SendOutcome::Sent { provider_id: id.into() });
        let gone = |e: &str| done(SendOutcome::Gone { error: e.into() });
        let transient = |e: &str| done(SendOutcome::Transient { error: e.into(), retry_after: None });
        let permanent = |e: &str| done(SendOutcome::Permanent { error: e.into() });

        check(
            200,
            r#"{"name":"projects/p/messages/0:1500415314455276%31bd1c96"}"#,
            sent("projects/p/messages/0:1500415314455276%31bd1c96"),
        );
        check(200, "", sent(""));
        check(
            404,
            &error_body(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED")),
            gone("fcm UNREGISTERED: Requested entity was not found"),
        );
        check(
            404,
            &error_body(404, "NOT_FOUND", "Requested entity was not found.", None),
            gone("fcm NOT_FOUND: Requested entity was not found"),
        );
        check(404, "", gone("fcm: 404 Not Found"));
        check(
            400,
            &error_body(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'", Some("INVALID_ARGUMENT")),
            permanent("fcm INVALID_ARGUMENT: Invalid value at 'message.data[0].value'"),
        );
        let bad_token = json!({"error": {"code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "The registration token is not a valid FCM registration token"}]}
        ]}});
        check(
            400,
            &bad_token.to_string(),
            gone("fcm INVALID_ARGUMENT: The registration token is not a valid FCM registration token"),
        );
        check(
            403,
            &error_body(403, "PERMISSION_DENIED", "SenderId mismatch", Some("SENDER_ID_MISMATCH")),
            permanent("fcm SENDER_ID_MISMATCH: SenderId mismatch"),
        );
        check(
            403,
            &error_body(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", None),
            permanent("fcm PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied"),
        );
        check(
            429,
            &error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded", Some("QUOTA_EXCEEDED")),
            transient("fcm QUOTA_EXCEEDED: Quota exceeded"),
        );
        check(
            503,
            &error_body(503, "UNAVAILABLE", "The service is currently unavailable.", Some("UNAVAILABLE")),
            transient("fcm UNAVAILABLE: The service is currently unavailable"),
        );
        check(
            500,
            &error_body(500, "INTERNAL", "Internal error encountered.", Some("INTERNAL")),
            transient("fcm INTERNAL: Internal error encountered"),
        );
        check(502, "<html>Bad Gateway</html>", transient("fcm: 502 Bad Gateway: <html>Bad Gateway</html>"));
        check(
            401,
            &error_body(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None),
            Answer::Unauthenticated("fcm UNAUTHENTICATED: Request had invalid authentication credentials".into()),
        );
        check(
            401,
            &error_body(
                401,
                "UNAUTHENTICATED",
                "Auth error from APNS or Web Push Service",
                Some("THIRD_PARTY_AUTH_ERROR"),
            ),
            permanent("fcm THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service"),
        );
    }

    #[test]
    fn token_answers() {
        let check =
            |status: u16, body: &str| classify_token(StatusCode::from_u16(status).unwrap(), body.as_bytes(), None);
        let (token, expires_in) =
            check(200, r#"{"access_token":"ya29.c","expires_in":3599,"token_type":"Bearer"}"#).unwrap();
        assert_eq!((token.expose(), expires_in), ("ya29.c", 3599));
        assert!(matches!(check(200, "{}"), Err(SendOutcome::Transient { .. })));
        assert_eq!(
            check(400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#).unwrap_err(),
            SendOutcome::Permanent {
                error: "fcm: the token endpoint refused the service account: invalid_grant: Invalid JWT Signature."
                    .into()
            }
        );
        assert!(matches!(check(503, ""), Err(SendOutcome::Transient { .. })));
    }

    #[test]
    fn token_lifetime() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        // Google's tokens live an hour: used for 55 minutes.
        assert_eq!(usable_until(at, 3599), at + SignedDuration::from_secs(3299));
        // A short-lived token is used for half its life.
        assert_eq!(usable_until(at, 60), at + SignedDuration::from_secs(30));
        assert_eq!(usable_until(at, 0), at);
    }

    #[test]
    fn config_problems() {
        let keys = |cfg: &FcmConfig| -> Vec<String> { Fcm::check(cfg).into_iter().map(|p| p.key).collect() };
        let cfg = FcmConfig {
            service_account: None,
            service_account_file: None,
            project_id: None,
            token_uri: None,
            base_url: "ftp://x".into(),
            timeout_secs: 0,
        };
        assert_eq!(keys(&cfg), ["fcm.service_account", "fcm.base_url", "fcm.timeout_secs"]);

        let mut cfg = cfg;
        cfg.base_url = default_base_url();
        cfg.timeout_secs = 10;
        cfg.service_account_file = Some("/nonexistent/key.json".into());
        assert_eq!(keys(&cfg), ["fcm.service_account_file"]);

        cfg.service_account = Some(Secret::new(r#"{"type":"authorized_user","client_email":"x"}"#));
        let problems = Fcm::check(&cfg);
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "fcm.service_account: type is \"authorized_user\", expected \"service_account\"",
                "fcm.service_account: has no client_email",
                "fcm.service_account: has no private_key",
            ]
        );

        cfg.service_account = Some(Secret::new("not json"));
        assert_eq!(keys(&cfg), ["fcm.service_account"]);
    }

    #[test]
    fn project_ids() {
        for ok in ["my-project-1234", "example.com:loyalty"] {
            assert!(is_project_id(ok), "{ok}");
        }
        for bad in ["", "My Project", "p/../x", "p?x"] {
            assert!(!is_project_id(bad), "{bad}");
        }
    }
}
