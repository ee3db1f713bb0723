//! SMS through Tencent Cloud SMS: the `SendSms` action of API version 2021-01-11, signed with
//! `TC3-HMAC-SHA256` (API 3.0).
//!
//! Tencent sends only templates approved in its console: the message's `tencent`
//! [`ProviderTemplate`](crate::channels::ProviderTemplate) (from the variant's
//! `sms.providers.toml`) gives the `TemplateId` and the ordered `TemplateParamSet`. One request
//! per message: `POST {base_url}/` with a JSON body (`PhoneNumberSet` with the E.164 number,
//! `SmsSdkAppId`, `SignName`, `TemplateId`, `TemplateParamSet`, `SessionContext` = the
//! message's idempotency key) and the common parameters in `X-TC-*` headers.
//!
//! Tencent answers HTTP 200 to everything it parsed: `Response.Error` when the request failed as
//! a whole, otherwise one `SendStatusSet` entry per number whose `Code` is `Ok` (with the
//! `SerialNo` that status callbacks carry) or why not. Rate limits and internal errors are worth
//! retrying; an incorrect number is gone; authentication and the rest are permanent.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::channels::wire;
use crate::channels::{DeliveryStatus, Outgoing, ProviderParams, Receipt, Rendered, SendOutcome};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// `[tencent]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentConfig {
    /// The token the delivery-report URL must carry (`/hooks/tencent/receipts?token=…`): the
    /// provider's report push is not signed. Unset: the endpoint is off.
    #[serde(default)]
    pub receipt_token: Option<Secret>,
    /// The API key's SecretId (`AKID…`).
    pub secret_id: String,
    /// The SecretKey; or `secret_key_file`, or `TIDINGS_TENCENT_SECRET_KEY`.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    #[serde(default)]
    pub secret_key_file: Option<std::path::PathBuf>,
    /// The SMS application's SdkAppId (`1400006666`).
    pub sms_sdk_app_id: String,
    /// The approved signature, without 【】; required for mainland numbers.
    #[serde(default)]
    pub sign_name: Option<String>,
    /// The region the request is served in (`X-TC-Region`).
    #[serde(default = "default_region")]
    pub region: String,
    /// The API endpoint; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_region() -> String {
    "ap-guangzhou".to_string()
}

fn default_base_url() -> String {
    "https://sms.tencentcloudapi.com".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// The provider's name on messages, in mapping files and in receipts.
pub const NAME: &str = "tencent";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const ALGORITHM: &str = "TC3-HMAC-SHA256";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// What Tencent expects back from the endpoint its status callbacks are posted to.
pub const RECEIPT_ACK: &str = r#"{"result":0,"errmsg":"OK"}"#;

/// The Tencent Cloud provider. Cheap to clone: the HTTP client is shared.
#[derive(Debug, Clone)]
pub struct Tencent {
    client: reqwest::Client,
    endpoint: Url,
    /// The `Host` header as sent, which the signature covers.
    host: String,
    secret_id: String,
    secret_key: Secret,
    sdk_app_id: String,
    sign_name: Option<String>,
    region: String,
    timeout: Duration,
}

struct Checked {
    endpoint: Url,
    secret_key: Secret,
    timeout: Duration,
}

impl Tencent {
    /// Builds the provider: resolves the SecretKey and builds one HTTP client with a connect
    /// timeout and a total timeout.
    pub fn new(cfg: &TencentConfig) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid tencent configuration: {}", list.join("; "))
        })?;
        Ok(Tencent {
            client: wire::client(NAME, checked.timeout)?,
            host: wire::host_header(&checked.endpoint),
            endpoint: checked.endpoint,
            secret_id: cfg.secret_id.trim().to_string(),
            secret_key: checked.secret_key,
            sdk_app_id: cfg.sms_sdk_app_id.trim().to_string(),
            sign_name: cfg.sign_name.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string),
            region: cfg.region.trim().to_string(),
            timeout: checked.timeout,
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &TencentConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one SMS. `msg.to` is the E.164 number; `msg.rendered` must be an SMS carrying a
    /// `tencent` provider template.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let Rendered::Sms { provider_templates, .. } = &msg.rendered else {
            return permanent(format!("tencent: the sms provider cannot send {}", msg.rendered.channel()));
        };
        let Some(template) = provider_templates.get(NAME) else {
            return permanent(format!(
                "tencent: the sms of rule {} has no [tencent] template mapping (add one to the template's sms.providers.toml)",
                msg.rule_id
            ));
        };
        let ProviderParams::Ordered(params) = &template.params else {
            return permanent(format!("tencent: {}: the [tencent] params must be a list", template.source));
        };
        if !wire::is_e164(&msg.to) {
            return permanent("tencent: the recipient is not an e.164 phone number".to_string());
        }
        let mut body = serde_json::json!({
            "PhoneNumberSet": [msg.to],
            "SmsSdkAppId": self.sdk_app_id,
            "TemplateId": template.code,
            "TemplateParamSet": params,
            "SessionContext": msg.idempotency_key(),
        });
        if let Some(sign) = &self.sign_name {
            body["SignName"] = serde_json::Value::String(sign.clone());
        }
        let payload = serde_json::to_vec(&body).expect("json serializes");
        let timestamp = jiff::Timestamp::now().as_second();
        let headers = [("content-type", CONTENT_TYPE), ("host", self.host.as_str()), ("x-tc-action", ACTION)];
        let signed = sign_tc3(&self.secret_id, self.secret_key.expose(), SERVICE, timestamp, &headers, &payload);

        let builder = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, signed.authorization)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("X-TC-Action", ACTION)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Region", &self.region)
            .body(payload);
        wire::send_classified(NAME, builder, self.timeout, msg.id, |status, body, retry_after| {
            classify(status, body, retry_after, &template.code, &template.source)
        })
        .await
    }
}

