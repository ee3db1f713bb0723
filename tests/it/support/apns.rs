//! A local stand-in for the Apple Push Notification service: an HTTP/2 server over TLS on
//! 127.0.0.1:0 (hyper, a self-signed rcgen certificate the test trusts as a root) that checks
//! each request as APNs would: HTTP/2, the path, the ES256 provider token (verified with ring
//! against the key's public half, `kid`, `iss`, `iat` no older than an hour by the test's
//! clock), every `apns-*` header, and the JSON payload; then answers in Apple's shapes
//! (`{"reason": …}`, with `timestamp` on a 410) and echoes `apns-id`.
//!
//! Breaches of the protocol the client promises land in [`ApnsPeer::violations`], which tests
//! assert empty.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tidings::clock::{Clock, ManualClock};
use tokio_rustls::TlsAcceptor;

use super::jwt::Jwt;

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "DEF123GHIJ";
pub const TOPIC: &str = "com.example.jadeclub";

/// A `.p8` key as Apple hands it out: PKCS#8 PEM of a P-256 key.
pub struct AuthKey {
    pub pem: String,
    /// The uncompressed public point, for checking signatures.
    pub public: Vec<u8>,
}

impl AuthKey {
    pub fn generate() -> AuthKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p-256 key");
        AuthKey { pem: pair.serialize_pem(), public: pair.public_key_raw().to_vec() }
    }
}

/// How the peer answers a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub timestamp: Option<i64>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn new(status: u16, reason: &'static str) -> Reply {
        Reply { status, reason, timestamp: None, retry_after: None }
    }

    pub fn too_many_requests(retry_after: &str) -> Reply {
        Reply { retry_after: Some(retry_after.to_string()), ..Reply::new(429, "TooManyRequests") }
    }
}

/// One notification the peer accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub device_token: String,
    pub headers: HashMap<String, String>,
    pub payload: Value,
    /// The provider token it came with.
    pub jwt: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

