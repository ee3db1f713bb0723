//! SMS through Aliyun (Alibaba Cloud Short Message Service): the `SendSms` operation of
//! dysmsapi, version 2017-05-25, signed with the V3 signature (`ACS3-HMAC-SHA256`).
//!
//! Aliyun sends only templates approved in its console: the message's
//! [`ProviderTemplate`](crate::channels::ProviderTemplate) for `aliyun` (from the variant's
//! `sms.providers.toml`) gives the `TemplateCode` and the `TemplateParam` values; the text
//! rendered from `sms.hbs` is what the approved template says, for previews. One request per
//! message: `POST {base_url}/?OutId=…&PhoneNumbers=…&SignName=…&TemplateCode=…&TemplateParam=…`
//! with an empty body, the parameters in the query as the operation's metadata places them.
//!
//! Aliyun answers HTTP 200 with `Code: "OK"` and a `BizId` (the provider id, which delivery
//! reports carry) when it took the message, and its own `Code` otherwise, on a 200 for
//! business errors and a 4xx from the gateway. Throttling and system errors are worth
//! retrying; `isv.MOBILE_NUMBER_ILLEGAL` means the number is gone; the rest are permanent. A
//! 2xx without a `Code` cannot be read either way: the message may have been accepted.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::channels::wire;
use crate::channels::{DeliveryStatus, Outgoing, ProviderParams, Receipt, Rendered, SendOutcome};
use crate::config::{ConfigProblem, Secret, resolve_secret};

/// `[aliyun]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunConfig {
    /// The token the delivery-report URL must carry (`/hooks/aliyun/receipts?token=…`): the
    /// provider's report push is not signed. Unset: the endpoint is off.
    #[serde(default)]
    pub receipt_token: Option<Secret>,
    /// The AccessKey ID (`LTAI…`) of a RAM user allowed `dysms:SendSms`.
    pub access_key_id: String,
    /// The AccessKey secret; or `access_key_secret_file`, or `TIDINGS_ALIYUN_ACCESS_KEY_SECRET`.
    #[serde(default)]
    pub access_key_secret: Option<Secret>,
    #[serde(default)]
    pub access_key_secret_file: Option<std::path::PathBuf>,
    /// The approved signature (签名), without 【】: the provider puts it in front of the text.
    pub sign_name: String,
    /// The API endpoint; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    "https://dysmsapi.aliyuncs.com".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// The provider's name on messages, in mapping files and in receipts.
pub const NAME: &str = "aliyun";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// What Aliyun expects back from the endpoint its delivery reports are pushed to.
pub const RECEIPT_ACK: &str = r#"{"code":0,"msg":"成功"}"#;

/// The Aliyun provider. Cheap to clone: the HTTP client (and its connection pool) is shared.
#[derive(Debug, Clone)]
pub struct Aliyun {
    client: reqwest::Client,
    endpoint: Url,
    /// The `Host` header as sent, which the signature covers.
    host: String,
    access_key_id: String,
    secret: Secret,
    sign_name: String,
    timeout: Duration,
}

/// A configuration that passed [`Aliyun::check`].
struct Checked {
    endpoint: Url,
    secret: Secret,
    timeout: Duration,
}

