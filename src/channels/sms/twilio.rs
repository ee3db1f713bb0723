//! SMS over the Twilio Messages API (a form-encoded POST with basic auth), or any gateway that
//! speaks the same wire format.
//!
//! One request per message: `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with
//! `To`, `Body`, and `MessagingServiceSid` or `From` (plus `StatusCallback` when configured). The
//! answer is mapped onto a [`SendOutcome`]: a 2xx is sent, 429, 408 and 5xx are worth retrying
//! (honouring `Retry-After`), every other status is permanent and carries Twilio's error `code` and
//! `message`. A refused connection is transient; a timeout or a connection lost after the
//! request was sent is unknown (Twilio may have created the message).

use std::time::{Duration, SystemTime};

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::channels::wire::{describe, parse_retry_after};
use crate::channels::{Outgoing, Rendered, SendOutcome};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// `[twilio]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (`AC…`).
    pub account_sid: String,
    /// The auth token; or `auth_token_file`, or `TIDINGS_TWILIO_AUTH_TOKEN`.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    #[serde(default)]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// The sender number (E.164); required unless `messaging_service_sid` is set.
    #[serde(default)]
    pub from: Option<String>,
    /// The Messaging Service (`MG…`) to send through; when set it wins over `from`.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts delivery status updates.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// The public URL of `/hooks/twilio/inbound` as configured on the number or Messaging
    /// Service for incoming messages: Twilio signs inbound webhooks with it. Unset: the inbound
    /// hook answers 404.
    #[serde(default)]
    pub inbound_url: Option<String>,
    /// The API base; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    "https://api.twilio.com".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// Connecting gets at most this long, even when the whole request may take longer.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The Twilio provider. Cheap to clone: the HTTP client (and its connection pool) is shared.
#[derive(Debug, Clone)]
pub struct Twilio {
    client: reqwest::Client,
    /// `…/2010-04-01/Accounts/{AccountSid}/Messages.json`.
    endpoint: Url,
    account_sid: String,
    auth_token: Secret,
    sender: Sender,
    status_callback: Option<String>,
    timeout: Duration,
}

/// Who the message is from, as Twilio's parameters say it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    From(String),
    MessagingService(String),
}

/// A configuration that passed [`Twilio::check`].
struct Checked {
    endpoint: Url,
    auth_token: Secret,
    sender: Sender,
    status_callback: Option<String>,
    timeout: Duration,
}

impl Twilio {
    /// Builds the provider: resolves the auth token and builds one HTTP client with a connect
    /// timeout and a total timeout (reqwest has neither by default).
    pub fn new(cfg: &TwilioConfig) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid twilio configuration: {}", list.join("; "))
        })?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(checked.timeout.min(MAX_CONNECT_TIMEOUT))
            .timeout(checked.timeout)
            // A redirect from the API means a wrong base URL; following it would turn the POST
            // into a GET (or resend the credentials elsewhere).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("twilio: cannot build the http client: {e}"))?;
        Ok(Twilio {
            client,
            endpoint: checked.endpoint,
            account_sid: cfg.account_sid.clone(),
            auth_token: checked.auth_token,
            sender: checked.sender,
            status_callback: checked.status_callback,
            timeout: checked.timeout,
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &TwilioConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one SMS. `msg.to` is the E.164 number, `msg.rendered` must be [`Rendered::Sms`].
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let Rendered::Sms { text, .. } = &msg.rendered else {
            return permanent(format!("twilio: the sms provider cannot send {}", msg.rendered.channel()));
        };
        // Twilio would answer 400 (21211, 21602) to these; no need to spend a request on it.
        if !is_e164(&msg.to) {
            return permanent("twilio: the recipient is not an e.164 phone number".to_string());
        }
        if text.is_empty() {
            return permanent("twilio: the message body is empty".to_string());
        }

        let mut form: Vec<(&str, &str)> = vec![("To", &msg.to), ("Body", text)];
        match &self.sender {
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
            Sender::From(from) => form.push(("From", from)),
        }
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url));
        }

        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                // Accepted, but the answer broke off: the message exists at Twilio. See below.
                tracing::warn!(
                    message.id = msg.id,
                    error = %describe(e),
                    "twilio accepted the message but its answer broke off; recording it as sent without a provider id"
                );
                return SendOutcome::Sent { provider_id: String::new() };
            }
            Err(e) => return self.transport_failure(e),
        };
        let outcome = classify(status, &body, retry_after);
        match &outcome {
            SendOutcome::Sent { provider_id } if provider_id.is_empty() => {
                tracing::warn!(
                    message.id = msg.id,
                    status = status.as_u16(),
                    "twilio accepted the message but named no sid; recording it as sent without a provider id"
                );
            }
            SendOutcome::Sent { provider_id } => {
                tracing::debug!(message.id = msg.id, provider_id = %provider_id, "twilio accepted the message");
            }
            SendOutcome::Transient { error, .. }
            | SendOutcome::Permanent { error }
            | SendOutcome::Gone { error }
            | SendOutcome::Unknown { error } => {
                tracing::debug!(message.id = msg.id, status = status.as_u16(), %error, "twilio refused the message");
            }
        }
        outcome
    }

    /// The request never got an HTTP answer. A failure to connect means Twilio never saw it:
    /// worth another try. A timeout or a dropped connection after that may come after Twilio
    /// created the message, and the Messages API takes no idempotency key: retrying could send
    /// the SMS twice, so the outcome is unknown.
    fn transport_failure(&self, e: reqwest::Error) -> SendOutcome {
        if e.is_connect() {
            let error = format!("twilio: cannot connect: {}", describe(e));
            return SendOutcome::Transient { error, retry_after: None };
        }
        let error = if e.is_timeout() {
            format!("twilio: no answer within {}s; the message may have been created", self.timeout.as_secs())
        } else {
            format!("twilio: the request failed after it was sent: {}", describe(e))
        };
        SendOutcome::Unknown { error }
    }
}