fn checked(cfg: &TencentConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let id = cfg.secret_id.trim();
    if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == '/') {
        problems.push(ConfigProblem::new("tencent.secret_id", "must be a bare SecretId such as AKID…"));
    }
    let app = cfg.sms_sdk_app_id.trim();
    if app.is_empty() || !app.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(ConfigProblem::new(
            "tencent.sms_sdk_app_id",
            format!("{app:?} is not an SdkAppId such as 1400006666"),
        ));
    }
    if let Some(sign) = cfg.sign_name.as_deref().map(str::trim)
        && (sign.starts_with('【') || sign.ends_with('】'))
    {
        problems.push(ConfigProblem::new("tencent.sign_name", "without 【】: tencent adds the brackets"));
    }
    let region = cfg.region.trim();
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        problems.push(ConfigProblem::new("tencent.region", format!("{region:?} is not a region such as ap-guangzhou")));
    }
    let endpoint = wire::base_url(&cfg.base_url, "tencent.secret_key")
        .map_err(|p| problems.push(ConfigProblem::new("tencent.base_url", p)))
        .ok();
    if cfg.timeout_secs == 0 {
        problems.push(ConfigProblem::new("tencent.timeout_secs", "must be at least 1"));
    }
    let secret_key = resolve_secret(cfg.secret_key.as_ref(), cfg.secret_key_file.as_deref(), "tencent.secret_key")
        .map_err(|p| problems.push(p))
        .ok();
    match (endpoint, secret_key) {
        (Some(endpoint), Some(secret_key)) if problems.is_empty() => {
            Ok(Checked { endpoint, secret_key, timeout: Duration::from_secs(cfg.timeout_secs) })
        }
        _ => Err(problems),
    }
}

// ---------------------------------------------------------------------------------------------
// The TC3-HMAC-SHA256 signature, as Tencent Cloud's "Signature v3" says.

/// What signing gives.
pub(crate) struct Signed {
    pub authorization: String,
    /// What was signed; tests compare it with the published example.
    #[cfg_attr(not(test), allow(dead_code))]
    pub canonical_request: String,
}

