//! A real SMTP server on loopback for the email tests. It speaks the protocol and checks it
//! (command order, STARTTLS before MAIL when offered, AUTH before MAIL when configured, dot
//! unstuffing), records what it accepted and how many sessions it saw, and fails on request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How the peer offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerTls {
    /// No TLS at all; EHLO does not offer STARTTLS.
    #[default]
    None,
    /// STARTTLS offered and required before MAIL.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub tls: PeerTls,
    /// `(user, password)`: AUTH is offered and required before MAIL.
    pub auth: Option<(String, String)>,
    /// The mechanisms EHLO advertises when `auth` is set.
    pub auth_mechanisms: Vec<&'static str>,
    /// Accept connections but never say a word.
    pub silent: bool,
    /// Take the message after DATA, then never answer the final dot.
    pub hang_after_data: bool,
    /// Take the message after DATA, then answer the final dot only after `release_data()`.
    pub hold_data: bool,
    /// EHLO offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Close a connection, without a word, after answering this many messages on it (a relay
    /// dropping a session the client still holds).
    pub close_after: Option<usize>,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            tls: PeerTls::None,
            auth: None,
            auth_mechanisms: vec!["PLAIN", "LOGIN"],
            silent: false,
            hang_after_data: false,
            hold_data: false,
            pipelining: false,
            close_after: None,
        }
    }
}

/// One message the peer accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection (numbered from 1 in accept order) carried it.
    pub connection: usize,
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line ends, without the final `.` line.
    pub data: Vec<u8>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The AUTH mechanism the session authenticated with.
    pub auth: Option<String>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    connections: usize,
    active: usize,
    max_active: usize,
    quits: usize,
    rcpt_replies: HashMap<String, String>,
    fail_data: usize,
    /// MAIL commands that arrived with the client's next commands already behind them.
    pipelined: usize,
}

struct Shared {
    options: SmtpOptions,
    acceptor: TlsAcceptor,
    state: Mutex<State>,
    /// Messages held unanswered so far (`hold_data`).
    held: watch::Sender<usize>,
    /// Set by `release_data()`.
    released: watch::Sender<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

pub struct SmtpPeer {
    addr: SocketAddr,
    cert_pem: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SmtpPeer {
    pub async fn start(options: SmtpOptions) -> SmtpPeer {
        tidings::install_crypto_provider();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_pem = certified.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        let shared = Arc::new(Shared {
            options,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            state: Mutex::new(State::default()),
            held: watch::Sender::new(0),
            released: watch::Sender::new(false),
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let id = {
                        let mut state = shared.state();
                        state.connections += 1;
                        state.active += 1;
                        state.max_active = state.max_active.max(state.active);
                        state.connections
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let _active = Active(shared.clone());
                        let _ = serve(tcp, id, &shared).await;
                    });
                }
            }
        });
        SmtpPeer { addr, cert_pem, shared, accept }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The self-signed certificate (for `localhost`) to trust as a root.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.state().received.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// The most sessions that were open at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.state().max_active
    }

    /// How many transactions the client sent pipelined (MAIL with more behind it).
    pub fn pipelined(&self) -> usize {
        self.shared.state().pipelined
    }

    /// Sessions that ended with QUIT.
    pub fn quits(&self) -> usize {
        self.shared.state().quits
    }

    /// Answers `RCPT TO:<address>` with `reply` (e.g. `550 5.1.1 no such user`).
    pub fn reply_to_rcpt(&self, address: &str, reply: &str) {
        self.shared.state().rcpt_replies.insert(address.to_owned(), reply.to_owned());
    }

    /// Waits until `n` messages are held unanswered (`hold_data`).
    pub async fn wait_held(&self, n: usize) {
        self.shared.held.subscribe().wait_for(|held| *held >= n).await.unwrap();
    }

    /// Answers the held messages, and every later one at once.
    pub fn release_data(&self) {
        self.shared.released.send_replace(true);
    }

    /// Answers the end of the next `n` DATA with `451 4.3.0 try later`.
    pub fn fail_next_data(&self, n: usize) {
        self.shared.state().fail_data = n;
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Counts a session as open while it lives.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.state().active -= 1;
    }
}

async fn serve(tcp: TcpStream, id: usize, shared: &Shared) -> std::io::Result<()> {
    if shared.options.silent {
        let mut tcp = tcp;
        let mut sink = [0u8; 1024];
        while tcp.read(&mut sink).await? > 0 {}
        return Ok(());
    }
    let mut session = Session::new(id, shared);
    match shared.options.tls {
        PeerTls::Implicit => {
            let tls = shared.acceptor.accept(tcp).await?;
            session.tls = true;
            session.run(tls, true).await?;
        }
        PeerTls::None | PeerTls::Starttls => {
            if let End::StartTls(tcp) = session.run(tcp, true).await? {
                let tls = shared.acceptor.accept(tcp).await?;
                // RFC 3207: the server forgets everything it learnt before the handshake.
                session = Session::new(id, shared);
                session.tls = true;
                session.run(tls, false).await?;
            }
        }
    }
    Ok(())
}

