//! Push: notifications to members' devices. Three providers, one per platform: FCM HTTP v1
//! (`fcm.rs`, Android and Firebase apps), APNs with token authentication (`apns.rs`, iOS apps,
//! HTTP/2 only) and Web Push with VAPID and `aes128gcm` payload encryption (`webpush.rs`,
//! browsers). A device belongs to one platform; [`Push`] sends each message through the provider
//! configured for its device's platform.
//!
//! Also here, shared by the three: JWT signing, base64url, the HTTP client builder, `Retry-After`
//! and transport-failure mapping. Every provider reads "now" from an injected [`Clock`], so the
//! token caches are tested by moving a manual clock, never by sleeping.

pub mod apns;
pub mod fcm;
pub mod webpush;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::Url;

use crate::channels::wire::{describe, parse_retry_after};
use crate::channels::{Outgoing, Platform, PushDevice, Rendered, SendOutcome};
use crate::clock::{SharedClock, SystemClock};
use crate::config::ConfigProblem;

pub use apns::{Apns, ApnsConfig};
pub use fcm::{Fcm, FcmConfig};
pub use webpush::{WebPush, WebPushConfig, validate_subscription};

/// The `[fcm]`, `[apns]` and `[webpush]` sections; a platform without a section has no provider.
#[derive(Debug, Clone, Default)]
pub struct PushConfigs {
    pub fcm: Option<FcmConfig>,
    pub apns: Option<ApnsConfig>,
    pub webpush: Option<WebPushConfig>,
}

/// The push channel's provider: routes each message to the provider of its device's platform.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Push {
    fcm: Option<Fcm>,
    apns: Option<Apns>,
    webpush: Option<WebPush>,
}

impl Push {
    /// Builds the configured providers on the system clock.
    pub fn new(cfgs: &PushConfigs) -> anyhow::Result<Push> {
        Push::with_clock(cfgs, Arc::new(SystemClock))
    }

    /// Builds the configured providers reading "now" (token lifetimes, JWT claims, expirations)
    /// from `clock`.
    pub fn with_clock(cfgs: &PushConfigs, clock: SharedClock) -> anyhow::Result<Push> {
        let problems = Push::check(cfgs);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::bail!("invalid push configuration: {}", list.join("; "));
        }
        Ok(Push {
            fcm: cfgs.fcm.as_ref().map(|c| Fcm::with_clock(c, clock.clone())).transpose()?,
            apns: cfgs.apns.as_ref().map(|c| Apns::with_clock(c, clock.clone())).transpose()?,
            webpush: cfgs.webpush.as_ref().map(|c| WebPush::with_clock(c, clock.clone())).transpose()?,
        })
    }

    /// Start-up validation of every configured section, without touching the network.
    pub fn check(cfgs: &PushConfigs) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Some(c) = &cfgs.fcm {
            problems.extend(Fcm::check(c));
        }
        if let Some(c) = &cfgs.apns {
            problems.extend(Apns::check(c));
        }
        if let Some(c) = &cfgs.webpush {
            problems.extend(WebPush::check(c));
        }
        problems
    }

    /// A router over providers built elsewhere (tests, or wiring that builds them one by one).
    pub fn from_providers(fcm: Option<Fcm>, apns: Option<Apns>, webpush: Option<WebPush>) -> Push {
        Push { fcm, apns, webpush }
    }

    /// The platforms that have a provider.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out = Vec::new();
        if self.fcm.is_some() {
            out.push(Platform::Fcm);
        }
        if self.apns.is_some() {
            out.push(Platform::Apns);
        }
        if self.webpush.is_some() {
            out.push(Platform::Webpush);
        }
        out
    }

    /// The VAPID public key (base64url, uncompressed point) browsers subscribe with, when Web
    /// Push is configured.
    pub fn webpush_public_key(&self) -> Option<&str> {
        self.webpush.as_ref().map(WebPush::public_key)
    }

    /// Sends one push message to `msg.device`.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let Some(device) = &msg.device else {
            return permanent("push: the message has no device".to_string());
        };
        let platform = device.platform;
        match platform {
            Platform::Fcm => match &self.fcm {
                Some(p) => p.send(msg).await,
                None => not_configured(platform),
            },
            Platform::Apns => match &self.apns {
                Some(p) => p.send(msg).await,
                None => not_configured(platform),
            },
            Platform::Webpush => match &self.webpush {
                Some(p) => p.send(msg).await,
                None => not_configured(platform),
            },
        }
    }
}

fn not_configured(platform: Platform) -> SendOutcome {
    let name = platform.as_str();
    permanent(format!("push: no provider is configured for {name} devices (add a [{name}] section)"))
}

// ---------------------------------------------------------------------------------------------
// Shared by the providers.