/// Signs a POST of `payload` at `timestamp` (seconds): the canonical request (`POST`, `/`, an
/// empty query, the signed headers lower-cased and sorted, their names, the payload's SHA-256),
/// the string to sign with the credential scope `date/service/tc3_request` (the UTC date of
/// `timestamp`), and the key derived from `"TC3" + secret_key` through the date, the service
/// and `tc3_request`. `headers` are `(name, value)`, names lower case.
pub(crate) fn sign_tc3(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Signed {
    let mut headers: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_lowercase())).collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_request = format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}", wire::sha256_hex(payload));
    let date = jiff::Timestamp::from_second(timestamp)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "1970-01-01".to_string());
    let scope = format!("{date}/{service}/tc3_request");
    let string_to_sign =
        format!("{ALGORITHM}\n{timestamp}\n{scope}\n{}", wire::sha256_hex(canonical_request.as_bytes()));
    let secret_date = wire::hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = wire::hmac_sha256(&secret_date, service.as_bytes());
    let secret_signing = wire::hmac_sha256(&secret_service, b"tc3_request");
    let signature = wire::hex(&wire::hmac_sha256(&secret_signing, string_to_sign.as_bytes()));
    let authorization =
        format!("{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}");
    Signed { authorization, canonical_request }
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: ResponseBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody {
    error: Option<ApiError>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    #[serde(default)]
    serial_no: String,
    code: String,
    #[serde(default)]
    message: String,
}

/// Maps Tencent's answer onto an outcome. Pure, so it is tested without a server.
fn classify(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    template: &str,
    source: &str,
) -> SendOutcome {
    let parsed = serde_json::from_slice::<Envelope>(body).ok().map(|e| e.response);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let error = match parsed.and_then(|r| r.error) {
            Some(e) => describe(&e.code, &e.message),
            None => format!("tencent: {status}"),
        };
        return SendOutcome::Transient { error, retry_after };
    }
    let Some(response) = parsed else {
        return if status.is_success() {
            SendOutcome::Unknown {
                error: format!("tencent: {status} without a Response; the message may have been accepted"),
            }
        } else {
            permanent(format!("tencent: {status}"))
        };
    };
    if let Some(error) = response.error {
        return by_code(&error.code, describe(&error.code, &error.message), retry_after, template, source);
    }
    match response.send_status_set.first() {
        Some(s) if s.code == "Ok" => SendOutcome::Sent { provider_id: s.serial_no.trim().to_string() },
        Some(s) => by_code(&s.code, describe(&s.code, &s.message), retry_after, template, source),
        None => SendOutcome::Unknown {
            error: "tencent: an answer without a SendStatusSet; the message may have been accepted".into(),
        },
    }
}

/// `tencent LimitExceeded.PhoneNumberDailyLimit: …`
fn describe(code: &str, message: &str) -> String {
    let message = message.trim().trim_end_matches(['.', '。']);
    if message.is_empty() { format!("tencent {code}") } else { format!("tencent {code}: {message}") }
}

/// What a Tencent error code means for the message. Per-number frequency limits of thirty
/// seconds and an hour pass (and say when); the marketing window (8:00 to 22:00 Beijing time)
/// reopens; the daily limits and everything about the account, signature or template do not.
fn by_code(code: &str, mut error: String, retry_after: Option<Duration>, template: &str, source: &str) -> SendOutcome {
    let hint = match code {
        "LimitExceeded.PhoneNumberThirtySecondLimit" => Some(Duration::from_secs(30)),
        "LimitExceeded.PhoneNumberOneHourLimit" => Some(Duration::from_secs(3600)),
        _ => None,
    };
    let transient = code.starts_with("RequestLimitExceeded")
        || code.starts_with("InternalError")
        || hint.is_some()
        || matches!(code, "LimitExceeded.DeliveryFrequencyLimit" | "FailedOperation.MarketingSendTimeConstraint");
    if transient {
        return SendOutcome::Transient { error, retry_after: retry_after.or(hint) };
    }
    if matches!(code, "InvalidParameterValue.IncorrectPhoneNumber" | "FailedOperation.PhoneNumberParseFail") {
        return SendOutcome::Gone { error };
    }
    if code.contains("Template") {
        error.push_str(&format!(" (template {template} from {source})"));
    }
    permanent(error)
}

fn permanent(error: String) -> SendOutcome {
    SendOutcome::Permanent { error }
}

// ---------------------------------------------------------------------------------------------
// Status callbacks.

#[derive(Deserialize)]
struct StatusReport {
    sid: String,
    report_status: String,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    user_receive_time: Option<String>,
}

