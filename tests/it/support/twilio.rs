//! A local stand-in for the Twilio Messages API: an axum server on 127.0.0.1:0 that checks each
//! request the way Twilio would (method, path, basic auth, form encoding, parameters), answers in
//! Twilio's shapes, and records what it got.
//!
//! Two kinds of bad request are kept apart. A request Twilio would reject because of its data
//! (wrong credentials, a number on the [`TwilioPeer::on_number`] list) is answered like Twilio and
//! is not the client's fault. A request that breaks the wire protocol our client promises (wrong
//! path, no auth header, missing or unknown parameters, both `From` and `MessagingServiceSid`) is
//! answered like Twilio too, and also lands in [`TwilioPeer::violations`], which tests assert empty.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// The number Twilio's test credentials reject as invalid (error 21211).
pub const INVALID_NUMBER: &str = "+15005550001";

/// Every parameter Twilio's Create Message accepts; anything else is a violation.
const KNOWN_PARAMETERS: &[&str] = &[
    "To",
    "From",
    "MessagingServiceSid",
    "Body",
    "MediaUrl",
    "ContentSid",
    "ContentVariables",
    "StatusCallback",
    "ApplicationSid",
    "MaxPrice",
    "ProvideFeedback",
    "Attempt",
    "ValidityPeriod",
    "ForceDelivery",
    "ContentRetention",
    "AddressRetention",
    "SmartEncoded",
    "PersistentAction",
    "ShortenUrls",
    "ScheduleType",
    "SendAt",
    "SendAsMms",
    "RiskCheck",
];

/// How the peer answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Twilio's JSON error body (`code`, `message`, `more_info`, `status`).
    Error { status: u16, code: u32, message: String, retry_after: Option<String> },
    /// A body that is not Twilio's (a proxy's error page, or a 2xx without a sid).
    Raw { status: u16, body: String },
    /// Keep the request open and never answer.
    Hang,
}

impl Reply {
    pub fn error(status: u16, code: u32, message: &str) -> Self {
        Reply::Error { status, code, message: message.to_string(), retry_after: None }
    }

