//! W3, the SMTP burst: `cargo bench --bench w3_smtp -- --messages 100000 --connections 1,8,16,32`.
//!
//! The sink is Postfix's `smtp-sink` (installed with the `postfix` package when missing, else the
//! run fails), one fresh instance per variant on a free loopback port, counting the messages it
//! took (`-c`). For each connection count three variants, each its own `Run`:
//!
//! - the daemon path: `App` on a temporary SQLite file, a holiday rule on email for every member
//!   enqueued by a tick, then `dispatch_all` until every message is final; the sink must have
//!   taken exactly that many and the database must say sent;
//! - the provider alone: `Smtp::send` with the same rendered message (the rule's preview), as
//!   many in flight as connections, no queue: the SMTP cost without the queue's;
//! - the floor: a plain client on tokio `TcpStream`s doing EHLO once per connection, then per
//!   message MAIL, RCPT and DATA as one pipelined group and the body, with the same bytes.
//!
//! Under `cargo test --benches` the small version runs (500 messages at 1 and 4 connections),
//! with the sink also dumping every message to check it is a real MIME email to its recipient.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Args, Floor, Percentiles, Run};
use jiff::Timestamp;
use mail_parser::MimeHeaders;
use tidings::app::App;
use tidings::channels::email::{Smtp, SmtpConfig, SmtpTls};
use tidings::channels::{Outgoing, Purpose, Rendered, SendOutcome};
use tidings::clock::ManualClock;
use tidings::config::Config;
use tidings::members::MemberInput;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const SINK: &str = "/usr/sbin/smtp-sink";
const FROM: &str = "Jade Club <club@example.com>";

fn main() {
    let args = Args::parse();
    let messages = args.count("messages", 100_000, 500);
    let default_connections = if args.benching { "1,8,16,32" } else { "1,4" };
    let connections: Vec<usize> = args
        .string("connections", default_connections)
        .split(',')
        .map(|c| c.trim().parse().unwrap_or_else(|_| panic!("--connections: {c:?} is not a number")))
        .collect();
    let deadline = args.deadline(3600);
    ensure_sink();
    tidings::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let started = Instant::now();
        for &n in &connections {
            if started.elapsed() > deadline {
                println!("W3: --seconds reached; {n} connections and after not run");
                break;
            }
            let floor = floor_run(messages, n).await;
            floor.emit();
            let floor = floor.floor.clone();
            provider_run(messages, n, floor.clone()).await.emit();
            daemon_run(messages, n, floor, !args.benching).await.emit();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The sink

/// Postfix's smtp-sink, or a loud failure.
fn ensure_sink() {
    if Path::new(SINK).exists() {
        return;
    }
    println!("W3: {SINK} is missing; installing postfix");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "postfix"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && Path::new(SINK).exists(), "W3 needs {SINK} (Debian package postfix); could not install it");
}

struct Sink {
    child: Child,
    port: u16,
    dump: Option<tempfile::TempDir>,
    /// Its counters, read as they come so that the pipe never fills.
    out: Option<std::thread::JoinHandle<String>>,
}

impl Sink {
    /// A sink on a free loopback port; with `dump`, every message is also written to a file.
    fn start(dump: bool) -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dump = dump.then(|| tempfile::tempdir().unwrap());
        let mut cmd = Command::new(SINK);
        // -c: counters on stdout; -a: no AUTH offered; -4: IPv4; -m: simultaneous connections.
        cmd.args(["-c", "-a", "-4", "-m", "512"]);
        // SAFETY: geteuid only reads the process's user id.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "nobody"]);
        }
        if let Some(dir) = &dump {
            // The dump directory must be writable by the user the sink runs as.
            let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
            cmd.arg("-d").arg(dir.path().join("%H%M%S."));
        }
        cmd.arg(format!("127.0.0.1:{port}")).arg("1024");
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("smtp-sink starts");
        let mut stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let sink = Sink { child, port, dump, out: Some(out) };
        let until = Instant::now() + Duration::from_secs(10);
        // Ready when it answers the greeting (the probe counts as a session, not a message).
        loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut line = String::new();
                let _ = BufReader::new(&s).read_line(&mut line);
                if line.starts_with("220") {
                    let _ = (&s).write_all_sync(b"QUIT\r\n");
                    break;
                }
            }
            assert!(Instant::now() < until, "smtp-sink did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the sink and returns how many messages it took (its last `mesg=` counter).
    fn stop(mut self) -> (u64, Option<tempfile::TempDir>) {
        // SAFETY: signals only the child this process started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let out = self.out.take().unwrap().join().unwrap();
        let taken = out
            .rsplit('\r')
            .find_map(|record| record.split_whitespace().find_map(|f| f.strip_prefix("mesg=")))
            .map_or(0, |n| n.parse().expect("smtp-sink counter"));
        (taken, self.dump.take())
    }
}

