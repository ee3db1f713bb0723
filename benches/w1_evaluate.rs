//! W1, evaluation at scale: `cargo bench --bench w1_evaluate -- --members 1000000
//! --backend sqlite|postgres [--cold]`.
//!
//! Deterministic members (seeded) written by raw bulk SQL (seeding is not what is measured), rules
//! birthday + anniversary + inactivity (30 days), a manual clock, each rule's watermark at `now`
//! and a 24-hour lookahead: one day's triggers. Measured: the first tick (selected, enqueued);
//! the same tick again (the watermarks put back, so it re-selects the same rows and the unique
//! key refuses every one: it must enqueue nothing); and the floor, hand-written SQL selecting the
//! same rows and inserting them into a copy of the messages table with the same unique key.
//! Cold: the tick runs right after the schema is created and the members written, before
//! ANALYZE (PostgreSQL's autovacuum is switched off for the run's database so it cannot analyze
//! behind the run's back); warm: after ANALYZE. Under `cargo test --benches`: a few thousand
//! members on both backends, checking planned = enqueued = the floor's rows, then 0.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Args, Floor, Run};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Executor};
use tidings::app::App;
use tidings::clock::ManualClock;
use tidings::config::Config;

/// Zones without daylight saving time, with their offsets in minutes: the floor's SQL applies a
/// fixed offset (the daemon resolves the zones through jiff as always).
const ZONES: [(&str, i64); 6] = [
    ("Asia/Shanghai", 480),
    ("Asia/Kolkata", 330),
    ("UTC", 0),
    ("Asia/Tokyo", 540),
    ("America/Bogota", -300),
    ("Africa/Lagos", 60),
];

const RULES: &str = r#"
[evaluation]
lookahead = "24h"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"
max_lateness = "2d"
quiet_hours = false
[[rules]]
id = "anniversary"
trigger = "anniversary"
channels = ["sms"]
template = "anniversary"
send_at = "09:30"
max_lateness = "2d"
quiet_hours = false
[[rules]]
id = "winback"
trigger = "inactivity"
days = 30
channels = ["sms"]
template = "winback"
send_at = "09:30"
quiet_hours = false
"#;

const RULE_IDS: [&str; 3] = ["birthday", "anniversary", "winback"];
const NOW: &str = "2026-11-24T00:00:00Z";
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let n = args.count("members", 1_000_000, 3_000);
    let cold = args.flag("cold") || !args.benching;
    let backends = match (args.benching, args.string("backend", "sqlite").as_str()) {
        (false, _) => vec![Backend::Sqlite, Backend::Postgres],
        (true, "postgres") => vec![Backend::Postgres],
        (true, _) => vec![Backend::Sqlite],
    };
    for backend in backends {
        run(&args, backend, n, cold).await;
    }
}

