//! Email over SMTP with lettre: a pool of connections bounded by a semaphore, TCP_NODELAY,
//! STARTTLS or implicit TLS, AUTH, multipart text + HTML, DKIM signing ([`dkim`]) and one-click
//! unsubscribe headers on marketing mail ([`list_unsubscribe`]).
//!
//! lettre's own pool is not used: it leaves Nagle on (about 40 ms stalled per message on
//! loopback) and its `max_size` caps idle, not concurrent, connections. Here a semaphore with
//! `pool_size` permits bounds the sends in flight, each holding at most one connection, so at most
//! `pool_size` connections are ever open. A connection goes back to the idle list only after a
//! send that succeeded; one that errored or timed out is dropped.
//!
//! Outcomes: a 5xx reply to MAIL, RCPT or DATA is permanent (the server refuses this message),
//! except a 5xx to RCPT saying the mailbox does not exist, which is a hard bounce: `Gone`, so the
//! address is suppressed (see [`bounce`]). A 4xx, an I/O, TLS or timeout error is
//! transient. Anything that goes wrong before the transaction (connecting, the greeting,
//! STARTTLS, AUTH) is about the relay or our configuration, never the message, so it is transient
//! even when the server answered 5xx: a wrong password must not fail every queued message for
//! good.

mod bounce;
pub mod dkim;
pub mod list_unsubscribe;
mod tls;

use std::sync::atomic::{AtomicBool, Ordering};

use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::channels::{Outgoing, Purpose, Rendered, SendOutcome};
use crate::config::{ConfigProblem, Secret, resolve_secret};
use bounce::address_gone;
use dkim::{DkimConfig, Signer};
use list_unsubscribe::ListUnsubscribe;
use tls::ImplicitTls;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain TCP (only for a relay on the same host).
    None,
    /// Plain TCP upgraded with STARTTLS (port 587); the upgrade is required.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// `[smtp]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Or `password_file`, or `TIDINGS_SMTP_PASSWORD`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// The From address, e.g. `"Club <club@example.com>"`.
    pub from: String,
    /// At most this many connections open (and messages in flight) at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Seconds one send may take, connecting included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra PEM root certificate to trust (a private relay's CA).
    #[serde(default)]
    pub root_certificate: Option<std::path::PathBuf>,
    /// The name given in EHLO; this host's name (or `localhost`) when unset.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// `[smtp.dkim]`: sign every message. Unset: messages go unsigned.
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
    /// The public address of the daemon's `/unsubscribe` route, e.g.
    /// `https://club.example.com/unsubscribe`: marketing email gets
    /// `List-Unsubscribe: <{unsubscribe_url}/{token}>` and one-click `List-Unsubscribe-Post`.
    #[serde(default)]
    pub unsubscribe_url: Option<String>,
    /// An address also offered in `List-Unsubscribe` (`mailto:`), e.g. `unsubscribe@club.example.com`.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// The key unsubscribe links are signed with (at least 32 characters), or `link_secret_file`.
    /// Changing it breaks every link already sent.
    #[serde(default)]
    pub link_secret: Option<Secret>,
    #[serde(default)]
    pub link_secret_file: Option<std::path::PathBuf>,
}

fn default_port() -> u16 {
    587
}
fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_pool_size() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    30
}

/// An idle connection older than this is closed rather than reused: relays drop idle sessions
/// after a few minutes, sometimes silently, and a dead socket would cost a send its whole timeout.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// An idle connection used more recently than this is reused without a NOOP first.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// The SMTP provider. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct Smtp {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    tls: SmtpTls,
    /// Built once; `None` for `tls = "none"`.
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    from: Mailbox,
    helo: ClientId,
    timeout: Duration,
    dkim: Option<Signer>,
    /// Marketing mail's unsubscribe headers; `None` without `smtp.unsubscribe_url`.
    list_unsubscribe: Option<ListUnsubscribe>,
    /// One permit per connection slot; closed by [`Smtp::close`].
    permits: Semaphore,
    pool_size: u32,
    idle: Mutex<Vec<IdleConnection>>,
}

