//! The push providers against local peers that check every request as FCM (and Google's token
//! endpoint), APNs and a Web Push service with its browser would: signatures, claims, headers,
//! HTTP/2 for APNs, and the decrypted Web Push payload. Time comes from a manual clock shared by
//! provider and peer; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tidings::channels::push::{Apns, ApnsConfig, Fcm, FcmConfig, Push, PushConfigs, WebPush, WebPushConfig};
use tidings::channels::{Outgoing, Platform, Purpose, PushDevice, Rendered, SendOutcome};
use tidings::clock::ManualClock;
use tidings::config::Secret;

fn start_clock() -> ManualClock {
    tidings::install_crypto_provider();
    ManualClock::new(Timestamp::from_second(1_800_000_000).unwrap())
}

fn message(rule: &str, member: &str, device: PushDevice) -> Outgoing {
    Outgoing {
        id: 7,
        dedupe_key: format!("{rule}:{member}:birthday:2027:push"),
        rule_id: rule.to_string(),
        member: member.to_string(),
        member_name: "王小明".to_string(),
        to: device.token.clone(),
        device: Some(device),
        purpose: Purpose::Marketing,
        rendered: Rendered::Push {
            title: "生日快乐，小明！".to_string(),
            body: "Your birthday gift is waiting 🎂".to_string(),
        },
    }
}

fn device(platform: Platform, token: &str) -> PushDevice {
    PushDevice { platform, token: token.to_string(), p256dh: None, auth: None }
}

