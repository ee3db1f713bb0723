//! What marketing and service email carry besides the content, checked on the message as the SMTP
//! peer received it: a DKIM signature that an independent verifier (Stalwart's mail-auth) accepts
//! and that breaks when the body or a signed header is changed, and the one-click unsubscribe
//! headers whose link, POSTed to the real handlers, records the opt-out.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};
use mail_parser::MessageParser;
use tidings::channels::email::dkim::{DkimAlgorithm, DkimConfig};
use tidings::channels::email::{Smtp, SmtpConfig, list_unsubscribe};
use tidings::channels::{ChannelKind, Outgoing, Purpose, Rendered, SendOutcome};
use tidings::clock::ManualClock;
use tidings::config::Secret;
use tidings::http::unsubscribe::{OptOut, SOURCE_ONE_CLICK, UnsubscribeState, router};

use crate::support::smtp::{SmtpOptions, SmtpPeer};

const SELECTOR: &str = "tidings2026";
const DOMAIN: &str = "example.com";
const LINK_SECRET: &str = "a link secret of at least 32 bytes, for tests";

fn outgoing(key: &str, purpose: Purpose) -> Outgoing {
    Outgoing {
        id: 1,
        dedupe_key: key.to_owned(),
        rule_id: "birthday".to_owned(),
        member: "m-1".to_owned(),
        member_name: "李雷".to_owned(),
        to: "lilei@example.com".to_owned(),
        device: None,
        purpose,
        rendered: Rendered::Email {
            subject: "生日快乐，李雷！Your birthday gift is waiting".to_owned(),
            html: "<p>Happy birthday, Li Lei!</p>\n<p>祝你生日快乐。</p>\n".to_owned(),
            text: "Happy birthday, Li Lei!\n祝你生日快乐。\n".to_owned(),
        },
    }
}

fn config(peer: &SmtpPeer) -> SmtpConfig {
    tidings::install_crypto_provider();
    let text = format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"会员俱乐部 <club@example.com>\"\n",
        peer.port()
    );
    toml::from_str(&text).unwrap()
}

/// A key pair: the private key as configured, the DNS TXT record publishing the public key.
struct Key {
    algorithm: DkimAlgorithm,
    private_key: String,
    record: String,
}

fn rsa_key() -> Key {
    let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048).unwrap();
    Key {
        algorithm: DkimAlgorithm::Rsa,
        private_key: pem("RSA PRIVATE KEY", pair.private_key()),
        record: format!("v=DKIM1; k=rsa; p={}", BASE64.encode(pair.public_key())),
    }
}

