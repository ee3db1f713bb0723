//! Web Push to browsers: VAPID authentication (RFC 8292) and payload encryption (RFC 8291,
//! `aes128gcm` content coding from RFC 8188), written on ring (HKDF, AES-128-GCM) and p256
//! (ECDH, ES256), tested against RFC 8291's published example.
//!
//! A subscription is what the browser's `PushManager.subscribe()` gave: an endpoint URL at the
//! browser vendor's push service, the browser's P-256 public key (`p256dh`) and a 16-byte
//! authentication secret (`auth`). One request per message: `POST {endpoint}` with the
//! encrypted JSON `{"title", "body", "rule_id", "message_key"}`, `TTL`, `Urgency`, optionally
//! `Topic`, and `Authorization: vapid t=<jwt>, k=<public key>`. The JWT's `aud` is the
//! endpoint's origin including a non-default port (web-push-native leaves the port out, which a
//! push service on another port rejects).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::{
    b64url, b64url_decode, check_timeout, es256_jwt, excerpt, http_client, p256_secret_key, parts, retry_after,
    short_id, transport_failure,
};
use crate::channels::{Outgoing, Platform, SendOutcome};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// `[webpush]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushConfig {
    /// Who push services can contact about this sender: `mailto:ops@example.com` or an https URL.
    pub subject: String,
    /// The VAPID private key: PEM (PKCS#8 or SEC1) or the raw 32-byte scalar in base64url;
    /// or `private_key_file`, or `TIDINGS_WEBPUSH_PRIVATE_KEY`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `TTL`: how long the push service keeps a message for an offline browser (at most 4 weeks).
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// `Urgency`: `very-low`, `low`, `normal` or `high`.
    #[serde(default = "default_urgency")]
    pub urgency: String,
    /// Send a `Topic` derived from the rule, so a newer message of a rule replaces an older one
    /// still waiting at the push service.
    #[serde(default)]
    pub topic: bool,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_ttl_secs() -> u64 {
    86_400
}

fn default_urgency() -> String {
    "normal".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

const URGENCIES: [&str; 4] = ["very-low", "low", "normal", "high"];
/// The longest TTL push services keep (FCM's four weeks).
const MAX_TTL: u64 = 28 * 86_400;
/// A VAPID JWT lives this long (RFC 8292 allows up to 24 hours).
const VAPID_LIFETIME: i64 = 12 * 3600;
/// The record size: one record of at most 4096 bytes, which every push service must accept.
const RECORD_SIZE: u32 = 4096;
/// Header (salt 16, rs 4, idlen 1, key 65) and tag (16) and the padding delimiter (1).
const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 86 - 16 - 1;

/// The Web Push provider. Cheap to clone: the HTTP client is shared.
#[derive(Clone)]
pub struct WebPush {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    key: p256::ecdsa::SigningKey,
    /// The public key, base64url of the uncompressed point.
    public_key: String,
    subject: String,
    ttl: u64,
    urgency: String,
    topic: bool,
    clock: SharedClock,
    timeout: Duration,
}

impl std::fmt::Debug for WebPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPush")
            .field("public_key", &self.inner.public_key)
            .field("subject", &self.inner.subject)
            .finish_non_exhaustive()
    }
}

impl WebPush {
    /// Builds the provider on the system clock.
    pub fn new(cfg: &WebPushConfig) -> anyhow::Result<Self> {
        WebPush::with_clock(cfg, Arc::new(SystemClock))
    }