/// Validates the configuration; on success, everything [`Twilio::new`] needs.
fn checked(cfg: &TwilioConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();

    let account_sid = cfg.account_sid.trim();
    if account_sid.is_empty() {
        problems.push(ConfigProblem::new("twilio.account_sid", "must not be empty"));
    } else if account_sid != cfg.account_sid || account_sid.contains(['/', '?', '#']) {
        problems.push(ConfigProblem::new("twilio.account_sid", "must be a bare sid such as AC…"));
    }

    let service = cfg.messaging_service_sid.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let from = cfg.from.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let sender = match (service, from) {
        // Twilio picks from the service's sender pool; sending `From` as well would only pin
        // (or, outside the pool, break) that choice.
        (Some(sid), _) => Some(Sender::MessagingService(sid.to_string())),
        (None, Some(from)) if is_e164(from) => Some(Sender::From(from.to_string())),
        (None, Some(from)) => {
            problems.push(ConfigProblem::new(
                "twilio.from",
                format!("{from:?} is not an e.164 number such as +15017122661"),
            ));
            None
        }
        (None, None) => {
            problems.push(ConfigProblem::new(
                "twilio.from",
                "set twilio.from (an e.164 number) or twilio.messaging_service_sid",
            ));
            None
        }
    };

    let endpoint = match endpoint(&cfg.base_url, account_sid) {
        Ok(url) => Some(url),
        Err(problem) => {
            problems.push(ConfigProblem::new("twilio.base_url", problem));
            None
        }
    };

    let status_callback = cfg.status_callback.as_deref().map(str::trim).filter(|s| !s.is_empty());
    for (key, url) in [("twilio.status_callback", status_callback), ("twilio.inbound_url", cfg.inbound_url.as_deref())]
    {
        let Some(url) = url.map(str::trim).filter(|s| !s.is_empty()) else { continue };
        match Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => problems.push(ConfigProblem::new(key, format!("{url:?} is not an http(s) url"))),
        }
    }

    if cfg.timeout_secs == 0 {
        problems.push(ConfigProblem::new("twilio.timeout_secs", "must be at least 1"));
    }

    let auth_token = resolve_secret(cfg.auth_token.as_ref(), cfg.auth_token_file.as_deref(), "twilio.auth_token")
        .map_err(|p| problems.push(p))
        .ok();

    match (endpoint, sender, auth_token) {
        (Some(endpoint), Some(sender), Some(auth_token)) if problems.is_empty() => Ok(Checked {
            endpoint,
            auth_token,
            sender,
            status_callback: status_callback.map(str::to_string),
            timeout: Duration::from_secs(cfg.timeout_secs),
        }),
        _ => Err(problems),
    }
}

/// `{base_url}/2010-04-01/Accounts/{sid}/Messages.json`, keeping any path prefix of the base (a
/// gateway mounted under `/twilio` works). Problems do not echo the URL: it may hold credentials.
fn endpoint(base_url: &str, account_sid: &str) -> Result<Url, String> {
    let mut url = Url::parse(base_url.trim()).map_err(|e| format!("not a url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) url".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; set twilio.auth_token instead".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_string());
    }
    url.path_segments_mut().map_err(|()| "cannot be a base url".to_string())?.pop_if_empty().extend([
        "2010-04-01",
        "Accounts",
        account_sid,
        "Messages.json",
    ]);
    Ok(url)
}

/// `+` then 2 to 15 digits, the first not 0.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// The part of a created Message resource we keep.
#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
}

