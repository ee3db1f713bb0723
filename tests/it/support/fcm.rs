//! A local stand-in for Google's OAuth token endpoint and the FCM HTTP v1 send API, on one axum
//! server on 127.0.0.1:0.
//!
//! `POST /token` checks the JWT bearer grant as Google does: the form, the RS256 signature
//! against the service account's public key (verified with the `rsa` crate, not the ring code
//! that signed it), and the claims (`iss`, `scope`, `aud`, `iat` and `exp` against the test's
//! clock). It issues access tokens that expire by that clock. `POST
//! /v1/projects/{project}/messages:send` checks the bearer token is one it issued and still
//! valid, the path, and the JSON message exactly, then answers in FCM's shapes (the
//! `google.rpc` error body with `details[].errorCode`).
//!
//! Requests that break the protocol the client promises (a bad signature, wrong claims, an
//! expired token, unknown JSON fields) are answered like Google would and also land in
//! [`FcmPeer::violations`], which tests assert empty.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use rsa::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use sha2::Digest;
use tidings::clock::{Clock, ManualClock};

use super::jwt::Jwt;

pub const PROJECT: &str = "tidings-test";
pub const CLIENT_EMAIL: &str = "tidings-sender@tidings-test.iam.gserviceaccount.com";
pub const PRIVATE_KEY_ID: &str = "5f1e0c6a2b7d4e9f8a3c1b0d9e8f7a6b5c4d3e2f";
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// One RSA key pair per test binary: generating one takes a moment.
pub fn service_key() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("rsa key"))
}

/// A second key, for a service account the peer does not know.
pub fn other_key() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("rsa key"))
}

/// A service account key file as Google hands it out, for `key`, naming `token_uri`.
pub fn service_account_json(key: &rsa::PrivateKey, token_uri: &str) -> String {
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs8 pem");
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": pem.as_str(),
        "client_email": CLIENT_EMAIL,
        "client_id": "104242424242424242424",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/tidings-sender%40tidings-test.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// How the send endpoint answers a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub rpc_status: &'static str,
    pub message: String,
    pub fcm_code: Option<&'static str>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn new(status: u16, rpc_status: &'static str, message: &str, fcm_code: Option<&'static str>) -> Reply {
        Reply { status, rpc_status, message: message.to_string(), fcm_code, retry_after: None }
    }

    pub fn quota_exceeded(retry_after: &str) -> Reply {
        Reply {
            retry_after: Some(retry_after.to_string()),
            ..Reply::new(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
                Some("QUOTA_EXCEEDED"),
            )
        }
    }

    pub fn unavailable() -> Reply {
        Reply::new(503, "UNAVAILABLE", "The service is currently unavailable.", Some("UNAVAILABLE"))
    }

    pub fn internal() -> Reply {
        Reply::new(500, "INTERNAL", "Internal error encountered.", Some("INTERNAL"))
    }

    pub fn sender_id_mismatch() -> Reply {
        Reply::new(403, "PERMISSION_DENIED", "SenderId mismatch", Some("SENDER_ID_MISMATCH"))
    }

    pub fn invalid_argument(message: &str) -> Reply {
        Reply::new(400, "INVALID_ARGUMENT", message, Some("INVALID_ARGUMENT"))
    }

    pub fn unauthenticated() -> Reply {
        Reply::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        )
    }

    fn response(&self) -> Response {
        let mut details = vec![];
        if let Some(code) = self.fcm_code {
            details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}));
        }
        let body = json!({"error": {"code": self.status, "message": self.message, "status": self.rpc_status, "details": details}});
        let mut response = (StatusCode::from_u16(self.status).unwrap(), axum::Json(body)).into_response();
        if let Some(v) = &self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        response
    }
}

/// How the token endpoint answers, when scripted.
#[derive(Debug, Clone)]
pub struct TokenReply {
    pub status: u16,
    pub body: Value,
}

/// One message the peer accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub token: String,
    pub title: String,
    pub body: String,
    pub data: Value,
    /// The access token it came with.
    pub bearer: String,
    /// The name the peer answered with.
    pub name: String,
}

struct Issued {
    token: String,
    expires_at: Timestamp,
    revoked: bool,
}

