//! The SMTP provider against a real SMTP server on loopback: the message as parsed back, TLS both
//! ways, AUTH, how replies map to outcomes, the pool's bounds, and the send timeout.

use std::path::PathBuf;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use tempfile::TempDir;
use tidings::channels::email::{Smtp, SmtpConfig, SmtpTls};
use tidings::channels::{Outgoing, Rendered, SendOutcome};
use tidings::config::Secret;

use crate::support::smtp::{PeerTls, SmtpOptions, SmtpPeer};

const SUBJECT: &str = "生日快乐，李雷！Your birthday gift is waiting";
const TEXT: &str = "亲爱的李雷：\n\n祝你生日快乐。\n.this line starts with a dot\n";
const HTML: &str = "<p>Happy birthday, Li Lei!</p>\n.<p>This line starts with a dot.</p>\n";

fn outgoing(dedupe_key: &str, to: &str) -> Outgoing {
    Outgoing {
        id: 1,
        dedupe_key: dedupe_key.to_owned(),
        rule_id: "birthday".to_owned(),
        member: "m-1".to_owned(),
        member_name: "李雷".to_owned(),
        to: to.to_owned(),
        device: None,
        purpose: tidings::channels::Purpose::Marketing,
        rendered: Rendered::Email { subject: SUBJECT.to_owned(), html: HTML.to_owned(), text: TEXT.to_owned() },
    }
}

fn config(peer: &SmtpPeer, tls: SmtpTls) -> SmtpConfig {
    tidings::install_crypto_provider();
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: peer.port(),
        tls,
        username: None,
        password: None,
        password_file: None,
        from: "会员俱乐部 <club@example.com>".to_owned(),
        pool_size: 4,
        timeout_secs: 10,
        root_certificate: None,
        helo_name: Some("tidings.test".to_owned()),
        dkim: None,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
        link_secret: None,
        link_secret_file: None,
    }
}

/// A TLS config for `peer` that trusts its certificate; keep the directory alive.
fn tls_config(peer: &SmtpPeer, tls: SmtpTls) -> (SmtpConfig, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pem: PathBuf = dir.path().join("peer.pem");
    std::fs::write(&pem, peer.cert_pem()).unwrap();
    let mut cfg = config(peer, tls);
    cfg.host = "localhost".to_owned();
    cfg.root_certificate = Some(pem);
    (cfg, dir)
}

async fn peer(options: SmtpOptions) -> SmtpPeer {
    SmtpPeer::start(options).await
}

fn transient_error(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Transient { error, .. } => error,
        other => panic!("expected a transient outcome, got {other:?}"),
    }
}

fn sent(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Sent { provider_id } => provider_id,
        other => panic!("expected sent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_send_parses_back_as_multipart_alternative() {
    let peer = peer(SmtpOptions::default()).await;
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    let id = sent(smtp.send(&outgoing("birthday:m-1:2027:email", "lilei@example.com")).await);

    let received = peer.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.from, "club@example.com");
    assert_eq!(r.to, ["lilei@example.com"]);
    assert!(!r.tls);

    let message = MessageParser::default().parse(&r.data).expect("the message parses");
    let ctype = message.root_part().content_type().unwrap();
    assert_eq!((ctype.ctype(), ctype.subtype()), ("multipart", Some("alternative")));
    assert_eq!(message.subject(), Some(SUBJECT));
    let to = message.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.name(), Some("李雷"));
    assert_eq!(to.address(), Some("lilei@example.com"));
    let from = message.from().and_then(|a| a.first()).unwrap();
    assert_eq!((from.name(), from.address()), (Some("会员俱乐部"), Some("club@example.com")));
    assert_eq!(normalized(&message.body_text(0).unwrap()), TEXT);
    assert_eq!(normalized(&message.body_html(0).unwrap()), HTML);
    for part in [message.text_part(0).unwrap(), message.html_part(0).unwrap()] {
        assert_eq!(part.content_type().unwrap().attribute("charset"), Some("utf-8"));
    }
    assert_eq!(format!("<{}>", message.message_id().unwrap()), id);
    assert!(id.ends_with("@example.com>"), "{id}");

    // The Message-ID follows the dedupe key: the same on a second attempt, different for another.
    let again = sent(smtp.send(&outgoing("birthday:m-1:2027:email", "lilei@example.com")).await);
    let other = sent(smtp.send(&outgoing("birthday:m-2:2027:email", "lilei@example.com")).await);
    assert_eq!(again, id);
    assert_ne!(other, id);
    let ids: Vec<String> = peer
        .received()
        .iter()
        .map(|r| MessageParser::default().parse(&r.data).unwrap().message_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    // One connection served all three.
    assert_eq!(peer.connections(), 1);
}