/// Twilio's error body: `{"code": 21211, "message": "…", "more_info": "…", "status": 400}`.
#[derive(Deserialize)]
struct ApiError {
    code: Option<u64>,
    message: Option<String>,
}

/// Maps Twilio's answer onto an outcome. Pure, so it is tested without a server.
fn classify(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> SendOutcome {
    if status.is_success() {
        // A 2xx means Twilio created the message. If the body then lacks a sid (a gateway that
        // answers differently, a truncated body) the message still exists and will be delivered:
        // calling it transient would send it again, and a duplicate SMS is the one outcome this
        // daemon must not produce. So it counts as sent with an unknown provider id; the caller
        // logs a warning, and only the delivery receipt cannot be matched.
        let sid = serde_json::from_slice::<Created>(body).ok().and_then(|c| c.sid).unwrap_or_default();
        return SendOutcome::Sent { provider_id: sid.trim().to_string() };
    }
    let error = error_text(status, body);
    let code = serde_json::from_slice::<ApiError>(body).ok().and_then(|e| e.code);
    // 21211: not a valid phone number; 21614: not a mobile number; 21610: the recipient replied
    // STOP to this sender. Sending there again can only fail: the number is suppressed.
    if status.is_client_error() && matches!(code, Some(21211 | 21614 | 21610)) {
        return SendOutcome::Gone { error };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        SendOutcome::Transient { error, retry_after }
    } else {
        // Other 4xx (a bad number, wrong credentials, an unknown account) and unexpected 1xx/3xx:
        // sending the same request again would get the same answer.
        SendOutcome::Permanent { error }
    }
}

/// `twilio 21211: The 'To' number … is not a valid phone number`, or `twilio: 502 Bad Gateway`
/// when the body is not Twilio's JSON.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<ApiError>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|e| e.message.as_deref())
        .map(|m| m.trim().trim_end_matches('.').to_string())
        .filter(|m| !m.is_empty());
    match (parsed.and_then(|e| e.code), message) {
        (Some(code), Some(message)) => format!("twilio {code}: {message}"),
        (Some(code), None) => format!("twilio {code}: {status}"),
        (None, Some(message)) => format!("twilio: {status}: {message}"),
        (None, None) => format!("twilio: {status}"),
    }
}

fn permanent(error: String) -> SendOutcome {
    SendOutcome::Permanent { error }
}