struct PeerState {
    clock: ManualClock,
    public_key: rsa::PublicKey,
    audience: String,
    expires_in: i64,
    issued: Vec<Issued>,
    token_requests: usize,
    token_script: VecDeque<TokenReply>,
    script: VecDeque<Reply>,
    unregistered: HashSet<String>,
    received: Vec<Received>,
    sends: usize,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<PeerState>>;

/// The running peer; stops when dropped.
pub struct FcmPeer {
    addr: SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FcmPeer {
    /// A peer that knows the service account of [`service_key`], expects `aud` to be its own
    /// `/token` URL, and reads time from `clock`.
    pub async fn start(clock: ManualClock) -> FcmPeer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fcm peer");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(PeerState {
            clock,
            public_key: service_key().to_public_key(),
            audience: format!("http://{addr}/token"),
            expires_in: 3599,
            issued: Vec::new(),
            token_requests: 0,
            token_script: VecDeque::new(),
            script: VecDeque::new(),
            unregistered: HashSet::new(),
            received: Vec::new(),
            sends: 0,
            violations: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("fcm peer") });
        FcmPeer { addr, state, server }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The `aud` the token endpoint accepts (its own URL unless told otherwise).
    pub fn expect_audience(&self, audience: &str) {
        self.lock().audience = audience.to_string();
    }

    /// The lifetime of the access tokens it issues.
    pub fn set_expires_in(&self, secs: i64) {
        self.lock().expires_in = secs;
    }

    /// The next `n` sends get `reply` (they are still checked).
    pub fn script(&self, n: usize, reply: Reply) {
        self.lock().script.extend(std::iter::repeat_n(reply, n));
    }

    /// The next token request gets this answer.
    pub fn script_token(&self, status: u16, body: Value) {
        self.lock().token_script.push_back(TokenReply { status, body });
    }

    /// This registration token is no longer valid (the app was uninstalled).
    pub fn unregister(&self, token: &str) {
        self.lock().unregistered.insert(token.to_string());
    }

    /// Every access token issued so far stops working (as after a key rotation).
    pub fn revoke_tokens(&self) {
        for issued in &mut self.lock().issued {
            issued.revoked = true;
        }
    }

    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// Requests to the send endpoint, whatever the answer.
    pub fn sends(&self) -> usize {
        self.lock().sends
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().expect("fcm peer poisoned")
    }
}

impl Drop for FcmPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("fcm peer poisoned");
    if method != Method::POST {
        s.violations.push(format!("method {method} {}", uri.path()));
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if uri.path() == "/token" { token(&mut s, &headers, &body) } else { send(&mut s, &uri, &headers, &body) }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// The token endpoint: the JWT bearer grant.
fn token(s: &mut PeerState, headers: &HeaderMap, body: &[u8]) -> Response {
    s.token_requests += 1;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/x-www-form-urlencoded" {
        s.violations.push(format!("token request content type {content_type:?}"));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if form.len() != 2 {
        s.violations.push(format!("token request has fields {:?}", form.iter().map(|(k, _)| k).collect::<Vec<_>>()));
    }
    if field("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        s.violations.push(format!("grant_type {:?}", field("grant_type")));
        return oauth_error(400, "unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = field("assertion") else {
        s.violations.push("no assertion".into());
        return oauth_error(400, "invalid_request", "Missing required parameter: assertion");
    };
    // A scripted answer still checks the request.
    let scripted = s.token_script.pop_front();
    match check_assertion(s, &assertion) {
        Ok(()) => {}
        Err(Refusal::Signature) => return oauth_error(400, "invalid_grant", "Invalid JWT Signature."),
        Err(Refusal::Violation(v)) => {
            s.violations.push(v.clone());
            return oauth_error(400, "invalid_grant", &v);
        }
    }
    if let Some(reply) = scripted {
        return (StatusCode::from_u16(reply.status).unwrap(), axum::Json(reply.body)).into_response();
    }
    let n = s.issued.len() + 1;
    let token = format!("ya29.peer-token-{n}");
    let expires_at = s.clock.now() + SignedDuration::from_secs(s.expires_in);
    s.issued.push(Issued { token: token.clone(), expires_at, revoked: false });
    axum::Json(json!({"access_token": token, "expires_in": s.expires_in, "token_type": "Bearer"})).into_response()
}

enum Refusal {
    /// Signed with a key the peer does not know: Google's answer, not the client's protocol bug.
    Signature,
    Violation(String),
}

fn check_assertion(s: &PeerState, assertion: &str) -> Result<(), Refusal> {
    let jwt = Jwt::parse(assertion).map_err(Refusal::Violation)?;
    if jwt.header_str("alg") != Some("RS256") {
        return Err(Refusal::Violation(format!("jwt alg {:?}", jwt.header.get("alg"))));
    }
    if let Some(kid) = jwt.header.get("kid")
        && kid != PRIVATE_KEY_ID
    {
        return Err(Refusal::Violation(format!("jwt kid {kid}")));
    }
    let digest = sha2::Sha256::digest(jwt.signing_input.as_bytes());
    let scheme = rsa::Pkcs1v15Sign::new::<sha2::Sha256>();
    if s.public_key.verify(scheme, &digest, &jwt.signature).is_err() {
        return Err(Refusal::Signature);
    }
    let expect = |name: &str, value: &str| -> Result<(), Refusal> {
        match jwt.claim_str(name) {
            Some(v) if v == value => Ok(()),
            other => Err(Refusal::Violation(format!("jwt {name} {other:?}, expected {value:?}"))),
        }
    };
    expect("iss", CLIENT_EMAIL)?;
    expect("scope", SCOPE)?;
    expect("aud", &s.audience)?;
    let now = s.clock.now().as_second();
    let (Some(iat), Some(exp)) = (jwt.claim_i64("iat"), jwt.claim_i64("exp")) else {
        return Err(Refusal::Violation("jwt without numeric iat and exp".into()));
    };
    if (iat - now).abs() > 60 {
        return Err(Refusal::Violation(format!("jwt iat {iat} is not now ({now})")));
    }
    if exp <= now || exp - iat > 3600 {
        return Err(Refusal::Violation(format!("jwt exp {exp}: must be after now and at most an hour after iat")));
    }
    let known = ["iss", "scope", "aud", "iat", "exp", "sub"];
    if let Some(extra) = jwt.claims.as_object().unwrap().keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Refusal::Violation(format!("unexpected jwt claim {extra}")));
    }
    Ok(())
}