async fn run(args: &Args, backend: Backend, n: usize, cold: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db_name =
        if args.benching { "tidings_bench_w1".to_string() } else { format!("tidings_bench_w1_{}", std::process::id()) };
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("w1.db").display()),
        Backend::Postgres => {
            let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
                .await
                .unwrap();
            admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).await.unwrap();
            format!("postgres://postgres@127.0.0.1:5432/{db_name}")
        }
    };
    let env = vec![
        ("TIDINGS_DATABASE_URL".to_string(), url.clone()),
        ("TIDINGS_OUTBOX_PATH".to_string(), dir.path().join("outbox.jsonl").display().to_string()),
    ];
    let settings = Config::from_toml(RULES, "bench", env).and_then(Config::check).unwrap();
    let now: Timestamp = NOW.parse().unwrap();
    let clock = ManualClock::new(now);
    let app = App::start(settings, Arc::new(clock.clone())).await.unwrap();

    let t = Instant::now();
    seed(backend, &url, n).await;
    println!("W1 {backend:?}: seeded {n} members in {:.1} s", t.elapsed().as_secs_f64());

    let variants: &[bool] = if cold { &[true, false] } else { &[false] };
    for &is_cold in variants {
        if !is_cold {
            analyze(backend, &url).await;
        }
        clear(backend, &url).await;
        let changes = app.store.member_changes().await.unwrap();
        for id in RULE_IDS {
            app.store.set_watermark(id, now, changes, now).await.unwrap();
        }
        let pids = backend_pids(backend, &url, &db_name).await;
        let cpu0 = cpu(&pids);
        common::reset_peak_rss();
        let t = Instant::now();
        let first = app.tick().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let pids = union(pids, backend_pids(backend, &url, &db_name).await);
        let cpu1 = cpu(&pids);
        let peak = common::peak_rss(std::process::id());
        assert!(!first.busy);
        assert_eq!(first.planned, first.enqueued, "every planned message is new on the first tick");
        assert!(first.enqueued > 0);

        // The same tick again: the same window, every row already there.
        for id in RULE_IDS {
            app.store.set_watermark(id, now, changes, now).await.unwrap();
        }
        let t = Instant::now();
        let again = app.tick().await.unwrap();
        let again_secs = t.elapsed().as_secs_f64();
        let cpu2 = cpu(&union(pids, backend_pids(backend, &url, &db_name).await));
        assert_eq!(again.enqueued, 0, "the same tick again enqueues nothing");
        assert_eq!(again.planned, first.planned);

        let (floor_rows, floor_secs, floor_cpu) = floor(backend, &url, &db_name, now).await;
        assert_eq!(floor_rows, first.enqueued, "the floor selects the same rows as the evaluator");

        let stats = if is_cold { "cold: no planner statistics" } else { "warm: after ANALYZE" };
        let variant = format!("{}, {} members, {stats}", backend_name(backend), common::group(n as u64));
        let target = match backend {
            Backend::Postgres => "≤ 1.5x floor; < 5 s at 10M",
            Backend::Sqlite => "≤ 1.5x floor",
        };
        let run = Run {
            workload: "W1".into(),
            variant: format!("{variant}: first tick"),
            items: n as u64,
            unit: "members".into(),
            seconds: secs,
            cpu_us_per_item: cpu1.saturating_sub(cpu0).as_secs_f64() * 1e6 / n as f64,
            peak_rss_mib: common::mib(peak),
            latency: None,
            floor: Some(Floor {
                what: "raw SQL INSERT … SELECT of the same rows".into(),
                seconds: floor_secs,
                cpu_us_per_item: floor_cpu.as_secs_f64() * 1e6 / n as f64,
            }),
            target: target.into(),
            met: Some(secs <= 1.5 * floor_secs && (backend == Backend::Sqlite || n < 10_000_000 || secs < 5.0)),
            notes: format!(
                "{} candidates read, {} enqueued; members seeded by raw bulk SQL (not measured); CPU includes the database server's backends (PostgreSQL)",
                first.members, first.enqueued
            ),
        };
        run.emit();
        Run {
            variant: format!("{variant}: same tick again"),
            seconds: again_secs,
            cpu_us_per_item: cpu2.saturating_sub(cpu1).as_secs_f64() * 1e6 / n as f64,
            floor: None,
            target: "0 enqueued".into(),
            met: Some(again.enqueued == 0),
            notes: format!("{} candidates read, {} planned, 0 enqueued", again.members, again.planned),
            ..run
        }
        .emit();
    }
    drop(app);
    if backend == Backend::Postgres {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))).await.unwrap();
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// This process's CPU time plus that of the PostgreSQL backends serving the run's database.
fn cpu(pids: &[u32]) -> std::time::Duration {
    common::self_cpu() + common::processes_cpu(pids)
}

fn union(mut a: Vec<u32>, b: Vec<u32>) -> Vec<u32> {
    a.extend(b);
    a.sort_unstable();
    a.dedup();
    a
}

async fn backend_pids(backend: Backend, url: &str, db: &str) -> Vec<u32> {
    if backend == Backend::Sqlite {
        return Vec::new();
    }
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(db)
            .fetch_all(&mut c)
            .await
            .unwrap();
    pids.into_iter().map(|p| p as u32).collect()
}

/// One member's row: seeded, so every run writes the same members.
struct Seed {
    birth: String,
    since: String,
    zone: usize,
    last_activity_at: Option<i64>,
}

fn seeds(n: usize, now: Timestamp) -> impl Iterator<Item = (usize, Seed)> {
    let mut rng = StdRng::seed_from_u64(91);
    let now_ms = now.as_millisecond();
    (0..n).map(move |i| {
        // Days 1–28: no Feb 29 members, so the floor's SQL needs no Feb 29 rule.
        let birth =
            format!("{}-{:02}-{:02}", 1950 + rng.random_range(0..50), rng.random_range(1..13), rng.random_range(1..29));
        let since =
            format!("{}-{:02}-{:02}", 2015 + rng.random_range(0..11), rng.random_range(1..13), rng.random_range(1..29));
        let zone = rng.random_range(0..ZONES.len());
        // Activity over the last 400 days, a member in ten never active (then counted from
        // their creation, a year ago).
        let last_activity_at = (!rng.random_bool(0.1)).then(|| now_ms - rng.random_range(0..400 * 86_400_000_i64));
        (i, Seed { birth, since, zone, last_activity_at })
    })
}

fn created_at(now: Timestamp) -> i64 {
    now.as_millisecond() - 365 * 86_400_000
}