/// Connecting gets at most this long, even when the whole request may take longer.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every push provider needs from a message: the device on its platform and the rendered
/// title and body. Anything else is refused before a request is made.
struct PushParts<'a> {
    device: &'a PushDevice,
    title: &'a str,
    body: &'a str,
}

fn parts<'a>(provider: &str, platform: Platform, msg: &'a Outgoing) -> Result<PushParts<'a>, SendOutcome> {
    let Rendered::Push { title, body } = &msg.rendered else {
        return Err(permanent(format!("{provider}: the push provider cannot send {}", msg.rendered.channel())));
    };
    let Some(device) = &msg.device else {
        return Err(permanent(format!("{provider}: the message has no device")));
    };
    if device.platform != platform {
        return Err(permanent(format!("{provider}: cannot send to a {} device", device.platform.as_str())));
    }
    if title.trim().is_empty() && body.trim().is_empty() {
        return Err(permanent(format!("{provider}: the notification has neither title nor body")));
    }
    Ok(PushParts { device, title, body })
}

/// One HTTP client per provider: connect and total timeouts (reqwest has neither by default),
/// no redirects (a redirect from a push API means a wrong base URL; following it would turn the
/// POST into a GET or resend the credentials elsewhere).
fn http_client(
    provider: &str,
    timeout: Duration,
    tune: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    let builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")));
    tune(builder).build().map_err(|e| anyhow::anyhow!("{provider}: cannot build the http client: {e}"))
}

/// An http(s) base URL without credentials, query or fragment, ending in `/` so paths join
/// under any prefix it has. Problems do not echo the URL: it may hold credentials.
fn base_url(value: &str) -> Result<Url, String> {
    let mut url = Url::parse(value.trim()).map_err(|e| format!("not a url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) url".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_string());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn check_timeout(key: &str, secs: u64, problems: &mut Vec<ConfigProblem>) {
    if secs == 0 {
        problems.push(ConfigProblem::new(key, "must be at least 1"));
    }
}

/// Reads a PEM file of trust roots: the only roots trusted for that provider (a test peer, or a
/// TLS-inspecting proxy in front of the real service).
fn load_root_certificate(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if ders.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    ders.iter().map(|der| reqwest::Certificate::from_der(der).map_err(|e| format!("{}: {e}", path.display()))).collect()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url, padded or not (browsers send it unpadded; some libraries pad).
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.contains('=') { URL_SAFE.decode(s).ok() } else { URL_SAFE_NO_PAD.decode(s).ok() }
}

/// `base64url(header).base64url(claims)`: what a JWT's signature covers.
fn jwt_signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

/// An ES256 JWT (APNs provider tokens, VAPID): the signature is the raw 64-byte `r || s`.
fn es256_jwt(key: &p256::ecdsa::SigningKey, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use p256::ecdsa::signature::Signer;
    let input = jwt_signing_input(header, claims);
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

/// A P-256 private key as PEM (PKCS#8, as Apple's `.p8` files and `openssl genpkey` write it,
/// or SEC1 `EC PRIVATE KEY`, as `openssl ecparam -genkey` does) or as the raw 32-byte scalar in
/// base64url (as web-push tools print VAPID keys).
fn p256_secret_key(text: &str) -> Result<p256::SecretKey, String> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return p256::SecretKey::from_pem(text).map_err(|e| format!("not a P-256 private key in PEM: {e}"));
    }
    let raw = b64url_decode(text).ok_or("neither PEM nor base64url")?;
    if raw.len() != 32 {
        return Err(format!("a raw key is 32 bytes in base64url, this is {} bytes", raw.len()));
    }
    p256::SecretKey::from_slice(&raw).map_err(|_| "not a valid P-256 private scalar".to_string())
}

/// `Retry-After` from a response, as delta-seconds or an HTTP-date relative to `now`.
fn retry_after(headers: &reqwest::header::HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(now.as_millisecond()).unwrap_or(0));
    parse_retry_after(value, now)
}

/// A request that got no HTTP answer. A failure to connect means the service never saw it:
/// worth another try. A timeout or a dropped connection after that may come after the service
/// accepted the notification: the outcome is unknown (retrying could notify twice).
fn transport_failure(provider: &str, e: reqwest::Error, timeout: Duration) -> SendOutcome {
    if e.is_connect() {
        return SendOutcome::Transient {
            error: format!("{provider}: cannot connect: {}", describe(e)),
            retry_after: None,
        };
    }
    let error = if e.is_timeout() {
        format!("{provider}: no answer within {}s; the notification may have been accepted", timeout.as_secs())
    } else {
        format!("{provider}: the request failed after it was sent: {}", describe(e))
    };
    SendOutcome::Unknown { error }
}

