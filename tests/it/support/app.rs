//! `TestApp`: the real daemon's pieces on a temporary SQLite file, with a manual clock. Tests
//! drive it a step at a time (`tick`, `dispatch_all`, `advance`) and restart it on the same
//! database to check that nothing is lost or sent twice.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tidings::app::App;
use tidings::clock::ManualClock;
use tidings::config::Config;
use tidings::evaluate::TickReport;

pub struct TestApp {
    pub app: App,
    pub clock: ManualClock,
    pub dir: Arc<tempfile::TempDir>,
    toml: String,
    env: Vec<(String, String)>,
}

impl TestApp {
    /// Starts on a fresh database at `start`, with `toml` as the configuration file. The database
    /// and outbox live in a temporary directory.
    pub async fn start(toml: &str, start: &str) -> TestApp {
        Self::start_with_env(toml, start, &[]).await
    }

    pub async fn start_with_env(toml: &str, start: &str, env: &[(&str, &str)]) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut vars = vec![
            ("TIDINGS_DATABASE_URL".to_string(), format!("sqlite://{}", dir.path().join("tidings.db").display())),
            ("TIDINGS_OUTBOX_PATH".to_string(), dir.path().join("outbox.jsonl").display().to_string()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let clock = ManualClock::new(start.parse().expect("start instant"));
        let app = boot(toml, &vars, &clock).await;
        TestApp { app, clock, dir, toml: toml.to_string(), env: vars }
    }

    /// A new daemon on the same database and clock, as after a restart. The old one is dropped
    /// without draining, as if killed.
    pub async fn restart(self) -> TestApp {
        let TestApp { app, clock, dir, toml, env } = self;
        app.store.close().await;
        drop(app);
        let app = boot(&toml, &env, &clock).await;
        TestApp { app, clock, dir, toml, env }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now_ts()
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
    let settings = Config::from_toml(toml, "test.toml", env.to_vec())
        .and_then(Config::check)
        .unwrap_or_else(|e| panic!("test configuration: {e}"));
    App::start(settings, Arc::new(clock.clone())).await.expect("app starts")
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
