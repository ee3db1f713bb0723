//! SMS through a generic HTTP gateway, for local carriers with their own JSON APIs: the request
//! body is a Handlebars template the operator writes, the answer's status says what happened.
//!
//! One request per message: `{method} {url}` with the rendered body (`Content-Type:
//! application/json` unless the configured headers say otherwise), the configured headers, an
//! optional secret header (an `Authorization` from a file), and `Idempotency-Key` set to the
//! message's idempotency key. The template sees `to` (E.164), `text`, `id` (the idempotency key)
//! and `sender`; `{{json text}}` writes a value as a JSON string, quotes and all, which is how
//! values belong in a JSON body. A 2xx is sent (the provider id read at `id_pointer`, a JSON
//! pointer into the answer), 408, 429 and 5xx are worth retrying (after `Retry-After`), every
//! other status is permanent.

use std::collections::BTreeMap;
use std::time::Duration;

use handlebars::{Handlebars, RenderErrorReason};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::channels::wire;
use crate::channels::{Outgoing, Rendered, SendOutcome};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// `[http_sms]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmsConfig {
    /// Where messages are sent.
    pub url: String,
    /// `POST` (the default), `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The JSON body, a Handlebars template over `to`, `text`, `id` and `sender`, e.g.
    /// `{"mobile": {{json to}}, "content": {{json text}}, "ref": {{json id}}}`.
    pub body: String,
    /// Extra headers, sent as written.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The header that carries the secret (`auth_header`), `Authorization` by default.
    #[serde(default = "default_auth_header_name")]
    pub auth_header_name: String,
    /// The secret header's whole value (`Bearer …`); or `auth_header_file`, or
    /// `TIDINGS_HTTP_SMS_AUTH_HEADER`. Optional: a gateway may need none.
    #[serde(default)]
    pub auth_header: Option<Secret>,
    #[serde(default)]
    pub auth_header_file: Option<std::path::PathBuf>,
    /// The sender (a number or a name), for the template as `sender`.
    #[serde(default)]
    pub sender: Option<String>,
    /// A JSON pointer to the provider's message id in a 2xx answer, e.g. `/data/msgid`.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_method() -> String {
    "POST".to_string()
}

fn default_auth_header_name() -> String {
    "Authorization".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// The provider's name on messages.
pub const NAME: &str = "http_sms";
const TEMPLATE: &str = "body";

/// The generic HTTP SMS provider. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpSms {
    client: reqwest::Client,
    url: Url,
    method: Method,
    registry: std::sync::Arc<Handlebars<'static>>,
    /// The configured headers and the secret one, ready to send.
    headers: HeaderMap,
    sender: Option<String>,
    id_pointer: Option<String>,
    timeout: Duration,
}

struct Checked {
    url: Url,
    method: Method,
    registry: Handlebars<'static>,
    headers: HeaderMap,
    timeout: Duration,
}

impl HttpSms {
    /// Builds the provider: compiles the body template, resolves the secret header, builds one
    /// HTTP client with a connect timeout and a total timeout.
    pub fn new(cfg: &HttpSmsConfig) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid http_sms configuration: {}", list.join("; "))
        })?;
        Ok(HttpSms {
            client: wire::client(NAME, checked.timeout)?,
            url: checked.url,
            method: checked.method,
            registry: std::sync::Arc::new(checked.registry),
            headers: checked.headers,
            sender: cfg.sender.clone(),
            id_pointer: cfg.id_pointer.clone().filter(|p| !p.is_empty()),
            timeout: checked.timeout,
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    /// The body template is compiled and rendered for a sample message whose text holds quotes,
    /// a backslash and a line break; it must come out as JSON.
    pub fn check(cfg: &HttpSmsConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one SMS. `msg.to` is the E.164 number, `msg.rendered` must be an SMS.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let Rendered::Sms { text, .. } = &msg.rendered else {
            return permanent(format!("http_sms: the sms provider cannot send {}", msg.rendered.channel()));
        };
        if !wire::is_e164(&msg.to) {
            return permanent("http_sms: the recipient is not an e.164 phone number".to_string());
        }
        let id = msg.idempotency_key();
        let body = match render(&self.registry, &msg.to, text, &id, self.sender.as_deref()) {
            Ok(body) => body,
            Err(e) => return permanent(format!("http_sms: http_sms.body: {e}")),
        };
        let builder = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header("Idempotency-Key", &id)
            .body(body);
        let answer = match wire::exchange(builder).await {
            Ok(answer) => answer,
            Err(e) => return wire::transport_failure(NAME, e, self.timeout),
        };
        let body = match answer.body {
            Ok(body) => body,
            Err(e) if answer.status.is_success() => {
                tracing::warn!(message.id = msg.id, error = %wire::describe(e), "http_sms accepted the message but its answer broke off");
                return SendOutcome::Sent { provider_id: String::new() };
            }
            Err(e) => return wire::transport_failure(NAME, e, self.timeout),
        };
        let outcome = classify(answer.status, &body, answer.retry_after, self.id_pointer.as_deref());
        if let SendOutcome::Sent { provider_id } = &outcome
            && provider_id.is_empty()
            && self.id_pointer.is_some()
        {
            tracing::warn!(
                message.id = msg.id,
                "http_sms accepted the message but its answer has no id at http_sms.id_pointer"
            );
        }
        outcome
    }
}

/// The body for one message.
fn render(
    registry: &Handlebars<'static>,
    to: &str,
    text: &str,
    id: &str,
    sender: Option<&str>,
) -> Result<String, String> {
    let data = json!({"to": to, "text": text, "id": id, "sender": sender});
    registry.render(TEMPLATE, &data).map_err(|e| {
        let line = e.line_no.map(|l| format!("line {l}: ")).unwrap_or_default();
        let reason = match e.reason() {
            RenderErrorReason::MissingVariable(Some(path)) => {
                format!("variable {path} not found (the body sees to, text, id and sender)")
            }
            RenderErrorReason::MissingVariable(None) => {
                "a variable not found (the body sees to, text, id and sender)".to_string()
            }
            other => other.to_string(),
        };
        format!("{line}{reason}")
    })
}

/// `{{json value}}`: the value as JSON (a string with its quotes and escapes).
fn json_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let [param] = h.params().as_slice() else {
        return Err(RenderErrorReason::Other("usage: {{json value}}".into()).into());
    };
    if param.is_value_missing() {
        let path = param.relative_path().cloned();
        return Err(RenderErrorReason::MissingVariable(path).into());
    }
    let value = param.value();
    out.write(&serde_json::to_string(value).map_err(|e| RenderErrorReason::Other(e.to_string()))?)?;
    Ok(())
}