async fn seed(backend: Backend, url: &str, n: usize) {
    let now: Timestamp = NOW.parse().unwrap();
    let created = created_at(now);
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            let mut rows = Vec::with_capacity(10_000);
            let flush = async |rows: &mut Vec<serde_json::Value>, c: &mut sqlx::SqliteConnection| {
                sqlx::query(
                    "INSERT INTO members (external_id, name, phone, locale, time_zone, birth_date, member_since,
                                          points, attributes, last_activity_at, created_at, updated_at, change_seq)
                     SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, 'en', j.value ->> 3, j.value ->> 4,
                            j.value ->> 5, 0, '{}', j.value ->> 6, ?2, ?2, 0
                     FROM json_each(?1) j",
                )
                .bind(serde_json::Value::Array(std::mem::take(rows)).to_string())
                .bind(created)
                .execute(&mut *c)
                .await
                .unwrap();
            };
            for (i, s) in seeds(n, now) {
                rows.push(serde_json::json!([
                    format!("w{i:08}"),
                    format!("Member {i}"),
                    format!("+1415{:07}", i % 10_000_000),
                    ZONES[s.zone].0,
                    s.birth,
                    s.since,
                    s.last_activity_at
                ]));
                if rows.len() == 10_000 {
                    flush(&mut rows, &mut c).await;
                }
            }
            if !rows.is_empty() {
                flush(&mut rows, &mut c).await;
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            // Cold means no statistics: autovacuum would analyze the new rows on its own.
            for t in ["members", "messages", "message_history"] {
                c.execute(sqlx::AssertSqlSafe(format!("ALTER TABLE {t} SET (autovacuum_enabled = false)")))
                    .await
                    .unwrap();
            }
            let mut copy = c
                .copy_in_raw(
                    "COPY members (external_id, name, phone, locale, time_zone, birth_date, member_since, points,
                                   attributes, last_activity_at, created_at, updated_at, change_seq) FROM STDIN",
                )
                .await
                .unwrap();
            let mut buf = String::with_capacity(1 << 22);
            for (i, s) in seeds(n, now) {
                let last = s.last_activity_at.map_or("\\N".to_string(), |t| t.to_string());
                buf.push_str(&format!(
                    "w{i:08}\tMember {i}\t+1415{:07}\ten\t{}\t{}\t{}\t0\t{{}}\t{last}\t{created}\t{created}\t0\n",
                    i % 10_000_000,
                    ZONES[s.zone].0,
                    s.birth,
                    s.since
                ));
                if buf.len() > (1 << 22) - 512 {
                    copy.send(buf.as_bytes()).await.unwrap();
                    buf.clear();
                }
            }
            copy.send(buf.as_bytes()).await.unwrap();
            copy.finish().await.unwrap();
        }
    }
}

async fn analyze(backend: Backend, url: &str) {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            c.execute("ANALYZE").await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            c.execute("ANALYZE").await.unwrap();
        }
    }
}

/// Empties the queue (for the next variant) and recreates the floor's table.
async fn clear(backend: Backend, url: &str) {
    let ddl = "CREATE TABLE floor_messages (
        id BIGINT, dedupe_key TEXT NOT NULL UNIQUE, rule_id TEXT NOT NULL, member_id BIGINT NOT NULL,
        occurrence TEXT NOT NULL, channel TEXT NOT NULL, template TEXT NOT NULL, vars TEXT NOT NULL,
        run_at BIGINT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)";
    let ddl_sqlite = ddl.replace("id BIGINT,", "id INTEGER PRIMARY KEY,");
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            for s in ["DELETE FROM message_history", "DELETE FROM messages", "DROP TABLE IF EXISTS floor_messages"] {
                c.execute(s).await.unwrap();
            }
            c.execute(sqlx::AssertSqlSafe(ddl_sqlite)).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            for s in ["TRUNCATE message_history, messages CASCADE", "DROP TABLE IF EXISTS floor_messages"] {
                c.execute(s).await.unwrap();
            }
            let ddl = ddl.replace("id BIGINT,", "id BIGSERIAL PRIMARY KEY,");
            c.execute(sqlx::AssertSqlSafe(ddl)).await.unwrap();
        }
    }
}