    /// Builds the provider reading "now" (the VAPID `exp`) from `clock`.
    pub fn with_clock(cfg: &WebPushConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let key = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid webpush configuration: {}", list.join("; "))
        })?;
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = http_client("webpush", timeout, |b| b)?;
        let public_key = b64url(&key.public_key().to_sec1_bytes());
        Ok(WebPush {
            inner: Arc::new(Inner {
                client,
                key: p256::ecdsa::SigningKey::from(&key),
                public_key,
                subject: cfg.subject.trim().to_string(),
                ttl: cfg.ttl_secs,
                urgency: cfg.urgency.trim().to_string(),
                topic: cfg.topic,
                clock,
                timeout,
            }),
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &WebPushConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// The VAPID public key, base64url of the uncompressed P-256 point: the
    /// `applicationServerKey` browsers subscribe with.
    pub fn public_key(&self) -> &str {
        &self.inner.public_key
    }

    /// Sends one notification to the subscription in `msg.device` (`token` the endpoint).
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let parts = match parts("webpush", Platform::Webpush, msg) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let device = parts.device;
        let (p256dh, auth) = (device.p256dh.as_deref().unwrap_or(""), device.auth.as_deref().unwrap_or(""));
        // A subscription that fails these can never receive a message: forget it.
        let subscription = match Subscription::parse(&device.token, p256dh, auth) {
            Ok(s) => s,
            Err(e) => return SendOutcome::Gone { error: format!("webpush: not a usable subscription: {e}") },
        };
        let payload = json!({
            "title": parts.title,
            "body": parts.body,
            "rule_id": msg.rule_id,
            "message_key": msg.idempotency_key(),
        })
        .to_string();
        if payload.len() > MAX_PLAINTEXT {
            return super::permanent(format!(
                "webpush: the payload is {} bytes, more than one record holds ({MAX_PLAINTEXT})",
                payload.len()
            ));
        }
        let body = match encrypt(
            payload.as_bytes(),
            &subscription.p256dh,
            &subscription.auth,
            &ephemeral_key(),
            rand::random(),
        ) {
            Ok(b) => b,
            Err(e) => return super::permanent(format!("webpush: {e}")),
        };

        let audience = audience(&subscription.endpoint);
        let jwt = es256_jwt(
            &self.inner.key,
            &json!({ "typ": "JWT", "alg": "ES256" }),
            &json!({ "aud": audience, "exp": self.inner.clock.now().as_second() + VAPID_LIFETIME, "sub": self.inner.subject }),
        );
        let mut request = self
            .inner
            .client
            .post(subscription.endpoint)
            .header("authorization", format!("vapid t={jwt}, k={}", self.inner.public_key))
            .header("ttl", self.inner.ttl.to_string())
            .header("urgency", &self.inner.urgency)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream");
        if self.inner.topic {
            request = request.header("topic", short_id(&msg.rule_id, 32));
        }
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return transport_failure("webpush", e, self.inner.timeout),
        };
        let status = response.status();
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = retry_after(response.headers(), self.inner.clock.now());
        // The body matters only for the error text; an answer that breaks off after a 2xx is
        // still an accepted message.
        let body = response.bytes().await.unwrap_or_default();
        let provider_id = location.filter(|l| !l.is_empty()).unwrap_or_else(|| msg.idempotency_key());
        let outcome = classify(status, provider_id, &body, retry_after);
        tracing::debug!(message.id = msg.id, status = status.as_u16(), ?outcome, "push service answered");
        outcome
    }
}

fn checked(cfg: &WebPushConfig) -> Result<p256::SecretKey, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let subject = cfg.subject.trim();
    let subject_ok = match subject.strip_prefix("mailto:") {
        Some(address) => address.contains('@') && !address.contains(char::is_whitespace),
        None => Url::parse(subject).is_ok_and(|u| u.scheme() == "https" && u.host().is_some()),
    };
    if !subject_ok {
        problems.push(ConfigProblem::new(
            "webpush.subject",
            format!("{subject:?}: use mailto:ops@example.com or an https url where push services can reach you"),
        ));
    }
    let inline = cfg.private_key.as_ref().is_some_and(|s| !s.expose().is_empty());
    let source_key = if inline { "webpush.private_key" } else { "webpush.private_key_file" };
    let key = match resolve_secret(cfg.private_key.as_ref(), cfg.private_key_file.as_deref(), "webpush.private_key") {
        Ok(text) => p256_secret_key(text.expose()).map_err(|e| problems.push(ConfigProblem::new(source_key, e))).ok(),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    if cfg.ttl_secs > MAX_TTL {
        problems.push(ConfigProblem::new("webpush.ttl_secs", format!("at most {MAX_TTL} (four weeks)")));
    }
    if !URGENCIES.contains(&cfg.urgency.trim()) {
        problems
            .push(ConfigProblem::new("webpush.urgency", format!("{:?}: use {}", cfg.urgency, URGENCIES.join(", "))));
    }
    check_timeout("webpush.timeout_secs", cfg.timeout_secs, &mut problems);
    match key {
        Some(key) if problems.is_empty() => Ok(key),
        _ => Err(problems),
    }
}

/// A subscription's parts, decoded and checked.
struct Subscription {
    endpoint: Url,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
}

