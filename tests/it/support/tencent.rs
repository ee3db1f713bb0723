//! A local stand-in for Tencent Cloud SMS (API 3.0, `SendSms`, version 2021-01-11): an axum
//! server on 127.0.0.1:0 that verifies each request as Tencent's gateway would (the
//! `TC3-HMAC-SHA256` signature recomputed from the raw request, the credential scope's date and
//! service, the timestamp's skew, the `X-TC-*` headers, the JSON body), answers in Tencent's
//! shapes (`Response.Error`, or a `SendStatusSet`), and records what it got. Broken promises
//! land in [`TencentPeer::violations`], which tests assert empty.

use std::collections::{HashMap, VecDeque};
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

/// A number Tencent answers with `InvalidParameterValue.IncorrectPhoneNumber` in its status.
pub const INCORRECT_NUMBER: &str = "+8610000000000";

/// The body fields `SendSms` accepts; anything else is a violation.
const KNOWN_FIELDS: &[&str] = &[
    "PhoneNumberSet",
    "SmsSdkAppId",
    "TemplateId",
    "SignName",
    "TemplateParamSet",
    "ExtendCode",
    "SessionContext",
    "SenderId",
];

/// How the peer answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `Response.Error` with this code and message (HTTP 200, as Tencent answers).
    Error {
        code: String,
        message: String,
    },
    /// One `SendStatusSet` entry with this code (the number-level outcome).
    Status {
        code: String,
        message: String,
    },
    /// Not Tencent's body, with a status and an optional `Retry-After`.
    Raw {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    Hang,
}

impl Reply {
    pub fn error(code: &str, message: &str) -> Self {
        Reply::Error { code: code.to_string(), message: message.to_string() }
    }

