//! Push to iOS apps through the Apple Push Notification service, with token-based
//! authentication, over HTTP/2 (APNs speaks nothing else).
//!
//! The provider token is an ES256 JWT (`kid` the key id, `iss` the team id, `iat`) signed with
//! the `.p8` key. Apple rejects a token older than an hour and refuses new tokens more often
//! than every 20 minutes, so one token is shared by every send and replaced after 50 minutes
//! (or when Apple answers `ExpiredProviderToken`).
//!
//! One request per message: `POST {base_url}/3/device/{token}` with the `apns-*` headers and
//! `{"aps": {"alert": {"title", "body"}}}`. `apns-id` is a UUID derived from the message's
//! idempotency key, so every attempt of one message carries the same id; `apns-collapse-id` is
//! derived from the rule, so a newer notification of a rule replaces an older one still shown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::{
    base_url, check_timeout, es256_jwt, excerpt, http_client, load_root_certificate, p256_secret_key, parts, permanent,
    retry_after, short_id, transport_failure,
};
use crate::channels::{Outgoing, Platform, SendOutcome};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// Apple's production endpoint.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) endpoint, for apps built with a development profile.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// `[apns]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The 10-character key id of the `.p8` key (Apple Developer → Keys).
    pub key_id: String,
    /// The 10-character team id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// The `.p8` key (PEM) inline; or `private_key_file`, or `TIDINGS_APNS_PRIVATE_KEY`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `https://api.push.apple.com`, or `https://api.sandbox.push.apple.com` for development
    /// builds; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// `apns-priority`: 10 (at once), 5 (when the device saves power) or 1.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// How long APNs keeps trying an offline device (`apns-expiration`); 0 tries once.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// A PEM file of the only roots to trust for the endpoint (a test peer, or a TLS-inspecting
    /// proxy); the system's roots when unset.
    #[serde(default)]
    pub root_certificate: Option<PathBuf>,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    PRODUCTION_URL.to_string()
}

fn default_priority() -> u8 {
    10
}

fn default_ttl_secs() -> u64 {
    86_400
}

fn default_timeout_secs() -> u64 {
    10
}

/// A provider token is replaced after this long: before Apple's hour is up, and well after its
/// 20-minute minimum between refreshes.
pub const TOKEN_REFRESH_AFTER: SignedDuration = SignedDuration::from_mins(50);
/// APNs refuses notification payloads larger than this.
const MAX_PAYLOAD: usize = 4096;

