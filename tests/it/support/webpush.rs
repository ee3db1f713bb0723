//! A local stand-in for a Web Push service and the browsers subscribed to it, on one axum server
//! on 127.0.0.1:0 (a port that is not the scheme's default, which is the point: the VAPID `aud`
//! must carry it).
//!
//! As the push service it checks each request as RFC 8030 and RFC 8292 say: `TTL`, `Urgency`,
//! `Topic`, `Content-Encoding: aes128gcm`, and `Authorization: vapid t=…, k=…` with the JWT's
//! ES256 signature verified (ring) against `k`, `k` equal to the application server key the
//! subscription was made with, `aud` the endpoint's origin with its port, `exp` within 24 hours
//! and `sub` a mailto: or https: URI. As the browser it decrypts the RFC 8291 payload with the
//! subscription's private key (p256 ECDH, the `hkdf` and `aes-gcm` crates, not the ring code that
//! encrypted it) and keeps the plaintext.
//!
//! Breaches of the protocol land in [`WebPushPeer::violations`], which tests assert empty.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tidings::clock::{Clock, ManualClock};

use super::jwt::Jwt;

/// A browser's subscription, as `PushSubscription.toJSON()` gives it, and its secrets.
#[derive(Clone)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    secret: p256::SecretKey,
    auth_bytes: Vec<u8>,
    /// The `applicationServerKey` it was made with.
    server_key: String,
}

/// How the peer answers, when scripted.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
    /// Answer without a `Location` header.
    pub no_location: bool,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Reply {
        Reply { status, body: body.to_string(), retry_after: None, no_location: false }
    }

    pub fn too_many_requests(retry_after: &str) -> Reply {
        Reply { retry_after: Some(retry_after.to_string()), ..Reply::status(429, "") }
    }

    /// 201 Created without a `Location` (some services leave it out).
    pub fn created_without_location() -> Reply {
        Reply { no_location: true, ..Reply::status(201, "") }
    }
}

/// One message the peer accepted and the browser decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    pub endpoint: String,
    pub plaintext: Value,
    pub headers: HashMap<String, String>,
    pub location: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

struct PeerState {
    addr: SocketAddr,
    clock: ManualClock,
    subscriptions: HashMap<String, Subscription>,
    /// Endpoints whose subscription expired or was revoked.
    gone: Vec<String>,
    script: VecDeque<Reply>,
    received: Vec<Received>,
    requests: usize,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<PeerState>>;

/// The running peer; stops when dropped.
pub struct WebPushPeer {
    addr: SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl WebPushPeer {
    pub async fn start(clock: ManualClock) -> WebPushPeer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind webpush peer");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(PeerState {
            addr,
            clock,
            subscriptions: HashMap::new(),
            gone: Vec::new(),
            script: VecDeque::new(),
            received: Vec::new(),
            requests: 0,
            violations: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("webpush peer") });
        WebPushPeer { addr, state, server }
    }

    /// A browser subscribes with the sender's VAPID public key: a new endpoint, key pair and
    /// authentication secret.
    pub fn subscribe(&self, application_server_key: &str) -> Subscription {
        let secret = loop {
            if let Ok(k) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break k;
            }
        };
        let auth_bytes = rand::random::<[u8; 16]>().to_vec();
        let mut s = self.lock();
        let endpoint = format!("http://{}/wpush/v2/sub-{}", self.addr, s.subscriptions.len() + 1);
        let subscription = Subscription {
            endpoint: endpoint.clone(),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_sec1_bytes()),
            auth: URL_SAFE_NO_PAD.encode(&auth_bytes),
            secret,
            auth_bytes,
            server_key: application_server_key.to_string(),
        };
        s.subscriptions.insert(endpoint, subscription.clone());
        subscription
    }

    /// The user revoked the permission (or the subscription expired): 410 from now on.
    pub fn unsubscribe(&self, endpoint: &str) {
        self.lock().gone.push(endpoint.to_string());
    }

    /// An endpoint on this server that was never handed out (404).
    pub fn unknown_endpoint(&self) -> String {
        format!("http://{}/wpush/v2/never-issued", self.addr)
    }

    /// The origin as the VAPID `aud` must name it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, n: usize, reply: Reply) {
        self.lock().script.extend(std::iter::repeat_n(reply, n));
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().expect("webpush peer poisoned")
    }
}