/// Parses a status callback: a JSON array of objects (`user_receive_time`, `nationcode`,
/// `mobile`, `report_status` `SUCCESS` or `FAIL`, `errmsg`, `description`, `sid`). Each becomes
/// a [`Receipt`] for the message whose `SerialNo` is `sid`, with `errmsg` (`DELIVRD`, …) as the
/// code and the receive time (Beijing time). Answer the callback with [`RECEIPT_ACK`]. A
/// malformed report fails the whole callback, naming it.
pub fn parse_receipts(body: &[u8]) -> Result<Vec<Receipt>, String> {
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("tencent receipts: not a JSON array: {e}"))?;
    let mut receipts = Vec::with_capacity(reports.len());
    for (i, value) in reports.into_iter().enumerate() {
        let report: StatusReport =
            serde_json::from_value(value).map_err(|e| format!("tencent receipts: report {i}: {e}"))?;
        let provider_id = report.sid.trim().to_string();
        if provider_id.is_empty() {
            return Err(format!("tencent receipts: report {i}: sid is empty"));
        }
        let status = match report.report_status.trim() {
            "SUCCESS" => DeliveryStatus::Delivered,
            "FAIL" => DeliveryStatus::Undelivered,
            other => {
                return Err(format!("tencent receipts: report {i}: report_status {other:?} is not SUCCESS or FAIL"));
            }
        };
        let at = match report.user_receive_time.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(
                super::china_time(t).map_err(|e| format!("tencent receipts: report {i}: user_receive_time: {e}"))?,
            ),
            None => None,
        };
        receipts.push(Receipt {
            provider: NAME,
            provider_id,
            status,
            code: report.errmsg.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
            at,
        });
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TencentConfig {
        TencentConfig {
            receipt_token: None,
            secret_id: "AKIDexample".into(),
            secret_key: Some(Secret::new("key")),
            secret_key_file: None,
            sms_sdk_app_id: "1400006666".into(),
            sign_name: Some("玉石会员".into()),
            region: default_region(),
            base_url: default_base_url(),
            timeout_secs: 10,
        }
    }

    /// The worked example of Tencent Cloud's "Signature v3" documentation (CVM
    /// DescribeInstances in ap-guangzhou at 1551113065, signing content-type and host), with
    /// every intermediate value it publishes.
    #[test]
    fn tc3_signature_matches_the_published_example() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        assert_eq!(wire::sha256_hex(payload), "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064");
        let signed = sign_tc3(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            1551113065,
            &[("host", "cvm.tencentcloudapi.com"), ("content-type", "application/json; charset=utf-8")],
            payload,
        );
        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            wire::sha256_hex(signed.canonical_request.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            signed.authorization,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn signed_header_values_are_lower_cased() {
        let a = sign_tc3("id", "k", "sms", 1700000000, &[("x-tc-action", "SendSms"), ("host", "h")], b"{}");
        assert!(a.canonical_request.contains("host:h\nx-tc-action:sendsms\n"), "{}", a.canonical_request);
        assert!(a.authorization.contains("Credential=id/2023-11-14/sms/tc3_request, SignedHeaders=host;x-tc-action,"));
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: SendOutcome| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, body.as_bytes(), None, "1234567", "t.toml"), expected, "{status} {body}");
        };
        let status = |code: &str, message: &str| {
            format!(
                r#"{{"Response":{{"SendStatusSet":[{{"SerialNo":"","PhoneNumber":"+8613800138000","Fee":0,"SessionContext":"x","Code":"{code}","Message":"{message}","IsoCode":"CN"}}],"RequestId":"r"}}}}"#
            )
        };
        let error = |code: &str, message: &str| {
            format!(r#"{{"Response":{{"Error":{{"Code":"{code}","Message":"{message}"}},"RequestId":"r"}}}}"#)
        };
        check(
            200,
            r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8618511122233","Fee":1,"SessionContext":"test","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#,
            SendOutcome::Sent { provider_id: "5000:1045710669157053657849499619".into() },
        );
        check(
            200,
            &status("InvalidParameterValue.IncorrectPhoneNumber", "incorrect number"),
            SendOutcome::Gone { error: "tencent InvalidParameterValue.IncorrectPhoneNumber: incorrect number".into() },
        );
        check(
            200,
            &status("LimitExceeded.PhoneNumberThirtySecondLimit", "too often"),
            SendOutcome::Transient {
                error: "tencent LimitExceeded.PhoneNumberThirtySecondLimit: too often".into(),
                retry_after: Some(Duration::from_secs(30)),
            },
        );
        check(
            200,
            &status("LimitExceeded.PhoneNumberDailyLimit", "daily"),
            permanent("tencent LimitExceeded.PhoneNumberDailyLimit: daily".into()),
        );
        check(
            200,
            &error("RequestLimitExceeded", "请求的次数超过了频率限制。"),
            SendOutcome::Transient {
                error: "tencent RequestLimitExceeded: 请求的次数超过了频率限制".into(),
                retry_after: None,
            },
        );
        check(
            200,
            &error("InternalError.Timeout", "timeout"),
            SendOutcome::Transient { error: "tencent InternalError.Timeout: timeout".into(), retry_after: None },
        );
        check(
            200,
            &error("AuthFailure.SignatureFailure", "The provided credentials could not be validated."),
            permanent("tencent AuthFailure.SignatureFailure: The provided credentials could not be validated".into()),
        );
        check(
            200,
            &error("FailedOperation.TemplateIncorrectOrUnapproved", "template"),
            permanent(
                "tencent FailedOperation.TemplateIncorrectOrUnapproved: template (template 1234567 from t.toml)".into(),
            ),
        );
        check(
            502,
            "bad gateway",
            SendOutcome::Transient { error: "tencent: 502 Bad Gateway".into(), retry_after: None },
        );
        check(403, "forbidden", permanent("tencent: 403 Forbidden".into()));
        assert!(matches!(classify(StatusCode::OK, b"{}", None, "", ""), SendOutcome::Unknown { .. }));
        assert!(matches!(
            classify(StatusCode::OK, br#"{"Response":{"RequestId":"r"}}"#, None, "", ""),
            SendOutcome::Unknown { .. }
        ));
    }

    #[test]
    fn config_problems() {
        let keys = |cfg: &TencentConfig| -> Vec<String> { Tencent::check(cfg).into_iter().map(|p| p.key).collect() };
        assert!(keys(&config()).is_empty());
        let mut cfg = config();
        cfg.sign_name = None;
        assert!(keys(&cfg).is_empty());
        cfg.secret_id = "".into();
        cfg.sms_sdk_app_id = "app".into();
        cfg.sign_name = Some("【玉石】".into());
        cfg.region = "Guangzhou".into();
        cfg.base_url = "sms.tencentcloudapi.com".into();
        cfg.timeout_secs = 0;
        cfg.secret_key = None;
        assert_eq!(
            keys(&cfg),
            [
                "tencent.secret_id",
                "tencent.sms_sdk_app_id",
                "tencent.sign_name",
                "tencent.region",
                "tencent.base_url",
                "tencent.timeout_secs",
                "tencent.secret_key",
            ]
        );
    }

    #[test]
    fn receipts() {
        let body = r#"[
          {"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13xxxxxxxxx",
           "report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"xxxxxxx"},
          {"user_receive_time":"2015-10-17 08:03:05","nationcode":"86","mobile":"13xxxxxxxxx",
           "report_status":"FAIL","errmsg":"MK:0012","description":"用户短信送达失败","sid":"yyyy"}
        ]"#;
        let got = parse_receipts(body.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                Receipt {
                    provider: "tencent",
                    provider_id: "xxxxxxx".into(),
                    status: DeliveryStatus::Delivered,
                    code: Some("DELIVRD".into()),
                    at: Some("2015-10-17T00:03:04Z".parse().unwrap()),
                },
                Receipt {
                    provider: "tencent",
                    provider_id: "yyyy".into(),
                    status: DeliveryStatus::Undelivered,
                    code: Some("MK:0012".into()),
                    at: Some("2015-10-17T00:03:05Z".parse().unwrap()),
                },
            ]
        );
        let err = |body: &str| parse_receipts(body.as_bytes()).unwrap_err();
        assert!(err("{").starts_with("tencent receipts: not a JSON array"));
        assert!(err(r#"[{"report_status":"SUCCESS"}]"#).contains("report 0: missing field `sid`"));
        assert!(err(r#"[{"report_status":"MAYBE","sid":"1"}]"#).contains("report 0: report_status \"MAYBE\""));
        assert!(
            err(r#"[{"report_status":"FAIL","sid":"1","user_receive_time":"17/10/2015"}]"#)
                .contains("user_receive_time")
        );
    }
}