fn sent(outcome: SendOutcome) -> String {
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

fn gone(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Gone { error } => error,
        other => panic!("expected gone, got {other:?}"),
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

mod fcm {
    use super::*;
    use crate::support::fcm::{self as peer, FcmPeer, Reply};

    const TOKEN: &str = "fXk3c9Qd0kA:APA91bH-registration-token-of-a-test-device";

    /// The provider, its key file written where a deployment would keep it.
    struct Setup {
        peer: FcmPeer,
        fcm: Fcm,
        clock: ManualClock,
        _dir: tempfile::TempDir,
    }

    fn config(dir: &tempfile::TempDir, key: &rsa::PrivateKey, token_uri: &str, base_url: &str) -> FcmConfig {
        let path = dir.path().join("service-account.json");
        std::fs::write(&path, peer::service_account_json(key, token_uri)).unwrap();
        FcmConfig {
            service_account: None,
            service_account_file: Some(path),
            project_id: None,
            token_uri: None,
            base_url: base_url.to_string(),
            timeout_secs: 5,
        }
    }

    async fn setup() -> Setup {
        let clock = start_clock();
        let peer = FcmPeer::start(clock.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir, peer::service_key(), &peer.token_uri(), &peer.base_url());
        let fcm = Fcm::with_clock(&cfg, Arc::new(clock.clone())).unwrap();
        Setup { peer, fcm, clock, _dir: dir }
    }

    fn msg() -> Outgoing {
        message("birthday", "m-1", device(Platform::Fcm, TOKEN))
    }

    #[tokio::test]
    async fn sends_the_notification_with_a_fetched_access_token() {
        let s = setup().await;

        let name = sent(s.fcm.send(&msg()).await);

        let received = s.peer.received();
        assert_eq!(received.len(), 1);
        let got = &received[0];
        assert_eq!(got.name, name);
        assert!(name.starts_with(&format!("projects/{}/messages/", peer::PROJECT)), "{name}");
        assert_eq!(got.token, TOKEN);
        assert_eq!(got.title, "生日快乐，小明！");
        assert_eq!(got.body, "Your birthday gift is waiting 🎂");
        assert_eq!(got.data, json!({"rule_id": "birthday", "message_key": msg().idempotency_key()}));
        assert_eq!(got.bearer, "ya29.peer-token-1");
        assert_eq!(s.peer.token_requests(), 1);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn the_access_token_is_fetched_once_and_again_before_it_expires() {
        let s = setup().await;
        s.peer.set_expires_in(3600);

        for _ in 0..5 {
            sent(s.fcm.send(&msg()).await);
        }
        assert_eq!(s.peer.token_requests(), 1);

        s.clock.advance(SignedDuration::from_mins(30));
        sent(s.fcm.send(&msg()).await);
        assert_eq!(s.peer.token_requests(), 1, "a half-hour-old token is still good");

        // Within five minutes of its expiry the token is replaced, before FCM would refuse it.
        s.clock.advance(SignedDuration::from_mins(26));
        sent(s.fcm.send(&msg()).await);
        assert_eq!(s.peer.token_requests(), 2);
        let bearers: Vec<String> = s.peer.received().into_iter().map(|r| r.bearer).collect();
        assert_eq!(bearers[..6], vec!["ya29.peer-token-1".to_string(); 6][..]);
        assert_eq!(bearers[6], "ya29.peer-token-2");

        // Long after: a new token again, never an expired one (the peer flags those).
        s.clock.advance(SignedDuration::from_hours(5));
        sent(s.fcm.send(&msg()).await);
        assert_eq!(s.peer.token_requests(), 3);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn concurrent_sends_share_one_token_fetch() {
        let s = setup().await;
        let m = msg();

        let outcomes = futures::future::join_all((0..10).map(|_| s.fcm.send(&m))).await;

        assert!(outcomes.into_iter().all(|o| matches!(o, SendOutcome::Sent { .. })));
        assert_eq!(s.peer.token_requests(), 1);
        assert_eq!(s.peer.received().len(), 10);
    }

    #[tokio::test]
    async fn an_unregistered_token_is_gone() {
        let s = setup().await;
        s.peer.unregister(TOKEN);

        let error = gone(s.fcm.send(&msg()).await);

        assert_eq!(error, "fcm UNREGISTERED: Requested entity was not found");
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn quota_and_server_errors_retry_honouring_retry_after() {
        let s = setup().await;
        s.peer.script(1, Reply::quota_exceeded("30"));
        s.peer.script(1, Reply::unavailable());
        s.peer.script(1, Reply::internal());

        let (error, retry_after) = transient(s.fcm.send(&msg()).await);
        assert!(error.starts_with("fcm QUOTA_EXCEEDED: Quota exceeded"), "{error}");
        assert_eq!(retry_after, Some(Duration::from_secs(30)));
        let (error, retry_after) = transient(s.fcm.send(&msg()).await);
        assert_eq!((error.as_str(), retry_after), ("fcm UNAVAILABLE: The service is currently unavailable", None));
        let (error, _) = transient(s.fcm.send(&msg()).await);
        assert_eq!(error, "fcm INTERNAL: Internal error encountered");

        sent(s.fcm.send(&msg()).await);
        assert_eq!(s.peer.token_requests(), 1);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_refused_access_token_is_replaced_and_the_send_tried_once_more() {
        let s = setup().await;
        sent(s.fcm.send(&msg()).await);
        s.peer.revoke_tokens();

        sent(s.fcm.send(&msg()).await);

        assert_eq!(s.peer.token_requests(), 2);
        assert_eq!(s.peer.sends(), 3, "one refused with 401, then the retry");
        assert_eq!(s.peer.received().last().unwrap().bearer, "ya29.peer-token-2");
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_second_refusal_is_transient() {
        let s = setup().await;
        s.peer.script(2, Reply::unauthenticated());

        let (error, _) = transient(s.fcm.send(&msg()).await);

        assert!(error.starts_with("fcm UNAUTHENTICATED: Request had invalid authentication credentials"), "{error}");
        assert_eq!(s.peer.sends(), 2);
        assert_eq!(s.peer.token_requests(), 2);
        // The next message starts with a fresh token and goes through.
        sent(s.fcm.send(&msg()).await);
        assert_eq!(s.peer.token_requests(), 3);
    }

    #[tokio::test]
    async fn bad_requests_and_sender_mismatch_are_permanent_with_fcms_code() {
        let s = setup().await;
        s.peer.script(1, Reply::sender_id_mismatch());
        s.peer.script(1, Reply::invalid_argument("Invalid value at 'message.android.ttl'"));
        s.peer.script(
            1,
            Reply::new(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", None),
        );

        assert_eq!(permanent(s.fcm.send(&msg()).await), "fcm SENDER_ID_MISMATCH: SenderId mismatch");
        assert_eq!(permanent(s.fcm.send(&msg()).await), "fcm INVALID_ARGUMENT: Invalid value at 'message.android.ttl'");
        assert_eq!(
            permanent(s.fcm.send(&msg()).await),
            "fcm PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied"
        );
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_key_google_does_not_know_is_permanent_and_nothing_is_sent() {
        let clock = start_clock();
        let peer = FcmPeer::start(clock.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir, peer::other_key(), &peer.token_uri(), &peer.base_url());
        let fcm = Fcm::with_clock(&cfg, Arc::new(clock)).unwrap();

        let error = permanent(fcm.send(&msg()).await);

        assert_eq!(error, "fcm: the token endpoint refused the service account: invalid_grant: Invalid JWT Signature.");
        assert_eq!(peer.sends(), 0);
        assert_eq!(peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_failing_token_endpoint_is_transient() {
        let s = setup().await;
        s.peer.script_token(503, json!({"error": "backend_error"}));

        let (error, _) = transient(s.fcm.send(&msg()).await);

        assert_eq!(error, "fcm: the token endpoint failed: backend_error");
        assert_eq!(s.peer.sends(), 0);
        sent(s.fcm.send(&msg()).await);
    }

    /// `token_uri` sends the grant elsewhere (a proxy); the JWT's audience stays the key file's.
    #[tokio::test]
    async fn token_uri_override_keeps_the_key_files_audience() {
        let clock = start_clock();
        let peer = FcmPeer::start(clock.clone()).await;
        peer.expect_audience("https://oauth2.googleapis.com/token");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir, peer::service_key(), "https://oauth2.googleapis.com/token", &peer.base_url());
        cfg.token_uri = Some(peer.token_uri());
        let fcm = Fcm::with_clock(&cfg, Arc::new(clock)).unwrap();

        sent(fcm.send(&msg()).await);

        assert_eq!(peer.token_requests(), 1);
        assert_eq!(peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn unreachable_fcm_is_transient() {
        let s = setup().await;
        let mut cfg =
            config(&s._dir, peer::service_key(), &s.peer.token_uri(), &format!("http://127.0.0.1:{}", closed_port()));
        cfg.timeout_secs = 2;
        let fcm = Fcm::with_clock(&cfg, Arc::new(s.clock.clone())).unwrap();

        let (error, _) = transient(fcm.send(&msg()).await);

        assert!(error.starts_with("fcm: cannot connect"), "{error}");
    }

    #[test]
    fn configuration_problems_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(
            &path,
            r#"{"type":"service_account","client_email":"a@b","private_key":"nope","project_id":"p"}"#,
        )
        .unwrap();
        let cfg = FcmConfig {
            service_account: None,
            service_account_file: Some(path),
            project_id: Some("Not A Project".into()),
            token_uri: Some("ftp://x".into()),
            base_url: "https://fcm.googleapis.com".into(),
            timeout_secs: 10,
        };

        let problems: Vec<String> = Fcm::check(&cfg).iter().map(ToString::to_string).collect();

        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("fcm.service_account_file: private_key: not a PEM private key"),
            "{problems:?}"
        );
        assert_eq!(problems[1], "fcm.project_id: \"Not A Project\" is not a firebase project id");
        assert_eq!(problems[2], "fcm.token_uri: must be an http(s) url");
        let error = Fcm::new(&cfg).unwrap_err().to_string();
        assert!(error.starts_with("invalid fcm configuration: fcm.service_account_file"), "{error}");
    }
}

mod apns {
    use super::*;
    use crate::support::apns::{self as peer, ApnsPeer, AuthKey, Reply};

    fn token() -> String {
        "8a3f".repeat(16)
    }

    struct Setup {
        peer: ApnsPeer,
        apns: Apns,
        clock: ManualClock,
        _dir: tempfile::TempDir,
    }

    fn config(dir: &tempfile::TempDir, key: &AuthKey, peer: &ApnsPeer) -> ApnsConfig {
        let root = dir.path().join("peer-root.pem");
        std::fs::write(&root, peer.cert_pem()).unwrap();
        let p8 = dir.path().join(format!("AuthKey_{}.p8", peer::KEY_ID));
        std::fs::write(&p8, &key.pem).unwrap();
        ApnsConfig {
            key_id: peer::KEY_ID.to_string(),
            team_id: peer::TEAM_ID.to_string(),
            topic: peer::TOPIC.to_string(),
            private_key: None,
            private_key_file: Some(p8),
            base_url: peer.base_url(),
            priority: 10,
            ttl_secs: 3600,
            root_certificate: Some(root),
            timeout_secs: 5,
        }
    }

    async fn setup() -> Setup {
        let clock = start_clock();
        let key = AuthKey::generate();
        let peer = ApnsPeer::start(&key.public, clock.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let apns = Apns::with_clock(&config(&dir, &key, &peer), Arc::new(clock.clone())).unwrap();
        Setup { peer, apns, clock, _dir: dir }
    }

    fn msg() -> Outgoing {
        message("birthday", "m-1", device(Platform::Apns, &token()))
    }

    #[tokio::test]
    async fn sends_an_alert_over_http2_with_a_signed_provider_token() {
        let s = setup().await;

        let id = sent(s.apns.send(&msg()).await);

        assert_eq!(s.peer.violations(), Vec::<String>::new());
        let received = s.peer.received();
        assert_eq!(received.len(), 1);
        let got = &received[0];
        assert_eq!(got.device_token, token());
        assert_eq!(id, tidings::channels::push::apns::apns_id(&msg().idempotency_key()));
        assert_eq!(got.header("apns-id"), Some(id.as_str()));
        assert_eq!(got.header("apns-topic"), Some(peer::TOPIC));
        assert_eq!(got.header("apns-push-type"), Some("alert"));
        assert_eq!(got.header("apns-priority"), Some("10"));
        assert_eq!(got.header("apns-expiration"), Some((1_800_000_000 + 3600).to_string().as_str()));
        assert_eq!(got.header("apns-collapse-id"), Some("birthday"));
        assert_eq!(
            got.payload["aps"],
            json!({"alert": {"title": "生日快乐，小明！", "body": "Your birthday gift is waiting 🎂"}})
        );
        assert_eq!(got.payload["rule_id"], "birthday");
        assert_eq!(s.peer.provider_tokens().len(), 1);
        assert_eq!(s.peer.provider_tokens()[0], (got.jwt.clone(), 1_800_000_000));
    }

    #[tokio::test]
    async fn the_provider_token_is_reused_and_replaced_before_the_hour_is_up() {
        let s = setup().await;

        for _ in 0..5 {
            sent(s.apns.send(&msg()).await);
        }
        s.clock.advance(SignedDuration::from_mins(49));
        sent(s.apns.send(&msg()).await);
        assert_eq!(s.peer.provider_tokens().len(), 1);

        s.clock.advance(SignedDuration::from_mins(2));
        sent(s.apns.send(&msg()).await);
        s.clock.advance(SignedDuration::from_mins(40));
        sent(s.apns.send(&msg()).await);

        let tokens = s.peer.provider_tokens();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].1, 1_800_000_000 + 51 * 60);
        // The peer refuses tokens older than an hour or renewed within 20 minutes.
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_unregistered_or_bad_device_token_is_gone() {
        let s = setup().await;
        s.peer.unregister(&token(), 1_799_990_000_000);
        let other = "0b".repeat(32);
        s.peer.reject_token(&other);

        let error = gone(s.apns.send(&msg()).await);
        assert_eq!(error, "apns 410 Unregistered (since 2027-01-15T05:13:20Z)");
        let error = gone(s.apns.send(&message("birthday", "m-2", device(Platform::Apns, &other))).await);
        assert_eq!(error, "apns 400 BadDeviceToken");
        // Not hex: APNs would say BadDeviceToken; no request is spent on it.
        let error = gone(s.apns.send(&message("birthday", "m-3", device(Platform::Apns, "not-a-token"))).await);
        assert_eq!(error, "apns: the device token is not hex");
        assert_eq!(s.peer.requests(), 2);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn throttling_and_server_errors_retry() {
        let s = setup().await;
        s.peer.script(1, Reply::too_many_requests("120"));
        s.peer.script(1, Reply::new(500, "InternalServerError"));
        s.peer.script(1, Reply::new(503, "ServiceUnavailable"));

        assert_eq!(
            transient(s.apns.send(&msg()).await),
            ("apns 429 TooManyRequests".into(), Some(Duration::from_secs(120)))
        );
        assert_eq!(transient(s.apns.send(&msg()).await).0, "apns 500 InternalServerError");
        assert_eq!(transient(s.apns.send(&msg()).await).0, "apns 503 ServiceUnavailable");
        sent(s.apns.send(&msg()).await);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_expired_provider_token_is_replaced_and_the_message_retries() {
        let s = setup().await;
        s.peer.script(1, Reply::new(403, "ExpiredProviderToken"));

        let (error, _) = transient(s.apns.send(&msg()).await);
        assert_eq!(error, "apns 403 ExpiredProviderToken");
        s.clock.advance(SignedDuration::from_mins(21));
        sent(s.apns.send(&msg()).await);

        let tokens = s.peer.provider_tokens();
        assert_eq!(tokens.len(), 2, "a new token after ExpiredProviderToken");
        assert_eq!(tokens[1].1, 1_800_000_000 + 21 * 60);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn other_refusals_are_permanent_with_apples_reason() {
        let s = setup().await;
        s.peer.script(1, Reply::new(400, "DeviceTokenNotForTopic"));
        s.peer.script(1, Reply::new(400, "TopicDisallowed"));

        assert_eq!(permanent(s.apns.send(&msg()).await), "apns 400 DeviceTokenNotForTopic");
        assert_eq!(permanent(s.apns.send(&msg()).await), "apns 400 TopicDisallowed");
    }

    #[tokio::test]
    async fn a_key_apple_does_not_know_is_permanent() {
        let clock = start_clock();
        let peer = ApnsPeer::start(&AuthKey::generate().public, clock.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let apns = Apns::with_clock(&config(&dir, &AuthKey::generate(), &peer), Arc::new(clock)).unwrap();

        assert_eq!(permanent(apns.send(&msg()).await), "apns 403 InvalidProviderToken");
        assert_eq!(peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn without_the_root_certificate_the_peer_is_not_trusted() {
        let s = setup().await;
        let key = AuthKey::generate();
        let mut cfg = config(&s._dir, &key, &s.peer);
        cfg.root_certificate = None;
        let apns = Apns::with_clock(&cfg, Arc::new(s.clock.clone())).unwrap();

        let (error, _) = transient(apns.send(&msg()).await);

        assert!(error.starts_with("apns: cannot connect"), "{error}");
        assert_eq!(s.peer.requests(), 0);
    }

    /// The peer itself: an HTTP/1.1 request is caught.
    #[tokio::test]
    async fn peer_flags_http1() {
        let s = setup().await;
        let client = reqwest::Client::builder()
            .http1_only()
            .tls_certs_only([reqwest::Certificate::from_pem(s.peer.cert_pem().as_bytes()).unwrap()])
            .build()
            .unwrap();

        let response =
            client.post(format!("{}/3/device/{}", s.peer.base_url(), token())).body("{}").send().await.unwrap();

        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        assert_eq!(response.status(), 505);
        assert_eq!(s.peer.violations(), ["HTTP/1.1, expected HTTP/2"]);
    }

    #[test]
    fn configuration_problems_name_their_key() {
        let cfg = ApnsConfig {
            key_id: peer::KEY_ID.into(),
            team_id: peer::TEAM_ID.into(),
            topic: peer::TOPIC.into(),
            private_key: Some(Secret::new("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")),
            private_key_file: None,
            base_url: "https://api.sandbox.push.apple.com".into(),
            priority: 10,
            ttl_secs: 0,
            root_certificate: None,
            timeout_secs: 10,
        };
        let problems: Vec<String> = Apns::check(&cfg).iter().map(|p| p.key.clone()).collect();
        assert_eq!(problems, ["apns.private_key"]);
        let good = ApnsConfig { private_key: Some(Secret::new(AuthKey::generate().pem)), ..cfg };
        assert_eq!(Apns::check(&good), vec![]);
    }
}

mod webpush {
    use super::*;
    use crate::support::webpush::{Reply, Subscription, WebPushPeer};

    struct Setup {
        peer: WebPushPeer,
        webpush: WebPush,
        subscription: Subscription,
    }

    fn vapid_key() -> String {
        use base64::Engine;
        let bytes = loop {
            let candidate = rand::random::<[u8; 32]>();
            if p256::SecretKey::from_slice(&candidate).is_ok() {
                break candidate;
            }
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn config(private_key: &str) -> WebPushConfig {
        WebPushConfig {
            subject: "mailto:push-ops@jadeclub.example".into(),
            private_key: Some(Secret::new(private_key)),
            private_key_file: None,
            ttl_secs: 86_400,
            urgency: "normal".into(),
            topic: false,
            timeout_secs: 5,
        }
    }

    async fn setup_with(cfg: WebPushConfig) -> Setup {
        let clock = start_clock();
        let peer = WebPushPeer::start(clock.clone()).await;
        let webpush = WebPush::with_clock(&cfg, Arc::new(clock)).unwrap();
        let subscription = peer.subscribe(webpush.public_key());
        Setup { peer, webpush, subscription }
    }

    async fn setup() -> Setup {
        setup_with(config(&vapid_key())).await
    }

    fn subscribed(s: &Subscription) -> PushDevice {
        PushDevice {
            platform: Platform::Webpush,
            token: s.endpoint.clone(),
            p256dh: Some(s.p256dh.clone()),
            auth: Some(s.auth.clone()),
        }
    }

    fn msg(s: &Setup) -> Outgoing {
        message("birthday", "m-1", subscribed(&s.subscription))
    }

    #[tokio::test]
    async fn the_browser_decrypts_what_was_sent_under_a_vapid_token_for_the_origin_with_its_port() {
        let s = setup().await;
        assert!(
            tidings::channels::push::validate_subscription(
                &s.subscription.endpoint,
                &s.subscription.p256dh,
                &s.subscription.auth
            )
            .is_ok()
        );

        let id = sent(s.webpush.send(&msg(&s)).await);

        assert_eq!(s.peer.violations(), Vec::<String>::new());
        let received = s.peer.received();
        assert_eq!(received.len(), 1);
        let got = &received[0];
        assert_eq!(id, got.location);
        assert_eq!(got.endpoint, s.subscription.endpoint);
        assert!(s.peer.origin().rsplit(':').next().unwrap().parse::<u16>().unwrap() != 80);
        assert_eq!(
            got.plaintext,
            json!({
                "title": "生日快乐，小明！",
                "body": "Your birthday gift is waiting 🎂",
                "rule_id": "birthday",
                "message_key": msg(&s).idempotency_key(),
            })
        );
        assert_eq!(got.header("ttl"), Some("86400"));
        assert_eq!(got.header("urgency"), Some("normal"));
        assert_eq!(got.header("content-encoding"), Some("aes128gcm"));
        assert_eq!(got.header("topic"), None);
    }

    #[tokio::test]
    async fn topic_and_urgency_when_configured() {
        let mut cfg = config(&vapid_key());
        cfg.topic = true;
        cfg.urgency = "high".into();
        let s = setup_with(cfg).await;

        sent(s.webpush.send(&msg(&s)).await);
        let long_rule = message(&"winback-".repeat(6), "m-1", subscribed(&s.subscription));
        sent(s.webpush.send(&long_rule).await);

        let received = s.peer.received();
        assert_eq!(received[0].header("topic"), Some("birthday"));
        assert_eq!(received[0].header("urgency"), Some("high"));
        assert_eq!(received[1].header("topic").map(str::len), Some(32));
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_vapid_key_from_a_pem_file_is_the_public_key_served() {
        use p256::pkcs8::EncodePrivateKey;
        let raw = vapid_key();
        let secret = p256::SecretKey::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &raw).unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        std::fs::write(&path, secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap().as_bytes()).unwrap();
        let mut cfg = config("");
        cfg.private_key = None;
        cfg.private_key_file = Some(path);
        let from_file = WebPush::new(&cfg).unwrap();

        assert_eq!(from_file.public_key(), WebPush::new(&config(&raw)).unwrap().public_key());
        let s = setup_with(cfg).await;
        sent(s.webpush.send(&msg(&s)).await);
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_revoked_or_unknown_subscription_is_gone() {
        let s = setup().await;
        s.peer.unsubscribe(&s.subscription.endpoint);

        let error = gone(s.webpush.send(&msg(&s)).await);
        assert!(error.starts_with("webpush: 410 Gone"), "{error}");

        let mut unknown = subscribed(&s.subscription);
        unknown.token = s.peer.unknown_endpoint();
        let error = gone(s.webpush.send(&message("birthday", "m-2", unknown)).await);
        assert!(error.starts_with("webpush: 404 Not Found"), "{error}");
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn throttling_and_server_errors_retry() {
        let s = setup().await;
        s.peer.script(1, Reply::too_many_requests("45"));
        s.peer.script(1, Reply::status(503, "Service Unavailable"));

        assert_eq!(
            transient(s.webpush.send(&msg(&s)).await),
            ("webpush: 429 Too Many Requests".into(), Some(Duration::from_secs(45)))
        );
        assert_eq!(
            transient(s.webpush.send(&msg(&s)).await).0,
            "webpush: 503 Service Unavailable: Service Unavailable"
        );
        sent(s.webpush.send(&msg(&s)).await);
    }

    #[tokio::test]
    async fn refusals_are_permanent() {
        let s = setup().await;
        s.peer.script(1, Reply::status(413, "Payload Too Large"));
        s.peer.script(1, Reply::status(400, "Bad Request"));

        assert_eq!(permanent(s.webpush.send(&msg(&s)).await), "webpush: 413 Payload Too Large: Payload Too Large");
        assert_eq!(permanent(s.webpush.send(&msg(&s)).await), "webpush: 400 Bad Request: Bad Request");
    }

    /// A subscription is bound to the key it was made with; the push service answers 403.
    #[tokio::test]
    async fn a_subscription_made_for_another_key_is_refused() {
        let s = setup().await;
        let other = s.peer.subscribe("BOtherApplicationServerKeyNotOurs");

        let error = permanent(s.webpush.send(&message("birthday", "m-9", subscribed(&other))).await);

        assert!(error.starts_with("webpush: 403 Forbidden"), "{error}");
        assert_eq!(s.peer.violations(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn without_location_the_idempotency_key_is_the_id() {
        let s = setup().await;
        s.peer.script(1, Reply::created_without_location());

        assert_eq!(sent(s.webpush.send(&msg(&s)).await), msg(&s).idempotency_key());
        assert_eq!(s.peer.received().len(), 1);
    }

    #[tokio::test]
    async fn a_broken_subscription_is_gone_without_a_request() {
        let s = setup().await;
        let mut broken = subscribed(&s.subscription);
        broken.p256dh = Some("BAAA".into());

        let error = gone(s.webpush.send(&message("birthday", "m-1", broken)).await);

        assert_eq!(
            error,
            "webpush: not a usable subscription: p256dh: not an uncompressed P-256 public key (65 bytes)"
        );
        assert_eq!(s.peer.requests(), 0);
    }

    #[tokio::test]
    async fn unreachable_push_service_is_transient() {
        let s = setup().await;
        let mut device = subscribed(&s.subscription);
        device.token = format!("http://127.0.0.1:{}/wpush/v2/x", closed_port());

        let (error, _) = transient(s.webpush.send(&message("birthday", "m-1", device)).await);

        assert!(error.starts_with("webpush: cannot connect"), "{error}");
    }
}

/// The router sends each device's message through its platform's provider.
#[tokio::test]
async fn push_routes_by_platform() {
    use crate::support::apns::{ApnsPeer, AuthKey};
    use crate::support::fcm::{self as fcm_peer, FcmPeer};
    use crate::support::webpush::WebPushPeer;

    let clock = start_clock();
    let dir = tempfile::tempdir().unwrap();
    let fcm = FcmPeer::start(clock.clone()).await;
    let key_file = dir.path().join("sa.json");
    std::fs::write(&key_file, fcm_peer::service_account_json(fcm_peer::service_key(), &fcm.token_uri())).unwrap();
    let apns_key = AuthKey::generate();
    let apns = ApnsPeer::start(&apns_key.public, clock.clone()).await;
    let root = dir.path().join("root.pem");
    std::fs::write(&root, apns.cert_pem()).unwrap();
    let browser = WebPushPeer::start(clock.clone()).await;

    let cfgs = PushConfigs {
        fcm: Some(FcmConfig {
            service_account: None,
            service_account_file: Some(key_file),
            project_id: None,
            token_uri: None,
            base_url: fcm.base_url(),
            timeout_secs: 5,
        }),
        apns: Some(ApnsConfig {
            key_id: crate::support::apns::KEY_ID.into(),
            team_id: crate::support::apns::TEAM_ID.into(),
            topic: crate::support::apns::TOPIC.into(),
            private_key: Some(Secret::new(apns_key.pem.clone())),
            private_key_file: None,
            base_url: apns.base_url(),
            priority: 5,
            ttl_secs: 0,
            root_certificate: Some(root),
            timeout_secs: 5,
        }),
        webpush: Some(WebPushConfig {
            subject: "https://jadeclub.example/contact".into(),
            private_key: Some(Secret::new("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")),
            private_key_file: None,
            ttl_secs: 600,
            urgency: "low".into(),
            topic: false,
            timeout_secs: 5,
        }),
    };
    assert_eq!(Push::check(&cfgs), vec![]);
    let push = Push::with_clock(&cfgs, Arc::new(clock)).unwrap();
    assert_eq!(push.platforms(), Platform::ALL);
    let public_key = push.webpush_public_key().unwrap().to_string();
    let subscription = browser.subscribe(&public_key);

    sent(push.send(&message("birthday", "m-1", device(Platform::Fcm, "fcm-token-1"))).await);
    sent(push.send(&message("birthday", "m-2", device(Platform::Apns, &"ab".repeat(32)))).await);
    let web = PushDevice {
        platform: Platform::Webpush,
        token: subscription.endpoint.clone(),
        p256dh: Some(subscription.p256dh.clone()),
        auth: Some(subscription.auth.clone()),
    };
    sent(push.send(&message("birthday", "m-3", web)).await);

    assert_eq!(fcm.received().len(), 1);
    assert_eq!(apns.received().len(), 1);
    assert_eq!(apns.received()[0].header("apns-priority"), Some("5"));
    assert_eq!(apns.received()[0].header("apns-expiration"), Some("0"));
    assert_eq!(browser.received().len(), 1);
    assert_eq!(browser.received()[0].header("urgency"), Some("low"));
    assert!(fcm.violations().is_empty() && apns.violations().is_empty() && browser.violations().is_empty());

    let only_fcm =
        Push::with_clock(&PushConfigs { fcm: cfgs.fcm.clone(), ..Default::default() }, Arc::new(start_clock()))
            .unwrap();
    let error = permanent(only_fcm.send(&message("birthday", "m-2", device(Platform::Apns, &"ab".repeat(32)))).await);
    assert_eq!(error, "push: no provider is configured for apns devices (add a [apns] section)");
}