trait WriteAllSync {
    fn write_all_sync(self, bytes: &[u8]) -> std::io::Result<()>;
}

impl WriteAllSync for &std::net::TcpStream {
    fn write_all_sync(mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self, bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// What is sent

fn address(i: usize) -> String {
    format!("m{i}@example.com")
}

/// The rendered email every variant sends: the holiday rule's message as the daemon renders it.
async fn rendered() -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let (app, _clock) = app(dir.path(), 1, 1).await;
    let preview = app.preview("spring", "m0").await.unwrap();
    preview.messages.into_iter().find(|m| m.to.is_some()).expect("an email message").rendered
}

fn outgoing(i: usize, rendered: &Rendered) -> Outgoing {
    Outgoing {
        id: i as i64,
        dedupe_key: format!("spring:{i}:holiday:2026:email"),
        rule_id: "spring".into(),
        member: format!("m{i}"),
        member_name: format!("Member {i}"),
        to: address(i),
        device: None,
        purpose: Purpose::Marketing,
        rendered: rendered.clone(),
    }
}

fn smtp_config(port: u16, pool: usize) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        password_file: None,
        from: FROM.into(),
        pool_size: pool,
        timeout_secs: 30,
        root_certificate: None,
        helo_name: Some("tidings.bench".into()),
        dkim: None,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
        link_secret: None,
        link_secret_file: None,
    }
}

fn target(n: usize, per_second: f64) -> (String, Option<bool>) {
    match n {
        1 => ("≥ 2,000/s on one connection".into(), Some(per_second >= 2_000.0)),
        16 => ("≥ 10,000/s on 16 connections".into(), Some(per_second >= 10_000.0)),
        _ => (String::new(), None),
    }
}

// ---------------------------------------------------------------------------------------------
// The floor: a plain pipelining client

async fn floor_run(messages: usize, n: usize) -> Run {
    let rendered = rendered().await;
    // The same bytes the provider sends for one member (lettre's builder, as the provider
    // builds it), addressed per message only in the envelope.
    let Rendered::Email { subject, html, text } = &rendered else { unreachable!() };
    let body = lettre::Message::builder()
        .from(FROM.parse().unwrap())
        .to(format!("Member 0 <{}>", address(0)).parse().unwrap())
        .subject(subject.as_str())
        .multipart(lettre::message::MultiPart::alternative_plain_html(text.clone(), html.clone()))
        .unwrap()
        .formatted();
    let mut data = Vec::with_capacity(body.len() + 8);
    // Dot-stuffing as any client must; the body is built once.
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            data.push(b'\n');
        }
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    let data = Arc::new(data);

    let sink = Sink::start(false);
    let port = sink.port;
    common::reset_peak_rss();
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = common::self_cpu();
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (next, data) = (next.clone(), data.clone());
            tokio::spawn(async move { floor_connection(port, messages, &next, &data).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(messages);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let seconds = t.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu;
    let peak = common::peak_rss(std::process::id());
    let sink_cpu = common::process_cpu(sink.pid());
    let (taken, _) = sink.stop();
    assert_eq!(taken, messages as u64, "the sink took every message of the floor exactly once");
    let cpu_us = cpu.as_secs_f64() * 1e6 / messages as f64;
    Run {
        workload: "W3".into(),
        variant: format!("floor: plain pipelining client, {n} connections"),
        items: messages as u64,
        unit: "emails".into(),
        seconds,
        cpu_us_per_item: cpu_us,
        peak_rss_mib: common::mib(peak),
        latency: Some(Percentiles::of(&mut latencies)),
        floor: Some(Floor {
            what: format!("plain client, {n} connections, MAIL+RCPT+DATA pipelined"),
            seconds,
            cpu_us_per_item: cpu_us,
        }),
        target: String::new(),
        met: None,
        notes: format!("smtp-sink CPU {:.1} µs/message", sink_cpu.as_secs_f64() * 1e6 / messages as f64),
    }
}

/// One persistent connection taking messages until `messages` are claimed; the latency of each
/// transaction (MAIL to the reply after the body).
async fn floor_connection(port: u16, messages: usize, next: &AtomicUsize, data: &[u8]) -> Vec<Duration> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut io = tokio::io::BufReader::new(tcp);
    let mut line = String::new();
    reply(&mut io, &mut line).await;
    io.get_mut().write_all(b"EHLO floor.bench\r\n").await.unwrap();
    reply(&mut io, &mut line).await;
    let mut latencies = Vec::new();
    let mut group = String::with_capacity(128);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= messages {
            break;
        }
        let t = Instant::now();
        group.clear();
        group.push_str("MAIL FROM:<club@example.com>\r\nRCPT TO:<");
        group.push_str(&address(i));
        group.push_str(">\r\nDATA\r\n");
        io.get_mut().write_all(group.as_bytes()).await.unwrap();
        for _ in 0..3 {
            reply(&mut io, &mut line).await;
        }
        io.get_mut().write_all(data).await.unwrap();
        reply(&mut io, &mut line).await;
        latencies.push(t.elapsed());
    }
    io.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    reply(&mut io, &mut line).await;
    latencies
}