enum End<S> {
    Closed,
    StartTls(S),
}

struct Session<'a> {
    id: usize,
    shared: &'a Shared,
    tls: bool,
    greeted: bool,
    auth: Option<String>,
    mail: Option<String>,
    rcpts: Vec<String>,
    /// Messages answered on this connection.
    answered: usize,
}

impl<'a> Session<'a> {
    fn new(id: usize, shared: &'a Shared) -> Self {
        Session { id, shared, tls: false, greeted: false, auth: None, mail: None, rcpts: Vec::new(), answered: 0 }
    }

    fn offers_starttls(&self) -> bool {
        self.shared.options.tls == PeerTls::Starttls && !self.tls
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: S, greet: bool) -> std::io::Result<End<S>> {
        let mut io = BufReader::new(stream);
        if greet {
            reply(&mut io, "220 localhost ESMTP tidings test peer").await?;
        }
        loop {
            let Some(line) = read_line(&mut io).await? else {
                return Ok(End::Closed);
            };
            let (verb, arg) = match line.split_once(' ') {
                Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim().to_owned()),
                None => (line.to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.greeted = true;
                    self.reset();
                    let mut lines = vec!["localhost".to_owned(), "SIZE 10485760".to_owned(), "8BITMIME".to_owned()];
                    if self.offers_starttls() {
                        lines.push("STARTTLS".to_owned());
                    }
                    if self.shared.options.auth.is_some() {
                        lines.push(format!("AUTH {}", self.shared.options.auth_mechanisms.join(" ")));
                    }
                    if self.shared.options.pipelining {
                        lines.push("PIPELINING".to_owned());
                    }
                    let last = lines.len() - 1;
                    let text: Vec<String> = lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                        .collect();
                    reply(&mut io, &text.join("\r\n")).await?;
                }
                "HELO" => {
                    self.greeted = true;
                    self.reset();
                    reply(&mut io, "250 localhost").await?;
                }
                "STARTTLS" if !self.offers_starttls() => reply(&mut io, "502 5.5.1 STARTTLS not available").await?,
                "STARTTLS" => {
                    reply(&mut io, "220 2.0.0 ready to start TLS").await?;
                    assert!(io.buffer().is_empty(), "client pipelined past STARTTLS");
                    return Ok(End::StartTls(io.into_inner()));
                }
                "AUTH" => self.auth(&mut io, &arg).await?,
                "MAIL" => {
                    let answer = if !self.greeted {
                        "503 5.5.1 say EHLO first"
                    } else if self.offers_starttls() {
                        "530 5.7.0 must issue a STARTTLS command first"
                    } else if self.shared.options.auth.is_some() && self.auth.is_none() {
                        "530 5.7.0 authentication required"
                    } else if self.mail.is_some() {
                        "503 5.5.1 nested MAIL command"
                    } else if let Some(from) = path(&arg, "FROM:") {
                        self.mail = Some(from);
                        if !io.buffer().is_empty() {
                            self.shared.state().pipelined += 1;
                        }
                        "250 2.1.0 ok"
                    } else {
                        "501 5.5.4 syntax: MAIL FROM:<address>"
                    };
                    reply(&mut io, answer).await?;
                }
                "RCPT" => {
                    let answer = if self.mail.is_none() {
                        "503 5.5.1 need MAIL before RCPT".to_owned()
                    } else if let Some(to) = path(&arg, "TO:") {
                        let forced = self.shared.state().rcpt_replies.get(&to).cloned();
                        match forced {
                            Some(forced) if !forced.starts_with('2') => forced,
                            _ => {
                                self.rcpts.push(to);
                                "250 2.1.5 ok".to_owned()
                            }
                        }
                    } else {
                        "501 5.5.4 syntax: RCPT TO:<address>".to_owned()
                    };
                    reply(&mut io, &answer).await?;
                }
                "DATA" if self.rcpts.is_empty() => reply(&mut io, "503 5.5.1 need RCPT before DATA").await?,
                "DATA" => {
                    reply(&mut io, "354 end data with <CR><LF>.<CR><LF>").await?;
                    let Some(data) = read_data(&mut io).await? else {
                        return Ok(End::Closed);
                    };
                    let answer = self.accept(data);
                    self.reset();
                    if self.shared.options.hang_after_data {
                        std::future::pending::<()>().await;
                    }
                    if self.shared.options.hold_data {
                        let mut released = self.shared.released.subscribe();
                        self.shared.held.send_modify(|held| *held += 1);
                        released.wait_for(|released| *released).await.unwrap();
                    }
                    reply(&mut io, &answer).await?;
                    self.answered += 1;
                    if self.shared.options.close_after.is_some_and(|n| self.answered >= n) {
                        return Ok(End::Closed);
                    }
                }
                "RSET" => {
                    self.reset();
                    reply(&mut io, "250 2.0.0 ok").await?;
                }
                "NOOP" => reply(&mut io, "250 2.0.0 ok").await?,
                "QUIT" => {
                    self.shared.state().quits += 1;
                    reply(&mut io, "221 2.0.0 bye").await?;
                    return Ok(End::Closed);
                }
                _ => reply(&mut io, "500 5.5.2 command unrecognized").await?,
            }
        }
    }

    fn reset(&mut self) {
        self.mail = None;
        self.rcpts.clear();
    }

    /// Records the message, or fails it when told to; returns the reply.
    fn accept(&mut self, data: Vec<u8>) -> String {
        let mut state = self.shared.state();
        if state.fail_data > 0 {
            state.fail_data -= 1;
            return "451 4.3.0 try later".to_owned();
        }
        state.received.push(Received {
            connection: self.id,
            from: self.mail.clone().unwrap_or_default(),
            to: self.rcpts.clone(),
            data,
            tls: self.tls,
            auth: self.auth.clone(),
        });
        format!("250 2.0.0 ok: queued as {}", state.received.len())
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        arg: &str,
    ) -> std::io::Result<()> {
        let Some((user, password)) = self.shared.options.auth.clone() else {
            return reply(io, "502 5.5.1 AUTH not available").await;
        };
        if !self.greeted || self.auth.is_some() || self.mail.is_some() {
            return reply(io, "503 5.5.1 bad sequence of commands").await;
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, ir)) => (m.to_ascii_uppercase(), Some(ir.trim().to_owned())),
            None => (arg.to_ascii_uppercase(), None),
        };
        if !self.shared.options.auth_mechanisms.contains(&mechanism.as_str()) {
            return reply(io, "504 5.5.4 mechanism not supported").await;
        }
        let given = match mechanism.as_str() {
            "PLAIN" => {
                let Some(response) = challenge(io, initial, "").await? else {
                    return Ok(());
                };
                let mut parts = response.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                let (_authzid, authcid, passwd) = (parts.next(), parts.next(), parts.next());
                authcid.zip(passwd)
            }
            "LOGIN" => {
                let Some(name) = challenge(io, initial, "VXNlcm5hbWU6").await? else {
                    return Ok(());
                };
                let Some(passwd) = challenge(io, None, "UGFzc3dvcmQ6").await? else {
                    return Ok(());
                };
                Some((String::from_utf8_lossy(&name).into_owned(), String::from_utf8_lossy(&passwd).into_owned()))
            }
            _ => unreachable!("only PLAIN and LOGIN are implemented"),
        };
        if given == Some((user, password)) {
            self.auth = Some(mechanism);
            reply(io, "235 2.7.0 authentication successful").await
        } else {
            reply(io, "535 5.7.8 authentication credentials invalid").await
        }
    }
}