/// The floor: for each rule, one hand-written `INSERT … SELECT` of exactly the rows the tick
/// enqueues (same keys), over the same candidate indexes; returns the rows, seconds and CPU.
async fn floor(backend: Backend, url: &str, db: &str, now: Timestamp) -> (u64, f64, std::time::Duration) {
    let day = 86_400_000_i64;
    let (from, to) = (now.as_millisecond(), now.as_millisecond() + day);
    let send_at = 9 * 3_600_000 + 30 * 60_000;
    // The member-local days whose 09:30 can fall in the window, in any of the zones.
    let utc = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let days: Vec<(String, i64, i16)> = (-1..=2)
        .map(|k| {
            let d = utc.checked_add(jiff::Span::new().days(k)).unwrap();
            // NOW is a UTC midnight.
            let ms = now.as_millisecond() + i64::from(k) * day;
            (format!("{:02}-{:02}", d.month(), d.day()), ms, d.year())
        })
        .collect();
    let zones: String =
        ZONES.iter().map(|(z, off)| format!("('{z}', {})", off * 60_000)).collect::<Vec<_>>().join(", ");
    let days_sql: String = days.iter().map(|(md, ms, y)| format!("('{md}', {ms}, {y})")).collect::<Vec<_>>().join(", ");
    let (md_birth, md_since, year) = match backend {
        Backend::Sqlite => {
            ("substr(m.birth_date, -5)", "substr(m.member_since, -5)", "CAST(substr({c}, 1, 4) AS INTEGER)")
        }
        Backend::Postgres => {
            ("right(m.birth_date, 5)", "right(m.member_since, 5)", "CAST(substr({c}, 1, 4) AS INTEGER)")
        }
    };
    let cast = |s: &str| if backend == Backend::Postgres { format!("CAST({s} AS TEXT)") } else { s.to_string() };
    let dated = |rule: &str, md: &str, col: &str| {
        let born = year.replace("{c}", col);
        format!(
            "WITH d(md, ms, y) AS (VALUES {days_sql}), z(zone, off) AS (VALUES {zones})
             INSERT INTO floor_messages (dedupe_key, rule_id, member_id, occurrence, channel, template, vars, run_at,
                                         state, created_at, updated_at)
             SELECT '{rule}:' || {mid} || ':{rule}:' || {y} || ':sms', '{rule}', m.id, '{rule}:' || {y}, 'sms',
                    '{rule}', '{{}}', d.ms + {send_at} - z.off, 'scheduled', {from}, {from}
             FROM d JOIN members m ON {md} = d.md JOIN z ON z.zone = m.time_zone
             WHERE m.erased_at IS NULL AND d.ms + {send_at} - z.off > {from} AND d.ms + {send_at} - z.off <= {to}
               AND {born} < d.y
             ON CONFLICT (dedupe_key) DO NOTHING",
            mid = cast("m.id"),
            y = cast("d.y"),
        )
    };
    // Inactivity: the crossing 30 days after the last activity (or creation), sent at the first
    // member-local 09:30 at or after it. The occurrence key names the crossing instant, so the
    // floor inserts by member alone here (one crossing per member and window).
    let base = "coalesce(m.last_activity_at, m.created_at)";
    let crossing = format!("({base} + {})", 30 * day);
    let local = format!("({crossing} + z.off)");
    let slot_local = format!("({local} - {local} % {day} + {send_at})");
    let slot = format!("(CASE WHEN {slot_local} < {local} THEN {slot_local} + {day} ELSE {slot_local} END - z.off)");
    let lo = from - 30 * day - 2 * day;
    let hi = to - 30 * day;
    let winback = format!(
        "WITH z(zone, off) AS (VALUES {zones})
         INSERT INTO floor_messages (dedupe_key, rule_id, member_id, occurrence, channel, template, vars, run_at,
                                     state, created_at, updated_at)
         SELECT 'winback:' || {mid} || ':inactive30:' || {cr} || ':sms', 'winback', m.id, 'inactive30', 'sms',
                'winback', '{{}}', {slot}, 'scheduled', {from}, {from}
         FROM members m JOIN z ON z.zone = m.time_zone
         WHERE m.erased_at IS NULL AND {base} > {lo} AND {base} <= {hi} AND {slot} > {from} AND {slot} <= {to}
         ON CONFLICT (dedupe_key) DO NOTHING",
        mid = cast("m.id"),
        cr = cast(&crossing),
    );
    let statements =
        [dated("birthday", md_birth, "m.birth_date"), dated("anniversary", md_since, "m.member_since"), winback];
    let count = "SELECT count(*) FROM floor_messages";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            let cpu0 = common::self_cpu();
            let t = Instant::now();
            let mut tx = c.begin().await.unwrap();
            for s in &statements {
                tx.execute(sqlx::AssertSqlSafe(s.clone())).await.unwrap();
            }
            tx.commit().await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let cpu = common::self_cpu().saturating_sub(cpu0);
            let rows: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
            (rows as u64, secs, cpu)
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut c).await.unwrap();
            let _ = db;
            let cpu0 = common::self_cpu() + common::process_cpu(pid as u32);
            let t = Instant::now();
            let mut tx = c.begin().await.unwrap();
            for s in &statements {
                tx.execute(sqlx::AssertSqlSafe(s.clone())).await.unwrap();
            }
            tx.commit().await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let cpu = (common::self_cpu() + common::process_cpu(pid as u32)).saturating_sub(cpu0);
            let rows: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
            (rows as u64, secs, cpu)
        }
    }
}
