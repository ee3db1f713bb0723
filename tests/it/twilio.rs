//! The Twilio provider against a local peer that checks every request as Twilio would.

use std::time::{Duration, Instant, SystemTime};

use tidings::channels::sms::twilio::{Twilio, TwilioConfig};
use tidings::channels::{Outgoing, Rendered, SendOutcome};
use tidings::config::Secret;

use crate::support::twilio::{INVALID_NUMBER, Reply, TwilioPeer, is_sid};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "f00dcafef00dcafef00dcafef00dcafe";
const SERVICE_SID: &str = "MG00112233445566778899aabbccddeeff";
const FROM: &str = "+15017122661";
const TO: &str = "+8613800138000";

fn config(base_url: &str) -> TwilioConfig {
    TwilioConfig {
        account_sid: ACCOUNT_SID.to_string(),
        auth_token: Some(Secret::new(AUTH_TOKEN)),
        auth_token_file: None,
        from: Some(FROM.to_string()),
        messaging_service_sid: None,
        status_callback: None,
        inbound_url: None,
        base_url: base_url.to_string(),
        timeout_secs: 5,
    }
}

fn sms(to: &str, text: &str) -> Outgoing {
    Outgoing {
        id: 42,
        dedupe_key: "birthday:m-1:birthday:2027:sms".to_string(),
        rule_id: "birthday".to_string(),
        member: "m-1".to_string(),
        member_name: "王小明".to_string(),
        to: to.to_string(),
        device: None,
        purpose: tidings::channels::Purpose::Marketing,
        rendered: Rendered::sms(text),
    }
}