fn checked(cfg: &HttpSmsConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let url = wire::base_url(&cfg.url, "http_sms.auth_header")
        .map_err(|p| problems.push(ConfigProblem::new("http_sms.url", p)))
        .ok();
    let method = match cfg.method.trim().to_uppercase().as_str() {
        "POST" => Some(Method::POST),
        "PUT" => Some(Method::PUT),
        "PATCH" => Some(Method::PATCH),
        other => {
            problems.push(ConfigProblem::new("http_sms.method", format!("{other:?} is not POST, PUT or PATCH")));
            None
        }
    };

    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    registry.register_helper("json", Box::new(json_helper));
    match registry.register_template_string(TEMPLATE, &cfg.body) {
        Err(e) => {
            let line = e.pos().map(|(l, c)| format!("line {l}, column {c}: ")).unwrap_or_default();
            problems.push(ConfigProblem::new("http_sms.body", format!("{line}{}", e.reason())));
        }
        Ok(()) => {
            let sample = "测试 \"quoted\" \\ and\na new line";
            match render(&registry, "+8613800138000", sample, "0123456789abcdef0123456789abcdef", cfg.sender.as_deref())
            {
                Err(e) => problems.push(ConfigProblem::new("http_sms.body", e)),
                Ok(body) => {
                    if let Err(e) = serde_json::from_str::<Value>(&body) {
                        problems.push(ConfigProblem::new(
                            "http_sms.body",
                            format!(
                                "does not render to JSON for a text with quotes and a line break ({e}); write values as {{{{json text}}}}"
                            ),
                        ));
                    }
                }
            }
        }
    }

    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let key = format!("http_sms.headers.{name}");
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            (Err(_), _) => problems.push(ConfigProblem::new(key, "is not a header name")),
            (_, Err(_)) => problems.push(ConfigProblem::new(key, "is not a header value (one line of visible text)")),
        }
    }
    if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if cfg.auth_header.is_some() || cfg.auth_header_file.is_some() {
        let name = HeaderName::from_bytes(cfg.auth_header_name.trim().as_bytes())
            .map_err(|_| problems.push(ConfigProblem::new("http_sms.auth_header_name", "is not a header name")))
            .ok();
        let secret = resolve_secret(cfg.auth_header.as_ref(), cfg.auth_header_file.as_deref(), "http_sms.auth_header")
            .map_err(|p| problems.push(p))
            .ok();
        if let (Some(name), Some(secret)) = (name, secret) {
            match HeaderValue::from_str(secret.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                Err(_) => problems.push(ConfigProblem::new("http_sms.auth_header", "is not a header value (one line)")),
            }
        }
    }
    if let Some(pointer) = cfg.id_pointer.as_deref()
        && !pointer.is_empty()
        && !pointer.starts_with('/')
    {
        problems.push(ConfigProblem::new(
            "http_sms.id_pointer",
            format!("{pointer:?} is not a JSON pointer such as /data/id"),
        ));
    }
    if cfg.timeout_secs == 0 {
        problems.push(ConfigProblem::new("http_sms.timeout_secs", "must be at least 1"));
    }
    match (url, method) {
        (Some(url), Some(method)) if problems.is_empty() => {
            Ok(Checked { url, method, registry, headers, timeout: Duration::from_secs(cfg.timeout_secs) })
        }
        _ => Err(problems),
    }
}