impl Subscription {
    fn parse(endpoint: &str, p256dh: &str, auth: &str) -> Result<Subscription, String> {
        let url = Url::parse(endpoint.trim()).map_err(|_| "endpoint: not a url".to_string())?;
        let https = url.scheme() == "https" && url.host().is_some();
        let loopback = url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !https && !loopback {
            return Err("endpoint: must be an https url".to_string());
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err("endpoint: must not carry credentials or a fragment".to_string());
        }
        let key = b64url_decode(p256dh).ok_or("p256dh: not base64url")?;
        if key.len() != 65 || key[0] != 4 || p256::PublicKey::from_sec1_bytes(&key).is_err() {
            return Err("p256dh: not an uncompressed P-256 public key (65 bytes)".to_string());
        }
        let secret = b64url_decode(auth).ok_or("auth: not base64url")?;
        if secret.len() != 16 {
            return Err(format!("auth: must be 16 bytes, got {}", secret.len()));
        }
        Ok(Subscription { endpoint: url, p256dh: key, auth: secret })
    }
}

/// Checks a browser's push subscription as the API receives it (`PushSubscription.toJSON()`:
/// `endpoint`, `keys.p256dh`, `keys.auth`): an https endpoint (or http on loopback, `127.0.0.1`,
/// `localhost` or `[::1]`, for local tests), `p256dh` an uncompressed P-256 point on the curve and
/// `auth` 16 bytes, both base64url. The error starts with the field at fault (`endpoint: …`,
/// `p256dh: …`, `auth: …`). A device that fails it is gone at send time, so the API should refuse
/// it with the same rules.
pub fn validate_subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<(), String> {
    Subscription::parse(endpoint, p256dh, auth).map(|_| ())
}

/// The VAPID `aud`: the endpoint's origin, with its port unless it is the scheme's default.
fn audience(endpoint: &Url) -> String {
    endpoint.origin().ascii_serialization()
}

/// A fresh P-256 key for one message (RFC 8291's application-server key pair is per message).
fn ephemeral_key() -> p256::SecretKey {
    loop {
        // Out-of-range scalars (zero, or at least the group order) are astronomically rare.
        if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            return key;
        }
    }
}

/// RFC 8291 message encryption: one `aes128gcm` record (RFC 8188) whose header carries the salt,
/// the record size and the sender's ephemeral public key.
fn encrypt(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    as_secret: &p256::SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, String> {
    use ring::{aead, hkdf};

    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    fn derive<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
        let mut out = [0u8; N];
        hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
            .extract(ikm)
            .expand(info, Len(N))
            .and_then(|okm| okm.fill(&mut out))
            .expect("hkdf output of at most 32 bytes");
        out
    }

    if plaintext.len() > MAX_PLAINTEXT {
        return Err(format!("the payload is more than {MAX_PLAINTEXT} bytes"));
    }
    let ua_key = p256::PublicKey::from_sec1_bytes(ua_public).map_err(|_| "the p256dh key is not a P-256 point")?;
    let as_public = as_secret.public_key().to_sec1_bytes();
    let shared = as_secret.diffie_hellman(&ua_key);

    // ikm = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
    let ikm: [u8; 32] = derive(auth_secret, shared.raw_secret_bytes(), &[b"WebPush: info\0", ua_public, &as_public]);
    let cek: [u8; 16] = derive(&salt, &ikm, &[b"Content-Encoding: aes128gcm\0"]);
    let nonce: [u8; 12] = derive(&salt, &ikm, &[b"Content-Encoding: nonce\0"]);

    // The single (so last) record: the plaintext, then the 0x02 delimiter, no padding.
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).expect("a 16-byte key"));
    key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut record)
        .map_err(|_| "cannot encrypt the payload")?;

    let mut out = Vec::with_capacity(86 + record.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(as_public.len() as u8);
    out.extend_from_slice(&as_public);
    out.extend_from_slice(&record);
    Ok(out)
}

