//! The Tencent Cloud provider against a local peer that verifies every request as Tencent's
//! gateway would: the TC3 signature recomputed from the raw request, the headers, the body.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidings::channels::sms::tencent::{Tencent, TencentConfig};
use tidings::channels::{Outgoing, ProviderParams, ProviderTemplate, Rendered, SendOutcome};
use tidings::config::Secret;

use crate::support::tencent::{INCORRECT_NUMBER, Reply, TencentPeer};

const SECRET_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
const SECRET_KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
const APP_ID: &str = "1400006666";
const TO: &str = "+8613800138000";

fn config(base_url: &str) -> TencentConfig {
    TencentConfig {
        receipt_token: None,
        secret_id: SECRET_ID.to_string(),
        secret_key: Some(Secret::new(SECRET_KEY)),
        secret_key_file: None,
        sms_sdk_app_id: APP_ID.to_string(),
        sign_name: Some("玉石会员".to_string()),
        region: "ap-guangzhou".to_string(),
        base_url: base_url.to_string(),
        timeout_secs: 5,
    }
}

fn sms(to: &str, params: Option<Vec<&str>>) -> Outgoing {
    let mut provider_templates = BTreeMap::new();
    if let Some(params) = params {
        let template = ProviderTemplate {
            code: "1234567".to_string(),
            params: ProviderParams::Ordered(params.into_iter().map(String::from).collect()),
            source: "templates/birthday/zh-CN/sms.providers.toml".to_string(),
        };
        provider_templates.insert("tencent".to_string(), template);
    }
    Outgoing {
        id: 7,
        dedupe_key: "birthday:m-1:birthday:2027:sms".to_string(),
        rule_id: "birthday".to_string(),
        member: "m-1".to_string(),
        member_name: "王小明".to_string(),
        to: to.to_string(),
        device: None,
        purpose: tidings::channels::Purpose::Marketing,
        rendered: Rendered::Sms {
            text: "【玉石会员】小明，生日快乐！回T退订".to_string(), provider_templates
        },
    }
}

fn birthday(to: &str) -> Outgoing {
    sms(to, Some(vec!["小明", "12,345"]))
}

async fn start() -> (TencentPeer, Tencent) {
    let peer = TencentPeer::start(SECRET_ID, SECRET_KEY, APP_ID).await;
    let tencent = Tencent::new(&config(&peer.base_url())).expect("tencent");
    (peer, tencent)
}

fn sent_id(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Sent { provider_id } => provider_id,
        other => panic!("expected sent, got {other:?}"),
    }
}

fn transient(outcome: SendOutcome) -> (String, Option<Duration>) {
    match outcome {
        SendOutcome::Transient { error, retry_after } => (error, retry_after),
        other => panic!("expected transient, got {other:?}"),
    }
}

fn permanent(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Permanent { error } => error,
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn good_send_is_signed_and_returns_the_serial_number() {
    let (peer, tencent) = start().await;
    let msg = birthday(TO);

    let serial = sent_id(tencent.send(&msg).await);

    assert_eq!(peer.violations(), Vec::<String>::new());
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].serial_no, serial);
    assert_eq!(received[0].region, "ap-guangzhou");
    assert_eq!(
        received[0].body,
        serde_json::json!({
            "PhoneNumberSet": [TO],
            "SmsSdkAppId": APP_ID,
            "SignName": "玉石会员",
            "TemplateId": "1234567",
            "TemplateParamSet": ["小明", "12,345"],
            "SessionContext": msg.idempotency_key(),
        })
    );
}

