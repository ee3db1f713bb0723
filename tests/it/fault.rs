//! Faults on PostgreSQL shared by several real `tidings serve` processes: SIGKILLs at moments
//! drawn from a seeded RNG (`TIDINGS_TEST_FAULT_SEED` replays a run), and a PostgreSQL restart while
//! messages flow. Afterwards what is left is settled in-process and the campaign is checked: every
//! message `sent` or `ambiguous`, nobody reached twice, every `sent` one at the Twilio peer under
//! the sid it answered. Every wait is bounded by the test's own deadline.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidings::store::{MessageFilter, Store};

use crate::support::app::PgTestDb;
use crate::support::twilio::TwilioPeer;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const CONCURRENCY: i64 = 8;

/// What one daemon process said on stderr (JSON lines) so far.
#[derive(Default)]
struct Log {
    sent: usize,
    /// WARN and ERROR lines, for the report.
    problems: Vec<String>,
    tail: VecDeque<String>,
    closed: bool,
}

/// One `tidings serve` in its own directory (for its notify socket), on the shared database.
struct Instance {
    name: String,
    dir: tempfile::TempDir,
    config: String,
    child: Child,
    log: Arc<Mutex<Log>>,
    /// Logs of earlier runs of this instance, problems only.
    past_problems: Vec<String>,
}

impl Instance {
    fn start(name: &str, config: &str, deadline: Instant) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tidings.toml"), config).unwrap();
        let (child, log) = spawn(dir.path(), deadline);
        Instance { name: name.to_string(), dir, config: config.to_string(), child, log, past_problems: Vec::new() }
    }

    fn sent(&self) -> usize {
        self.log.lock().unwrap().sent
    }

    /// Whether the process has exited (on its own or killed).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// A new process in place of the old one (which must have exited).
    fn restart(&mut self, deadline: Instant) {
        self.kill();
        let old = std::mem::take(&mut *self.log.lock().unwrap());
        self.past_problems.extend(old.problems);
        std::fs::write(self.dir.path().join("tidings.toml"), &self.config).unwrap();
        let (child, log) = spawn(self.dir.path(), deadline);
        self.child = child;
        self.log = log;
    }

    fn problems(&self) -> Vec<String> {
        let mut all = self.past_problems.clone();
        all.extend(self.log.lock().unwrap().problems.iter().cloned());
        all
    }

    fn tail(&self) -> String {
        let log = self.log.lock().unwrap();
        format!("{}: {}", self.name, log.tail.iter().cloned().collect::<Vec<_>>().join("\n  "))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the daemon in `dir`, waits for READY=1 and reads its log in a thread.
fn spawn(dir: &std::path::Path, deadline: Instant) -> (Child, Arc<Mutex<Log>>) {
    let sock = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock);
    let notify = UnixDatagram::bind(&sock).expect("notify socket");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", "tidings.toml", "serve"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NOTIFY_SOCKET", &sock)
        .env("TIDINGS_HTTP_ENABLED", "false")
        .env("TIDINGS_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("tidings starts");
    let log = Arc::new(Mutex::new(Log::default()));
    let stderr = child.stderr.take().unwrap();
    let shared = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let mut log = shared.lock().unwrap();
            if v["message"] == "sent" {
                log.sent += 1;
            } else if (v["level"] == "WARN" || v["level"] == "ERROR") && log.problems.len() < 200 {
                log.problems.push(line.clone());
            }
            if log.tail.len() == 20 {
                log.tail.pop_front();
            }
            log.tail.push_back(line);
        }
        shared.lock().unwrap().closed = true;
    });
    notify.set_read_timeout(Some(left(deadline).max(Duration::from_millis(1)))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        let n = match notify.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no READY=1 from the daemon in {}: {e}", dir.display())
            }
        };
        if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
            return (child, log);
        }
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A campaign: `n` members whose birthday greeting (SMS through the Twilio peer) is due two
/// minutes ago, UTC, imported into a fresh PostgreSQL database.
struct Campaign {
    n: usize,
    /// Dropped (with the database) when the campaign is.
    _db: PgTestDb,
    twilio: TwilioPeer,
    config: String,
    store: Store,
    /// A plain connection for the report when the deadline passes.
    pg: sqlx::PgPool,
    deadline: Instant,
    /// The message states last read, for the report when the deadline passes.
    last_states: std::sync::Mutex<String>,
}