/// The send endpoint.
fn send(s: &mut PeerState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    s.sends += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let now = s.clock.now();
    let Some(bearer) = bearer else {
        s.violations.push("send without a bearer token".into());
        return Reply::unauthenticated().response();
    };
    match s.issued.iter().find(|i| i.token == bearer) {
        None => {
            s.violations.push(format!("bearer token {bearer:?} was never issued"));
            return Reply::unauthenticated().response();
        }
        Some(i) if i.revoked => return Reply::unauthenticated().response(),
        Some(i) if i.expires_at <= now => {
            // The client's cache should have replaced it before it expired.
            s.violations.push(format!("bearer token {bearer:?} used after it expired"));
            return Reply::unauthenticated().response();
        }
        Some(_) => {}
    }
    let expected_path = format!("/v1/projects/{PROJECT}/messages:send");
    if uri.path() != expected_path {
        s.violations.push(format!("path {}, expected {expected_path}", uri.path()));
        return Reply::new(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", None)
            .response();
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/json" {
        s.violations.push(format!("content type {content_type:?}"));
    }
    let message = match check_message(body) {
        Ok(m) => m,
        Err(v) => {
            s.violations.push(v.clone());
            return Reply::invalid_argument(&v).response();
        }
    };
    if let Some(reply) = s.script.pop_front() {
        return reply.response();
    }
    if s.unregistered.contains(&message.token) {
        return Reply::new(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED")).response();
    }
    let name = format!("projects/{PROJECT}/messages/0:{}%{:016x}", 1_700_000_000_000u64 + s.sends as u64, s.sends);
    s.received.push(Received { bearer, name: name.clone(), ..message });
    axum::Json(json!({"name": name})).into_response()
}

/// The message JSON, exactly: `{"message": {"token", "notification": {"title", "body"}, "data"}}`
/// with string data values, nothing else.
fn check_message(body: &[u8]) -> Result<Received, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not json: {e}"))?;
    let only = |v: &Value, what: &str, allowed: &[&str]| -> Result<(), String> {
        let object = v.as_object().ok_or(format!("{what} is not an object"))?;
        match object.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown field {what}.{k}")),
            None => Ok(()),
        }
    };
    only(&value, "body", &["message", "validate_only"])?;
    let message = &value["message"];
    only(message, "message", &["token", "notification", "data"])?;
    let notification = &message["notification"];
    only(notification, "message.notification", &["title", "body", "image"])?;
    let text = |v: &Value, what: &str| v.as_str().map(str::to_string).ok_or(format!("{what} is not a string"));
    let data = message.get("data").cloned().unwrap_or(json!({}));
    for (k, v) in data.as_object().ok_or("message.data is not an object")? {
        if !v.is_string() {
            return Err(format!("message.data.{k} is not a string"));
        }
        if k == "from" || k == "notification" || k == "message_type" || k.starts_with("google") || k.starts_with("gcm")
        {
            return Err(format!("message.data.{k} is a reserved key"));
        }
    }
    Ok(Received {
        token: text(&message["token"], "message.token")?,
        title: text(&notification["title"], "message.notification.title")?,
        body: text(&notification["body"], "message.notification.body")?,
        data,
        bearer: String::new(),
        name: String::new(),
    })
}