    /// 429 with Twilio's code 20429 and a `Retry-After` header.
    pub fn too_many_requests(retry_after: &str) -> Self {
        Reply::Error {
            status: 429,
            code: 20429,
            message: "Too Many Requests".to_string(),
            retry_after: Some(retry_after.to_string()),
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Reply::Raw { status, body: body.to_string() }
    }
}

/// One message the peer accepted (answered 201).
#[derive(Debug, Clone)]
pub struct Received {
    /// The form fields in the order sent.
    pub fields: Vec<(String, String)>,
    /// The user half of the basic auth header.
    pub username: String,
    /// The sid the peer answered with.
    pub sid: String,
}

impl Received {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The running peer; stops when dropped.
pub struct TwilioPeer {
    addr: SocketAddr,
    state: Arc<Mutex<PeerState>>,
    server: tokio::task::JoinHandle<()>,
}

struct PeerState {
    account_sid: String,
    auth_token: String,
    script: VecDeque<Reply>,
    numbers: HashMap<String, Reply>,
    received: Vec<Received>,
    violations: Vec<String>,
    count: usize,
}

type Shared = Arc<Mutex<PeerState>>;

impl TwilioPeer {
    /// Starts a peer that accepts these credentials.
    pub async fn start(account_sid: &str, auth_token: &str) -> TwilioPeer {
        let mut numbers = HashMap::new();
        numbers.insert(
            INVALID_NUMBER.to_string(),
            Reply::error(400, 21211, &format!("The 'To' number {INVALID_NUMBER} is not a valid phone number.")),
        );
        let state = Arc::new(Mutex::new(PeerState {
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            script: VecDeque::new(),
            numbers,
            received: Vec::new(),
            violations: Vec::new(),
            count: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind twilio peer");
        let addr = listener.local_addr().expect("peer address");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("twilio peer");
        });
        TwilioPeer { addr, state, server }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` requests get `reply`, whatever they say (they are still checked).
    pub fn script(&self, n: usize, reply: Reply) {
        let mut s = self.lock();
        s.script.extend(std::iter::repeat_n(reply, n));
    }

    /// A well-formed request to `number` gets `reply`, as Twilio's magic test numbers do.
    pub fn on_number(&self, number: &str, reply: Reply) {
        self.lock().numbers.insert(number.to_string(), reply);
    }

    /// The messages accepted (answered 201).
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Every way a request broke the protocol; empty when the client behaved.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Requests that reached the peer, whatever the answer.
    pub fn count(&self) -> usize {
        self.lock().count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().expect("peer state poisoned")
    }
}

impl Drop for TwilioPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = decide(&state, &method, &uri, &headers, &body);
    match reply {
        Answer::Reply(Reply::Hang) => std::future::pending::<Response>().await,
        Answer::Reply(reply) => reply_response(reply),
        Answer::Created(resource) => (StatusCode::CREATED, axum::Json(resource)).into_response(),
    }
}

enum Answer {
    Reply(Reply),
    Created(Value),
}

/// Checks one request and decides the answer; records violations and accepted messages.
fn decide(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Answer {
    let mut s = state.lock().expect("peer state poisoned");
    s.count += 1;
    let mut violations = Vec::new();
    // What Twilio answers: its first objection, if any.
    let mut twilio_says: Option<Reply> = None;

    // Authentication comes first at Twilio: a request without valid credentials learns nothing else.
    let credentials = basic_auth(headers);
    match &credentials {
        None => {
            violations.push("no basic auth header".to_string());
            say(Reply::error(401, 20003, "Authenticate"), &mut twilio_says);
        }
        Some((user, _)) if *user != s.account_sid => {
            violations.push(format!("basic auth user {user:?} is not the account sid"));
            say(Reply::error(401, 20003, "Authenticate"), &mut twilio_says);
        }
        // Credentials that are merely wrong are the operator's problem, not the protocol's.
        Some((_, token)) if *token != s.auth_token => say(Reply::error(401, 20003, "Authenticate"), &mut twilio_says),
        Some(_) => {}
    }

    if method != Method::POST {
        violations.push(format!("method {method}, expected POST"));
        say(Reply::error(405, 20004, "Method not allowed"), &mut twilio_says);
    }
    let expected_path = format!("/2010-04-01/Accounts/{}/Messages.json", s.account_sid);
    if uri.path() != expected_path {
        violations.push(format!("path {}, expected {expected_path}", uri.path()));
        say(
            Reply::error(404, 20404, &format!("The requested resource {} was not found", uri.path())),
            &mut twilio_says,
        );
    }
    if uri.query().is_some() {
        violations.push("parameters in the query string".to_string());
    }

    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let form_encoded = content_type.split(';').next().map(str::trim) == Some("application/x-www-form-urlencoded");
    if !form_encoded {
        violations.push(format!("content type {content_type:?}, expected application/x-www-form-urlencoded"));
    }
    // Twilio reads parameters only from a form body; anything else looks like no parameters.
    let fields: Vec<(String, String)> = if form_encoded {
        form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    } else {
        Vec::new()
    };
    if form_encoded && std::str::from_utf8(body).is_err() {
        violations.push("form body is not ascii/utf-8".to_string());
    }
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &fields {
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
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

    let to = field("To").unwrap_or("");
    let body_text = field("Body").unwrap_or("");
    let from = field("From").filter(|f| !f.is_empty());
    let service = field("MessagingServiceSid").filter(|f| !f.is_empty());
    if to.is_empty() {
        violations.push("no To".to_string());
        say(Reply::error(400, 21604, "A 'To' phone number is required."), &mut twilio_says);
    } else if !is_e164(to) {
        violations.push(format!("To {to:?} is not e.164"));
        say(Reply::error(400, 21211, &format!("The 'To' number {to} is not a valid phone number.")), &mut twilio_says);
    }
    if body_text.is_empty() {
        violations.push("no Body".to_string());
        say(Reply::error(400, 21602, "Message body is required."), &mut twilio_says);
    } else if body_text.chars().count() > 1600 {
        violations.push("Body longer than 1600 characters".to_string());
        say(
            Reply::error(400, 21617, "The concatenated message body exceeds the 1600 character limit."),
            &mut twilio_says,
        );
    }
    if let Some(sid) = service
        && !is_sid(sid, "MG")
    {
        violations.push(format!("MessagingServiceSid {sid:?} is not MG + 32 hex"));
        say(Reply::error(400, 21701, &format!("The Messaging Service Sid {sid} is invalid.")), &mut twilio_says);
    }
    match (from, service) {
        (None, None) => {
            violations.push("neither From nor MessagingServiceSid".to_string());
            say(Reply::error(400, 21603, "A 'From' phone number is required."), &mut twilio_says);
        }
        // Twilio accepts both (it sends from the service's pool); our client promises the
        // service SID alone, so this is answered normally but counted.
        (Some(_), Some(_)) => {
            violations.push("both From and MessagingServiceSid; the service SID should win alone".to_string())
        }
        (Some(from), None) if !is_e164(from) => {
            violations.push(format!("From {from:?} is not e.164"));
            say(
                Reply::error(
                    400,
                    21212,
                    &format!(
                        "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
                    ),
                ),
                &mut twilio_says,
            );
        }
        _ => {}
    }
    if let Some(url) = field("StatusCallback") {
        let ok = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            violations.push(format!("StatusCallback {url:?} is not an http(s) url"));
            say(Reply::error(400, 21609, "Invalid StatusCallback url"), &mut twilio_says);
        }
    }

    s.violations.extend(violations);
    if let Some(reply) = s.script.pop_front() {
        return Answer::Reply(reply);
    }
    if let Some(reply) = twilio_says {
        return Answer::Reply(reply);
    }
    if let Some(reply) = s.numbers.get(to) {
        return Answer::Reply(reply.clone());
    }

    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let resource = resource(&s.account_sid, &sid, to, from, service, body_text);
    let username = credentials.map(|(user, _)| user).unwrap_or_default();
    s.received.push(Received { fields, username, sid });
    Answer::Created(resource)
}

/// Keeps Twilio's first objection.
fn say(reply: Reply, slot: &mut Option<Reply>) {
    if slot.is_none() {
        *slot = Some(reply);
    }
}

/// The Message resource Twilio answers a create with.
fn resource(account_sid: &str, sid: &str, to: &str, from: Option<&str>, service: Option<&str>, body: &str) -> Value {
    let now = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000").to_string();
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json");
    json!({
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        // Through a service the sender is picked later, and the message starts as accepted.
        "from": if service.is_some() { None } else { from },
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": segments(body).to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": if service.is_some() { "accepted" } else { "queued" },
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json") },
        "to": to,
        "uri": uri,
    })
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Error { status, code, message, retry_after } => {
            let status = StatusCode::from_u16(status).expect("scripted status");
            let body = json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status.as_u16(),
            });
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

/// `(user, password)` from `Authorization: Basic …`.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}

/// Twilio's SIDs: a two-letter prefix and 32 hex digits.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SMS segments as Twilio counts them: GSM-7 (160, or 153 per part) unless a character needs
/// UCS-2 (70, or 67 UTF-16 units per part).
fn segments(body: &str) -> usize {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";
    let gsm_units: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, part) = match gsm_units {
        Some(n) => (n, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if units <= single { 1 } else { units.div_ceil(part) }
}