struct PeerState {
    clock: ManualClock,
    public_key: Vec<u8>,
    script: VecDeque<Reply>,
    unregistered: HashMap<String, i64>,
    bad_tokens: HashSet<String>,
    received: Vec<Received>,
    /// Every distinct provider token seen, in order, with its `iat`.
    tokens: Vec<(String, i64)>,
    requests: usize,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<PeerState>>;

/// The running peer; stops when dropped.
pub struct ApnsPeer {
    addr: SocketAddr,
    cert_pem: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl ApnsPeer {
    /// A peer that accepts provider tokens signed by the key whose public point is `public_key`.
    pub async fn start(public_key: &[u8], clock: ManualClock) -> ApnsPeer {
        tidings::install_crypto_provider();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert_pem = certified.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        // Offer HTTP/1.1 too, so a client that falls back to it is caught (APNs would fail it).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let state = Arc::new(Mutex::new(PeerState {
            clock,
            public_key: public_key.to_vec(),
            script: VecDeque::new(),
            unregistered: HashMap::new(),
            bad_tokens: HashSet::new(),
            received: Vec::new(),
            tokens: Vec::new(),
            requests: 0,
            violations: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind apns peer");
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        ApnsPeer { addr, cert_pem, state, server }
    }

    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The peer's self-signed certificate, to trust as the only root.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The next `n` requests get `reply` (they are still checked).
    pub fn script(&self, n: usize, reply: Reply) {
        self.lock().script.extend(std::iter::repeat_n(reply, n));
    }

    /// The app was removed from this device at `at_ms`: 410 Unregistered from now on.
    pub fn unregister(&self, device_token: &str, at_ms: i64) {
        self.lock().unregistered.insert(device_token.to_string(), at_ms);
    }

    /// APNs does not know this token at all: 400 BadDeviceToken.
    pub fn reject_token(&self, device_token: &str) {
        self.lock().bad_tokens.insert(device_token.to_string());
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The distinct provider tokens seen, in order, with their `iat`.
    pub fn provider_tokens(&self) -> Vec<(String, i64)> {
        self.lock().tokens.clone()
    }

    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().expect("apns peer poisoned")
    }
}

impl Drop for ApnsPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(state: Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut s = state.lock().expect("apns peer poisoned");
    s.requests += 1;
    let apns_id = parts
        .headers
        .get("apns-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase());
    let answer = match decide(&mut s, &parts, &body) {
        Ok(()) => Ok(()),
        Err(reply) => Err(reply),
    };
    let answer = match (answer, s.script.pop_front()) {
        (Err(reply), _) => Err(reply),
        (Ok(()), Some(reply)) => Err(reply),
        (Ok(()), None) => Ok(()),
    };
    let response = match answer {
        Ok(()) => Response::builder().status(200).header("apns-id", &apns_id).body(Full::new(Bytes::new())),
        Err(reply) => {
            let mut body = json!({ "reason": reply.reason });
            if let Some(ts) = reply.timestamp {
                body["timestamp"] = json!(ts);
            }
            let mut builder = Response::builder()
                .status(reply.status)
                .header("apns-id", &apns_id)
                .header("content-type", "application/json");
            if let Some(v) = &reply.retry_after {
                builder = builder.header("retry-after", v);
            }
            builder.body(Full::new(Bytes::from(body.to_string())))
        }
    };
    Ok(response.expect("response"))
}

/// Checks one request; records violations and accepted notifications.
fn decide(s: &mut PeerState, parts: &hyper::http::request::Parts, body: &[u8]) -> Result<(), Reply> {
    if parts.version != Version::HTTP_2 {
        s.violations.push(format!("{:?}, expected HTTP/2", parts.version));
        return Err(Reply::new(505, "BadPath"));
    }
    if parts.method != hyper::Method::POST {
        s.violations.push(format!("method {}", parts.method));
        return Err(Reply::new(405, "MethodNotAllowed"));
    }
    let Some(device_token) = parts.uri.path().strip_prefix("/3/device/").map(str::to_string) else {
        s.violations.push(format!("path {}", parts.uri.path()));
        return Err(Reply::new(404, "BadPath"));
    };
    if device_token.len() != 64 || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        s.violations.push(format!("device token {device_token:?} is not 64 hex digits"));
        return Err(Reply::new(400, "BadDeviceToken"));
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);

    // The provider token.
    let Some(jwt) = header("authorization").and_then(|v| v.strip_prefix("bearer ").map(str::to_string)) else {
        s.violations.push("no authorization: bearer header".into());
        return Err(Reply::new(403, "MissingProviderToken"));
    };
    let parsed = match Jwt::parse(&jwt) {
        Ok(p) => p,
        Err(e) => {
            s.violations.push(e);
            return Err(Reply::new(403, "InvalidProviderToken"));
        }
    };
    if parsed.header_str("alg") != Some("ES256") || parsed.header_str("kid") != Some(KEY_ID) {
        s.violations.push(format!("provider token header {}", parsed.header));
        return Err(Reply::new(403, "InvalidProviderToken"));
    }
    if parsed.claim_str("iss") != Some(TEAM_ID) {
        s.violations.push(format!("provider token claims {}", parsed.claims));
        return Err(Reply::new(403, "InvalidProviderToken"));
    }
    // A token signed by another key is the operator's mistake, not a protocol breach.
    if parsed.verify_es256(&s.public_key).is_err() {
        return Err(Reply::new(403, "InvalidProviderToken"));
    }
    let Some(iat) = parsed.claim_i64("iat") else {
        s.violations.push("provider token without a numeric iat".into());
        return Err(Reply::new(403, "InvalidProviderToken"));
    };
    let now = s.clock.now().as_second();
    if now - iat > 3600 {
        s.violations.push(format!("provider token {}s old, more than an hour", now - iat));
        return Err(Reply::new(403, "ExpiredProviderToken"));
    }
    if iat > now + 60 {
        s.violations.push(format!("provider token issued in the future ({iat} > {now})"));
        return Err(Reply::new(403, "InvalidProviderToken"));
    }
    if s.tokens.last().is_none_or(|(t, _)| *t != jwt) {
        if s.tokens.iter().any(|(t, _)| *t == jwt) {
            s.violations.push("an older provider token came back".into());
        }
        // Apple refuses a new token within 20 minutes of the last one.
        if let Some((_, last)) = s.tokens.last()
            && iat - last < 20 * 60
        {
            s.violations.push(format!("a new provider token only {}s after the last", iat - last));
            return Err(Reply::new(429, "TooManyProviderTokenUpdates"));
        }
        s.tokens.push((jwt.clone(), iat));
    }

    // The headers.
    let mut problems = Vec::new();
    match header("apns-topic") {
        Some(t) if t == TOPIC => {}
        other => problems.push((format!("apns-topic {other:?}"), Reply::new(400, "BadTopic"))),
    }
    if header("apns-push-type").as_deref() != Some("alert") {
        problems.push((format!("apns-push-type {:?}", header("apns-push-type")), Reply::new(400, "InvalidPushType")));
    }
    if !matches!(header("apns-priority").as_deref(), Some("10" | "5" | "1")) {
        problems.push((format!("apns-priority {:?}", header("apns-priority")), Reply::new(400, "BadPriority")));
    }
    if header("apns-expiration").and_then(|v| v.parse::<i64>().ok()).is_none() {
        problems
            .push((format!("apns-expiration {:?}", header("apns-expiration")), Reply::new(400, "BadExpirationDate")));
    }
    match header("apns-collapse-id") {
        Some(c) if !c.is_empty() && c.len() <= 64 => {}
        other => problems.push((format!("apns-collapse-id {other:?}"), Reply::new(400, "BadCollapseId"))),
    }
    match header("apns-id") {
        Some(id) if uuid::Uuid::try_parse(&id).is_ok_and(|u| u.hyphenated().to_string() == id.to_lowercase()) => {}
        other => problems.push((format!("apns-id {other:?} is not a canonical uuid"), Reply::new(400, "BadMessageId"))),
    }
    if body.len() > 4096 {
        problems.push((format!("payload of {} bytes", body.len()), Reply::new(413, "PayloadTooLarge")));
    }
    let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let alert = &payload["aps"]["alert"];
    if !alert["title"].is_string() || !alert["body"].is_string() {
        problems.push((format!("payload {payload}"), Reply::new(400, "PayloadEmpty")));
    }
    if let Some((violation, reply)) = problems.into_iter().next() {
        s.violations.push(violation);
        return Err(reply);
    }

    if let Some(at) = s.unregistered.get(&device_token) {
        return Err(Reply { timestamp: Some(*at), ..Reply::new(410, "Unregistered") });
    }
    if s.bad_tokens.contains(&device_token) {
        return Err(Reply::new(400, "BadDeviceToken"));
    }
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("apns-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    s.received.push(Received { device_token, headers, payload, jwt });
    Ok(())
}