async fn start() -> (TwilioPeer, Twilio) {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let twilio = Twilio::new(&config(&peer.base_url())).expect("twilio");
    (peer, twilio)
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
async fn good_send_posts_the_form_and_returns_the_sid() {
    let (peer, twilio) = start().await;

    let sid = sent_id(twilio.send(&sms(TO, "Happy birthday, Ming!")).await);

    let received = peer.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.sid, sid);
    assert!(is_sid(&sid, "SM"), "{sid}");
    assert_eq!(got.username, ACCOUNT_SID);
    assert_eq!(got.names(), ["To", "Body", "From"]);
    assert_eq!(got.field("To"), Some(TO));
    assert_eq!(got.field("Body"), Some("Happy birthday, Ming!"));
    assert_eq!(got.field("From"), Some(FROM));
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn messaging_service_sid_wins_over_from() {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let mut cfg = config(&peer.base_url());
    cfg.messaging_service_sid = Some(SERVICE_SID.to_string());
    let twilio = Twilio::new(&cfg).unwrap();

    sent_id(twilio.send(&sms(TO, "hello")).await);

    let got = &peer.received()[0];
    assert_eq!(got.names(), ["To", "Body", "MessagingServiceSid"]);
    assert_eq!(got.field("MessagingServiceSid"), Some(SERVICE_SID));
    assert_eq!(got.field("From"), None);
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn status_callback_is_sent_when_configured() {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let mut cfg = config(&peer.base_url());
    cfg.status_callback = Some("https://club.example.com/hooks/twilio?tenant=a&x=1".to_string());
    let twilio = Twilio::new(&cfg).unwrap();

    sent_id(twilio.send(&sms(TO, "hello")).await);

    let got = &peer.received()[0];
    assert_eq!(got.field("StatusCallback"), Some("https://club.example.com/hooks/twilio?tenant=a&x=1"));
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn chinese_body_arrives_intact() {
    let (peer, twilio) = start().await;
    let text = "【会员俱乐部】王小明，生日快乐！🎂 满100减20 & 积分+500 = 惊喜%，回T退订";

    sent_id(twilio.send(&sms(TO, text)).await);

    assert_eq!(peer.received()[0].field("Body"), Some(text));
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn rate_limit_is_transient_with_retry_after() {
    let (peer, twilio) = start().await;
    peer.script(1, Reply::too_many_requests("7"));

    let (error, retry_after) = transient(twilio.send(&sms(TO, "hello")).await);
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert!(error.contains("20429"), "{error}");

    // The script is used up: the retry goes through.
    sent_id(twilio.send(&sms(TO, "hello")).await);
    assert_eq!(peer.count(), 2);
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn retry_after_as_http_date() {
    let (peer, twilio) = start().await;
    let at = SystemTime::now() + Duration::from_secs(120);
    peer.script(1, Reply::too_many_requests(&httpdate::fmt_http_date(at)));

    let (_, retry_after) = transient(twilio.send(&sms(TO, "hello")).await);
    let retry_after = retry_after.expect("retry after");
    assert!(retry_after > Duration::from_secs(100) && retry_after <= Duration::from_secs(120), "{retry_after:?}");
}

#[tokio::test]
async fn server_error_is_transient() {
    let (peer, twilio) = start().await;
    peer.script(2, Reply::raw(503, "<html>Service Unavailable</html>"));

    for _ in 0..2 {
        let (error, retry_after) = transient(twilio.send(&sms(TO, "hello")).await);
        assert_eq!(error, "twilio: 503 Service Unavailable");
        assert_eq!(retry_after, None);
    }
    assert!(peer.received().is_empty());
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn an_invalid_number_is_gone_and_names_the_code() {
    let (peer, twilio) = start().await;

    let SendOutcome::Gone { error } = twilio.send(&sms(INVALID_NUMBER, "hello")).await else {
        panic!("an invalid number is gone for good")
    };

    assert_eq!(error, format!("twilio 21211: The 'To' number {INVALID_NUMBER} is not a valid phone number"));
    assert_eq!(peer.count(), 1);
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn per_number_rule_can_be_added() {
    let (peer, twilio) = start().await;
    peer.on_number("+15005550009", Reply::error(400, 21408, "Permission to send an SMS has not been enabled."));

    let error = permanent(twilio.send(&sms("+15005550009", "hello")).await);

    assert_eq!(error, "twilio 21408: Permission to send an SMS has not been enabled");
}

#[tokio::test]
async fn wrong_token_is_permanent() {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, "another-token").await;
    let twilio = Twilio::new(&config(&peer.base_url())).unwrap();

    let error = permanent(twilio.send(&sms(TO, "hello")).await);

    assert_eq!(error, "twilio 20003: Authenticate");
    assert!(!error.contains(AUTH_TOKEN));
    assert!(peer.received().is_empty());
    assert_eq!(peer.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn accepted_without_sid_counts_as_sent() {
    let (peer, twilio) = start().await;
    peer.script(1, Reply::raw(201, "{\"status\":\"queued\"}"));

    // Resending would duplicate the SMS; an unknown provider id is the lesser harm.
    assert_eq!(sent_id(twilio.send(&sms(TO, "hello")).await), "");
}

#[tokio::test]
async fn unreachable_port_is_transient() {
    tidings::install_crypto_provider();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let twilio = Twilio::new(&config(&format!("http://127.0.0.1:{port}"))).unwrap();

    let (error, retry_after) = transient(twilio.send(&sms(TO, "hello")).await);

    assert!(error.starts_with("twilio: cannot connect"), "{error}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn a_peer_that_takes_the_request_but_never_answers_leaves_the_outcome_unknown() {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, AUTH_TOKEN).await;
    peer.script(1, Reply::Hang);
    let mut cfg = config(&peer.base_url());
    cfg.timeout_secs = 1;
    let twilio = Twilio::new(&cfg).unwrap();

    let started = Instant::now();
    // Twilio may have created the message: retrying could send it twice.
    match twilio.send(&sms(TO, "hello")).await {
        SendOutcome::Unknown { error } => assert!(error.starts_with("twilio: no answer within 1s"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(peer.count(), 1);
}

#[tokio::test]
async fn not_an_sms_or_not_a_number_is_refused_without_a_request() {
    let (peer, twilio) = start().await;

    let mut email = sms(TO, "hello");
    email.rendered = Rendered::Email { subject: "s".into(), html: "<p>h</p>".into(), text: "h".into() };
    assert_eq!(permanent(twilio.send(&email).await), "twilio: the sms provider cannot send email");
    permanent(twilio.send(&sms("13800138000", "hello")).await);
    permanent(twilio.send(&sms(TO, "")).await);

    assert_eq!(peer.count(), 0);
}

#[test]
fn missing_auth_token_is_named() {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.auth_token = None;

    let error = Twilio::new(&cfg).unwrap_err().to_string();

    assert!(error.contains("twilio.auth_token"), "{error}");
}

#[test]
fn check_names_from_when_no_sender() {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.from = None;

    let problems = Twilio::check(&cfg);

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "twilio.from");
    assert!(Twilio::check(&config("http://127.0.0.1:9")).is_empty());
}

/// The peer itself: a request that breaks the protocol gets Twilio's answer and is recorded.
#[tokio::test]
async fn peer_flags_malformed_requests() {
    tidings::install_crypto_provider();
    let peer = TwilioPeer::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let url = format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", peer.base_url());
    let client = reqwest::Client::new();

    let no_auth = client.post(&url).form(&[("To", TO), ("Body", "x"), ("From", FROM)]).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let body: serde_json::Value = no_auth.json().await.unwrap();
    assert_eq!(body["code"], 20003);

    let no_sender = client
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("To", TO), ("Body", "x"), ("Colour", "blue")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_sender.status(), 400);
    let body: serde_json::Value = no_sender.json().await.unwrap();
    assert_eq!(body["code"], 21603);
    assert_eq!(body["more_info"], "https://www.twilio.com/docs/errors/21603");

    let violations = peer.violations();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("no basic auth")));
    assert!(violations.iter().any(|v| v.contains("Colour")));
    assert!(violations.iter().any(|v| v.contains("neither From nor MessagingServiceSid")));
    assert!(peer.received().is_empty());
}