fn ed25519_key() -> Key {
    use ring::signature::KeyPair as _;
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    Key {
        algorithm: DkimAlgorithm::Ed25519,
        private_key: pem("PRIVATE KEY", pkcs8.as_ref()),
        record: format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(pair.public_key().as_ref())),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn with_dkim(mut cfg: SmtpConfig, key: &Key) -> SmtpConfig {
    cfg.dkim = Some(DkimConfig {
        selector: SELECTOR.to_owned(),
        domain: DOMAIN.to_owned(),
        algorithm: key.algorithm,
        private_key: Some(Secret::new(key.private_key.clone())),
        private_key_file: None,
    });
    cfg
}

fn with_unsubscribe(mut cfg: SmtpConfig, base: &str) -> SmtpConfig {
    cfg.unsubscribe_url = Some(base.to_owned());
    cfg.link_secret = Some(Secret::new(LINK_SECRET));
    cfg
}

/// The DNS the verifier sees: the one TXT record publishing our key, at its name.
struct OneRecord {
    name: Box<str>,
    txt: Txt,
}

impl ResolverCache<Box<str>, Txt> for OneRecord {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Any other name falls through to a resolver with no name servers, and fails.
        (<Box<str> as Borrow<Q>>::borrow(&self.name) == name).then(|| self.txt.clone())
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// The results of verifying every DKIM signature in `raw` against `record`, with a resolver
/// that has no name servers: nothing leaves the machine.
async fn verify_dkim(raw: &[u8], record: &str) -> Vec<DkimResult> {
    let authenticator = MessageAuthenticator::new(ResolverConfig::default(), ResolverOpts::default()).unwrap();
    let message = AuthenticatedMessage::parse(raw).expect("mail-auth parses the message");
    let key = DomainKey::parse(record.as_bytes()).expect("the key record parses");
    let dns = OneRecord { name: format!("{SELECTOR}._domainkey.{DOMAIN}.").into(), txt: Txt::from(key) };
    let results = authenticator.verify_dkim(Parameters::new(&message).with_txt_cache(&dns)).await;
    results.iter().map(|r| r.result().clone()).collect()
}

/// The message's `name` header, unfolded.
fn header(raw: &[u8], name: &str) -> Option<String> {
    let message = MessageParser::default().parse(raw).unwrap();
    message.header_raw(name).map(|v| v.replace("\r\n", "").trim().to_owned())
}

/// `tag=value` of a DKIM-Signature, whitespace removed.
fn dkim_tag(signature: &str, tag: &str) -> Option<String> {
    signature.split(';').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim() == tag).then(|| value.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

fn sent(outcome: SendOutcome) {
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
}

/// `raw` with one letter of the body (past the headers, half-way through) in the other case.
fn tampered_body(raw: &[u8]) -> Vec<u8> {
    let body = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut raw = raw.to_vec();
    let at = (body + (raw.len() - body) / 2..raw.len()).find(|&i| raw[i].is_ascii_alphabetic()).unwrap();
    raw[at] ^= 0x20;
    raw
}

/// `raw` with the first occurrence of `from` replaced.
fn tampered(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} is not in the message");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn an_rsa_signature_verifies_and_breaks_when_the_message_is_changed() {
    let peer = SmtpPeer::start(SmtpOptions::default()).await;
    let key = rsa_key();
    let cfg = with_unsubscribe(with_dkim(config(&peer), &key), "https://club.example.com/unsubscribe");
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("birthday:m-1:2027:email", Purpose::Marketing)).await);

    let raw = peer.received()[0].data.clone();
    let signature = header(&raw, "DKIM-Signature").expect("the message is signed");
    assert_eq!(dkim_tag(&signature, "a").as_deref(), Some("rsa-sha256"));
    assert_eq!(dkim_tag(&signature, "c").as_deref(), Some("relaxed/relaxed"));
    assert_eq!(dkim_tag(&signature, "d").as_deref(), Some(DOMAIN));
    assert_eq!(dkim_tag(&signature, "s").as_deref(), Some(SELECTOR));
    assert_eq!(
        dkim_tag(&signature, "h").as_deref(),
        Some("from:to:subject:date:message-id:mime-version:list-unsubscribe:list-unsubscribe-post")
    );
    assert_eq!(verify_dkim(&raw, &key.record).await, [DkimResult::Pass]);

    // A changed body no longer matches the body hash.
    let body = tampered_body(&raw);
    let results = verify_dkim(&body, &key.record).await;
    assert_eq!(results.len(), 1);
    assert_ne!(results[0], DkimResult::Pass, "a changed body verified");
    // So does a changed signed header, and a forged List-Unsubscribe.
    let to = tampered(&raw, "lilei@example.com", "hanmeimei@example.com");
    assert!(matches!(verify_dkim(&to, &key.record).await[..], [DkimResult::Fail(_)]));
    let unsubscribe = tampered(&raw, "<https://club.example.com/", "<https://evil.example.net/");
    assert!(matches!(verify_dkim(&unsubscribe, &key.record).await[..], [DkimResult::Fail(_)]));
    // And another domain's key does not verify it.
    assert!(matches!(verify_dkim(&raw, &rsa_key().record).await[..], [DkimResult::Fail(_)]));
}