struct IdleConnection {
    conn: Session,
    since: Instant,
}

/// One open SMTP session and whether its server takes commands pipelined (RFC 2920); lettre's
/// `ServerInfo` does not keep that keyword.
struct Session {
    conn: AsyncSmtpConnection,
    pipelining: bool,
}

/// A command group written in one go (PIPELINING): `MAIL`, `RCPT`… and `DATA`, each line ended.
struct Pipelined(String);

impl fmt::Display for Pipelined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Smtp")
            .field("host", &inner.host)
            .field("port", &inner.port)
            .field("tls", &inner.tls)
            .field("from", &inner.from.to_string())
            .field("authenticated", &inner.credentials.is_some())
            .field("dkim", &inner.dkim.is_some())
            .field("list_unsubscribe", &inner.list_unsubscribe.is_some())
            .finish_non_exhaustive()
    }
}

/// What the configuration resolves to, or everything wrong with it.
struct Settled {
    from: Mailbox,
    credentials: Option<Credentials>,
    root_certificate: Option<Certificate>,
    dkim: Option<Signer>,
    list_unsubscribe: Option<ListUnsubscribe>,
}

fn settle(cfg: &SmtpConfig) -> Result<Settled, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    if cfg.host.trim().is_empty() {
        problems.push(ConfigProblem::new("smtp.host", "must not be empty"));
    }
    let from = match cfg.from.parse::<Mailbox>() {
        Ok(from) => Some(from),
        Err(e) => {
            problems.push(ConfigProblem::new(
                "smtp.from",
                format!("{:?} is not a mailbox: {}", cfg.from, lower_first(&e.to_string())),
            ));
            None
        }
    };
    let credentials = match &cfg.username {
        Some(user) => match resolve_secret(cfg.password.as_ref(), cfg.password_file.as_deref(), "smtp.password") {
            Ok(password) => Some(Credentials::new(user.clone(), password.expose().to_owned())),
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
        None => {
            if cfg.password.is_some() || cfg.password_file.is_some() {
                problems.push(ConfigProblem::new("smtp.username", "a password is set but no username"));
            }
            None
        }
    };
    if cfg.pool_size == 0 {
        problems.push(ConfigProblem::new("smtp.pool_size", "must be at least 1"));
    }
    if cfg.timeout_secs == 0 {
        problems.push(ConfigProblem::new("smtp.timeout_secs", "must be at least 1"));
    }
    let root_certificate = match &cfg.root_certificate {
        Some(path) => match load_root_certificate(path) {
            Ok(cert) => Some(cert),
            Err(problem) => {
                problems.push(ConfigProblem::new("smtp.root_certificate", problem));
                None
            }
        },
        None => None,
    };
    let dkim = match cfg.dkim.as_ref().map(Signer::new) {
        Some(Ok(signer)) => Some(signer),
        Some(Err(more)) => {
            problems.extend(more);
            None
        }
        None => None,
    };
    let list_unsubscribe = ListUnsubscribe::new(cfg).unwrap_or_else(|more| {
        problems.extend(more);
        None
    });
    match from {
        Some(from) if problems.is_empty() => {
            Ok(Settled { from, credentials, root_certificate, dkim, list_unsubscribe })
        }
        _ => Err(problems),
    }
}

fn load_root_certificate(path: &std::path::Path) -> Result<Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // lettre accepts a file with no certificate in it; say so here instead of failing every
    // handshake later.
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => {}
        Ok(_) => return Err(format!("{} holds no PEM certificate", path.display())),
        Err(e) => return Err(format!("{} is not valid PEM: {e}", path.display())),
    }
    Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