/// A short, single-line excerpt of a response body for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// An identifier derived from `key` that fits `max` bytes of `[A-Za-z0-9_-]`: `key` itself
/// when it does, else hex of its SHA-256 (so two long rule ids never collide by truncation).
fn short_id(key: &str, max: usize) -> String {
    use sha2::{Digest, Sha256};
    if !key.is_empty() && key.len() <= max && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return key.to_string();
    }
    let hex: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    hex[..max.min(hex.len())].to_string()
}

fn permanent(error: String) -> SendOutcome {
    SendOutcome::Permanent { error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Purpose;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let check = |value: &str, expected: Option<u64>| {
            assert_eq!(parse_retry_after(value, now), expected.map(Duration::from_secs), "{value:?}");
        };
        check("7", Some(7));
        check("Sun, 06 Nov 1994 08:50:07 GMT", Some(30));
        check("Sun, 06 Nov 1994 08:00:00 GMT", Some(0));
        check("soon", None);
    }

    #[test]
    fn base_urls() {
        let check = |value: &str, expected: Result<&str, &str>| {
            assert_eq!(base_url(value).map(|u| u.to_string()), expected.map(str::to_string).map_err(str::to_string));
        };
        check("https://fcm.googleapis.com", Ok("https://fcm.googleapis.com/"));
        check("http://127.0.0.1:9/prefix", Ok("http://127.0.0.1:9/prefix/"));
        check("ftp://example.com", Err("must be an http(s) url"));
        check("https://u:p@example.com", Err("must not carry credentials"));
        check("https://example.com/?a=1", Err("must not have a query or fragment"));
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("birthday", 64), "birthday");
        assert_eq!(short_id("new-year_2027", 32), "new-year_2027");
        let long = "a".repeat(65);
        assert_eq!(short_id(&long, 64).len(), 64);
        assert_ne!(short_id(&long, 64), short_id(&"a".repeat(66), 64));
        assert_eq!(short_id("has space", 32).len(), 32);
    }

    #[test]
    fn p256_keys_in_every_form() {
        let raw = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
        let key = p256_secret_key(raw).unwrap();
        let sec1 = key.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let pkcs8 = {
            use p256::pkcs8::EncodePrivateKey;
            key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap()
        };
        assert_eq!(p256_secret_key(&sec1).unwrap(), key);
        assert_eq!(p256_secret_key(&pkcs8).unwrap(), key);
        assert_eq!(p256_secret_key(&format!("{raw}=")).unwrap(), key);
        assert!(p256_secret_key("c2hvcnQ").unwrap_err().contains("32 bytes"));
        assert!(p256_secret_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(p256_secret_key("not base64 !").is_err());
    }

    fn message(device: Option<PushDevice>) -> Outgoing {
        Outgoing {
            id: 1,
            dedupe_key: "birthday:m1:birthday:2027:push".into(),
            rule_id: "birthday".into(),
            member: "m1".into(),
            member_name: "Ada".into(),
            to: String::new(),
            device,
            purpose: Purpose::Marketing,
            rendered: Rendered::Push { title: "Hi".into(), body: "Happy birthday".into() },
        }
    }

    /// The README's examples are valid sections (every key known, every value the right type).
    #[test]
    fn readme_examples_parse() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Push providers").expect("a push providers section")..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        let mut tables = toml::Table::new();
        for block in section.split("```toml\n").skip(1) {
            let block = &block[..block.find("```").expect("a closed block")];
            tables.extend(block.parse::<toml::Table>().expect("valid toml"));
        }
        let get = |name: &str| tables.get(name).cloned().unwrap_or_else(|| panic!("no [{name}] example"));
        let fcm: FcmConfig = get("fcm").try_into().unwrap();
        let apns: ApnsConfig = get("apns").try_into().unwrap();
        let webpush: WebPushConfig = get("webpush").try_into().unwrap();
        assert!(fcm.service_account_file.is_some());
        assert_eq!((apns.priority, apns.base_url.as_str()), (10, apns::PRODUCTION_URL));
        assert_eq!(webpush.urgency, "normal");
    }

    #[tokio::test]
    async fn router_refuses_what_it_cannot_route() {
        let push = Push::default();
        let device = |platform| Some(PushDevice { platform, token: "t".into(), p256dh: None, auth: None });
        let permanent = |outcome: SendOutcome| match outcome {
            SendOutcome::Permanent { error } => error,
            other => panic!("expected permanent, got {other:?}"),
        };
        assert_eq!(permanent(push.send(&message(None)).await), "push: the message has no device");
        for platform in Platform::ALL {
            let error = permanent(push.send(&message(device(platform))).await);
            assert!(error.contains(&format!("no provider is configured for {} devices", platform.as_str())), "{error}");
        }
        assert!(push.platforms().is_empty());
        assert_eq!(push.webpush_public_key(), None);
    }
}
