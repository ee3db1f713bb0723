//! A local stand-in for Aliyun's SMS API (dysmsapi 2017-05-25, `SendSms`): an axum server on
//! 127.0.0.1:0 that verifies each request as Aliyun's gateway would (the V3 `ACS3-HMAC-SHA256`
//! signature recomputed from the raw request, the signed headers, the body hash, the date's
//! skew, a fresh nonce, the action and version), checks the parameters, answers in Aliyun's
//! shapes, and records what it got.
//!
//! The signature is recomputed here independently of the client's code, from what came over the
//! wire: the query is decoded and canonicalized again, so an encoding the client signed one way
//! and sent another fails as it would at Aliyun. Anything our client promises and broke lands in
//! [`AliyunPeer::violations`], which tests assert empty.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A mainland number Aliyun rejects as illegal (`isv.MOBILE_NUMBER_ILLEGAL`), as sent: no `+86`.
pub const ILLEGAL_NUMBER: &str = "13800000000";

/// Every parameter `SendSms` accepts; anything else is a violation.
const KNOWN_PARAMETERS: &[&str] =
    &["PhoneNumbers", "SignName", "TemplateCode", "TemplateParam", "SmsUpExtendCode", "OutId"];

/// How the peer answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Aliyun's JSON error body (`Code`, `Message`, `RequestId`), with an HTTP status.
    Error { status: u16, code: String, message: String, retry_after: Option<String> },
    /// A body that is not Aliyun's (a proxy's error page).
    Raw { status: u16, body: String },
    /// Keep the request open and never answer.
    Hang,
}

impl Reply {
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Reply::Error { status, code: code.to_string(), message: message.to_string(), retry_after: None }
    }

    /// The gateway's flow control: HTTP 400 `Throttling.User`.
    pub fn throttled() -> Self {
        Reply::error(400, "Throttling.User", "Request was denied due to user flow control.")
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Reply::Raw { status, body: body.to_string() }
    }
}

/// One message the peer accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The decoded query parameters, in the order sent.
    pub params: Vec<(String, String)>,
    pub biz_id: String,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The running peer; stops when dropped.
pub struct AliyunPeer {
    addr: SocketAddr,
    state: Arc<Mutex<PeerState>>,
    server: tokio::task::JoinHandle<()>,
}

struct PeerState {
    access_key_id: String,
    secret: String,
    script: VecDeque<Reply>,
    numbers: HashMap<String, Reply>,
    nonces: HashSet<String>,
    received: Vec<Received>,
    violations: Vec<String>,
    count: usize,
    next_biz_id: u64,
}

type Shared = Arc<Mutex<PeerState>>;

