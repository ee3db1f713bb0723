//! `TestApp`: the real daemon's pieces on a fresh database (a temporary SQLite file, or a new
//! PostgreSQL database), with a manual clock. Tests drive it a step at a time (`tick`,
//! `dispatch_all`, `advance`) and restart it on the same database to check that nothing is lost
//! or sent twice.
//!
//! PostgreSQL tests connect to `postgres://postgres@127.0.0.1:5432/postgres`, or to
//! `TIDINGS_TEST_POSTGRES_URL`, create `tidings_test_<uuid>` there and drop it at the end. When
//! the server cannot be reached they fail: they are never skipped.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tidings::app::App;
use tidings::clock::ManualClock;
use tidings::config::Config;
use tidings::evaluate::TickReport;

/// The name of the admin key every `TestApp` makes.
pub const ADMIN_KEY_NAME: &str = "test-admin";

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub app: App,
    pub clock: ManualClock,
    pub dir: Arc<tempfile::TempDir>,
    /// An admin API key made at the first boot; [`TestApp::router`] sends it.
    pub admin_key: String,
    /// The PostgreSQL database, dropped when the last handle goes.
    _db: Option<Arc<PgTestDb>>,
    toml: String,
    env: Vec<(String, String)>,
}

impl TestApp {
    /// Starts on a fresh SQLite database at `start`, with `toml` as the configuration file. The
    /// database and outbox live in a temporary directory.
    pub async fn start(toml: &str, start: &str) -> TestApp {
        Self::start_with_env(toml, start, &[]).await
    }

    pub async fn start_with_env(toml: &str, start: &str, env: &[(&str, &str)]) -> TestApp {
        Self::start_with_env_on(Backend::Sqlite, toml, start, env).await
    }

    /// Starts on a fresh database of `backend`.
    pub async fn start_on(backend: Backend, toml: &str, start: &str) -> TestApp {
        Self::start_with_env_on(backend, toml, start, &[]).await
    }

    pub async fn start_with_env_on(backend: Backend, toml: &str, start: &str, env: &[(&str, &str)]) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (url, db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("tidings.db").display()), None),
            Backend::Postgres => {
                let db = PgTestDb::create().await;
                (db.url.clone(), Some(Arc::new(db)))
            }
        };
        let mut vars = vec![
            ("TIDINGS_DATABASE_URL".to_string(), url),
            ("TIDINGS_OUTBOX_PATH".to_string(), dir.path().join("outbox.jsonl").display().to_string()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let clock = ManualClock::new(start.parse().expect("start instant"));
        let app = boot(toml, &vars, &clock).await;
        let (_, admin_key) =
            tidings::auth::create(&app.store, ADMIN_KEY_NAME, tidings::auth::Role::Admin, "test", clock.now_ts())
                .await
                .expect("the test admin key");
        TestApp { app, clock, dir, admin_key, _db: db, toml: toml.to_string(), env: vars }
    }

    /// A new daemon on the same database and clock, as after a restart. The old one is dropped
    /// without draining, as if killed.
    pub async fn restart(self) -> TestApp {
        let TestApp { app, clock, dir, admin_key, _db, toml, env } = self;
        app.store.close().await;
        drop(app);
        let app = boot(&toml, &env, &clock).await;
        TestApp { app, clock, dir, admin_key, _db, toml, env }
    }

    /// A second daemon instance on the same database and clock (PostgreSQL allows several).
    pub async fn another_instance(&self) -> App {
        boot(&self.toml, &self.env, &self.clock).await
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now_ts()
    }

    /// The HTTP router with no credentials added: what an anonymous client meets.
    pub fn bare_router(&self) -> axum::Router {
        use std::sync::atomic::AtomicBool;
        tidings::http::app(tidings::http::Http { app: self.app.clone(), ready: Arc::new(AtomicBool::new(true)) })
    }

    /// The HTTP router as a client holding the admin key calls it: a request that brings no
    /// credentials of its own (a key or a session cookie) gets `Authorization: Bearer <admin key>`.
    pub fn router(&self) -> axum::Router {
        let auth = axum::http::HeaderValue::from_str(&format!("Bearer {}", self.admin_key)).expect("a header value");
        self.bare_router().layer(axum::middleware::map_request(move |mut req: axum::extract::Request| {
            let auth = auth.clone();
            async move {
                let h = req.headers_mut();
                if !h.contains_key("authorization") && !h.contains_key("x-api-key") && !h.contains_key("cookie") {
                    h.insert("authorization", auth);
                }
                req
            }
        }))
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub fn set(&self, to: &str) {
        self.clock.set(to.parse().expect("instant"));
    }

    pub async fn tick(&self) -> TickReport {
        self.app.tick().await.expect("tick")
    }

    pub async fn dispatch_all(&self) -> usize {
        self.app.dispatch_all().await.expect("dispatch")
    }

    /// Moves the clock to `until` in steps of `step`, ticking and dispatching at each, as the
    /// daemon would.
    pub async fn run_until(&self, until: &str, step: SignedDuration) {
        let until: Timestamp = until.parse().expect("instant");
        while self.now() < until {
            self.tick().await;
            self.dispatch_all().await;
            let next = self.now().checked_add(step).expect("in range").min(until);
            self.clock.set(next);
        }
        self.tick().await;
        self.dispatch_all().await;
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.dir.path().join("outbox.jsonl")
    }

    /// Every message the outbox channel wrote, in order.
    pub fn outbox(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.outbox_path()) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).expect("outbox line is JSON")).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Imports members from JSON Lines text.
    pub async fn import_jsonl(&self, text: &str) -> tidings::members::import::ImportReport {
        tidings::members::import::import_reader(
            &self.app.store,
            std::io::Cursor::new(text.to_string().into_bytes()),
            tidings::members::import::Format::Jsonl,
            self.now(),
        )
        .await
        .expect("import")
    }

    /// Counts of messages by state.
    pub async fn states(&self) -> std::collections::BTreeMap<String, i64> {
        self.app.store.count_by_state().await.expect("counts")
    }
}