/// Maps the gateway's answer onto an outcome. Pure, so it is tested without a server.
fn classify(status: StatusCode, body: &[u8], retry_after: Option<Duration>, id_pointer: Option<&str>) -> SendOutcome {
    if status.is_success() {
        // A 2xx means the gateway took the message; resending would duplicate it, so a missing
        // id is a warning, not a failure.
        let id = id_pointer
            .and_then(|p| serde_json::from_slice::<Value>(body).ok().and_then(|v| v.pointer(p).cloned()))
            .map(|v| match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        return SendOutcome::Sent { provider_id: id.trim().to_string() };
    }
    let snippet: String = String::from_utf8_lossy(body).split_whitespace().collect::<Vec<_>>().join(" ");
    let snippet: String = snippet.chars().take(200).collect();
    let error =
        if snippet.is_empty() { format!("http_sms: {status}") } else { format!("http_sms: {status}: {snippet}") };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        SendOutcome::Transient { error, retry_after }
    } else {
        permanent(error)
    }
}

fn permanent(error: String) -> SendOutcome {
    SendOutcome::Permanent { error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HttpSmsConfig {
        HttpSmsConfig {
            url: "https://sms.example.cn/api/send".into(),
            method: default_method(),
            body: r#"{"mobile": {{json to}}, "content": {{json text}}, "ref": {{json id}}}"#.into(),
            headers: BTreeMap::new(),
            auth_header_name: default_auth_header_name(),
            auth_header: None,
            auth_header_file: None,
            sender: None,
            id_pointer: Some("/data/msgid".into()),
            timeout_secs: 10,
        }
    }

    fn keys(cfg: &HttpSmsConfig) -> Vec<String> {
        HttpSms::check(cfg).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn body_template_is_compiled_and_test_rendered_at_check() {
        assert!(keys(&config()).is_empty());
        let problems = |body: &str| {
            let mut cfg = config();
            cfg.body = body.into();
            HttpSms::check(&cfg).into_iter().map(|p| p.to_string()).collect::<Vec<_>>()
        };
        // A value between quotes breaks on the first quote in a text.
        let got = problems(r#"{"mobile": "{{to}}", "content": "{{text}}"}"#);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("http_sms.body: does not render to JSON"), "{got:?}");
        assert!(got[0].ends_with("write values as {{json text}}"), "{got:?}");
        let got = problems("{\"to\": {{json to}},\n \"x\": {{json member.name}}}");
        assert_eq!(
            got,
            ["http_sms.body: line 2: variable member.name not found (the body sees to, text, id and sender)"]
        );
        let got = problems("{\"to\": {{json to}\n}");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("http_sms.body: line 1, column"), "{got:?}");
    }

    #[test]
    fn render_escapes_through_the_json_helper() {
        let cfg = HttpSmsConfig { sender: Some("JadeClub".into()), ..config() };
        let mut cfg = cfg;
        cfg.body = r#"{"to": {{json to}}, "text": {{json text}}, "from": {{json sender}}, "n": "{{id}}"}"#.into();
        let checked = checked(&cfg).unwrap();
        let body = render(&checked.registry, "+8613800138000", "a \"b\"\n王", "k", Some("JadeClub")).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, json!({"to": "+8613800138000", "text": "a \"b\"\n王", "from": "JadeClub", "n": "k"}));
    }

    #[test]
    fn config_problems_name_their_keys() {
        let mut cfg = config();
        cfg.url = "gateway.local/send".into();
        cfg.method = "GET".into();
        cfg.headers.insert("X Bad".into(), "v".into());
        cfg.headers.insert("X-Ok".into(), "line\nbreak".into());
        cfg.auth_header_file = Some("/nonexistent/tidings-auth".into());
        cfg.id_pointer = Some("data.msgid".into());
        cfg.timeout_secs = 0;
        assert_eq!(
            keys(&cfg),
            [
                "http_sms.url",
                "http_sms.method",
                "http_sms.headers.X Bad",
                "http_sms.headers.X-Ok",
                "http_sms.auth_header_file",
                "http_sms.id_pointer",
                "http_sms.timeout_secs",
            ]
        );
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: SendOutcome| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, body.as_bytes(), None, Some("/data/msgid")), expected, "{status} {body}");
        };
        let sent = |id: &str| SendOutcome::Sent { provider_id: id.into() };
        check(200, r#"{"code":0,"data":{"msgid":"abc-1"}}"#, sent("abc-1"));
        check(201, r#"{"data":{"msgid":98765}}"#, sent("98765"));
        check(202, "accepted", sent(""));
        check(
            429,
            "too many",
            SendOutcome::Transient { error: "http_sms: 429 Too Many Requests: too many".into(), retry_after: None },
        );
        check(503, "", SendOutcome::Transient { error: "http_sms: 503 Service Unavailable".into(), retry_after: None });
        check(
            400,
            "{\"error\":\n \"bad number\"}",
            permanent("http_sms: 400 Bad Request: {\"error\": \"bad number\"}".into()),
        );
    }
}