    pub fn status(code: &str, message: &str) -> Self {
        Reply::Status { code: code.to_string(), message: message.to_string() }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub serial_no: String,
    pub region: String,
}

pub struct TencentPeer {
    addr: SocketAddr,
    state: Arc<Mutex<PeerState>>,
    server: tokio::task::JoinHandle<()>,
}

struct PeerState {
    secret_id: String,
    secret_key: String,
    sdk_app_id: String,
    script: VecDeque<Reply>,
    numbers: HashMap<String, Reply>,
    received: Vec<Received>,
    violations: Vec<String>,
    count: usize,
}

type Shared = Arc<Mutex<PeerState>>;

impl TencentPeer {
    /// Starts a peer that accepts this key pair and SMS application.
    pub async fn start(secret_id: &str, secret_key: &str, sdk_app_id: &str) -> TencentPeer {
        let mut numbers = HashMap::new();
        numbers.insert(
            INCORRECT_NUMBER.to_string(),
            Reply::status("InvalidParameterValue.IncorrectPhoneNumber", "incorrect number format"),
        );
        let state = Arc::new(Mutex::new(PeerState {
            secret_id: secret_id.to_string(),
            secret_key: secret_key.to_string(),
            sdk_app_id: sdk_app_id.to_string(),
            script: VecDeque::new(),
            numbers,
            received: Vec::new(),
            violations: Vec::new(),
            count: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tencent peer");
        let addr = listener.local_addr().expect("peer address");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("tencent peer");
        });
        TencentPeer { addr, state, server }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, n: usize, reply: Reply) {
        self.lock().script.extend(std::iter::repeat_n(reply, n));
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

impl Drop for TencentPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (reply, session) = decide(&state, &method, &uri, &headers, &body);
    let request_id = uuid::Uuid::new_v4().to_string();
    match reply {
        Reply::Hang => std::future::pending::<Response>().await,
        Reply::Error { code, message } => {
            let body = json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Reply::Status { code, message } => {
            let (phone, serial) = session;
            let body = json!({"Response": {"SendStatusSet": [{
                "SerialNo": serial, "PhoneNumber": phone, "Fee": if code == "Ok" { 1 } else { 0 },
                "SessionContext": "", "Code": code, "Message": message, "IsoCode": "CN"
            }], "RequestId": request_id}});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Reply::Raw { status, body, retry_after } => {
            let mut response = (StatusCode::from_u16(status).expect("status"), body).into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).expect("retry-after"));
            }
            response
        }
    }
}

/// Checks one request; the reply, and the phone and serial number for a status answer.
fn decide(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> (Reply, (String, String)) {
    let mut s = state.lock().expect("peer state poisoned");
    s.count += 1;
    let mut violations = Vec::new();
    let mut tencent_says: Option<Reply> = None;
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();

    // Authentication first: a request that fails it learns nothing else.
    if let Err((violation, reply)) = verify_signature(&s, headers, body) {
        violations.push(violation);
        say(reply, &mut tencent_says);
    }
    if method != Method::POST || uri.path() != "/" || uri.query().is_some() {
        violations.push(format!("{method} {uri}, expected POST /"));
    }
    let content_type = value("content-type");
    if content_type != "application/json; charset=utf-8" && content_type != "application/json" {
        violations.push(format!("content type {content_type:?}, expected application/json"));
    }
    if value("x-tc-action") != "SendSms" {
        violations.push(format!("X-TC-Action {:?}", value("x-tc-action")));
        say(Reply::error("InvalidAction", "The action is not supported."), &mut tencent_says);
    }
    if value("x-tc-version") != "2021-01-11" {
        violations.push(format!("X-TC-Version {:?}", value("x-tc-version")));
        say(Reply::error("NoSuchVersion", "The API version does not exist."), &mut tencent_says);
    }
    let region = value("x-tc-region");
    if region.is_empty() {
        violations.push("no X-TC-Region".to_string());
        say(
            Reply::error("MissingParameter", "The request is missing a required parameter `Region`."),
            &mut tencent_says,
        );
    }

    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(fields) = parsed.as_object() else {
        violations.push("body is not a JSON object".to_string());
        s.violations.extend(violations);
        return (Reply::error("FailedOperation.JsonParseFail", "解析请求包体时候失败。"), Default::default());
    };
    for name in fields.keys() {
        if !KNOWN_FIELDS.contains(&name.as_str()) {
            violations.push(format!("unknown field {name:?}"));
        }
    }
    let phones: Vec<&str> = fields
        .get("PhoneNumberSet")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let phone = phones.first().copied().unwrap_or("").to_string();
    if phones.len() != 1 {
        violations.push(format!("PhoneNumberSet has {} numbers, expected one", phones.len()));
        say(Reply::error("MissingParameter.EmptyPhoneNumberSet", "传入的号码列表为空。"), &mut tencent_says);
    } else if !is_e164(&phone) {
        violations.push(format!("PhoneNumberSet {phone:?} is not e.164 with +"));
    }
    if fields.get("SmsSdkAppId").and_then(Value::as_str) != Some(s.sdk_app_id.as_str()) {
        violations.push(format!("SmsSdkAppId {:?}", fields.get("SmsSdkAppId")));
        say(Reply::error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在。"), &mut tencent_says);
    }
    let template_id = fields.get("TemplateId").and_then(Value::as_str).unwrap_or("");
    if template_id.is_empty() || !template_id.bytes().all(|b| b.is_ascii_digit()) {
        violations.push(format!("TemplateId {template_id:?} is not digits"));
        say(Reply::error("FailedOperation.TemplateIdNotExist", "模板 ID 不存在。"), &mut tencent_says);
    }
    match fields.get("TemplateParamSet") {
        None => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(other) => violations.push(format!("TemplateParamSet {other} is not an array of strings")),
    }
    for name in ["SignName", "SessionContext"] {
        if fields.get(name).is_some_and(|v| !v.is_string()) {
            violations.push(format!("{name} is not a string"));
        }
    }
    if phone.starts_with("+86") && fields.get("SignName").and_then(Value::as_str).is_none_or(str::is_empty) {
        violations.push("no SignName for a mainland number".to_string());
        say(
            Reply::error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误。"),
            &mut tencent_says,
        );
    }

    s.violations.extend(violations);
    let serial = format!("2433:{}", uuid::Uuid::new_v4().as_u128() % 10u128.pow(28));
    let session = (phone.clone(), serial.clone());
    if let Some(reply) = s.script.pop_front() {
        return (reply, session);
    }
    if let Some(reply) = tencent_says {
        return (reply, session);
    }
    if let Some(reply) = s.numbers.get(&phone) {
        return (reply.clone(), (phone, String::new()));
    }
    s.received.push(Received { body: parsed.clone(), serial_no: serial, region });
    (Reply::status("Ok", "send success"), session)
}

/// Recomputes the TC3 signature from the request as received.
fn verify_signature(s: &PeerState, headers: &HeaderMap, body: &[u8]) -> Result<(), (String, Reply)> {
    let failure = |what: String| {
        (
            what,
            Reply::error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is correct.",
            ),
        )
    };
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_string();
    let authorization = value("authorization");
    let Some(rest) = authorization.strip_prefix("TC3-HMAC-SHA256 ") else {
        return Err(failure(format!("authorization {authorization:?} is not TC3-HMAC-SHA256")));
    };
    let fields: HashMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature"))
    else {
        return Err(failure(format!("authorization lacks Credential, SignedHeaders or Signature: {rest:?}")));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [id, date, service, "tc3_request"] = scope[..] else {
        return Err(failure(format!("credential {credential:?} is not id/date/service/tc3_request")));
    };
    if id != s.secret_id {
        return Err((
            format!("SecretId {id:?} is unknown"),
            Reply::error(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            ),
        ));
    }
    if service != "sms" {
        return Err(failure(format!("credential scope service {service:?}, expected sms")));
    }
    let timestamp: i64 =
        value("x-tc-timestamp").parse().map_err(|_| failure("X-TC-Timestamp is not seconds".into()))?;
    if (jiff::Timestamp::now().as_second() - timestamp).abs() > 300 {
        return Err((
            "X-TC-Timestamp is more than five minutes off".into(),
            Reply::error("AuthFailure.SignatureExpire", "Signature expired."),
        ));
    }
    let utc_date =
        jiff::Timestamp::from_second(timestamp).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default();
    if date != utc_date {
        return Err(failure(format!("credential date {date} is not the UTC date of the timestamp ({utc_date})")));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"content-type") || !signed.contains(&"host") {
        return Err(failure(format!("SignedHeaders {signed_headers:?} lack content-type or host")));
    }
    let canonical_headers: String = signed.iter().map(|h| format!("{h}:{}\n", value(h).to_lowercase())).collect();
    let canonical_request = format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}", hex(&Sha256::digest(body)));
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mac = |key: &[u8], data: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    let k = mac(format!("TC3{}", s.secret_key).as_bytes(), date);
    let k = mac(&k, service);
    let k = mac(&k, "tc3_request");
    if *signature != hex(&mac(&k, &string_to_sign)) {
        return Err(failure("signature does not match".into()));
    }
    Ok(())
}

fn say(reply: Reply, slot: &mut Option<Reply>) {
    if slot.is_none() {
        *slot = Some(reply);
    }
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