/// Checks an `X-Twilio-Signature` as Twilio documents it: base64 of HMAC-SHA1, keyed with the
/// auth token, over the full URL Twilio requested followed by every POST parameter's name and
/// value, sorted by name. Compared in constant time.
pub fn signature_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("hmac takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    match base64::engine::general_purpose::STANDARD.decode(signature.trim()) {
        Ok(given) => mac.verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

/// The receipt in a status callback: `delivered`, or `undelivered`/`failed` with the
/// `ErrorCode`. Other statuses (`queued`, `sending`, `sent`) are progress, not receipts: `None`.
pub fn status_receipt(params: &[(String, String)]) -> Option<crate::channels::Receipt> {
    use crate::channels::{DeliveryStatus, Receipt};
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let sid = get("MessageSid").or_else(|| get("SmsSid"))?;
    let status = match get("MessageStatus").or_else(|| get("SmsStatus"))? {
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" | "failed" => DeliveryStatus::Undelivered,
        _ => return None,
    };
    let code = get("ErrorCode").filter(|c| !c.is_empty()).map(str::to_string);
    Some(Receipt { provider: "twilio", provider_id: sid.to_string(), status, code, at: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TwilioConfig {
        TwilioConfig {
            account_sid: "AC0123".into(),
            auth_token: Some(Secret::new("token")),
            auth_token_file: None,
            from: Some("+15017122661".into()),
            messaging_service_sid: None,
            status_callback: None,
            inbound_url: None,
            base_url: default_base_url(),
            timeout_secs: 10,
        }
    }

    #[test]
    fn retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let check = |value: &str, expected: Option<u64>| {
            assert_eq!(parse_retry_after(value, now), expected.map(Duration::from_secs), "{value:?}");
        };
        check("7", Some(7));
        check(" 0 ", Some(0));
        check("Sun, 06 Nov 1994 08:50:07 GMT", Some(30));
        check("Sunday, 06-Nov-94 08:50:07 GMT", Some(30));
        check("Sun Nov  6 08:50:07 1994", Some(30));
        check("Sun, 06 Nov 1994 08:00:00 GMT", Some(0));
        check("-1", None);
        check("soon", None);
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: SendOutcome| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, body.as_bytes(), None), expected, "{status} {body}");
        };
        let sent = |id: &str| SendOutcome::Sent { provider_id: id.into() };
        let transient = |e: &str| SendOutcome::Transient { error: e.into(), retry_after: None };
        let permanent = |e: &str| SendOutcome::Permanent { error: e.into() };
        check(201, r#"{"sid":"SM1","status":"queued"}"#, sent("SM1"));
        check(200, r#"{"sid":"SM2"}"#, sent("SM2"));
        check(201, r#"{"status":"queued"}"#, sent(""));
        check(201, "<Response/>", sent(""));
        check(
            400,
            r#"{"code":21211,"message":"The 'To' number +1500 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
            SendOutcome::Gone { error: "twilio 21211: The 'To' number +1500 is not a valid phone number".into() },
        );
        check(
            400,
            r#"{"code":21212,"message":"Invalid 'To' Phone Number"}"#,
            permanent("twilio 21212: Invalid 'To' Phone Number"),
        );
        check(401, r#"{"code":20003,"message":"Authenticate","status":401}"#, permanent("twilio 20003: Authenticate"));
        check(404, "not found", permanent("twilio: 404 Not Found"));
        check(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            transient("twilio 20429: Too Many Requests"),
        );
        check(503, "", transient("twilio: 503 Service Unavailable"));
        check(500, r#"{"message":"oops"}"#, transient("twilio: 500 Internal Server Error: oops"));
    }

    #[test]
    fn config_problems() {
        let keys = |cfg: &TwilioConfig| -> Vec<String> { Twilio::check(cfg).into_iter().map(|p| p.key).collect() };
        assert!(keys(&config()).is_empty());

        let mut cfg = config();
        cfg.from = None;
        assert_eq!(keys(&cfg), ["twilio.from"]);
        cfg.messaging_service_sid = Some("MG0123".into());
        assert!(keys(&cfg).is_empty());

        let mut cfg = config();
        cfg.from = Some("15017122661".into());
        cfg.account_sid = " ".into();
        cfg.base_url = "ftp://example.com".into();
        cfg.status_callback = Some("not a url".into());
        cfg.inbound_url = Some("club.example.com/hooks/twilio/inbound".into());
        cfg.timeout_secs = 0;
        cfg.auth_token = None;
        assert_eq!(
            keys(&cfg),
            [
                "twilio.account_sid",
                "twilio.from",
                "twilio.base_url",
                "twilio.status_callback",
                "twilio.inbound_url",
                "twilio.timeout_secs",
                "twilio.auth_token",
            ]
        );

        let mut cfg = config();
        cfg.base_url = "https://user:pw@api.twilio.com".into();
        assert_eq!(keys(&cfg), ["twilio.base_url"]);
    }

    #[test]
    fn endpoint_keeps_prefix() {
        let url = |base: &str| endpoint(base, "AC1").unwrap().to_string();
        assert_eq!(url("https://api.twilio.com"), "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json");
        assert_eq!(url("http://127.0.0.1:9/"), "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json");
        assert_eq!(url("http://gw.local/twilio/"), "http://gw.local/twilio/2010-04-01/Accounts/AC1/Messages.json");
    }

    #[test]
    fn e164() {
        for ok in ["+15017122661", "+8613800138000", "+12"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in ["15017122661", "+", "+1", "+0123", "+1 501 712", "+1234567890123456", "+86１"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Twilio's own published example (auth token 12345, the myapp.php URL, five parameters).
    #[test]
    fn the_signature_matches_twilio_s_published_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert!(signature_valid("12345", url, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
        assert!(!signature_valid("12346", url, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
        assert!(!signature_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!signature_valid("12345", url, &changed, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
        assert!(!signature_valid("12345", url, &params, "not base64!"));
    }

    #[test]
    fn status_callbacks_become_receipts_only_when_final() {
        let r =
            status_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")]))
                .unwrap();
        assert_eq!(r.provider_id, "SM1");
        assert_eq!(r.status, crate::channels::DeliveryStatus::Undelivered);
        assert_eq!(r.code.as_deref(), Some("30003"));
        let d = status_receipt(&pairs(&[("MessageSid", "SM2"), ("MessageStatus", "delivered")])).unwrap();
        assert_eq!((d.status, d.code), (crate::channels::DeliveryStatus::Delivered, None));
        assert_eq!(status_receipt(&pairs(&[("MessageSid", "SM3"), ("MessageStatus", "sent")])), None);
        assert_eq!(status_receipt(&pairs(&[("MessageStatus", "delivered")])), None);
    }
}
