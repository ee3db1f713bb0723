//! W2, a burst over HTTP: `cargo bench --bench w2_http -- --messages 100000 --backend sqlite`
//! (or `postgres`, or `both`; `--batch-size`, `--concurrency` override the dispatch defaults,
//! `--seconds` bounds the dispatch).
//!
//! The daemon's pieces run in this process: `App` on a fresh database (a temporary SQLite file,
//! or a new database on the PostgreSQL server at `TIDINGS_BENCH_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`), one member per message, every message
//! enqueued due now, then the dispatch worker's loop (`Dispatcher::step`, as the daemon runs
//! it) until every message is final. SMS go through the Twilio provider to a sink that is this
//! binary re-executed with `--sink`, a separate process so its CPU is not counted: a hyper
//! server on 127.0.0.1 that checks each request as Twilio would (path, Basic auth, form
//! fields), answers 201 with a Twilio-shaped body, answers 500 to a deterministic 1% (by a hash
//! of To and Body, on the first attempt only) and counts what it accepted.
//!
//! The clock is the system clock (so due→sent is real); the retry backoff is set to 20 ms
//! (at most 100 ms) so the 1% retried do not leave the worker idle for minutes.
//!
//! Measured: wall time, this process's CPU plus the PostgreSQL backends' (by their pids in
//! `pg_stat_activity`) per message, peak RSS (reset before dispatch), the provider round trip
//! and due→sent percentiles. The floor: a plain reqwest client, the same concurrency, POSTing
//! the same form bodies (read back from the database) to the same sink. Asserted: every message
//! reached the sink exactly once (unique To+Body accepted once each) and the database says sent.
//!
//! Under `cargo test --benches` it runs 2,000 messages on both backends.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Args, Floor, Percentiles, Run};
use tidings::app::App;
use tidings::channels::{ChannelKind, Purpose};
use tidings::config::Config;
use tidings::dispatch::Step;
use tidings::members::MemberInput;
use tidings::plan::NewMessage;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "w2-bench-token";
const FROM: &str = "+14155550100";