#[tokio::test]
async fn an_ed25519_signature_verifies_on_service_mail_without_unsubscribe_headers() {
    let peer = SmtpPeer::start(SmtpOptions::default()).await;
    let key = ed25519_key();
    let cfg = with_unsubscribe(with_dkim(config(&peer), &key), "https://club.example.com/unsubscribe");
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("points:m-1:2027-01:email", Purpose::Service)).await);

    let raw = peer.received()[0].data.clone();
    let signature = header(&raw, "DKIM-Signature").expect("the message is signed");
    assert_eq!(dkim_tag(&signature, "a").as_deref(), Some("ed25519-sha256"));
    assert_eq!(header(&raw, "List-Unsubscribe"), None);
    assert_eq!(header(&raw, "List-Unsubscribe-Post"), None);
    assert_eq!(verify_dkim(&raw, &key.record).await, [DkimResult::Pass]);
    assert_ne!(verify_dkim(&tampered_body(&raw), &key.record).await, [DkimResult::Pass]);
}

#[tokio::test]
async fn without_dkim_config_nothing_is_signed() {
    let peer = SmtpPeer::start(SmtpOptions::default()).await;
    let smtp = Smtp::new(&config(&peer)).unwrap();

    sent(smtp.send(&outgoing("k1", Purpose::Marketing)).await);

    let raw = peer.received()[0].data.clone();
    assert_eq!(header(&raw, "DKIM-Signature"), None);
    // Nor, without smtp.unsubscribe_url, does marketing mail carry List-Unsubscribe.
    assert_eq!(header(&raw, "List-Unsubscribe"), None);
}

type Recorded = (String, ChannelKind, Purpose, String);

/// The opt-outs the handlers recorded.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl OptOut for Recorder {
    type Error = String;

    async fn opt_out(
        &self,
        member: &str,
        channel: ChannelKind,
        purpose: Purpose,
        source: &str,
        _now: Timestamp,
    ) -> Result<bool, String> {
        self.0.lock().unwrap().push((member.to_owned(), channel, purpose, source.to_owned()));
        Ok(true)
    }
}

#[tokio::test]
async fn the_one_click_link_in_the_header_unsubscribes_the_member() {
    // The unsubscribe endpoint, served on loopback with the handlers the daemon mounts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}/unsubscribe", listener.local_addr().unwrap().port());
    let peer = SmtpPeer::start(SmtpOptions::default()).await;
    let cfg = with_unsubscribe(config(&peer), &base);
    let recorder = Recorder::default();
    let state = UnsubscribeState {
        secret: list_unsubscribe::link_secret(&cfg).unwrap().expect("a secret is configured"),
        store: recorder.clone(),
        clock: Arc::new(ManualClock::new("2026-11-24T01:30:00Z".parse().unwrap())),
    };
    let server = tokio::spawn(async move { axum::serve(listener, router::<_, ()>(state)).await });
    let smtp = Smtp::new(&cfg).unwrap();

    sent(smtp.send(&outgoing("birthday:m-1:2027:email", Purpose::Marketing)).await);

    let raw = peer.received()[0].data.clone();
    assert_eq!(header(&raw, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let list = header(&raw, "List-Unsubscribe").expect("marketing mail has List-Unsubscribe");
    let url = list.strip_prefix('<').and_then(|rest| rest.split('>').next()).unwrap().to_owned();
    assert!(url.starts_with(&format!("{base}/")), "{url}");

    let http = reqwest::Client::new();
    // A scanner following the link changes nothing.
    let page = http.get(&url).header("accept-language", "zh-CN").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("确认退订"));
    assert!(recorder.0.lock().unwrap().is_empty());

    // A tampered link is refused, and records nothing.
    let response = http.post(tampered_link(&url)).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(recorder.0.lock().unwrap().is_empty());

    // The mailbox provider's one-click POST (RFC 8058) records the opt-out for this member.
    let response = http.post(&url).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let recorded = recorder.0.lock().unwrap().clone();
    assert_eq!(recorded, [("m-1".to_owned(), ChannelKind::Email, Purpose::Marketing, SOURCE_ONE_CLICK.to_owned())]);
    server.abort();
}

/// `url` with one character of its token changed.
fn tampered_link(url: &str) -> String {
    let (base, token) = url.rsplit_once('/').unwrap();
    let mut token: Vec<char> = token.chars().collect();
    token[8] = if token[8] == 'A' { 'B' } else { 'A' };
    format!("{base}/{}", token.into_iter().collect::<String>())
}