impl Drop for WebPushPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn answer(status: u16, body: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response()
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("webpush peer poisoned");
    s.requests += 1;
    let origin = format!("http://{}", s.addr);
    let endpoint = format!("{origin}{}", uri.path());
    if method != Method::POST {
        s.violations.push(format!("method {method}"));
        return answer(405, "");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);

    // RFC 8030 headers.
    let mut problems = Vec::new();
    if header("ttl").and_then(|v| v.parse::<u64>().ok()).is_none() {
        problems.push(format!("TTL {:?}", header("ttl")));
    }
    if let Some(u) = header("urgency")
        && !["very-low", "low", "normal", "high"].contains(&u.as_str())
    {
        problems.push(format!("Urgency {u:?}"));
    }
    if let Some(t) = header("topic")
        && (t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        problems.push(format!("Topic {t:?} is not at most 32 base64url characters"));
    }
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        problems.push(format!("Content-Encoding {:?}", header("content-encoding")));
    }
    if body.len() > 4096 {
        s.violations.push(format!("a body of {} bytes", body.len()));
        return answer(413, "Payload Too Large");
    }
    if !problems.is_empty() {
        s.violations.extend(problems);
        return answer(400, "Bad Request");
    }

    // RFC 8292: the push service checks VAPID before it looks at the subscription.
    let vapid = match check_vapid(&s, header("authorization").as_deref(), &origin) {
        Ok(v) => v,
        Err(v) => {
            s.violations.push(v);
            return answer(401, "Unauthorized");
        }
    };
    if s.gone.contains(&endpoint) {
        return answer(
            410,
            r#"{"code":410,"errno":106,"error":"Gone","message":"Request did not validate Invalid token"}"#,
        );
    }
    let Some(subscription) = s.subscriptions.get(&endpoint).cloned() else {
        return answer(404, r#"{"code":404,"errno":102,"error":"Not Found"}"#);
    };
    // The subscription is bound to the key it was made with.
    if vapid != subscription.server_key {
        return answer(403, "the vapid key does not match the one the subscription was made with");
    }
    let mut omit_location = false;
    if let Some(reply) = s.script.pop_front() {
        if reply.status != 201 {
            let mut response = answer(reply.status, &reply.body);
            if let Some(v) = reply.retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&v).unwrap());
            }
            return response;
        }
        omit_location = reply.no_location;
    }

    // The browser's half.
    let plaintext = match decrypt(&body, &subscription) {
        Ok(p) => p,
        Err(e) => {
            s.violations.push(format!("cannot decrypt: {e}"));
            return answer(400, "");
        }
    };
    let plaintext: Value = match serde_json::from_slice(&plaintext) {
        Ok(v) => v,
        Err(e) => {
            s.violations.push(format!("the payload is not json: {e}"));
            Value::Null
        }
    };
    let location = format!("{origin}/m/{}", s.received.len() + 1);
    let headers = headers
        .iter()
        .filter(|(name, _)| ["ttl", "urgency", "topic", "content-encoding", "content-type"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    s.received.push(Received { endpoint, plaintext, headers, location: location.clone() });
    let mut response = answer(201, "");
    if !omit_location {
        response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).unwrap());
    }
    response
}

/// `vapid t=<jwt>, k=<key>`: the key, when the JWT verifies against it and its claims hold.
fn check_vapid(s: &PeerState, authorization: Option<&str>, origin: &str) -> Result<String, String> {
    let value = authorization.ok_or("no Authorization header")?;
    let params = value.strip_prefix("vapid ").ok_or(format!("Authorization {value:?} is not the vapid scheme"))?;
    let mut t = None;
    let mut k = None;
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("k", v)) => k = Some(v.to_string()),
            _ => return Err(format!("vapid parameter {part:?}")),
        }
    }
    let (Some(t), Some(k)) = (t, k) else { return Err("vapid without t or k".into()) };
    let key = URL_SAFE_NO_PAD.decode(&k).map_err(|_| format!("k {k:?} is not unpadded base64url"))?;
    if key.len() != 65 || key[0] != 4 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let jwt = Jwt::parse(&t)?;
    if jwt.header_str("alg") != Some("ES256") {
        return Err(format!("vapid jwt header {}", jwt.header));
    }
    jwt.verify_es256(&key)?;
    if jwt.claim_str("aud") != Some(origin) {
        return Err(format!("vapid aud {:?}, expected the endpoint's origin {origin:?}", jwt.claims.get("aud")));
    }
    let now = s.clock.now().as_second();
    match jwt.claim_i64("exp") {
        Some(exp) if exp > now && exp <= now + 24 * 3600 => {}
        other => return Err(format!("vapid exp {other:?}: must be within 24 hours of now ({now})")),
    }
    match jwt.claim_str("sub") {
        Some(sub) if sub.starts_with("mailto:") || sub.starts_with("https:") => {}
        other => return Err(format!("vapid sub {other:?}")),
    }
    Ok(k)
}

/// RFC 8291 decryption of a single-record `aes128gcm` body, as a browser does it.
fn decrypt(body: &[u8], subscription: &Subscription) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("shorter than the aes128gcm header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
    let idlen = body[20] as usize;
    if idlen != 65 || body.len() < 21 + idlen + 17 {
        return Err(format!("keyid of {idlen} bytes; RFC 8291 puts the 65-byte sender key there"));
    }
    let as_public = &body[21..21 + idlen];
    let ciphertext = &body[21 + idlen..];
    if ciphertext.len() > rs as usize {
        return Err(format!("a record of {} bytes, more than rs = {rs}", ciphertext.len()));
    }
    let sender = p256::PublicKey::from_sec1_bytes(as_public).map_err(|_| "the keyid is not a P-256 point")?;
    let shared = subscription.secret.diffie_hellman(&sender);
    let ua_public = subscription.secret.public_key().to_sec1_bytes();

    let expand = |salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]| {
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, out).expect("hkdf length");
    };
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    expand(&subscription.auth_bytes, shared.raw_secret_bytes(), &key_info, &mut ikm);
    let mut cek = [0u8; 16];
    expand(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
    let mut nonce = [0u8; 12];
    expand(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);

    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap();
    let nonce = aes_gcm::Nonce::from(nonce);
    let mut plain = cipher.decrypt(&nonce, ciphertext).map_err(|_| "the record does not decrypt")?;
    // The last record ends with 0x02, then any zero padding.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    match plain.pop() {
        Some(2) => Ok(plain),
        other => Err(format!("the last record's delimiter is {other:?}, expected 2")),
    }
}