/// The client's base64 answer: the initial response if given, else the answer to `334 prompt`.
/// `None` (after replying) when the client cancels or sends garbage.
async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    initial: Option<String>,
    prompt: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    let answer = match initial {
        Some(answer) => answer,
        None => {
            reply(io, &format!("334 {prompt}")).await?;
            read_line(io).await?.unwrap_or_default()
        }
    };
    if answer == "*" {
        reply(io, "501 5.0.0 authentication cancelled").await?;
        return Ok(None);
    }
    match BASE64.decode(answer.trim()) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(_) => {
            reply(io, "501 5.5.2 cannot decode response").await?;
            Ok(None)
        }
    }
}

/// `FROM:<a@b> SIZE=…` → `a@b`.
fn path(arg: &str, prefix: &str) -> Option<String> {
    if !arg.get(..prefix.len())?.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start().strip_prefix('<')?;
    Some(rest[..rest.find('>')?].to_owned())
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) -> std::io::Result<()> {
    io.write_all(format!("{text}\r\n").as_bytes()).await?;
    io.flush().await
}

/// One command line without its CRLF; `None` at end of stream.
async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if io.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    assert!(line.ends_with(b"\r\n"), "command line not ended by CRLF: {:?}", String::from_utf8_lossy(&line));
    line.truncate(line.len() - 2);
    Ok(Some(String::from_utf8(line).expect("command lines are UTF-8")))
}

/// The DATA section up to the lone `.`, dot-unstuffed; `None` if the stream ends first.
async fn read_data<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        assert!(line.ends_with(b"\r\n"), "bare LF in DATA: {:?}", String::from_utf8_lossy(&line));
        if line == b".\r\n" {
            return Ok(Some(data));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
}