/// One positive reply: lines until the one with a space after the code.
async fn reply(io: &mut tokio::io::BufReader<tokio::net::TcpStream>, line: &mut String) {
    loop {
        line.clear();
        io.read_line(line).await.unwrap();
        assert!(line.len() >= 4 && (line.starts_with('2') || line.starts_with('3')), "sink replied {line:?}");
        if line.as_bytes()[3] == b' ' {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The provider alone

async fn provider_run(messages: usize, n: usize, floor: Option<Floor>) -> Run {
    let rendered = rendered().await;
    let sink = Sink::start(false);
    let smtp = Smtp::new(&smtp_config(sink.port, n)).unwrap();
    common::reset_peak_rss();
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = common::self_cpu();
    let t = Instant::now();
    // As many senders as connections, each taking the next message: nothing queued in memory.
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (next, smtp, rendered) = (next.clone(), smtp.clone(), rendered.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= messages {
                        break latencies;
                    }
                    let msg = outgoing(i, &rendered);
                    let t = Instant::now();
                    let outcome = smtp.send(&msg).await;
                    latencies.push(t.elapsed());
                    assert!(matches!(outcome, SendOutcome::Sent { .. }), "message {i}: {outcome:?}");
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(messages);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let seconds = t.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu;
    let peak = common::peak_rss(std::process::id());
    smtp.close().await;
    let sink_cpu = common::process_cpu(sink.pid());
    let (taken, _) = sink.stop();
    assert_eq!(taken, messages as u64, "the sink took every message exactly once");
    let per_second = messages as f64 / seconds;
    let (target, met) = target(n, per_second);
    Run {
        workload: "W3".into(),
        variant: format!("smtp provider alone, {n} connections"),
        items: messages as u64,
        unit: "emails".into(),
        seconds,
        cpu_us_per_item: cpu.as_secs_f64() * 1e6 / messages as f64,
        peak_rss_mib: common::mib(peak),
        latency: Some(Percentiles::of(&mut latencies)),
        floor,
        target,
        met,
        notes: format!(
            "lettre message building, no queue; smtp-sink CPU {:.1} µs/message",
            sink_cpu.as_secs_f64() * 1e6 / messages as f64
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon path

const NOW: &str = "2026-11-24T00:00:00Z";
const SEND: &str = "2026-11-24T10:00:00Z";

/// An `App` on SQLite in `dir` with email through a sink on `port` and `pool` connections.
async fn app(dir: &Path, port: u16, pool: usize) -> (App, ManualClock) {
    let toml = format!(
        r#"
[programme]
time_zone = "UTC"
[evaluation]
lookahead = "24h"
[dispatch]
batch_size = 1000
concurrency = 1000
[consent]
marketing = "unless_revoked"
[channels]
email = "smtp"
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "{FROM}"
pool_size = {pool}
helo_name = "tidings.bench"
[[rules]]
id = "spring"
trigger = "holiday"
date = "11-24"
names = {{ en = "Members' Day" }}
channels = ["email"]
template = "holiday"
send_at = "09:30"
"#
    );
    let db: PathBuf = dir.join("w3.db");
    let env = vec![("TIDINGS_DATABASE_URL".to_string(), format!("sqlite://{}", db.display()))];
    let settings = Config::from_toml(&toml, "w3", env).and_then(Config::check).unwrap();
    let clock = ManualClock::new(NOW.parse().unwrap());
    let app = App::start(settings, Arc::new(clock.clone())).await.unwrap();
    let members: Vec<MemberInput> = (0..1).map(member).collect();
    app.store.upsert_members(&members, NOW.parse().unwrap()).await.unwrap();
    (app, clock)
}

fn member(i: usize) -> MemberInput {
    MemberInput {
        external_id: format!("m{i}"),
        name: format!("Member {i}"),
        phone: None,
        email: Some(address(i)),
        locale: Some("en".into()),
        time_zone: Some("UTC".into()),
        birth_date: None,
        lunar_birthday: None,
        member_since: None,
        tier: None,
        points: 0,
        attributes: Default::default(),
    }
}

async fn daemon_run(messages: usize, n: usize, floor: Option<Floor>, small: bool) -> Run {
    let sink = Sink::start(small);
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = app(dir.path(), sink.port, n).await;
    let now: Timestamp = NOW.parse().unwrap();
    let members: Vec<MemberInput> = (1..messages).map(member).collect();
    for chunk in members.chunks(5000) {
        app.store.upsert_members(chunk, now).await.unwrap();
    }
    drop(members);
    let tick = app.tick().await.unwrap();
    assert_eq!(tick.enqueued as usize, messages, "one message per member enqueued");
    clock.set(SEND.parse().unwrap());

    common::reset_peak_rss();
    let cpu = common::self_cpu();
    let t = Instant::now();
    let done = app.dispatch_all().await.unwrap();
    let seconds = t.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu;
    let peak = common::peak_rss(std::process::id());
    assert_eq!(done, messages, "every message dispatched");
    let states = app.store.count_by_state().await.unwrap();
    assert_eq!(states.get("sent").copied(), Some(messages as i64), "the database says sent: {states:?}");
    assert_eq!(states.values().sum::<i64>(), messages as i64, "nothing else: {states:?}");
    let sink_cpu = common::process_cpu(sink.pid());
    let (taken, dump) = sink.stop();
    assert_eq!(taken, messages as u64, "the sink took every message exactly once");
    if let Some(dump) = dump {
        check_dump(dump.path(), messages);
    }
    let per_second = messages as f64 / seconds;
    let (target, met) = target(n, per_second);
    Run {
        workload: "W3".into(),
        variant: format!("daemon path (SQLite, dispatch_all), {n} connections"),
        items: messages as u64,
        unit: "emails".into(),
        seconds,
        cpu_us_per_item: cpu.as_secs_f64() * 1e6 / messages as f64,
        peak_rss_mib: common::mib(peak),
        latency: None,
        floor,
        target,
        met,
        notes: format!(
            "batch 1,000, dispatch concurrency 1,000; claim, render, mark sending, finalize included; \
             smtp-sink CPU {:.1} µs/message",
            sink_cpu.as_secs_f64() * 1e6 / messages as f64
        ),
    }
}

/// Every dumped transaction is a multipart/alternative email whose `To` is its envelope
/// recipient, and every member got exactly one.
fn check_dump(dir: &Path, messages: usize) {
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let rcpt = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Rcpt-Args: "))
            .expect("the sink records the recipient")
            .trim()
            .trim_start_matches("TO:")
            .trim_matches(|c| c == '<' || c == '>')
            .to_owned();
        let message = mail_parser::MessageParser::default().parse(&raw).expect("a MIME message");
        let to = message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap();
        assert_eq!(to, rcpt);
        let ctype = message.root_part().content_type().unwrap();
        assert_eq!((ctype.ctype(), ctype.subtype()), ("multipart", Some("alternative")));
        assert!(message.subject().is_some_and(|s| !s.is_empty()));
        assert!(message.body_html(0).is_some() && message.body_text(0).is_some());
        assert!(seen.insert(rcpt), "one message per recipient");
    }
    assert_eq!(seen.len(), messages);
}