/// Maps the push service's answer onto an outcome. Pure, so it is tested without a server.
fn classify(status: StatusCode, provider_id: String, body: &[u8], retry_after: Option<Duration>) -> SendOutcome {
    if status.is_success() {
        return SendOutcome::Sent { provider_id };
    }
    let error =
        if body.is_empty() { format!("webpush: {status}") } else { format!("webpush: {status}: {}", excerpt(body)) };
    match status.as_u16() {
        // The subscription expired or the user revoked it.
        404 | 410 => SendOutcome::Gone { error },
        429 | 500..=599 => SendOutcome::Transient { error, retry_after },
        // 400 a malformed request, 401/403 VAPID refused, 413 payload too large, and the rest.
        _ => SendOutcome::Permanent { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        b64url_decode(s).unwrap()
    }

    /// RFC 8291 Appendix A: fixed keys and salt give exactly the published message.
    #[test]
    fn rfc8291_example() {
        let as_secret = p256_secret_key("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap();
        assert_eq!(
            b64url(&as_secret.public_key().to_sec1_bytes()),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let ua_public = d("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = d("BTBZMqHH6r4Tts7J_aSIgg");
        let salt: [u8; 16] = d("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();

        let body = encrypt(b"When I grow up, I want to be a watermelon", &ua_public, &auth, &as_secret, salt).unwrap();

        assert_eq!(
            b64url(&body),
            concat!(
                "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml",
                "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT",
                "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
            )
        );
    }

    #[test]
    fn audiences_keep_non_default_ports() {
        let check = |endpoint: &str, expected: &str| assert_eq!(audience(&Url::parse(endpoint).unwrap()), expected);
        check("https://fcm.googleapis.com/fcm/send/abc:def", "https://fcm.googleapis.com");
        check("https://updates.push.services.mozilla.com:443/wpush/v2/x", "https://updates.push.services.mozilla.com");
        check("https://push.example.com:8443/p/1", "https://push.example.com:8443");
        check("http://127.0.0.1:40123/push/1", "http://127.0.0.1:40123");
    }

    #[test]
    fn subscriptions() {
        let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        let check = |endpoint: &str, p256dh: &str, auth: &str, expected: Result<(), &str>| {
            assert_eq!(validate_subscription(endpoint, p256dh, auth), expected.map_err(str::to_string), "{endpoint}");
        };
        check("https://fcm.googleapis.com/fcm/send/x", p256dh, auth, Ok(()));
        check("http://127.0.0.1:8080/push/1", p256dh, auth, Ok(()));
        check("https://push.example.com/x", p256dh, "BTBZMqHH6r4Tts7J_aSIgg==", Ok(()));
        check("http://push.example.com/x", p256dh, auth, Err("endpoint: must be an https url"));
        check("http://localhost:8080/x", p256dh, auth, Ok(()));
        check("http://[::1]:8080/x", p256dh, auth, Ok(()));
        check("http://10.0.0.1:8080/x", p256dh, auth, Err("endpoint: must be an https url"));
        check("not a url", p256dh, auth, Err("endpoint: not a url"));
        check(
            "https://u:p@push.example.com/x",
            p256dh,
            auth,
            Err("endpoint: must not carry credentials or a fragment"),
        );
        check(
            "https://push.example.com/x",
            "BCVx",
            auth,
            Err("p256dh: not an uncompressed P-256 public key (65 bytes)"),
        );
        check("https://push.example.com/x", "!!", auth, Err("p256dh: not base64url"));
        // 65 bytes with the right prefix, but not on the curve.
        let off_curve = b64url(&[&[4u8][..], &[1u8; 64][..]].concat());
        check(
            "https://push.example.com/x",
            &off_curve,
            auth,
            Err("p256dh: not an uncompressed P-256 public key (65 bytes)"),
        );
        check("https://push.example.com/x", p256dh, "AAAA", Err("auth: must be 16 bytes, got 3"));
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: SendOutcome| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, "id".into(), body.as_bytes(), None), expected, "{status}");
        };
        check(201, "", SendOutcome::Sent { provider_id: "id".into() });
        check(202, "", SendOutcome::Sent { provider_id: "id".into() });
        check(410, r#"{"errno":106}"#, SendOutcome::Gone { error: r#"webpush: 410 Gone: {"errno":106}"#.into() });
        check(404, "", SendOutcome::Gone { error: "webpush: 404 Not Found".into() });
        let transient = |e: &str| SendOutcome::Transient { error: e.into(), retry_after: None };
        check(429, "", transient("webpush: 429 Too Many Requests"));
        check(503, "", transient("webpush: 503 Service Unavailable"));
        for status in [400, 401, 403, 413] {
            let status_code = StatusCode::from_u16(status).unwrap();
            check(status, "", SendOutcome::Permanent { error: format!("webpush: {status_code}") });
        }
    }

    #[test]
    fn config_problems() {
        let cfg = WebPushConfig {
            subject: "ops@example.com".into(),
            private_key: Some(Secret::new("c2hvcnQ")),
            private_key_file: None,
            ttl_secs: MAX_TTL + 1,
            urgency: "urgent".into(),
            topic: false,
            timeout_secs: 0,
        };
        let keys: Vec<String> = WebPush::check(&cfg).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["webpush.subject", "webpush.private_key", "webpush.ttl_secs", "webpush.urgency", "webpush.timeout_secs"]
        );
        let good = WebPushConfig {
            subject: "https://club.example.com/contact".into(),
            private_key: Some(Secret::new("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")),
            ttl_secs: 3600,
            urgency: "high".into(),
            timeout_secs: 5,
            ..cfg
        };
        assert_eq!(WebPush::check(&good), vec![]);
        let push = WebPush::new(&good).unwrap();
        assert_eq!(
            push.public_key(),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
    }
}