impl Aliyun {
    /// Builds the provider: resolves the secret and builds one HTTP client with a connect
    /// timeout and a total timeout.
    pub fn new(cfg: &AliyunConfig) -> anyhow::Result<Self> {
        let checked = checked(cfg).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid aliyun configuration: {}", list.join("; "))
        })?;
        Ok(Aliyun {
            client: wire::client(NAME, checked.timeout)?,
            host: wire::host_header(&checked.endpoint),
            endpoint: checked.endpoint,
            access_key_id: cfg.access_key_id.trim().to_string(),
            secret: checked.secret,
            sign_name: cfg.sign_name.trim().to_string(),
            timeout: checked.timeout,
        })
    }

    /// Start-up validation, without touching the network: every problem, each naming its key.
    pub fn check(cfg: &AliyunConfig) -> Vec<ConfigProblem> {
        checked(cfg).err().unwrap_or_default()
    }

    /// Sends one SMS. `msg.to` is the E.164 number; `msg.rendered` must be an SMS carrying an
    /// `aliyun` provider template.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let Rendered::Sms { provider_templates, .. } = &msg.rendered else {
            return permanent(format!("aliyun: the sms provider cannot send {}", msg.rendered.channel()));
        };
        let Some(template) = provider_templates.get(NAME) else {
            return permanent(format!(
                "aliyun: the sms of rule {} has no [aliyun] template mapping (add one to the template's sms.providers.toml)",
                msg.rule_id
            ));
        };
        let ProviderParams::Named(params) = &template.params else {
            return permanent(format!("aliyun: {}: the [aliyun] params must be a table of names", template.source));
        };
        let Some(phone) = phone_number(&msg.to) else {
            return permanent("aliyun: the recipient is not an e.164 phone number".to_string());
        };
        let mut query = vec![
            ("OutId", msg.idempotency_key()),
            ("PhoneNumbers", phone),
            ("SignName", self.sign_name.clone()),
            ("TemplateCode", template.code.clone()),
        ];
        if !params.is_empty() {
            let json = serde_json::to_string(params).expect("a map of strings serializes");
            query.push(("TemplateParam", json));
        }
        let date = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let request = V3Request {
            method: "POST",
            host: &self.host,
            action: ACTION,
            version: VERSION,
            date: &date,
            nonce: &nonce,
            query: &query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            body: b"",
        };
        let signed = sign_v3(&request, &self.access_key_id, self.secret.expose());

        let mut url = self.endpoint.clone();
        url.set_query(Some(&signed.canonical_query));
        let mut builder = self.client.post(url).header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in &signed.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        wire::send_classified(NAME, builder, self.timeout, msg.id, |status, body, retry_after| {
            classify(status, body, retry_after, &template.code, &template.source)
        })
        .await
    }
}

/// Validates the configuration; on success, everything [`Aliyun::new`] needs.
fn checked(cfg: &AliyunConfig) -> Result<Checked, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let id = cfg.access_key_id.trim();
    if id.is_empty() {
        problems.push(ConfigProblem::new("aliyun.access_key_id", "must not be empty"));
    } else if id.contains(|c: char| c.is_whitespace() || c == ',') {
        problems.push(ConfigProblem::new("aliyun.access_key_id", "must be a bare AccessKey ID such as LTAI…"));
    }
    let sign = cfg.sign_name.trim();
    if sign.is_empty() {
        problems.push(ConfigProblem::new("aliyun.sign_name", "must not be empty (the approved signature)"));
    } else if sign.starts_with('【') || sign.ends_with('】') {
        problems.push(ConfigProblem::new("aliyun.sign_name", "without 【】: aliyun adds the brackets"));
    }
    let endpoint = wire::base_url(&cfg.base_url, "aliyun.access_key_secret")
        .map_err(|p| problems.push(ConfigProblem::new("aliyun.base_url", p)))
        .ok();
    if cfg.timeout_secs == 0 {
        problems.push(ConfigProblem::new("aliyun.timeout_secs", "must be at least 1"));
    }
    let secret = resolve_secret(
        cfg.access_key_secret.as_ref(),
        cfg.access_key_secret_file.as_deref(),
        "aliyun.access_key_secret",
    )
    .map_err(|p| problems.push(p))
    .ok();
    match (endpoint, secret) {
        (Some(endpoint), Some(secret)) if problems.is_empty() => {
            Ok(Checked { endpoint, secret, timeout: Duration::from_secs(cfg.timeout_secs) })
        }
        _ => Err(problems),
    }
}

/// The number as Aliyun's `PhoneNumbers` takes it: a mainland number as its 11 digits, without
/// `+86`; any other with its country code but no `+` or `00` (`85212345678`), as Aliyun
/// documents for international and Hong Kong, Macao and Taiwan messages. (A North American
/// number then reads like a mainland one, `1` and ten digits: Aliyun's format, not ours.)
fn phone_number(e164: &str) -> Option<String> {
    if !wire::is_e164(e164) {
        return None;
    }
    let digits = &e164[1..];
    Some(digits.strip_prefix("86").unwrap_or(digits).to_string())
}

// ---------------------------------------------------------------------------------------------
// The V3 signature (ACS3-HMAC-SHA256), as Aliyun's "V3 request structure and signature" says.

/// One request to sign: an RPC-style call, its parameters in the query.
pub(crate) struct V3Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub action: &'a str,
    pub version: &'a str,
    /// `x-acs-date`: UTC as `2023-10-26T10:22:32Z`.
    pub date: &'a str,
    /// `x-acs-signature-nonce`: different for every request.
    pub nonce: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// What signing gives: the query string to send (the canonical one) and the headers to add.
