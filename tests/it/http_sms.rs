//! The generic HTTP SMS provider against a local carrier gateway.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidings::channels::sms::http::{HttpSms, HttpSmsConfig};
use tidings::channels::{Outgoing, Rendered, SendOutcome};

use crate::support::http_sms::{HttpSmsPeer, Reply};

const AUTH: &str = "Bearer 5f3c-carrier-token";
const TO: &str = "+8613800138000";

fn config(url: &str, auth_file: &std::path::Path) -> HttpSmsConfig {
    HttpSmsConfig {
        url: url.to_string(),
        method: "POST".to_string(),
        body: r#"{"mobile": {{json to}}, "content": {{json text}}, "ref": {{json id}}, "from": {{json sender}}}"#
            .to_string(),
        headers: BTreeMap::from([("X-Account".to_string(), "jade-club".to_string())]),
        auth_header_name: "Authorization".to_string(),
        auth_header: None,
        auth_header_file: Some(auth_file.to_path_buf()),
        sender: Some("106900001234".to_string()),
        id_pointer: Some("/data/msgid".to_string()),
        timeout_secs: 5,
    }
}

fn sms(text: &str) -> Outgoing {
    Outgoing {
        id: 9,
        dedupe_key: "winback:m-2:inactive30:2026-11-02:sms".to_string(),
        rule_id: "winback-30".to_string(),
        member: "m-2".to_string(),
        member_name: "李雷".to_string(),
        to: TO.to_string(),
        device: None,
        purpose: tidings::channels::Purpose::Marketing,
        rendered: Rendered::sms(text),
    }
}

struct Setup {
    peer: HttpSmsPeer,
    provider: HttpSms,
    _dir: tempfile::TempDir,
}

async fn start() -> Setup {
    let peer = HttpSmsPeer::start(AUTH).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, format!("{AUTH}\n")).unwrap();
    let provider = HttpSms::new(&config(&peer.url(), &file)).expect("http sms");
    Setup { peer, provider, _dir: dir }
}

#[tokio::test]
async fn good_send_renders_the_body_and_reads_the_id() {
    let Setup { peer, provider, _dir } = start().await;
    let msg = sms("【玉石会员】李雷，\"好久不见\"！\n回T退订");

    let outcome = provider.send(&msg).await;

    assert_eq!(peer.violations(), Vec::<String>::new());
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(outcome, SendOutcome::Sent { provider_id: received[0].msgid.clone() });
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/api/v2/sms/send");
    assert_eq!(
        received[0].body,
        serde_json::json!({"mobile": TO, "content": "【玉石会员】李雷，\"好久不见\"！\n回T退订", "ref": msg.idempotency_key(), "from": "106900001234"})
    );
    assert_eq!(received[0].headers["x-account"], "jade-club");
    assert_eq!(received[0].headers["idempotency-key"], msg.idempotency_key().as_str());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_transient_with_retry_after() {
    let Setup { peer, provider, _dir } = start().await;
    peer.script(
        1,
        Reply::Status { status: 429, body: "{\"msg\":\"slow down\"}".into(), retry_after: Some("17".into()) },
    );
    peer.script(1, Reply::status(502, "<html>bad gateway</html>"));

    match provider.send(&sms("hi")).await {
        SendOutcome::Transient { error, retry_after } => {
            assert_eq!(error, "http_sms: 429 Too Many Requests: {\"msg\":\"slow down\"}");
            assert_eq!(retry_after, Some(Duration::from_secs(17)));
        }
        other => panic!("expected transient, got {other:?}"),
    }
    assert!(matches!(provider.send(&sms("hi")).await, SendOutcome::Transient { retry_after: None, .. }));
    assert!(matches!(provider.send(&sms("hi")).await, SendOutcome::Sent { .. }));
    assert_eq!(peer.count(), 3);
}

#[tokio::test]
async fn other_client_errors_are_permanent() {
    let Setup { peer, provider, _dir } = start().await;
    peer.script(1, Reply::status(400, r#"{"code":1002,"msg":"invalid mobile"}"#));

    assert_eq!(
        provider.send(&sms("hi")).await,
        SendOutcome::Permanent { error: r#"http_sms: 400 Bad Request: {"code":1002,"msg":"invalid mobile"}"#.into() }
    );
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_wrong_secret_header_is_permanent() {
    let peer = HttpSmsPeer::start(AUTH).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, "Bearer old-token").unwrap();
    let provider = HttpSms::new(&config(&peer.url(), &file)).unwrap();

    match provider.send(&sms("hi")).await {
        SendOutcome::Permanent { error } => {
            assert!(error.starts_with("http_sms: 401 Unauthorized"), "{error}");
            assert!(!error.contains("old-token"));
        }
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_is_transient_and_a_hang_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, AUTH).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = HttpSms::new(&config(&format!("http://127.0.0.1:{port}/send"), &file)).unwrap();
    assert!(matches!(provider.send(&sms("hi")).await, SendOutcome::Transient { .. }));

    let peer = HttpSmsPeer::start(AUTH).await;
    peer.script(1, Reply::Hang);
    let mut cfg = config(&peer.url(), &file);
    cfg.timeout_secs = 1;
    let provider = HttpSms::new(&cfg).unwrap();
    let started = Instant::now();
    match provider.send(&sms("hi")).await {
        SendOutcome::Unknown { error } => assert!(error.starts_with("http_sms: no answer within 1s"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[test]
fn a_body_that_would_break_on_quotes_is_refused_at_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, AUTH).unwrap();
    let mut cfg = config("http://127.0.0.1:9/send", &file);
    cfg.body = r#"{"mobile": "{{to}}", "content": "{{text}}"}"#.to_string();

    let problems = HttpSms::check(&cfg);

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "http_sms.body");
    assert!(HttpSms::new(&cfg).unwrap_err().to_string().contains("http_sms.body"));
}