async fn boot(toml: &str, env: &[(String, String)], clock: &ManualClock) -> App {
    // The tests written before consent existed send marketing to members who never gave it:
    // they run under `unless_revoked`. A test about consent sets `[consent]` itself.
    let toml = if toml.contains("[consent]") {
        toml.to_string()
    } else {
        format!("{toml}\n[consent]\nmarketing = \"unless_revoked\"\n")
    };
    let settings = Config::from_toml(&toml, "test.toml", env.to_vec())
        .and_then(Config::check)
        .unwrap_or_else(|e| panic!("test configuration: {e}"));
    App::start(settings, Arc::new(clock.clone())).await.expect("app starts")
}

/// A fresh PostgreSQL database for one test, dropped (best effort) when the test ends.
pub struct PgTestDb {
    admin: String,
    name: String,
    pub url: String,
    /// Keeps the server up for this database (a fault test that restarts it waits for it).
    _server: ServerUse,
}

/// Tests share the PostgreSQL server; one that stops it must have it to itself. Every test
/// database holds the shared side of this lock for its lifetime, a server-restarting test the
/// exclusive side (tokio's lock is fair: newcomers queue behind a waiting writer, so a test must
/// not hold two databases at once).
static SERVER: std::sync::LazyLock<Arc<tokio::sync::RwLock<()>>> = std::sync::LazyLock::new(Default::default);

#[allow(dead_code)]
enum ServerUse {
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl PgTestDb {
    /// The server's maintenance database, which the test databases are created from.
    fn admin_url() -> String {
        std::env::var("TIDINGS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A database on a server other tests share.
    pub async fn create() -> PgTestDb {
        let server = ServerUse::Shared(SERVER.clone().read_owned().await);
        Self::create_with(server).await
    }

    /// A database on a server this test has to itself, once the other tests' databases are
    /// gone, and which it may stop and start.
    pub async fn create_exclusive() -> PgTestDb {
        let server = ServerUse::Exclusive(SERVER.clone().write_owned().await);
        Self::create_with(server).await
    }

    async fn create_with(server: ServerUse) -> PgTestDb {
        use sqlx::Connection;
        let admin = Self::admin_url();
        let name = format!("tidings_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL tests need a server at {admin} (set TIDINGS_TEST_POSTGRES_URL): {e}")
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating {name} on {admin}: {e}"));
        let _ = conn.close().await;
        let url = with_database(&admin, &name);
        PgTestDb { admin, name, url, _server: server }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Reads the manual clock.
pub trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        use tidings::clock::Clock;
        self.now()
    }
}