#[tokio::test]
async fn an_incorrect_number_is_gone() {
    let (peer, tencent) = start().await;

    match tencent.send(&birthday(INCORRECT_NUMBER)).await {
        SendOutcome::Gone { error } => {
            assert_eq!(error, "tencent InvalidParameterValue.IncorrectPhoneNumber: incorrect number format")
        }
        other => panic!("expected gone, got {other:?}"),
    }
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn rate_limits_and_gateway_errors_are_transient() {
    let (peer, tencent) = start().await;
    peer.script(1, Reply::error("RequestLimitExceeded", "请求的次数超过了频率限制。"));
    peer.script(
        1,
        Reply::status("LimitExceeded.PhoneNumberThirtySecondLimit", "单个手机号30秒内下发短信条数超过设定的上限"),
    );
    peer.script(1, Reply::Raw { status: 429, body: "slow down".into(), retry_after: Some("9".into()) });
    peer.script(1, Reply::error("InternalError.Timeout", "请求下发短信超时"));

    let (error, retry_after) = transient(tencent.send(&birthday(TO)).await);
    assert_eq!((error.as_str(), retry_after), ("tencent RequestLimitExceeded: 请求的次数超过了频率限制", None));
    let (error, retry_after) = transient(tencent.send(&birthday(TO)).await);
    assert!(error.starts_with("tencent LimitExceeded.PhoneNumberThirtySecondLimit"), "{error}");
    assert_eq!(retry_after, Some(Duration::from_secs(30)));
    let (error, retry_after) = transient(tencent.send(&birthday(TO)).await);
    assert_eq!((error.as_str(), retry_after), ("tencent: 429 Too Many Requests", Some(Duration::from_secs(9))));
    transient(tencent.send(&birthday(TO)).await);

    sent_id(tencent.send(&birthday(TO)).await);
    assert_eq!(peer.count(), 5);
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_failure_and_permanent() {
    let peer = TencentPeer::start(SECRET_ID, SECRET_KEY, APP_ID).await;
    let mut cfg = config(&peer.base_url());
    cfg.secret_key = Some(Secret::new("another-key"));
    let tencent = Tencent::new(&cfg).unwrap();

    let error = permanent(tencent.send(&birthday(TO)).await);

    assert!(error.starts_with("tencent AuthFailure.SignatureFailure"), "{error}");
    assert!(!error.contains("another-key"));
    assert_eq!(peer.violations(), ["signature does not match"]);
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn an_unapproved_template_names_its_mapping() {
    let (peer, tencent) = start().await;
    peer.script(1, Reply::error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配。"));

    let error = permanent(tencent.send(&birthday(TO)).await);

    assert_eq!(
        error,
        "tencent FailedOperation.TemplateIncorrectOrUnapproved: 模板未审批或内容不匹配 (template 1234567 from templates/birthday/zh-CN/sms.providers.toml)"
    );
}

#[tokio::test]
async fn a_message_without_a_tencent_mapping_is_refused_without_a_request() {
    let (peer, tencent) = start().await;

    let error = permanent(tencent.send(&sms(TO, None)).await);
    assert!(error.contains("rule birthday has no [tencent] template mapping"), "{error}");
    permanent(tencent.send(&birthday("13800138000")).await);

    assert_eq!(peer.count(), 0);
}

#[tokio::test]
async fn unreachable_is_transient_and_a_hang_is_unknown() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let tencent = Tencent::new(&config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let (error, _) = transient(tencent.send(&birthday(TO)).await);
    assert!(error.starts_with("tencent: cannot connect"), "{error}");

    let peer = TencentPeer::start(SECRET_ID, SECRET_KEY, APP_ID).await;
    peer.script(1, Reply::Hang);
    let mut cfg = config(&peer.base_url());
    cfg.timeout_secs = 1;
    let tencent = Tencent::new(&cfg).unwrap();
    let started = Instant::now();
    match tencent.send(&birthday(TO)).await {
        SendOutcome::Unknown { error } => assert!(error.starts_with("tencent: no answer within 1s"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[test]
fn missing_secret_key_is_named() {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.secret_key = None;

    let error = Tencent::new(&cfg).unwrap_err().to_string();

    assert!(error.contains("tencent.secret_key"), "{error}");
}

/// The peer itself: an unsigned request with a stray field is refused and recorded.
#[tokio::test]
async fn peer_rejects_an_unsigned_request() {
    tidings::install_crypto_provider();
    let peer = TencentPeer::start(SECRET_ID, SECRET_KEY, APP_ID).await;
    let response = reqwest::Client::new()
        .post(peer.base_url())
        .header("content-type", "application/json")
        .body(r#"{"PhoneNumberSet":["+8613800138000"],"Colour":"blue"}"#)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();

    assert_eq!(body["Response"]["Error"]["Code"], "AuthFailure.SignatureFailure");
    let violations = peer.violations();
    assert!(violations.iter().any(|v| v.contains("is not TC3-HMAC-SHA256")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("Colour")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("X-TC-Action")), "{violations:?}");
}