impl Smtp {
    /// Builds the provider: resolves the password, parses `from`, loads the root certificate and
    /// prepares TLS. Connects to nothing.
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<Self> {
        let settled = settle(cfg).map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{}", problems.join("; "))
        })?;
        let pool_size = u32::try_from(cfg.pool_size).map_err(|_| anyhow::anyhow!("smtp.pool_size: too large"))?;
        let tls_parameters = match cfg.tls {
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Implicit => {
                let mut builder = TlsParameters::builder(cfg.host.clone());
                if let Some(cert) = settled.root_certificate {
                    builder = builder.add_root_certificate(cert);
                }
                Some(builder.build().map_err(|e| anyhow::anyhow!("smtp: cannot set up tls: {e}"))?)
            }
        };
        Ok(Smtp {
            inner: Arc::new(Inner {
                host: cfg.host.clone(),
                port: cfg.port,
                tls: cfg.tls,
                tls_parameters,
                credentials: settled.credentials,
                from: settled.from,
                helo: helo_name(cfg.helo_name.as_deref()),
                timeout: Duration::from_secs(cfg.timeout_secs),
                dkim: settled.dkim,
                list_unsubscribe: settled.list_unsubscribe,
                permits: Semaphore::new(pool_size as usize),
                pool_size,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Start-up validation without connecting.
    pub fn check(cfg: &SmtpConfig) -> Vec<ConfigProblem> {
        settle(cfg).err().unwrap_or_default()
    }

    /// Sends one email. Waiting for a free connection slot is not counted in the timeout; the
    /// send itself (connecting, TLS, AUTH, the transaction) is.
    pub async fn send(&self, msg: &Outgoing) -> SendOutcome {
        let (message_id, email) = match self.compose(msg) {
            Ok(composed) => composed,
            Err(error) => return SendOutcome::Permanent { error },
        };
        let raw = email.formatted();
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return transient("smtp provider is closed".to_owned());
        };
        // Set once the message body is on its way: from then on a lost answer does not mean the
        // server did not take it.
        let handed_over = AtomicBool::new(false);
        let outcome =
            tokio::time::timeout(self.inner.timeout, self.deliver(email.envelope(), &raw, &handed_over)).await;
        match outcome {
            Ok(Ok(())) => SendOutcome::Sent { provider_id: message_id },
            Ok(Err(Failure::Session(error))) => transient(error),
            Ok(Err(Failure::Refused(error))) => SendOutcome::Permanent { error },
            Ok(Err(Failure::Recipient(e))) => {
                let error = format!("smtp server refused the recipient: {}", describe(&e));
                match e.status() {
                    Some(code) if e.is_permanent() && address_gone(code.into(), &reply_text(&e)) => {
                        SendOutcome::Gone { error }
                    }
                    Some(_) if e.is_permanent() => SendOutcome::Permanent { error },
                    _ => transient(error),
                }
            }
            Ok(Err(Failure::Transaction(e))) if e.status().is_none() && handed_over.load(Ordering::SeqCst) => {
                SendOutcome::Unknown {
                    error: format!("smtp connection lost after the message was sent: {}", describe(&e)),
                }
            }
            Ok(Err(Failure::Transaction(e))) => {
                let error = format!("smtp transaction failed: {}", describe(&e));
                if e.is_permanent() { SendOutcome::Permanent { error } } else { transient(error) }
            }
            Err(_) if handed_over.load(Ordering::SeqCst) => SendOutcome::Unknown {
                error: format!("smtp server did not confirm the message within {}s", self.inner.timeout.as_secs()),
            },
            Err(_) => transient(format!("smtp send timed out after {}s", self.inner.timeout.as_secs())),
        }
    }

    /// Shuts the provider down: waits for the sends in flight, refuses new ones (they come back
    /// transient) and says QUIT on every pooled connection.
    pub async fn close(&self) {
        if let Ok(all) = self.inner.permits.acquire_many(self.inner.pool_size).await {
            self.inner.permits.close();
            drop(all);
        }
        let idle = std::mem::take(&mut *self.idle());
        let timeout = self.inner.timeout;
        futures::future::join_all(idle.into_iter().map(|mut idle| async move {
            let _ = tokio::time::timeout(timeout, idle.conn.conn.quit()).await;
        }))
        .await;
    }

    /// The message and its Message-ID, or why it can never be sent.
    fn compose(&self, msg: &Outgoing) -> Result<(String, Message), String> {
        let Rendered::Email { subject, html, text } = &msg.rendered else {
            return Err(format!("smtp cannot send a {} message", msg.rendered.channel()));
        };
        let address = msg
            .to
            .trim()
            .parse::<Address>()
            .map_err(|e| format!("invalid email address: {}", lower_first(&e.to_string())))?;
        let name = msg.member_name.trim();
        let to = Mailbox::new((!name.is_empty()).then(|| name.to_owned()), address);
        let message_id = message_id(&msg.dedupe_key, self.inner.from.email.domain());
        let mut builder = Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(subject.as_str())
            .message_id(Some(message_id.clone()));
        if msg.purpose == Purpose::Marketing
            && let Some(list) = &self.inner.list_unsubscribe
        {
            for header in list.headers(&msg.member) {
                builder = builder.raw_header(header);
            }
        }
        let mut email = builder
            .multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        if let Some(dkim) = &self.inner.dkim {
            dkim.sign(&mut email);
        }
        Ok((message_id, email))
    }

    /// One transaction on a pooled or new connection. The connection goes back to the pool only
    /// on success; on error (or when the caller's timeout drops this future) it is dropped. A
    /// pooled connection that turns out to be gone before anything was handed over (the relay
    /// closed it while idle) costs no failure: the transaction is tried once more on a new one.
    async fn deliver(
        &self,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
        handed_over: &AtomicBool,
    ) -> Result<(), Failure> {
        let (mut session, pooled) = match self.reuse().await {
            Some(session) => (session, true),
            None => (self.connect().await.map_err(Failure::Session)?, false),
        };
        match transaction(&mut session, envelope, raw, handed_over).await {
            Ok(()) => {}
            Err(Failure::Transaction(e) | Failure::Recipient(e))
                if pooled && !handed_over.load(Ordering::SeqCst) && stale(&e) =>
            {
                tracing::debug!(error = %describe(&e), "pooled smtp connection was gone; reconnecting");
                session = self.connect().await.map_err(Failure::Session)?;
                transaction(&mut session, envelope, raw, handed_over).await?;
            }
            Err(failure) => return Err(failure),
        }
        self.idle().push(IdleConnection { conn: session, since: Instant::now() });
        Ok(())
    }

    /// The most recently used idle connection. One idle for a while is asked NOOP first; one
    /// used moments ago is taken as it is (a dead one is found out before the message is handed
    /// over, and replaced: see [`Smtp::deliver`]), so a busy connection costs no extra round trip
    /// per message.
    async fn reuse(&self) -> Option<Session> {
        loop {
            let IdleConnection { mut conn, since } = self.idle().pop()?;
            let idle = since.elapsed();
            if idle < CHECK_AFTER || (idle < IDLE_LIMIT && conn.conn.test_connected().await) {
                return Some(conn);
            }
        }
    }

    async fn connect(&self) -> Result<Session, String> {
        let inner = &self.inner;
        let server = format!("{}:{}", inner.host, inner.port);
        let tcp = TcpStream::connect((inner.host.as_str(), inner.port))
            .await
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let stream: Box<dyn AsyncTokioStream> = match (&inner.tls, &inner.tls_parameters) {
            (SmtpTls::Implicit, Some(parameters)) => Box::new(ImplicitTls::handshake(tcp, parameters.clone()).await?),
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &inner.helo)
            .await
            .map_err(|e| format!("smtp session with {server} failed: {}", describe(&e)))?;
        if let (SmtpTls::Starttls, Some(parameters)) = (&inner.tls, &inner.tls_parameters) {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err("smtp server does not offer STARTTLS; refusing to send in plaintext".to_owned());
            }
            // After a failed handshake lettre's stream is gone (touching it again panics in debug
            // builds), so the connection is dropped without a QUIT.
            conn.starttls(parameters.clone(), &inner.helo)
                .await
                .map_err(|e| format!("smtp starttls failed: {}", describe(&e)))?;
        }
        // lettre parses the EHLO reply into `ServerInfo`, which has no PIPELINING: ask again
        // (once per connection, before AUTH: a later EHLO resets the session, and some servers
        // forget the authentication with it) and read the keywords ourselves.
        let ehlo = conn
            .command(lettre::transport::smtp::commands::Ehlo::new(inner.helo.clone()))
            .await
            .map_err(|e| format!("smtp session with {server} failed: {}", describe(&e)))?;
        let pipelining = ehlo.message().any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let Some(credentials) = &inner.credentials
            && let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await
        {
            conn.abort().await;
            return Err(format!("smtp authentication failed: {}", describe(&e)));
        }
        tracing::debug!(%server, encrypted = inner.tls != SmtpTls::None, pipelining, "smtp connection opened");
        Ok(Session { conn, pipelining })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        // The list is valid whatever a panicking holder was doing: it only pushes and pops.
        self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// MAIL, RCPT and DATA as lettre's `send` does them (written as one group when the server
/// offers PIPELINING, the replies then read in order), then the body on its own, so that a
/// failure before the body (nothing delivered) is told apart from one after it.
async fn transaction(
    session: &mut Session,
    envelope: &lettre::address::Envelope,
    raw: &[u8],
    handed_over: &AtomicBool,
) -> Result<(), Failure> {
    let conn = &mut session.conn;
    let mut options = Vec::new();
    let non_ascii = envelope.from().into_iter().chain(envelope.to()).any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Refused("the address is not ASCII and the server lacks SMTPUTF8".into()));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failure::Refused("the message is not ASCII and the server lacks 8BITMIME".into()));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), options);
    if session.pipelining {
        // Any failure drops the connection, so replies left unread after one do not matter.
        let mut group = mail.to_string();
        for to in envelope.to() {
            group.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        group.push_str(&Data.to_string());
        conn.command(Pipelined(group)).await.map_err(Failure::Transaction)?;
        for _ in envelope.to() {
            conn.read_response().await.map_err(Failure::Recipient)?;
        }
        conn.read_response().await.map_err(Failure::Transaction)?;
    } else {
        conn.command(mail).await.map_err(Failure::Transaction)?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await.map_err(Failure::Recipient)?;
        }
        conn.command(Data).await.map_err(Failure::Transaction)?;
    }
    handed_over.store(true, Ordering::SeqCst);
    let response = conn.message(raw).await.map_err(Failure::Transaction)?;
    tracing::debug!(response = %response.message().collect::<Vec<_>>().join(" "), "smtp accepted");
    Ok(())
}