pub(crate) struct Signed {
    pub canonical_query: String,
    /// What was signed; tests compare it with the published example.
    #[cfg_attr(not(test), allow(dead_code))]
    pub canonical_request: String,
    /// `x-acs-*` and `Authorization`, names lower case.
    pub headers: Vec<(String, String)>,
}

/// Signs `r`: the canonical request (method, `/`, the sorted percent-encoded query, the signed
/// headers `host` and `x-acs-*` sorted, their names, the body's SHA-256), its SHA-256 under
/// `ACS3-HMAC-SHA256`, HMAC-SHA256 with the secret.
pub(crate) fn sign_v3(r: &V3Request<'_>, access_key_id: &str, secret: &str) -> Signed {
    let mut query: Vec<(String, String)> =
        r.query.iter().map(|(k, v)| (wire::percent_encode(k), wire::percent_encode(v))).collect();
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let payload_hash = wire::sha256_hex(r.body);
    // Sorted by name, as the canonical form wants.
    let signed: [(&str, &str); 6] = [
        ("host", r.host),
        ("x-acs-action", r.action),
        ("x-acs-content-sha256", &payload_hash),
        ("x-acs-date", r.date),
        ("x-acs-signature-nonce", r.nonce),
        ("x-acs-version", r.version),
    ];
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = signed.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n/\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        r.method.to_uppercase()
    );
    let string_to_sign = format!("{ALGORITHM}\n{}", wire::sha256_hex(canonical_request.as_bytes()));
    let signature = wire::hex(&wire::hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()));
    let authorization =
        format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}");
    let mut headers: Vec<(String, String)> =
        signed.iter().filter(|(k, _)| *k != "host").map(|(k, v)| (k.to_string(), v.to_string())).collect();
    headers.push(("authorization".to_string(), authorization));
    Signed { canonical_query, canonical_request, headers }
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// Aliyun's answer, to a send and to an error alike.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
}

/// Codes that say "not now": flow control per number or account, and Aliyun's own failures.
fn is_transient_code(code: &str) -> bool {
    code.starts_with("Throttling")
        || code.starts_with("isv.BUSINESS_LIMIT_CONTROL")
        || matches!(code, "isp.SYSTEM_ERROR" | "isp.GATEWAY_ERROR" | "ServiceUnavailable" | "InternalError")
}

/// Maps Aliyun's answer onto an outcome. Pure, so it is tested without a server. `template`
/// and `source` name the template in errors about it.
fn classify(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    template: &str,
    source: &str,
) -> SendOutcome {
    let reply = serde_json::from_slice::<Reply>(body).ok();
    let code = reply.as_ref().and_then(|r| r.code.as_deref()).map(str::trim).filter(|c| !c.is_empty());
    let (Some(code), Some(reply)) = (code, reply.as_ref()) else {
        return if status.is_success() {
            // Aliyun always says OK or why not; a 2xx without a Code (a proxy, a cut body)
            // leaves open whether it took the message, and a resend could duplicate it.
            SendOutcome::Unknown {
                error: format!("aliyun: {status} without a Code; the message may have been accepted"),
            }
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            SendOutcome::Transient { error: format!("aliyun: {status}"), retry_after }
        } else {
            permanent(format!("aliyun: {status}"))
        };
    };
    if code == "OK" && status.is_success() {
        return SendOutcome::Sent { provider_id: reply.biz_id.as_deref().unwrap_or_default().trim().to_string() };
    }
    let message = reply.message.as_deref().map(|m| m.trim().trim_end_matches('.')).filter(|m| !m.is_empty());
    let mut error = match message {
        Some(message) => format!("aliyun {code}: {message}"),
        None => format!("aliyun {code}: {status}"),
    };
    if is_transient_code(code) || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return SendOutcome::Transient { error, retry_after };
    }
    if code == "isv.MOBILE_NUMBER_ILLEGAL" {
        return SendOutcome::Gone { error };
    }
    if code.contains("TEMPLATE") || code.contains("PARAM") {
        error.push_str(&format!(" (template {template} from {source})"));
    }
    permanent(error)
}

fn permanent(error: String) -> SendOutcome {
    SendOutcome::Permanent { error }
}

// ---------------------------------------------------------------------------------------------
// Delivery reports.

/// One `SmsReport` as Aliyun pushes it.
#[derive(Deserialize)]
struct SmsReport {
    biz_id: String,
    success: bool,
    #[serde(default)]
    err_code: Option<String>,
    #[serde(default)]
    report_time: Option<String>,
}

