//! A local stand-in for a carrier's own JSON SMS gateway, as the generic HTTP provider meets
//! them: an axum server on 127.0.0.1:0 that expects a JSON body with `mobile`, `content` and
//! `ref`, an `Authorization` header and an `Idempotency-Key`, answers
//! `{"code": 0, "data": {"msgid": …}}`, and records what it got. Broken promises (a body that is
//! not JSON, a missing header) land in [`HttpSmsPeer::violations`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How the peer answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status { status: u16, body: String, retry_after: Option<String> },
    Hang,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Self {
        Reply::Status { status, body: body.to_string(), retry_after: None }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub msgid: String,
}

pub struct HttpSmsPeer {
    addr: SocketAddr,
    state: Arc<Mutex<PeerState>>,
    server: tokio::task::JoinHandle<()>,
}

struct PeerState {
    authorization: String,
    script: VecDeque<Reply>,
    received: Vec<Received>,
    violations: Vec<String>,
    count: usize,
}

type Shared = Arc<Mutex<PeerState>>;

impl HttpSmsPeer {
    /// Starts a gateway that wants this `Authorization` header.
    pub async fn start(authorization: &str) -> HttpSmsPeer {
        let state = Arc::new(Mutex::new(PeerState {
            authorization: authorization.to_string(),
            script: VecDeque::new(),
            received: Vec::new(),
            violations: Vec::new(),
            count: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http sms peer");
        let addr = listener.local_addr().expect("peer address");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("http sms peer");
        });
        HttpSmsPeer { addr, state, server }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v2/sms/send", self.addr)
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

impl Drop for HttpSmsPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut s = state.lock().expect("peer state poisoned");
        s.count += 1;
        let mut violations = Vec::new();
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if !value("content-type").starts_with("application/json") {
            violations.push(format!("content type {:?}", value("content-type")));
        }
        let key = value("idempotency-key");
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            violations.push(format!("Idempotency-Key {key:?} is not 32 hex digits"));
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if parsed.is_none() {
            violations.push(format!("body is not JSON: {}", String::from_utf8_lossy(&body)));
        }
        let authorized = value("authorization") == s.authorization;
        s.violations.extend(violations);
        if let Some(reply) = s.script.pop_front() {
            reply
        } else if !authorized {
            Reply::status(401, r#"{"code":401,"msg":"unauthorized"}"#)
        } else if let Some(body) = parsed {
            let msgid = format!("m-{}", s.count);
            let received =
                Received { method, path: uri.path().to_string(), headers: headers.clone(), body, msgid: msgid.clone() };
            s.received.push(received);
            Reply::status(200, &json!({"code": 0, "msg": "ok", "data": {"msgid": msgid}}).to_string())
        } else {
            Reply::status(400, r#"{"code":400,"msg":"bad request"}"#)
        }
    };
    match reply {
        Reply::Hang => std::future::pending::<Response>().await,
        Reply::Status { status, body, retry_after } => {
            let mut response =
                (StatusCode::from_u16(status).expect("status"), [(header::CONTENT_TYPE, "application/json")], body)
                    .into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).expect("retry-after"));
            }
            response
        }
    }
}