fn main() {
    let args = Args::parse();
    if args.flag("sink") {
        sink::run();
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(bench(args));
}

async fn bench(args: Args) {
    tidings::install_crypto_provider();
    let n = args.count("messages", 100_000, 2_000);
    let backends = match args.string("backend", if args.benching { "sqlite" } else { "both" }).as_str() {
        "sqlite" => vec![Backend::Sqlite],
        "postgres" => vec![Backend::Postgres],
        "both" => vec![Backend::Sqlite, Backend::Postgres],
        other => panic!("--backend: {other:?} is not sqlite, postgres or both"),
    };
    for backend in backends {
        let run = run_one(&args, backend, n).await;
        if args.benching {
            run.emit();
        } else {
            println!("{}", run.markdown_row());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The database a run uses: removed at the end.
struct Db {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Db {
    async fn create(backend: Backend) -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                Db { url: format!("sqlite://{}", dir.path().join("w2.db").display()), _dir: dir, pg: None }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = std::env::var("TIDINGS_BENCH_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let name = format!("tidings_w2_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("the PostgreSQL server");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create the bench database");
                let _ = conn.close().await;
                let (base, _) = admin.rsplit_once('/').expect("a database url");
                Db { url: format!("{base}/{name}"), _dir: dir, pg: Some((admin, name)) }
            }
        }
    }

    async fn drop_pg(&self) {
        use sqlx::Connection;
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin).await.expect("the PostgreSQL server");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

fn config(base_url: &str, args: &Args) -> String {
    let mut dispatch = String::new();
    if let Some(b) = args.count_opt("batch-size") {
        dispatch.push_str(&format!("batch_size = {b}\n"));
    }
    if let Some(c) = args.count_opt("concurrency") {
        dispatch.push_str(&format!("concurrency = {c}\n"));
    }
    format!(
        r#"
[programme]
name = "Jade Club"
[channels]
sms = "twilio"
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "{FROM}"
base_url = "{base_url}"
timeout_secs = 10
[quiet_hours]
sms = "off"
[dispatch]
max_attempts = 5
backoff_base = "20ms"
backoff_max = "100ms"
{dispatch}
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
purpose = "service"
"#
    )
}

trait CountOpt {
    fn count_opt(&self, key: &str) -> Option<usize>;
}

impl CountOpt for Args {
    fn count_opt(&self, key: &str) -> Option<usize> {
        let absent = usize::MAX;
        Some(self.count(key, absent, absent)).filter(|v| *v != absent)
    }
}

fn members(n: usize) -> Vec<MemberInput> {
    (0..n)
        .map(|i| MemberInput {
            external_id: format!("w{i:08}"),
            name: format!("Member {i}"),
            phone: Some(format!("+1415{:07}", i % 10_000_000)),
            email: None,
            locale: Some("en".into()),
            time_zone: Some("UTC".into()),
            birth_date: Some(jiff::civil::date(1980, 1 + (i % 12) as i8, 1 + (i % 28) as i8)),
            lunar_birthday: None,
            member_since: None,
            tier: None,
            points: (i % 10_000) as i64,
            attributes: Default::default(),
        })
        .collect()
}

async fn run_one(args: &Args, backend: Backend, n: usize) -> Run {
    let variant = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let mut sink = Sink::start();
    let db = Db::create(backend).await;
    let env = vec![("TIDINGS_DATABASE_URL".to_string(), db.url.clone())];
    let settings = Config::from_toml(&config(&sink.base_url(), args), "w2", env).and_then(Config::check).unwrap();
    let clock = Arc::new(tidings::clock::SystemClock);
    let app = App::start(settings, clock).await.expect("the app starts");

    // Seeding: one member per message, every message due now.
    let now = jiff::Timestamp::now();
    for chunk in members(n).chunks(2_000) {
        app.store.upsert_members(chunk, now).await.expect("members");
    }
    let pool = Verify::connect(&db.url).await;
    let ids = pool.member_ids().await;
    assert_eq!(ids.len(), n);
    // Small chunks: enqueue's history insert on SQLite compares each inserted row with each row
    // of the chunk.
    for chunk in ids.chunks(250) {
        let msgs: Vec<NewMessage> = chunk
            .iter()
            .map(|&id| NewMessage {
                dedupe_key: format!("birthday:{id}:w2:sms"),
                rule_id: "birthday".into(),
                member_id: id,
                occurrence: "w2".into(),
                channel: ChannelKind::Sms,
                template: "birthday".into(),
                vars: serde_json::json!({ "age": 36 }).as_object().unwrap().clone(),
                run_at: now,
                deadline: None,
                skip: None,
                fallback: Vec::new(),
                purpose: Purpose::Service,
                experiment: None,
                variant: None,
            })
            .collect();
        assert_eq!(app.store.enqueue(&msgs, now).await.expect("enqueue"), msgs.len() as u64);
    }
    drop(ids);

    // Dispatch, measured.
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(n + n / 50)));
    let mut d = app.dispatcher();
    let seen = latencies.clone();
    d.on_sent = Some(Arc::new(move |took| seen.lock().unwrap().push(took)));
    let pg_before = pool.backend_cpu().await;
    common::reset_peak_rss();
    let cpu0 = common::self_cpu();
    let started_ms = jiff::Timestamp::now().as_millisecond();
    let t0 = Instant::now();
    let bound = args.deadline(600);
    let mut steps = 0usize;
    loop {
        match d.step().await.expect("dispatch step") {
            Step::Worked(_) => steps += 1,
            Step::Idle => match d.next_due().await.expect("next due") {
                None => break,
                Some(at) => {
                    let wait = at.duration_since(jiff::Timestamp::now()).as_millis().max(1) as u64;
                    tokio::time::sleep(Duration::from_millis(wait.min(1_000))).await;
                }
            },
        }
        assert!(t0.elapsed() < bound, "W2 did not finish within {bound:?}");
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu0;
    let pg_cpu = pool
        .backend_cpu()
        .await
        .iter()
        .map(|(pid, c)| c.saturating_sub(*pg_before.get(pid).unwrap_or(&Duration::ZERO)))
        .sum::<Duration>();
    let peak = common::peak_rss(std::process::id());

    // Exactly once, and the database agrees.
    let stats = sink.stats().await;
    assert_eq!(stats.bad, 0, "the sink refused requests Twilio would refuse: {stats:?}");
    assert_eq!(stats.unique, n as u64, "every message reached the sink: {stats:?}");
    assert_eq!(stats.accepted, n as u64, "no message reached the sink twice: {stats:?}");
    let states = pool.states().await;
    assert_eq!(states.get("sent").copied().unwrap_or(0), n as i64, "the database says sent: {states:?}");
    let mut due_to_sent: Vec<Duration> =
        pool.sent_at().await.into_iter().map(|ms| Duration::from_millis((ms - started_ms).max(0) as u64)).collect();
    let due_to_sent = Percentiles::of(&mut due_to_sent);
    let round_trip = Percentiles::of(&mut latencies.lock().unwrap());
    let retried = pool.retried().await;

    // The floor: the same bodies, the same concurrency, a plain client.
    let bodies = pool.bodies().await;
    app.store.close().await;
    pool.close().await;
    db.drop_pg().await;
    sink.reset().await;
    let concurrency = d.concurrency;
    let floor = floor(&sink.base_url(), bodies, concurrency).await;
    let fstats = sink.stats().await;
    assert_eq!((fstats.unique, fstats.accepted, fstats.bad), (n as u64, n as u64, 0), "the floor: {fstats:?}");
    sink.stop();

    let per_second = n as f64 / seconds;
    let cpu_us = (cpu + pg_cpu).as_secs_f64() * 1e6 / n as f64;
    let peak_mib = common::mib(peak);
    let met = per_second >= 15_000.0 && cpu_us <= 60.0 && peak_mib < 128.0;
    let pg_note = if backend == Backend::Postgres {
        format!(" (of which PostgreSQL backends {:.1} µs)", pg_cpu.as_secs_f64() * 1e6 / n as f64)
    } else {
        String::new()
    };
    Run {
        workload: "W2".into(),
        variant: format!("{variant}, batch {}, {} in flight", d.batch_size, concurrency),
        items: n as u64,
        unit: "SMS".into(),
        seconds,
        cpu_us_per_item: cpu_us,
        peak_rss_mib: peak_mib,
        latency: Some(round_trip),
        floor: Some(floor),
        target: "≥ 15,000/s, ≤ 60 µs CPU, < 128 MiB".into(),
        met: Some(met),
        notes: format!(
            "latency: provider round trip; due→sent p50/p90/p99 {:.0}/{:.0}/{:.0} ms; CPU{pg_note}; \
             {} injected 5xx ({} messages retried, 20 ms backoff); {steps} batches; sink in its own process",
            due_to_sent.p50_us / 1e3,
            due_to_sent.p90_us / 1e3,
            due_to_sent.p99_us / 1e3,
            stats.injected,
            retried,
        ),
    }
}

/// A plain reqwest client POSTing the same form bodies with `concurrency` in flight; a 5xx is
/// sent again at once.
async fn floor(base_url: &str, bodies: Vec<(String, String)>, concurrency: usize) -> Floor {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let url = format!("{base_url}/2010-04-01/Accounts/{SID}/Messages.json");
    let forms: Vec<String> = bodies
        .iter()
        .map(|(to, body)| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("To", to)
                .append_pair("Body", body)
                .append_pair("From", FROM)
                .finish()
        })
        .collect();
    let cpu0 = common::self_cpu();
    let t0 = Instant::now();
    futures::stream::iter(forms)
        .for_each_concurrent(concurrency, |form| {
            let (client, url) = (&client, &url);
            async move {
                for _ in 0..3 {
                    let r = client
                        .post(url.as_str())
                        .basic_auth(SID, Some(TOKEN))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form.clone())
                        .send()
                        .await
                        .expect("the floor's request");
                    let ok = r.status().is_success();
                    let _ = r.bytes().await;
                    if ok {
                        return;
                    }
                }
                panic!("the floor's request failed three times");
            }
        })
        .await;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu0;
    Floor {
        what: format!("reqwest, {concurrency} in flight"),
        seconds,
        cpu_us_per_item: cpu.as_secs_f64() * 1e6 / bodies.len() as f64,
    }
}

/// Reads the run's database back, on its own connections.
enum Verify {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Verify {
    async fn connect(url: &str) -> Verify {
        if url.starts_with("sqlite:") {
            Verify::Sqlite(sqlx::SqlitePool::connect(url).await.expect("sqlite"))
        } else {
            Verify::Postgres(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.expect("pg"))
        }
    }

    async fn member_ids(&self) -> Vec<i64> {
        let q = "SELECT id FROM members ORDER BY id";
        match self {
            Verify::Sqlite(p) => sqlx::query_scalar(q).fetch_all(p).await.unwrap(),
            Verify::Postgres(p) => sqlx::query_scalar(q).fetch_all(p).await.unwrap(),
        }
    }

    async fn states(&self) -> HashMap<String, i64> {
        let q = "SELECT state, count(*) FROM messages GROUP BY state";
        let rows: Vec<(String, i64)> = match self {
            Verify::Sqlite(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
            Verify::Postgres(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
        };
        rows.into_iter().collect()
    }

    async fn sent_at(&self) -> Vec<i64> {
        let q = "SELECT sent_at FROM messages WHERE state = 'sent'";
        match self {
            Verify::Sqlite(p) => sqlx::query_scalar(q).fetch_all(p).await.unwrap(),
            Verify::Postgres(p) => sqlx::query_scalar(q).fetch_all(p).await.unwrap(),
        }
    }

    async fn retried(&self) -> i64 {
        let q = "SELECT count(*) FROM messages WHERE attempts > 1";
        match self {
            Verify::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
            Verify::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
        }
    }

    /// Each message's number and text, as the provider was given them.
    async fn bodies(&self) -> Vec<(String, String)> {
        let q = "SELECT mb.phone, m.rendered FROM messages m JOIN members mb ON mb.id = m.member_id ORDER BY m.id";
        let rows: Vec<(String, String)> = match self {
            Verify::Sqlite(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
            Verify::Postgres(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
        };
        rows.into_iter()
            .map(|(to, rendered)| match serde_json::from_str(&rendered).expect("rendered") {
                tidings::channels::Rendered::Sms { text, .. } => (to, text),
                other => panic!("not an sms: {other:?}"),
            })
            .collect()
    }

    /// CPU time of each PostgreSQL backend serving this database.
    async fn backend_cpu(&self) -> HashMap<u32, Duration> {
        let Verify::Postgres(p) = self else { return HashMap::new() };
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(p)
            .await
            .unwrap();
        pids.into_iter().map(|pid| (pid as u32, common::process_cpu(pid as u32))).collect()
    }

    async fn close(&self) {
        match self {
            Verify::Sqlite(p) => p.close().await,
            Verify::Postgres(p) => p.close().await,
        }
    }
}

/// What the sink counted.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Stats {
    /// Requests in all.
    requests: u64,
    /// 201s, and the distinct (To, Body) among them.
    accepted: u64,
    unique: u64,
    /// 500s injected.
    injected: u64,
    /// Requests Twilio would have refused (path, auth, form).
    bad: u64,
}

/// The sink process, stopped when dropped.
struct Sink {
    child: Child,
    port: u16,
    client: reqwest::Client,
}

impl Sink {
    fn start() -> Sink {
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .arg("--sink")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sink starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the sink's port");
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("PORT <n>");
        Sink { child, port, client: reqwest::Client::new() }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stats(&self) -> Stats {
        let r = self.client.get(format!("{}/stats", self.base_url())).send().await.expect("stats");
        r.json().await.expect("stats json")
    }

    async fn reset(&self) {
        let r = self.client.post(format!("{}/reset", self.base_url())).send().await.expect("reset");
        assert!(r.status().is_success());
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

mod sink {
    //! The sink: a one-thread hyper server answering as Twilio's Messages API does. It stops
    //! when its standard input closes (the bench is done, or gone), or after an hour.

    use super::*;
    use base64::Engine;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response, StatusCode};
    use std::hash::{DefaultHasher, Hash, Hasher};

    #[derive(Default)]
    struct State {
        stats: Stats,
        /// Per (To, Body) hash: how many times it was accepted (0: only refused so far).
        seen: HashMap<u64, u32>,
    }

    pub fn run() {
        std::thread::spawn(|| {
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            std::process::exit(0);
        });
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(3600));
            std::process::exit(1);
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().unwrap().port();
            let mut out = std::io::stdout();
            writeln!(out, "PORT {port}").unwrap();
            out.flush().unwrap();
            let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}")));
            let state = Arc::new(Mutex::new(State::default()));
            let path: Arc<str> = format!("/2010-04-01/Accounts/{SID}/Messages.json").into();
            let auth: Arc<str> = auth.into();
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let _ = stream.set_nodelay(true);
                let (state, path, auth) = (state.clone(), path.clone(), auth.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (state, path, auth) = (state.clone(), path.clone(), auth.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &state, &path, &auth).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
    }

    fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    async fn answer(req: Request<Incoming>, state: &Mutex<State>, path: &str, auth: &str) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        match (parts.method.as_str(), parts.uri.path()) {
            ("GET", "/stats") => {
                let s = state.lock().unwrap();
                return reply(StatusCode::OK, serde_json::to_string(&s.stats).unwrap());
            }
            ("POST", "/reset") => {
                *state.lock().unwrap() = State::default();
                return reply(StatusCode::OK, "{}".into());
            }
            _ => {}
        }
        let bad = |why: &str| {
            state.lock().unwrap().stats.bad += 1;
            reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "code": 21604, "message": why, "status": 400 }).to_string(),
            )
        };
        if parts.method != hyper::Method::POST || parts.uri.path() != path {
            return bad("not the Messages resource");
        }
        if parts.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(auth) {
            state.lock().unwrap().stats.bad += 1;
            return reply(StatusCode::UNAUTHORIZED, r#"{"code":20003,"message":"Authenticate","status":401}"#.into());
        }
        let form_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return bad("not a form");
        }
        let (mut to, mut text, mut sender) = (None, None, false);
        for (k, v) in form_urlencoded::parse(&body) {
            match k.as_ref() {
                "To" => to = Some(v.into_owned()),
                "Body" => text = Some(v.into_owned()),
                "From" | "MessagingServiceSid" => sender = !v.is_empty(),
                _ => {}
            }
        }
        let (Some(to), Some(text)) = (to, text) else { return bad("To and Body are required") };
        if !sender || text.is_empty() || !to.starts_with('+') {
            return bad("a sender, a body and an e.164 number are required");
        }
        let mut h = DefaultHasher::new();
        (to.as_str(), text.as_str()).hash(&mut h);
        let key = h.finish();
        let mut s = state.lock().unwrap();
        s.stats.requests += 1;
        let first = !s.seen.contains_key(&key);
        if first && key.is_multiple_of(100) {
            s.seen.insert(key, 0);
            s.stats.injected += 1;
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"code":20500,"message":"Internal Server Error","status":500}"#.into(),
            );
        }
        let n = s.seen.entry(key).or_insert(0);
        *n += 1;
        let once = *n == 1;
        s.stats.accepted += 1;
        if once {
            s.stats.unique += 1;
        }
        let sid = format!("SM{key:016x}{:016x}", s.stats.accepted);
        drop(s);
        let body = serde_json::json!({
            "sid": sid, "account_sid": SID, "to": to, "from": FROM, "body": text,
            "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "api_version": "2010-04-01", "price": null, "error_code": null,
            "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"),
        });
        reply(StatusCode::CREATED, body.to_string())
    }
}