impl Campaign {
    async fn start(n: usize, db: PgTestDb, budget: Duration) -> Campaign {
        let deadline = Instant::now() + budget;
        let twilio = TwilioPeer::start(SID, "token").await;
        let due = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_mins(2)).unwrap();
        let due = due.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let config = format!(
            "[database]\nurl = \"{}\"\n[channels]\nsms = \"twilio\"\n[twilio]\naccount_sid = \"{SID}\"\n\
             auth_token = \"token\"\nfrom = \"+14155550100\"\nbase_url = \"{}\"\n[dispatch]\nbatch_size = 50\n\
             concurrency = {CONCURRENCY}\nlease = \"2s\"\npoll = \"100ms\"\n[quiet_hours]\nsms = \"off\"\n[[rules]]\nid = \"birthday\"\n\
             trigger = \"birthday\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\nsend_at = \"{:02}:{:02}\"\n\
             max_lateness = \"2h\"\n",
            db.url,
            twilio.base_url(),
            due.hour(),
            due.minute()
        );
        let dir = tempfile::tempdir().unwrap();
        let members: String = (0..n)
            .map(|i| {
                serde_json::json!({"external_id": format!("m{i}"), "name": "Kim", "phone": phone(i),
                    "time_zone": "UTC", "birth_date": format!("1990-{:02}-{:02}", due.month(), due.day()),
                    "consent": {"sms": "granted"}})
                .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(dir.path().join("members.jsonl"), members).unwrap();
        std::fs::write(dir.path().join("tidings.toml"), &config).unwrap();
        let import = tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_tidings"))
                .args(["--config", "tidings.toml", "import", "members.jsonl"])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .output()
                .unwrap()
        });
        assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
        let store = Store::open(&db.url).await.unwrap();
        let pg = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
        Campaign { n, _db: db, twilio, config, store, pg, deadline, last_states: Default::default() }
    }

    /// Whether every message is past the provider: none scheduled, claimed or sending.
    async fn done(&self) -> bool {
        match self.store.count_by_state().await {
            Ok(states) => {
                *self.last_states.lock().unwrap() = format!("{states:?}");
                states.values().sum::<i64>() == self.n as i64
                    && ["scheduled", "claimed", "sending"].iter().all(|s| !states.contains_key(*s))
            }
            Err(_) => false, // the server may be restarting
        }
    }

    async fn check_deadline(&self, what: &str, instances: &[Instance]) {
        if Instant::now() >= self.deadline {
            let tails: Vec<String> = instances.iter().map(Instance::tail).collect();
            let pids: Vec<String> = instances.iter().map(|i| format!("{} = pid {}", i.name, i.child.id())).collect();
            let (unfinished, sessions) = (self.unfinished().await, self.sessions().await);
            panic!(
                "out of time {what}; {} requests at the peer; messages by state: {}; instances: {}\n\
                 unfinished messages:\n{}\nsessions:\n{}\nlogs:\n{}",
                self.twilio.count(),
                self.last_states.lock().unwrap(),
                pids.join(", "),
                unfinished,
                sessions,
                tails.join("\n")
            );
        }
    }

    /// The messages not yet past the provider, with their leases, for the report.
    async fn unfinished(&self) -> String {
        type Row = (i64, String, Option<String>, Option<i64>, i64);
        let rows: Result<Vec<Row>, _> = sqlx::query_as(
            "SELECT id, state, lease_owner, lease_until, attempts FROM messages
             WHERE state IN ('scheduled', 'claimed', 'sending') ORDER BY id LIMIT 50",
        )
        .fetch_all(&self.pg)
        .await;
        let now = jiff::Timestamp::now().as_millisecond();
        match rows {
            Ok(rows) => rows
                .iter()
                .map(|(id, state, owner, until, attempts)| {
                    let left = until.map(|u| format!("{} ms", u - now)).unwrap_or_default();
                    format!("  {id} {state} owner {owner:?} lease left {left} attempts {attempts}")
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("  (could not read: {e})"),
        }
    }

    /// What every session on the campaign's database is doing (the daemons name theirs
    /// `tidings <pid>`): a statement waiting on a lock shows here.
    async fn sessions(&self) -> String {
        type Row = (i32, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
        let rows: Result<Vec<Row>, _> = sqlx::query_as(
            "SELECT pid, application_name, state, wait_event_type, wait_event,
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
                 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 ORDER BY application_name, pid",
        )
        .fetch_all(&self.pg)
        .await;
        match rows {
            Ok(rows) => rows
                .iter()
                .map(|(pid, app, state, wt, w, q)| {
                    format!("  {pid} {app:?} {state:?} waiting {wt:?}/{w:?}: {}", q.as_deref().unwrap_or(""))
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("  (could not read: {e})"),
        }
    }

    /// Restarts any instance that exited on its own; returns how many did.
    fn revive(&self, instances: &mut [Instance]) -> usize {
        let mut revived = 0;
        for inst in instances.iter_mut() {
            if let Some(status) = inst.exited() {
                eprintln!("{} exited on its own ({status}); restarting it. Its log:\n{}", inst.name, inst.tail());
                inst.restart(self.deadline);
                revived += 1;
            }
        }
        revived
    }

    /// Lets the instances finish the campaign (restarting any that die), then stops them.
    async fn finish(&self, instances: &mut [Instance]) -> usize {
        let mut revived = 0;
        while !self.done().await {
            self.check_deadline("waiting for the campaign to finish", instances).await;
            revived += self.revive(instances);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for inst in instances.iter_mut() {
            inst.kill();
        }
        revived
    }

    /// Settles what is left in-process an hour later (every lease long expired), then checks the
    /// campaign. `max_ambiguous` bounds the messages the provider may or may not have.
    async fn settle_and_check(&self, max_ambiguous: i64) -> (i64, i64) {
        let settings = tidings::config::Config::from_toml(&self.config, "tidings.toml", Vec::new())
            .and_then(tidings::config::Config::check)
            .unwrap();
        let clock = tidings::clock::ManualClock::new(
            jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).unwrap(),
        );
        let app = tidings::app::App::start(settings, Arc::new(clock)).await.unwrap();
        app.dispatch_all().await.unwrap();

        let states = app.store.count_by_state().await.unwrap();
        let sent = states.get("sent").copied().unwrap_or(0);
        let ambiguous = states.get("ambiguous").copied().unwrap_or(0);
        assert_eq!(sent + ambiguous, self.n as i64, "{states:?}");
        assert!(ambiguous <= max_ambiguous, "{ambiguous} ambiguous, at most {max_ambiguous} expected: {states:?}");

        let rows =
            app.store.messages(&MessageFilter { limit: self.n as u32 + 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows.len(), self.n);
        let received = self.twilio.received();
        let mut per_phone: HashMap<String, Vec<String>> = HashMap::new();
        for r in &received {
            per_phone.entry(r.field("To").unwrap().to_string()).or_default().push(r.sid.clone());
        }
        let state_of: HashMap<String, &str> =
            rows.iter().map(|m| (phone(m.member.trim_start_matches('m').parse().unwrap()), m.state.as_str())).collect();
        let twice: Vec<String> = per_phone
            .iter()
            .filter(|(_, sids)| sids.len() > 1)
            .map(|(p, sids)| format!("{p} ({} times, message {})", sids.len(), state_of.get(p).unwrap_or(&"?")))
            .collect();
        assert!(twice.is_empty(), "reached twice: {twice:?}");
        for m in rows.iter().filter(|m| m.state == "sent") {
            let p = phone(m.member.trim_start_matches('m').parse().unwrap());
            let sids = per_phone.get(&p).unwrap_or_else(|| panic!("message {} is sent but {p} got nothing", m.id));
            assert!(
                sids.iter().any(|s| Some(s) == m.provider_id.as_ref()),
                "message {} sent as {:?}, the peer answered {sids:?}",
                m.id,
                m.provider_id
            );
        }
        assert!(received.len() as i64 <= sent + ambiguous);
        // Why each ambiguous message is, for the log: the last history entry names the worker.
        let mut why: HashMap<String, usize> = HashMap::new();
        for m in rows.iter().filter(|m| m.state == "ambiguous") {
            let last = app.store.history(m.id).await.unwrap().pop().and_then(|h| h.detail).unwrap_or_default();
            *why.entry(last.split(" (worker").next().unwrap_or_default().to_string()).or_default() += 1;
        }
        eprintln!("ambiguous: {why:?}");
        assert!(self.twilio.violations().is_empty(), "{:?}", self.twilio.violations());
        app.store.close().await;
        (sent, ambiguous)
    }
}

fn phone(i: usize) -> String {
    format!("+1415{i:07}")
}

fn seed() -> u64 {
    std::env::var("TIDINGS_TEST_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_240_229)
}

/// Three daemons share a campaign of 20,000 on one PostgreSQL database; six times one of them,
/// chosen by a seeded RNG, is SIGKILLed after a random number of its own sends and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_a_campaign_through_sigkills_without_a_duplicate() {
    const KILLS: usize = 6;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    eprintln!("fault seed {seed} (TIDINGS_TEST_FAULT_SEED replays it)");
    let c = Campaign::start(20_000, PgTestDb::create().await, Duration::from_secs(180)).await;

    let mut instances: Vec<Instance> = tokio::task::block_in_place(|| {
        ["a", "b", "c"].iter().map(|n| Instance::start(n, &c.config, c.deadline)).collect()
    });
    let mut kills = 0;
    let mut revived = 0;
    for _ in 0..KILLS {
        let i = rng.random_range(0..instances.len());
        let after = rng.random_range(1..=800);
        // Wait for its `after`-th send since it started, unless the campaign ends first.
        loop {
            c.check_deadline("waiting for a send to kill after", &instances).await;
            if instances[i].sent() >= after || c.done().await {
                break;
            }
            revived += c.revive(&mut instances);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if c.done().await {
            break;
        }
        instances[i].kill();
        kills += 1;
        eprintln!(
            "killed {} after {} sends; {} requests at the peer",
            instances[i].name,
            instances[i].sent(),
            c.twilio.count()
        );
        tokio::task::block_in_place(|| instances[i].restart(c.deadline));
    }
    revived += c.finish(&mut instances).await;
    assert!(kills >= 3, "the campaign ended after {kills} kills: make the kills earlier");
    let (sent, ambiguous) = c.settle_and_check(kills as i64 * CONCURRENCY).await;
    eprintln!("{kills} kills, {revived} exits on their own: {sent} sent, {ambiguous} ambiguous");
    assert_eq!(
        revived,
        0,
        "daemons exited on their own: {:?}",
        instances.iter().map(Instance::problems).collect::<Vec<_>>()
    );
}

/// Starts PostgreSQL again on drop, whatever happened (a running server is left alone).
struct ServerBackUp;

impl Drop for ServerBackUp {
    fn drop(&mut self) {
        pg_ctl("start");
    }
}

fn pg_ctl(action: &str) {
    let out = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "15", "main", action])
        .output()
        .expect("pg_ctlcluster runs");
    // Starting a running server fails harmlessly ("already running").
    if !out.status.success() && action != "start" {
        panic!("pg_ctlcluster {action}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Two daemons share a campaign of 3,000; PostgreSQL is stopped and started again once messages
/// flow. The daemons ride it out (their database errors are logged and retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_mid_campaign_loses_nothing_and_sends_nothing_twice() {
    // The server is ours alone: other tests' databases are gone and new ones wait.
    let c = Campaign::start(3_000, PgTestDb::create_exclusive().await, Duration::from_secs(150)).await;
    let mut instances: Vec<Instance> =
        tokio::task::block_in_place(|| ["a", "b"].iter().map(|n| Instance::start(n, &c.config, c.deadline)).collect());
    while c.twilio.count() < 300 {
        c.check_deadline("waiting for messages to flow", &instances).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    {
        let _back_up = ServerBackUp;
        let before = c.twilio.count();
        let t = Instant::now();
        tokio::task::block_in_place(|| pg_ctl("stop"));
        eprintln!(
            "PostgreSQL stopped in {:?} after {before} requests at the peer, {} now",
            t.elapsed(),
            c.twilio.count()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (t, before) = (Instant::now(), c.twilio.count());
        tokio::task::block_in_place(|| pg_ctl("start"));
        eprintln!(
            "PostgreSQL started in {:?} with {before} requests at the peer, {} now",
            t.elapsed(),
            c.twilio.count()
        );
    }
    let revived = c.finish(&mut instances).await;
    let (sent, ambiguous) = c.settle_and_check(2 * 2 * CONCURRENCY).await;
    let problems: Vec<String> = instances.iter().flat_map(Instance::problems).collect();
    eprintln!("{revived} exits on their own: {sent} sent, {ambiguous} ambiguous; problems logged: {problems:#?}");
    assert_eq!(revived, 0, "daemons exited with PostgreSQL's restart: {problems:#?}");
}