/// Whether an error on a pooled connection means the connection itself had gone (closed while
/// idle, or the server's 421 "closing"), not that the server refused the message.
fn stale(e: &lettre::transport::smtp::Error) -> bool {
    match e.status() {
        None => true,
        Some(code) => u16::from(code) == 421,
    }
}

/// Why a send did not happen.
enum Failure {
    /// Connecting, the greeting, STARTTLS or AUTH failed: the relay's or our fault, never the
    /// message's.
    Session(String),
    /// The server refused this transaction, or the connection failed during it.
    Transaction(lettre::transport::smtp::Error),
    /// The server refused the recipient (RCPT), or the connection failed then.
    Recipient(lettre::transport::smtp::Error),
    /// This message cannot be put to this server as it is: retrying changes nothing.
    Refused(String),
}

fn transient(error: String) -> SendOutcome {
    SendOutcome::Transient { error, retry_after: None }
}

/// A lettre error as one lower-case line: the server's reply when there is one, else the root
/// cause (lettre's own wrapping repeats itself: "connection error: Connection error: …").
fn describe(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
        return format!("server replied {code} {text}").trim_end().to_owned();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    lower_first(&cause.to_string())
}

/// The text of the server's reply (after the code) in a lettre error: lettre keeps it as the
/// error's source.
fn reply_text(e: &lettre::transport::smtp::Error) -> String {
    std::error::Error::source(e).map(ToString::to_string).unwrap_or_default()
}