/// The APNs provider. Cheap to clone: the HTTP/2 client (one connection, many streams) and the
/// provider token are shared.
#[derive(Clone)]
pub struct Apns {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `{base_url}/3/device/`.
    device_url: Url,
    topic: String,
    key_id: String,
    team_id: String,
    key: p256::ecdsa::SigningKey,
    priority: u8,
    ttl: u64,
    clock: SharedClock,
    token: Mutex<Option<ProviderToken>>,
    timeout: Duration,
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns")
            .field("device_url", &self.inner.device_url.as_str())
            .field("topic", &self.inner.topic)
            .field("key_id", &self.inner.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct ProviderToken {
    jwt: String,
    issued: Timestamp,
}

/// Whether a token issued at `issued` is still to be used at `now`. A clock that moved back
/// past the issue time also gets a new token.
fn token_current(issued: Timestamp, now: Timestamp) -> bool {
    let age = now.duration_since(issued);
    !age.is_negative() && age < TOKEN_REFRESH_AFTER
}

struct Checked {
    device_url: Url,
    key: p256::ecdsa::SigningKey,
    roots: Option<Vec<reqwest::Certificate>>,
    timeout: Duration,
}

impl Apns {
    /// Builds the provider on the system clock.
    pub fn new(cfg: &ApnsConfig) -> anyhow::Result<Self> {
        Apns::with_clock(cfg, Arc::new(SystemClock))
    }

    /// Builds the provider reading "now" (token age, `iat`, `apns-expiration`) from `clock`.
    pub fn with_clock(cfg: &ApnsConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid apns configuration: {}", list.join("; "))
        })?;
        let roots = checked.roots;
        let client = http_client("apns", checked.timeout, |b| {
            // HTTP/2 only: ALPN offers h2 alone, so a server that cannot speak it fails the
            // handshake instead of getting HTTP/1.1 requests APNs would not understand.
            let b = b.http2_prior_knowledge();
            match roots {
                Some(roots) => b.tls_certs_only(roots),
                None => b,
            }
        })?;
        Ok(Apns {
            inner: Arc::new(Inner {
                client,
                device_url: checked.device_url,
                topic: cfg.topic.trim().to_string(),
                key_id: cfg.key_id.trim().to_string(),
                team_id: cfg.team_id.trim().to_string(),
                key: checked.key,
                priority: cfg.priority,
                ttl: cfg.ttl_secs,
                clock,
                token: Mutex::new(None),
                timeout: checked.timeout,
            }),
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &ApnsConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one alert to the device token (hex) in `msg.device`.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let parts = match parts("apns", Platform::Apns, msg) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let token = parts.device.token.trim();
        if !is_device_token(token) {
            // APNs would answer BadDeviceToken: this device can never be reached.
            return SendOutcome::Gone { error: "apns: the device token is not hex".to_string() };
        }
        let payload = json!({
            "aps": { "alert": { "title": parts.title, "body": parts.body } },
            "rule_id": msg.rule_id,
            "message_key": msg.idempotency_key(),
        })
        .to_string();
        if payload.len() > MAX_PAYLOAD {
            return permanent(format!(
                "apns: the payload is {} bytes, more than apns takes ({MAX_PAYLOAD})",
                payload.len()
            ));
        }

        let now = self.inner.clock.now();
        let jwt = self.provider_token(now);
        let expiration = if self.inner.ttl == 0 { 0 } else { now.as_second().saturating_add_unsigned(self.inner.ttl) };
        let apns_id = apns_id(&msg.idempotency_key());
        let url = match self.inner.device_url.join(&token.to_ascii_lowercase()) {
            Ok(u) => u,
            Err(e) => return permanent(format!("apns: cannot build the request url: {e}")),
        };
        let response = self
            .inner
            .client
            .post(url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &self.inner.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", self.inner.priority.to_string())
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", short_id(&msg.rule_id, 64))
            .header("apns-id", &apns_id)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return transport_failure("apns", e, self.inner.timeout),
        };
        let status = response.status();
        let answered_id = response.headers().get("apns-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = retry_after(response.headers(), self.inner.clock.now());
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(_) if status.is_success() => {
                return SendOutcome::Sent { provider_id: answered_id.unwrap_or(apns_id) };
            }
            Err(e) => return transport_failure("apns", e, self.inner.timeout),
        };
        match classify(status, answered_id.as_deref().unwrap_or(&apns_id), &body, retry_after) {
            Answer::Done(outcome) => {
                tracing::debug!(message.id = msg.id, status = status.as_u16(), ?outcome, "apns answered");
                outcome
            }
            Answer::ExpiredToken(error) => {
                self.invalidate(&jwt);
                SendOutcome::Transient { error, retry_after }
            }
        }
    }

    /// The shared provider token, made anew when there is none or it is 50 minutes old.
    fn provider_token(&self, now: Timestamp) -> String {
        let mut slot = self.inner.token.lock().expect("apns token poisoned");
        if let Some(t) = slot.as_ref()
            && token_current(t.issued, now)
        {
            return t.jwt.clone();
        }
        let header = json!({ "alg": "ES256", "kid": self.inner.key_id });
        let claims = json!({ "iss": self.inner.team_id, "iat": now.as_second() });
        let jwt = es256_jwt(&self.inner.key, &header, &claims);
        *slot = Some(ProviderToken { jwt: jwt.clone(), issued: now });
        jwt
    }

    /// Forgets `used` if it is still the shared token, so the next send makes a new one (many
    /// sends failing on the same token replace it once).
    fn invalidate(&self, used: &str) {
        let mut slot = self.inner.token.lock().expect("apns token poisoned");
        if slot.as_ref().is_some_and(|t| t.jwt == used) {
            *slot = None;
        }
    }
}

fn checked(cfg: &ApnsConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    for (key, value) in [("apns.key_id", &cfg.key_id), ("apns.team_id", &cfg.team_id)] {
        let v = value.trim();
        if v.len() != 10 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            problems
                .push(ConfigProblem::new(key, format!("{v:?} is not a 10-character id from the developer account")));
        }
    }
    let topic = cfg.topic.trim();
    if topic.is_empty() || topic.contains(|c: char| c.is_whitespace() || c.is_control()) {
        problems.push(ConfigProblem::new("apns.topic", "must be the app's bundle id, such as com.example.club"));
    }
    let inline = cfg.private_key.as_ref().is_some_and(|s| !s.expose().is_empty());
    let source_key = if inline { "apns.private_key" } else { "apns.private_key_file" };
    let key = match resolve_secret(cfg.private_key.as_ref(), cfg.private_key_file.as_deref(), "apns.private_key") {
        Ok(text) => match p256_secret_key(text.expose()) {
            Ok(k) => Some(p256::ecdsa::SigningKey::from(&k)),
            Err(e) => {
                problems.push(ConfigProblem::new(source_key, format!("not an APNs .p8 key: {e}")));
                None
            }
        },
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let device_url = match base_url(&cfg.base_url) {
        Ok(base) => base.join("3/device/").ok(),
        Err(e) => {
            problems.push(ConfigProblem::new("apns.base_url", e));
            None
        }
    };
    if !matches!(cfg.priority, 1 | 5 | 10) {
        problems.push(ConfigProblem::new("apns.priority", format!("{}: use 10, 5 or 1", cfg.priority)));
    }
    let roots = match &cfg.root_certificate {
        Some(path) => match load_root_certificate(path) {
            Ok(roots) => Some(roots),
            Err(e) => {
                problems.push(ConfigProblem::new("apns.root_certificate", e));
                None
            }
        },
        None => None,
    };
    check_timeout("apns.timeout_secs", cfg.timeout_secs, &mut problems);
    match (device_url, key) {
        (Some(device_url), Some(key)) if problems.is_empty() => {
            Ok(Checked { device_url, key, roots, timeout: Duration::from_secs(cfg.timeout_secs) })
        }
        _ => Err(problems),
    }
}

/// Hex, an even number of digits (Apple's tokens are 32 bytes today and may grow).
fn is_device_token(token: &str) -> bool {
    (16..=400).contains(&token.len()) && token.len().is_multiple_of(2) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `apns-id` for a message: its idempotency key (32 hex digits) as a UUID (version 8,
/// custom), so every attempt of one message carries the same id.
pub fn apns_id(idempotency_key: &str) -> String {
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = idempotency_key.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

#[derive(Debug, PartialEq)]
enum Answer {
    Done(SendOutcome),
    /// 403 `ExpiredProviderToken`: make a new token; the message retries.
    ExpiredToken(String),
}

/// Apple's error body: `{"reason": "BadDeviceToken"}`, with `timestamp` (ms) on a 410.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    timestamp: Option<i64>,
}

/// Maps Apple's answer onto an outcome. Pure, so it is tested without a server.
fn classify(status: StatusCode, apns_id: &str, body: &[u8], retry_after: Option<Duration>) -> Answer {
    if status.is_success() {
        return Answer::Done(SendOutcome::Sent { provider_id: apns_id.to_string() });
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let reason = parsed.as_ref().and_then(|b| b.reason.as_deref()).unwrap_or("");
    let mut error = if !reason.is_empty() {
        format!("apns {} {reason}", status.as_u16())
    } else if body.is_empty() {
        format!("apns: {status}")
    } else {
        format!("apns: {status}: {}", excerpt(body))
    };
    if let Some(ms) = parsed.as_ref().and_then(|b| b.timestamp)
        && let Ok(at) = Timestamp::from_millisecond(ms)
    {
        error.push_str(&format!(" (since {at})"));
    }
    let outcome = match (status.as_u16(), reason) {
        (410, _) | (400, "BadDeviceToken") => SendOutcome::Gone { error },
        (403, "ExpiredProviderToken") => return Answer::ExpiredToken(error),
        (429, _) | (500..=599, _) => SendOutcome::Transient { error, retry_after },
        _ => SendOutcome::Permanent { error },
    };
    Answer::Done(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: Answer| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, "the-id", body.as_bytes(), None), expected, "{status} {body}");
        };
        let done = Answer::Done;
        check(200, "", done(SendOutcome::Sent { provider_id: "the-id".into() }));
        check(
            410,
            r#"{"reason":"Unregistered","timestamp":1800000000000}"#,
            done(SendOutcome::Gone { error: "apns 410 Unregistered (since 2027-01-15T08:00:00Z)".into() }),
        );
        check(410, r#"{"reason":"ExpiredToken"}"#, done(SendOutcome::Gone { error: "apns 410 ExpiredToken".into() }));
        check(
            400,
            r#"{"reason":"BadDeviceToken"}"#,
            done(SendOutcome::Gone { error: "apns 400 BadDeviceToken".into() }),
        );
        check(
            400,
            r#"{"reason":"DeviceTokenNotForTopic"}"#,
            done(SendOutcome::Permanent { error: "apns 400 DeviceTokenNotForTopic".into() }),
        );
        check(
            403,
            r#"{"reason":"ExpiredProviderToken"}"#,
            Answer::ExpiredToken("apns 403 ExpiredProviderToken".into()),
        );
        check(
            403,
            r#"{"reason":"InvalidProviderToken"}"#,
            done(SendOutcome::Permanent { error: "apns 403 InvalidProviderToken".into() }),
        );
        let transient = |e: &str| done(SendOutcome::Transient { error: e.into(), retry_after: None });
        check(429, r#"{"reason":"TooManyRequests"}"#, transient("apns 429 TooManyRequests"));
        check(500, r#"{"reason":"InternalServerError"}"#, transient("apns 500 InternalServerError"));
        check(503, r#"{"reason":"ServiceUnavailable"}"#, transient("apns 503 ServiceUnavailable"));
        check(502, "bad gateway", transient("apns: 502 Bad Gateway: bad gateway"));
        check(
            413,
            r#"{"reason":"PayloadTooLarge"}"#,
            done(SendOutcome::Permanent { error: "apns 413 PayloadTooLarge".into() }),
        );
    }

    #[test]
    fn token_age() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(token_current(at, at));
        assert!(token_current(at, at + SignedDuration::from_mins(49)));
        assert!(!token_current(at, at + SignedDuration::from_mins(50)));
        assert!(!token_current(at, at - SignedDuration::from_secs(1)));
    }

    #[test]
    fn apns_ids_are_stable_uuids() {
        let key = crate::channels::idempotency_key("birthday:m1:birthday:2027:push");
        let id = apns_id(&key);
        assert_eq!(id, apns_id(&key));
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_lowercase());
        assert_ne!(id, apns_id(&crate::channels::idempotency_key("birthday:m1:birthday:2028:push")));
    }

    #[test]
    fn device_tokens() {
        assert!(is_device_token(&"ab".repeat(32)));
        assert!(is_device_token(&"AB".repeat(32)));
        for bad in ["", "xyz", &"a".repeat(63), "fcm:token-like", &"g".repeat(64)] {
            assert!(!is_device_token(bad), "{bad}");
        }
    }

    #[test]
    fn config_problems() {
        let cfg = ApnsConfig {
            key_id: "ABC".into(),
            team_id: "DEF123456 ".into(),
            topic: " ".into(),
            private_key: Some(Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")),
            private_key_file: None,
            base_url: "not a url".into(),
            priority: 7,
            ttl_secs: 0,
            root_certificate: Some("/nonexistent/root.pem".into()),
            timeout_secs: 0,
        };
        let keys: Vec<String> = Apns::check(&cfg).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "apns.key_id",
                "apns.team_id",
                "apns.topic",
                "apns.private_key",
                "apns.base_url",
                "apns.priority",
                "apns.root_certificate",
                "apns.timeout_secs",
            ]
        );
        let mut cfg = cfg;
        cfg.private_key = None;
        let problems = Apns::check(&cfg);
        assert!(
            problems.iter().any(|p| p.key == "apns.private_key" && p.problem.contains("missing secret")),
            "{problems:?}"
        );
    }
}