fn normalized(body: &str) -> String {
    body.replace("\r\n", "\n")
}

#[tokio::test]
async fn starttls_upgrades_with_the_configured_root() {
    let peer = peer(SmtpOptions { tls: PeerTls::Starttls, ..SmtpOptions::default() }).await;
    let (cfg, _dir) = tls_config(&peer, SmtpTls::Starttls);
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls);
}

#[tokio::test]
async fn starttls_refuses_an_untrusted_certificate() {
    let peer = peer(SmtpOptions { tls: PeerTls::Starttls, ..SmtpOptions::default() }).await;
    let (mut cfg, _dir) = tls_config(&peer, SmtpTls::Starttls);
    cfg.root_certificate = None;
    let smtp = Smtp::new(&cfg).unwrap();

    let error = transient_error(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    assert!(error.contains("starttls"), "{error}");
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn implicit_tls_encrypts_from_the_first_byte() {
    let peer = peer(SmtpOptions { tls: PeerTls::Implicit, ..SmtpOptions::default() }).await;
    let (cfg, _dir) = tls_config(&peer, SmtpTls::Implicit);
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);
    sent(smtp.send(&outgoing("k2", "lilei@example.com")).await);

    let received = peer.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.tls));
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn starttls_not_offered_is_transient_and_nothing_is_sent_in_plaintext() {
    let peer = peer(SmtpOptions::default()).await;
    let (cfg, _dir) = tls_config(&peer, SmtpTls::Starttls);
    let smtp = Smtp::new(&cfg).unwrap();

    let error = transient_error(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(peer.received().is_empty());
}

fn with_auth(mechanisms: Vec<&'static str>) -> SmtpOptions {
    SmtpOptions {
        auth: Some(("club".to_owned(), "s3cret".to_owned())),
        auth_mechanisms: mechanisms,
        ..SmtpOptions::default()
    }
}

fn login(cfg: &mut SmtpConfig, password: &str) {
    cfg.username = Some("club".to_owned());
    cfg.password = Some(Secret::new(password));
}

#[tokio::test]
async fn auth_plain_logs_in() {
    let peer = peer(with_auth(vec!["PLAIN", "LOGIN"])).await;
    let mut cfg = config(&peer, SmtpTls::None);
    login(&mut cfg, "s3cret");
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    assert_eq!(peer.received()[0].auth.as_deref(), Some("PLAIN"));
}

#[tokio::test]
async fn auth_login_is_used_when_it_is_the_only_mechanism() {
    let peer = peer(with_auth(vec!["LOGIN"])).await;
    let mut cfg = config(&peer, SmtpTls::None);
    login(&mut cfg, "s3cret");
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    assert_eq!(peer.received()[0].auth.as_deref(), Some("LOGIN"));
}

/// A rejected password is the configuration's fault, not the message's: transient, so queued
/// messages survive until the operator fixes it.
#[tokio::test]
async fn a_wrong_password_fails_the_send_without_delivering() {
    let peer = peer(with_auth(vec!["PLAIN", "LOGIN"])).await;
    let mut cfg = config(&peer, SmtpTls::None);
    login(&mut cfg, "wrong");
    let smtp = Smtp::new(&cfg).unwrap();

    let error = transient_error(smtp.send(&outgoing("k1", "lilei@example.com")).await);

    assert!(error.contains("authentication failed") && error.contains("535"), "{error}");
    assert!(!error.contains("wrong"), "the password leaked: {error}");
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn a_451_is_transient_and_the_next_attempt_goes_through() {
    let peer = peer(SmtpOptions::default()).await;
    peer.fail_next_data(1);
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    let error = transient_error(smtp.send(&outgoing("k1", "lilei@example.com")).await);
    assert!(error.contains("451 4.3.0 try later"), "{error}");
    assert!(peer.received().is_empty());

    sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);
    assert_eq!(peer.received().len(), 1);
    // The connection that saw the error was not reused.
    assert_eq!(peer.connections(), 2);
    assert_eq!(peer.received()[0].connection, 2);
}

/// A hard bounce (the mailbox does not exist) is `Gone`, so the address is suppressed; other
/// refusals of the recipient are permanent for this message only; 4xx is worth retrying.
#[tokio::test]
async fn rcpt_replies_map_to_outcomes() {
    let peer = peer(SmtpOptions::default()).await;
    let cases = [
        ("nobody@example.com", "550 5.1.1 no such user", "gone"),
        ("nodomain@example.com", "550 5.1.2 bad destination system", "gone"),
        ("nullmx@example.com", "556 5.1.10 recipient address has null MX", "gone"),
        ("moved@example.com", "551 user not local", "gone"),
        ("badname@example.com", "553 mailbox name not allowed", "gone"),
        ("unknown@example.com", "550 mailbox unavailable", "gone"),
        ("policy@example.com", "550 5.7.1 rejected by policy", "permanent"),
        ("full@example.com", "552 5.2.2 mailbox full", "permanent"),
        ("listed@example.com", "550 blocked: your address is listed at a DNSBL", "permanent"),
        ("busy@example.com", "451 4.3.0 try later", "transient"),
        ("greylist@example.com", "450 4.2.0 greylisted, come back later", "transient"),
    ];
    for (to, reply, _) in cases {
        peer.reply_to_rcpt(to, reply);
    }
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    for (i, (to, reply, want)) in cases.into_iter().enumerate() {
        let (got, error) = match smtp.send(&outgoing(&format!("k{i}"), to)).await {
            SendOutcome::Gone { error } => ("gone", error),
            SendOutcome::Permanent { error } => ("permanent", error),
            SendOutcome::Transient { error, .. } => ("transient", error),
            other => panic!("{reply}: unexpected {other:?}"),
        };
        assert_eq!(got, want, "{reply}: {error}");
        assert!(error.contains(reply), "the reply is kept: {error}");
    }
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn commands_are_pipelined_only_when_offered_and_replies_still_map() {
    for pipelining in [true, false] {
        let peer = peer(SmtpOptions { pipelining, ..SmtpOptions::default() }).await;
        peer.reply_to_rcpt("nobody@example.com", "550 5.1.1 no such user");
        let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

        sent(smtp.send(&outgoing("k1", "lilei@example.com")).await);
        sent(smtp.send(&outgoing("k2", "hanmeimei@example.com")).await);
        match smtp.send(&outgoing("k3", "nobody@example.com")).await {
            SendOutcome::Gone { error } => assert!(error.contains("550 5.1.1"), "{error}"),
            other => panic!("expected gone, got {other:?}"),
        }
        sent(smtp.send(&outgoing("k4", "lilei@example.com")).await);

        let to: Vec<String> = peer.received().iter().map(|r| r.to.join(",")).collect();
        assert_eq!(to, ["lilei@example.com", "hanmeimei@example.com", "lilei@example.com"]);
        let expected = if pipelining { 4 } else { 0 };
        assert_eq!(peer.pipelined(), expected, "pipelining offered: {pipelining}");
        // One connection for the first two; the refusal dropped it.
        assert_eq!(peer.connections(), 2);
    }
}

#[tokio::test]
async fn a_pooled_connection_the_relay_closed_is_replaced_without_failing_the_send() {
    let peer = peer(SmtpOptions { close_after: Some(1), pipelining: true, ..SmtpOptions::default() }).await;
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    for i in 0..3 {
        sent(smtp.send(&outgoing(&format!("k{i}"), "lilei@example.com")).await);
    }
    assert_eq!(peer.received().len(), 3);
    assert_eq!(peer.connections(), 3);
}

#[tokio::test]
async fn an_unparsable_address_is_permanent_and_never_connects() {
    let peer = peer(SmtpOptions::default()).await;
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    match smtp.send(&outgoing("k1", "not an address")).await {
        SendOutcome::Permanent { error } => {
            assert!(error.starts_with("invalid email address"), "{error}")
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    assert_eq!(peer.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sends_share_at_most_pool_size_connections() {
    let peer = peer(SmtpOptions::default()).await;
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    let sends: Vec<_> = (0..50)
        .map(|i| {
            let smtp = smtp.clone();
            tokio::spawn(async move { smtp.send(&outgoing(&format!("k{i}"), &format!("m{i}@example.com"))).await })
        })
        .collect();
    for send in sends {
        sent(send.await.unwrap());
    }

    assert_eq!(peer.received().len(), 50);
    assert!(peer.max_concurrent() <= 4, "{} sessions at once", peer.max_concurrent());
    assert!(peer.connections() <= 4, "{} connections", peer.connections());

    // Shutdown says QUIT on every pooled connection and takes no more sends.
    smtp.close().await;
    assert_eq!(peer.quits(), peer.connections());
    let error = transient_error(smtp.send(&outgoing("late", "lilei@example.com")).await);
    assert!(error.contains("closed"), "{error}");
    assert_eq!(peer.received().len(), 50);
}

/// The bound holds while sends pile up: with every session held at the end of DATA, the sends
/// beyond `pool_size` wait for a slot instead of opening connections of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_never_open_more_connections_than_the_pool_size() {
    let peer = peer(SmtpOptions { hold_data: true, ..SmtpOptions::default() }).await;
    let smtp = Smtp::new(&config(&peer, SmtpTls::None)).unwrap();

    let sends: Vec<_> = (0..12)
        .map(|i| {
            let smtp = smtp.clone();
            tokio::spawn(async move { smtp.send(&outgoing(&format!("k{i}"), &format!("m{i}@example.com"))).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), peer.wait_held(4)).await.expect("four sends reached DATA");
    assert_eq!(peer.connections(), 4);
    peer.release_data();
    for send in sends {
        sent(send.await.unwrap());
    }

    assert_eq!(peer.received().len(), 12);
    // The bound was reached, never passed, and the later sends reused the pooled connections.
    assert_eq!(peer.max_concurrent(), 4);
    assert_eq!(peer.connections(), 4);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    let peer = peer(SmtpOptions { silent: true, ..SmtpOptions::default() }).await;
    let mut cfg = config(&peer, SmtpTls::None);
    cfg.timeout_secs = 1;
    let smtp = Smtp::new(&cfg).unwrap();

    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), smtp.send(&outgoing("k1", "lilei@example.com")))
        .await
        .expect("the send gave up by itself");
    let error = transient_error(outcome);

    assert!(error.contains("timed out"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn a_server_that_takes_the_message_but_never_confirms_leaves_the_outcome_unknown() {
    let peer = peer(SmtpOptions { hang_after_data: true, ..SmtpOptions::default() }).await;
    let mut cfg = config(&peer, SmtpTls::None);
    cfg.timeout_secs = 1;
    let smtp = Smtp::new(&cfg).unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(10), smtp.send(&outgoing("k2", "lilei@example.com")))
        .await
        .expect("the send gave up by itself");
    // The server has the message: resending could deliver it twice.
    match outcome {
        SendOutcome::Unknown { error } => assert!(error.contains("did not confirm"), "{error}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert_eq!(peer.received().len(), 1);
}