/// lettre's and some other crates' messages start with a capital; ours do not.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `<hex(sha256(dedupe_key))[..32]@domain>`: every attempt at one message carries the same id,
/// so a receiver can drop a duplicate delivered after a lost reply.
fn message_id(dedupe_key: &str, domain: &str) -> String {
    format!("<{}@{domain}>", super::idempotency_key(dedupe_key))
}

fn helo_name(configured: Option<&str>) -> ClientId {
    match configured.map(str::trim) {
        Some(name) if !name.is_empty() => ClientId::Domain(name.to_owned()),
        // lettre's default falls back to an address literal; "localhost" reads better in logs.
        _ => match ClientId::default() {
            host @ ClientId::Domain(_) => host,
            _ => ClientId::Domain("localhost".to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> SmtpConfig {
        let text = format!("host = \"smtp.example.com\"\nfrom = \"Club <club@example.com>\"\n{extra}");
        toml::from_str(&text).expect("test config parses")
    }

    /// The keys `Smtp::check` names for a config with `extra` lines added.
    fn check(extra: &str, expected: &[&str]) {
        let keys: Vec<String> = Smtp::check(&config(extra)).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, expected, "for {extra:?}");
    }

    #[test]
    fn check_names_the_key() {
        check("", &[]);
        check("username = \"club\"\npassword = \"s3cret\"", &[]);
        check("username = \"club\"", &["smtp.password"]);
        check("username = \"club\"\npassword_file = \"/nonexistent/tidings\"", &["smtp.password_file"]);
        check("password = \"s3cret\"", &["smtp.username"]);
        check("pool_size = 0", &["smtp.pool_size"]);
        check("timeout_secs = 0", &["smtp.timeout_secs"]);
        check("root_certificate = \"/nonexistent/ca.pem\"", &["smtp.root_certificate"]);
        check("unsubscribe_url = \"https://club.example.com/unsubscribe\"", &["smtp.link_secret"]);
        check("[dkim]\nselector = \"s1\"\ndomain = \"example.com\"", &["smtp.dkim.private_key"]);
    }

    #[test]
    fn check_rejects_an_empty_host_a_bad_from_and_an_empty_pem() {
        let mut cfg = config("");
        cfg.host = " ".into();
        cfg.from = "not an address".into();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "no certificate here\n").unwrap();
        cfg.root_certificate = Some(pem);
        let keys: Vec<String> = Smtp::check(&cfg).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["smtp.host", "smtp.from", "smtp.root_certificate"]);
    }

    #[test]
    fn new_names_the_missing_password_and_never_prints_one() {
        let err = Smtp::new(&config("username = \"club\"")).unwrap_err().to_string();
        assert!(err.starts_with("smtp.password: "), "{err}");

        crate::install_crypto_provider();
        let smtp = Smtp::new(&config("username = \"club\"\npassword = \"s3cret\"")).unwrap();
        assert!(!format!("{smtp:?}").contains("s3cret"));
    }

    #[test]
    fn smtp_is_shareable() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Smtp>();
    }

    #[test]
    fn message_id_is_derived_from_the_dedupe_key() {
        let a = message_id("birthday:m1:2027:email", "example.com");
        assert_eq!(a, message_id("birthday:m1:2027:email", "example.com"));
        assert_ne!(a, message_id("birthday:m2:2027:email", "example.com"));
        assert_eq!(a.len(), "<@example.com>".len() + 32);
        assert!(a.starts_with('<') && a.ends_with("@example.com>"));
    }

    #[test]
    fn helo_name_defaults_to_a_domain() {
        assert_eq!(helo_name(Some(" mx.example.com ")).to_string(), "mx.example.com");
        assert!(matches!(helo_name(None), ClientId::Domain(name) if !name.is_empty()));
    }
}