/// Parses a delivery report push: a JSON array of `SmsReport` objects (`phone_number`,
/// `send_time`, `report_time`, `success`, `err_code`, `err_msg`, `sms_size`, `biz_id`,
/// `out_id`). Each becomes a [`Receipt`] for the message Aliyun answered with `biz_id`:
/// delivered when `success`, else undelivered, with `err_code` (`DELIVERED`, `MK:0001`…) and the
/// report time (Beijing time). Answer the push with [`RECEIPT_ACK`]. A malformed report fails
/// the whole push, naming it, so that Aliyun pushes it again.
pub fn parse_receipts(body: &[u8]) -> Result<Vec<Receipt>, String> {
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("aliyun receipts: not a JSON array: {e}"))?;
    let mut receipts = Vec::with_capacity(reports.len());
    for (i, value) in reports.into_iter().enumerate() {
        let report: SmsReport =
            serde_json::from_value(value).map_err(|e| format!("aliyun receipts: report {i}: {e}"))?;
        let provider_id = report.biz_id.trim().to_string();
        if provider_id.is_empty() {
            return Err(format!("aliyun receipts: report {i}: biz_id is empty"));
        }
        let at = match report.report_time.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => {
                Some(super::china_time(t).map_err(|e| format!("aliyun receipts: report {i}: report_time: {e}"))?)
            }
            None => None,
        };
        receipts.push(Receipt {
            provider: NAME,
            provider_id,
            status: if report.success { DeliveryStatus::Delivered } else { DeliveryStatus::Undelivered },
            code: report.err_code.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
            at,
        });
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AliyunConfig {
        AliyunConfig {
            receipt_token: None,
            access_key_id: "LTAI5tExample".into(),
            access_key_secret: Some(Secret::new("secret")),
            access_key_secret_file: None,
            sign_name: "玉石会员".into(),
            base_url: default_base_url(),
            timeout_secs: 10,
        }
    }

    /// The worked example of Aliyun's V3 signature documentation ("Signature examples: fixed
    /// parameter values"): ECS RunInstances, its parameters in the query, an empty body.
    #[test]
    fn v3_signature_matches_the_published_example() {
        let request = V3Request {
            method: "POST",
            host: "ecs.cn-shanghai.aliyuncs.com",
            action: "RunInstances",
            version: "2014-05-26",
            date: "2023-10-26T10:22:32Z",
            nonce: "3156853299f313e23d1673dc12e1703d",
            query: &[("RegionId", "cn-shanghai"), ("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd")],
            body: b"",
        };
        let signed = sign_v3(&request, "YourAccessKeyId", "YourAccessKeySecret");
        assert_eq!(
            signed.canonical_request,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            wire::sha256_hex(signed.canonical_request.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let authorization = signed.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
        assert_eq!(
            authorization,
            Some(
                "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,\
                 SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
                 Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
            )
        );
    }

    #[test]
    fn query_values_are_rfc3986_encoded() {
        let request = V3Request {
            method: "POST",
            host: "h",
            action: "SendSms",
            version: VERSION,
            date: "d",
            nonce: "n",
            query: &[("TemplateParam", r#"{"name":"小 明*"}"#), ("SignName", "玉石")],
            body: b"",
        };
        let signed = sign_v3(&request, "id", "secret");
        assert_eq!(
            signed.canonical_query,
            "SignName=%E7%8E%89%E7%9F%B3&TemplateParam=%7B%22name%22%3A%22%E5%B0%8F%20%E6%98%8E%2A%22%7D"
        );
    }

    #[test]
    fn phone_numbers() {
        let check =
            |input: &str, expected: Option<&str>| assert_eq!(phone_number(input).as_deref(), expected, "{input}");
        check("+8613800138000", Some("13800138000"));
        check("+85261234567", Some("85261234567"));
        check("+14155550100", Some("14155550100"));
        check("13800138000", None);
        check("+86 138", None);
    }

    #[test]
    fn classify_answers() {
        let check = |status: u16, body: &str, expected: SendOutcome| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, body.as_bytes(), None, "SMS_1", "t.toml"), expected, "{status} {body}");
        };
        let transient = |e: &str| SendOutcome::Transient { error: e.into(), retry_after: None };
        check(
            200,
            r#"{"Code":"OK","Message":"OK","BizId":"9006197469364984400","RequestId":"F655A8D5"}"#,
            SendOutcome::Sent { provider_id: "9006197469364984400".into() },
        );
        check(
            200,
            r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发号码天级流控Permits:10","RequestId":"R"}"#,
            transient("aliyun isv.BUSINESS_LIMIT_CONTROL: 触发号码天级流控Permits:10"),
        );
        check(
            400,
            r#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control.","RequestId":"R"}"#,
            transient("aliyun Throttling.User: Request was denied due to user flow control"),
        );
        check(
            200,
            r#"{"Code":"isp.SYSTEM_ERROR","Message":"isp.SYSTEM_ERROR"}"#,
            transient("aliyun isp.SYSTEM_ERROR: isp.SYSTEM_ERROR"),
        );
        check(503, "<html>busy</html>", transient("aliyun: 503 Service Unavailable"));
        check(
            200,
            r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号","RequestId":"R"}"#,
            SendOutcome::Gone { error: "aliyun isv.MOBILE_NUMBER_ILLEGAL: 非法手机号".into() },
        );
        check(
            200,
            r#"{"Code":"isv.SMS_TEMPLATE_ILLEGAL","Message":"模板不合法(不存在或被拉黑)"}"#,
            permanent(
                "aliyun isv.SMS_TEMPLATE_ILLEGAL: 模板不合法(不存在或被拉黑) (template SMS_1 from t.toml)".into(),
            ),
        );
        check(
            400,
            r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation."}"#,
            permanent("aliyun SignatureDoesNotMatch: Specified signature is not matched with our calculation".into()),
        );
        check(404, "not found", permanent("aliyun: 404 Not Found".into()));
        assert!(matches!(
            classify(StatusCode::OK, b"<html/>", None, "SMS_1", "t"),
            SendOutcome::Unknown { error } if error.contains("may have been accepted")
        ));
    }

    #[test]
    fn config_problems() {
        let keys = |cfg: &AliyunConfig| -> Vec<String> { Aliyun::check(cfg).into_iter().map(|p| p.key).collect() };
        assert!(keys(&config()).is_empty());
        let mut cfg = config();
        cfg.access_key_id = " ".into();
        cfg.sign_name = "【玉石会员】".into();
        cfg.base_url = "https://user:pw@dysmsapi.aliyuncs.com".into();
        cfg.timeout_secs = 0;
        cfg.access_key_secret = None;
        assert_eq!(
            keys(&cfg),
            [
                "aliyun.access_key_id",
                "aliyun.sign_name",
                "aliyun.base_url",
                "aliyun.timeout_secs",
                "aliyun.access_key_secret"
            ]
        );
    }

    #[test]
    fn receipts() {
        let body = r#"[
          {"phone_number":"13900000000","send_time":"2017-01-01 11:12:13","report_time":"2017-02-02 22:23:24",
           "success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1",
           "biz_id":"12345","out_id":"1234"},
          {"phone_number":"13900000001","send_time":"2017-01-01 11:12:13","report_time":"2017-02-02 22:23:24",
           "success":false,"err_code":"MK:0001","err_msg":"","sms_size":"2","biz_id":"12346","out_id":""}
        ]"#;
        let got = parse_receipts(body.as_bytes()).unwrap();
        let at: jiff::Timestamp = "2017-02-02T14:23:24Z".parse().unwrap();
        assert_eq!(
            got,
            [
                Receipt {
                    provider: "aliyun",
                    provider_id: "12345".into(),
                    status: DeliveryStatus::Delivered,
                    code: Some("DELIVERED".into()),
                    at: Some(at),
                },
                Receipt {
                    provider: "aliyun",
                    provider_id: "12346".into(),
                    status: DeliveryStatus::Undelivered,
                    code: Some("MK:0001".into()),
                    at: Some(at),
                },
            ]
        );
        assert_eq!(parse_receipts(b"[]").unwrap(), []);
        let err = |body: &str| parse_receipts(body.as_bytes()).unwrap_err();
        assert!(err("{}").starts_with("aliyun receipts: not a JSON array"), "{}", err("{}"));
        assert!(err(r#"[{"success":true}]"#).contains("report 0: missing field `biz_id`"));
        assert!(err(r#"[{"success":true,"biz_id":" "}]"#).contains("report 0: biz_id is empty"));
        assert!(err(r#"[{"success":true,"biz_id":"1","report_time":"yesterday"}]"#).contains("report 0: report_time"));
    }
}
