//! The Aliyun provider against a local peer that verifies every request as Aliyun's gateway
//! would: the V3 signature recomputed from the raw request, the parameters, the answers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidings::channels::sms::aliyun::{Aliyun, AliyunConfig};
use tidings::channels::{Outgoing, ProviderParams, ProviderTemplate, Rendered, SendOutcome};
use tidings::config::Secret;

use crate::support::aliyun::{AliyunPeer, ILLEGAL_NUMBER, Reply};

const KEY_ID: &str = "LTAI5tAbCdEfGhIjKlMnOpQr";
const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
const SIGN_NAME: &str = "玉石会员";
const TO: &str = "+8613800138000";

fn config(base_url: &str) -> AliyunConfig {
    AliyunConfig {
        receipt_token: None,
        access_key_id: KEY_ID.to_string(),
        access_key_secret: Some(Secret::new(SECRET)),
        access_key_secret_file: None,
        sign_name: SIGN_NAME.to_string(),
        base_url: base_url.to_string(),
        timeout_secs: 5,
    }
}

fn template(params: &[(&str, &str)]) -> ProviderTemplate {
    ProviderTemplate {
        code: "SMS_123456789".to_string(),
        params: ProviderParams::Named(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        source: "templates/birthday/zh-CN/sms.providers.toml".to_string(),
    }
}

fn sms(to: &str, template: Option<ProviderTemplate>) -> Outgoing {
    let mut provider_templates = BTreeMap::new();
    if let Some(t) = template {
        provider_templates.insert("aliyun".to_string(), t);
    }
    Outgoing {
        id: 42,
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
    sms(to, Some(template(&[("name", "小明")])))
}

async fn start() -> (AliyunPeer, Aliyun) {
    let peer = AliyunPeer::start(KEY_ID, SECRET).await;
    let aliyun = Aliyun::new(&config(&peer.base_url())).expect("aliyun");
    (peer, aliyun)
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
async fn good_send_is_signed_and_returns_the_biz_id() {
    let (peer, aliyun) = start().await;
    let msg = sms(TO, Some(template(&[("name", "小 明 & \"Ming\" +*%"), ("points", "12,345")])));

    let biz_id = sent_id(aliyun.send(&msg).await);

    assert_eq!(peer.violations(), Vec::<String>::new());
    let received = peer.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.biz_id, biz_id);
    assert_eq!(got.names(), ["OutId", "PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"]);
    assert_eq!(got.param("PhoneNumbers"), Some("13800138000"));
    assert_eq!(got.param("SignName"), Some(SIGN_NAME));
    assert_eq!(got.param("TemplateCode"), Some("SMS_123456789"));
    let params: serde_json::Value = serde_json::from_str(got.param("TemplateParam").unwrap()).unwrap();
    assert_eq!(params, serde_json::json!({"name": "小 明 & \"Ming\" +*%", "points": "12,345"}));
    // The idempotency key, the same for every attempt of the message.
    assert_eq!(got.param("OutId"), Some(msg.idempotency_key().as_str()));
}

#[tokio::test]
async fn every_request_has_a_fresh_nonce_and_international_numbers_keep_their_country_code() {
    let (peer, aliyun) = start().await;

    sent_id(aliyun.send(&birthday(TO)).await);
    sent_id(aliyun.send(&birthday("+85261234567")).await);
    sent_id(aliyun.send(&sms(TO, Some(template(&[])))).await);

    assert_eq!(peer.violations(), Vec::<String>::new());
    let received = peer.received();
    assert_eq!(received[1].param("PhoneNumbers"), Some("85261234567"));
    // A template without variables sends no TemplateParam.
    assert_eq!(received[2].param("TemplateParam"), None);
}

#[tokio::test]
async fn an_illegal_number_is_gone() {
    let (peer, aliyun) = start().await;

    match aliyun.send(&birthday(&format!("+86{ILLEGAL_NUMBER}"))).await {
        SendOutcome::Gone { error } => assert_eq!(error, "aliyun isv.MOBILE_NUMBER_ILLEGAL: 非法手机号"),
        other => panic!("expected gone, got {other:?}"),
    }
    // Abroad too, the number as Aliyun receives it: country code and digits.
    peer.on_number("85200000000", Reply::error(200, "isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number"));
    assert!(matches!(aliyun.send(&birthday("+85200000000")).await, SendOutcome::Gone { .. }));
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn flow_control_and_system_errors_are_transient() {
    let (peer, aliyun) = start().await;
    peer.script(1, Reply::throttled());
    peer.script(1, Reply::error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:10"));
    peer.script(
        1,
        Reply::Error {
            status: 503,
            code: "ServiceUnavailable".into(),
            message: "The request has failed due to a temporary failure of the server.".into(),
            retry_after: Some("12".into()),
        },
    );

    let (error, _) = transient(aliyun.send(&birthday(TO)).await);
    assert_eq!(error, "aliyun Throttling.User: Request was denied due to user flow control");
    let (error, _) = transient(aliyun.send(&birthday(TO)).await);
    assert!(error.starts_with("aliyun isv.BUSINESS_LIMIT_CONTROL"), "{error}");
    let (error, retry_after) = transient(aliyun.send(&birthday(TO)).await);
    assert!(error.starts_with("aliyun ServiceUnavailable"), "{error}");
    assert_eq!(retry_after, Some(Duration::from_secs(12)));

    sent_id(aliyun.send(&birthday(TO)).await);
    assert_eq!(peer.count(), 4);
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn an_unapproved_template_is_permanent_and_names_the_mapping() {
    let (peer, aliyun) = start().await;
    peer.script(1, Reply::error(200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑)"));

    let error = permanent(aliyun.send(&birthday(TO)).await);

    assert_eq!(
        error,
        "aliyun isv.SMS_TEMPLATE_ILLEGAL: 模板不合法(不存在或被拉黑) (template SMS_123456789 from templates/birthday/zh-CN/sms.providers.toml)"
    );
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_and_is_permanent() {
    let peer = AliyunPeer::start(KEY_ID, SECRET).await;
    let mut cfg = config(&peer.base_url());
    cfg.access_key_secret = Some(Secret::new("not-the-secret"));
    let aliyun = Aliyun::new(&cfg).unwrap();

    let error = permanent(aliyun.send(&birthday(TO)).await);

    assert_eq!(error, "aliyun SignatureDoesNotMatch: Specified signature is not matched with our calculation");
    assert!(!error.contains("not-the-secret"));
    let violations = peer.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("signature does not match"), "{violations:?}");
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn a_message_without_an_aliyun_mapping_is_refused_without_a_request() {
    let (peer, aliyun) = start().await;

    let error = permanent(aliyun.send(&sms(TO, None)).await);
    assert!(error.contains("rule birthday has no [aliyun] template mapping"), "{error}");
    let mut ordered = birthday(TO);
    if let Rendered::Sms { provider_templates, .. } = &mut ordered.rendered {
        provider_templates.get_mut("aliyun").unwrap().params = ProviderParams::Ordered(vec!["x".into()]);
    }
    assert!(permanent(aliyun.send(&ordered).await).contains("must be a table"));
    permanent(aliyun.send(&birthday("13800138000")).await);
    let mut push = birthday(TO);
    push.rendered = Rendered::Push { title: "t".into(), body: "b".into() };
    assert_eq!(permanent(aliyun.send(&push).await), "aliyun: the sms provider cannot send push");

    assert_eq!(peer.count(), 0);
}

#[tokio::test]
async fn a_body_that_is_not_aliyuns_is_read_by_its_status() {
    let (peer, aliyun) = start().await;
    peer.script(1, Reply::raw(502, "<html>Bad Gateway</html>"));
    peer.script(1, Reply::raw(200, "<html>captive portal</html>"));

    let (error, _) = transient(aliyun.send(&birthday(TO)).await);
    assert_eq!(error, "aliyun: 502 Bad Gateway");
    // A 2xx that does not say OK may or may not have been taken: never resent blindly.
    match aliyun.send(&birthday(TO)).await {
        SendOutcome::Unknown { error } => assert!(error.contains("may have been accepted"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn unreachable_is_transient_and_a_hang_is_unknown() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let aliyun = Aliyun::new(&config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let (error, _) = transient(aliyun.send(&birthday(TO)).await);
    assert!(error.starts_with("aliyun: cannot connect"), "{error}");

    let peer = AliyunPeer::start(KEY_ID, SECRET).await;
    peer.script(1, Reply::Hang);
    let mut cfg = config(&peer.base_url());
    cfg.timeout_secs = 1;
    let aliyun = Aliyun::new(&cfg).unwrap();
    let started = Instant::now();
    match aliyun.send(&birthday(TO)).await {
        SendOutcome::Unknown { error } => assert!(error.starts_with("aliyun: no answer within 1s"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(peer.count(), 1);
}

#[test]
fn missing_secret_is_named() {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.access_key_secret = None;

    let error = Aliyun::new(&cfg).unwrap_err().to_string();

    assert!(error.contains("aliyun.access_key_secret"), "{error}");
    assert_eq!(Aliyun::check(&cfg)[0].key, "aliyun.access_key_secret");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    cfg.access_key_secret_file = Some(file);
    assert!(Aliyun::check(&cfg).is_empty());
}

/// The peer itself: an unsigned request is refused and each broken promise recorded.
#[tokio::test]
async fn peer_rejects_an_unsigned_request() {
    tidings::install_crypto_provider();
    let peer = AliyunPeer::start(KEY_ID, SECRET).await;
    let client = reqwest::Client::new();

    let unsigned = client.post(format!("{}/?PhoneNumbers=13800138000", peer.base_url())).send().await.unwrap();
    assert_eq!(unsigned.status(), 400);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["Code"], "IncompleteSignature");

    let violations = peer.violations();
    assert!(violations.iter().any(|v| v.contains("is not ACS3-HMAC-SHA256")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("no SignName")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("x-acs-action")), "{violations:?}");
    assert!(peer.received().is_empty());
}