impl AliyunPeer {
    /// Starts a peer that accepts this AccessKey pair.
    pub async fn start(access_key_id: &str, secret: &str) -> AliyunPeer {
        let mut numbers = HashMap::new();
        numbers.insert(ILLEGAL_NUMBER.to_string(), Reply::error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"));
        let state = Arc::new(Mutex::new(PeerState {
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            script: VecDeque::new(),
            numbers,
            nonces: HashSet::new(),
            received: Vec::new(),
            violations: Vec::new(),
            count: 0,
            next_biz_id: 900619746936498440,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind aliyun peer");
        let addr = listener.local_addr().expect("peer address");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("aliyun peer");
        });
        AliyunPeer { addr, state, server }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` requests get `reply`, whatever they say (they are still checked).
    pub fn script(&self, n: usize, reply: Reply) {
        self.lock().script.extend(std::iter::repeat_n(reply, n));
    }

    /// A well-formed request to `number` (as Aliyun receives it) gets `reply`.
    pub fn on_number(&self, number: &str, reply: Reply) {
        self.lock().numbers.insert(number.to_string(), reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn count(&self) -> usize {
        self.lock().count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().expect("peer state poisoned")
    }
}

impl Drop for AliyunPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match decide(&state, &method, &uri, &headers, &body) {
        Answer::Reply(Reply::Hang) => std::future::pending::<Response>().await,
        Answer::Reply(reply) => reply_response(reply),
        Answer::Sent(biz_id) => {
            let body = json!({"RequestId": request_id(), "Message": "OK", "BizId": biz_id, "Code": "OK"});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

enum Answer {
    Reply(Reply),
    Sent(String),
}

/// Checks one request and decides the answer; records violations and accepted messages.
fn decide(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Answer {
    let mut s = state.lock().expect("peer state poisoned");
    s.count += 1;
    let mut violations = Vec::new();
    let mut aliyun_says: Option<Reply> = None;

    if method != Method::POST {
        violations.push(format!("method {method}, expected POST"));
    }
    if uri.path() != "/" {
        violations.push(format!("path {}, expected / (an RPC call)", uri.path()));
        say(Reply::error(404, "InvalidAction.NotFound", "Specified api is not found"), &mut aliyun_says);
    }
    let raw_query = uri.query().unwrap_or("");
    let params: Vec<(String, String)> =
        form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();

    // The signature, as the gateway recomputes it.
    match verify_signature(&s, method, raw_query, &params, headers, body) {
        Ok(()) => {}
        Err((violation, reply)) => {
            violations.push(violation);
            say(reply, &mut aliyun_says);
        }
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let nonce = header("x-acs-signature-nonce").to_string();
    if !nonce.is_empty() && !s.nonces.insert(nonce) {
        violations.push("x-acs-signature-nonce used twice".to_string());
        say(Reply::error(400, "SignatureNonceUsed", "Specified signature nonce was used already."), &mut aliyun_says);
    }
    if header("x-acs-action") != "SendSms" {
        violations.push(format!("x-acs-action {:?}, expected SendSms", header("x-acs-action")));
        say(Reply::error(404, "InvalidAction.NotFound", "Specified api is not found"), &mut aliyun_says);
    }
    if header("x-acs-version") != "2017-05-25" {
        violations.push(format!("x-acs-version {:?}, expected 2017-05-25", header("x-acs-version")));
        say(Reply::error(400, "InvalidVersion", "Specified parameter Version is not valid."), &mut aliyun_says);
    }
    if !body.is_empty() {
        violations.push("a body; SendSms takes its parameters in the query".to_string());
    }

    // The parameters.
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &params {
        if !KNOWN_PARAMETERS.contains(&name.as_str()) {
            violations.push(format!("unknown parameter {name:?}"));
        }
        if seen.contains(&name.as_str()) {
            violations.push(format!("parameter {name:?} sent twice"));
        }
        seen.push(name);
        if value.contains('\u{fffd}') {
            violations.push(format!("parameter {name:?} is not valid utf-8 after decoding"));
        }
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let phone = param("PhoneNumbers");
    if phone.is_empty() {
        violations.push("no PhoneNumbers".to_string());
        say(Reply::error(200, "MissingPhoneNumbers", "PhoneNumbers is mandatory for this action."), &mut aliyun_says);
    } else if !aliyun_number(phone) {
        violations.push(format!("PhoneNumbers {phone:?} is neither 11 mainland digits nor country code + number"));
        say(Reply::error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"), &mut aliyun_says);
    }
    if param("SignName").is_empty() {
        violations.push("no SignName".to_string());
        say(Reply::error(200, "MissingSignName", "SignName is mandatory for this action."), &mut aliyun_says);
    }
    let code = param("TemplateCode");
    if !code.strip_prefix("SMS_").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        violations.push(format!("TemplateCode {code:?} is not SMS_ and digits"));
        say(Reply::error(200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑)"), &mut aliyun_says);
    }
    let template_param = param("TemplateParam");
    if !template_param.is_empty() {
        let ok = serde_json::from_str::<Value>(template_param)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.values().all(Value::is_string)))
            .unwrap_or(false);
        if !ok {
            violations.push(format!("TemplateParam {template_param:?} is not a JSON object of strings"));
            say(Reply::error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法"), &mut aliyun_says);
        }
    }
    if param("OutId").len() > 256 {
        violations.push("OutId longer than 256".to_string());
    }

    s.violations.extend(violations);
    if let Some(reply) = s.script.pop_front() {
        return Answer::Reply(reply);
    }
    if let Some(reply) = aliyun_says {
        return Answer::Reply(reply);
    }
    if let Some(reply) = s.numbers.get(phone) {
        return Answer::Reply(reply.clone());
    }
    s.next_biz_id += 1;
    let biz_id = format!("{}^0", s.next_biz_id);
    s.received.push(Received { params, biz_id: biz_id.clone() });
    Answer::Sent(biz_id)
}

/// Recomputes the V3 signature from the request as received. An error is the violation and
/// Aliyun's answer.
fn verify_signature(
    s: &PeerState,
    method: &Method,
    raw_query: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), (String, Reply)> {
    let incomplete = |what: String| {
        (what, Reply::error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."))
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(rest) = authorization.strip_prefix("ACS3-HMAC-SHA256 ") else {
        return Err(incomplete(format!("authorization {authorization:?} is not ACS3-HMAC-SHA256")));
    };
    let mut fields = HashMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            fields.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature"))
    else {
        return Err(incomplete(format!("authorization lacks Credential, SignedHeaders or Signature: {rest:?}")));
    };
    if *credential != s.access_key_id {
        return Err((
            format!("credential {credential:?} is not the AccessKey ID"),
            Reply::error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."),
        ));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = signed.clone();
    sorted.sort();
    if signed != sorted || signed.iter().any(|h| h.to_lowercase() != *h) {
        return Err(incomplete(format!("SignedHeaders {signed_headers:?} are not lower case and sorted")));
    }
    for required in
        ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"]
    {
        if !signed.contains(&required) {
            return Err(incomplete(format!("{required} is not signed")));
        }
    }
    for name in headers.keys() {
        let name = name.as_str();
        if (name.starts_with("x-acs-") || name == "content-type") && !signed.contains(&name) {
            return Err(incomplete(format!("header {name} is sent but not signed")));
        }
    }
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    let body_hash = hex(&Sha256::digest(body));
    if value("x-acs-content-sha256") != body_hash {
        return Err(incomplete(format!(
            "x-acs-content-sha256 {:?} is not the body's hash",
            value("x-acs-content-sha256")
        )));
    }
    let date = jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%SZ", value("x-acs-date"))
        .ok()
        .and_then(|civil| jiff::tz::Offset::UTC.to_timestamp(civil).ok())
        .ok_or(());
    match date {
        Ok(at) if (jiff::Timestamp::now().as_second() - at.as_second()).abs() <= 15 * 60 => {}
        Ok(_) => {
            return Err((
                "x-acs-date is more than 15 minutes off".to_string(),
                Reply::error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."),
            ));
        }
        Err(_) => {
            return Err((
                format!("x-acs-date {:?} is not yyyy-MM-ddTHH:mm:ssZ", value("x-acs-date")),
                Reply::error(
                    400,
                    "InvalidTimeStamp.Format",
                    "Specified time stamp or date value is not well formatted.",
                ),
            ));
        }
    }
    // The query as the gateway canonicalizes what it decoded: RFC 3986, sorted.
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (rfc3986(k), rfc3986(v))).collect();
    encoded.sort();
    let canonical_query = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_headers: String = signed.iter().map(|h| format!("{h}:{}\n", value(h))).collect();
    let canonical_request =
        format!("{method}\n/\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_hash}");
    let string_to_sign = format!("ACS3-HMAC-SHA256\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let mut mac = Hmac::<Sha256>::new_from_slice(s.secret.as_bytes()).expect("hmac key");
    mac.update(string_to_sign.as_bytes());
    let expected = hex(&mac.finalize().into_bytes());
    if *signature != expected {
        let sent_differently = raw_query != canonical_query;
        return Err((
            format!(
                "signature does not match (query as sent {raw_query:?}, canonical {canonical_query:?}, differs: {sent_differently})"
            ),
            Reply::error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."),
        ));
    }
    Ok(())
}

/// Keeps Aliyun's first objection.
fn say(reply: Reply, slot: &mut Option<Reply>) {
    if slot.is_none() {
        *slot = Some(reply);
    }
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Error { status, code, message, retry_after } => {
            let status = StatusCode::from_u16(status).expect("scripted status");
            let body = json!({"RequestId": request_id(), "Code": code, "Message": message});
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).expect("retry-after"));
            }
            response
        }
        Reply::Raw { status, body } => {
            let status = StatusCode::from_u16(status).expect("scripted status");
            (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
        }
        Reply::Hang => unreachable!("hang is handled before answering"),
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// Mainland: 11 digits starting with 1 (no `+86`); elsewhere a country code and the number,
/// digits only (no `+`, no `00`).
fn aliyun_number(s: &str) -> bool {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mainland_with_prefix = s.len() == 13 && s.starts_with("861");
    digits && (7..=15).contains(&s.len()) && !s.starts_with('0') && !mainland_with_prefix
}

fn rfc3986(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
