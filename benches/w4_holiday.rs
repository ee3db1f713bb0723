//! W4, a holiday greeting to everyone: `cargo bench --bench w4_holiday -- --members 1000000`.
//!
//! Deterministic members (seeded) written by raw bulk SQL into a temporary SQLite file (not
//! measured), a holiday rule for every member, a manual clock. Measured from the start of the
//! evaluation to the last send: the tick that plans and enqueues a message per member, then the
//! dispatcher draining the queue through the outbox channel (a JSON line per message in a file:
//! nothing leaves the machine). Under `cargo test --benches`: 2,000 members, checking every
//! member's greeting reached the outbox exactly once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use common::{Args, Run};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use tidings::app::App;
use tidings::clock::ManualClock;
use tidings::config::Config;

const ZONES: [&str; 8] = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Pacific/Kiritimati",
    "UTC",
];

const RULES: &str = r#"
[evaluation]
lookahead = "48h"
[consent]
marketing = "unless_revoked"
[dispatch]
batch_size = 1000
concurrency = 64
[[rules]]
id = "thanksgiving"
trigger = "holiday"
date = "11-26"
names = { en = "Thanksgiving", zh-CN = "感恩节" }
channels = ["sms"]
template = "holiday"
send_at = "09:30"
max_lateness = "2d"
quiet_hours = false
"#;

const NOW: &str = "2026-11-25T00:00:00Z";

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let n = args.count("members", 1_000_000, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w4.db");
    let outbox = dir.path().join("outbox.jsonl");
    let env = vec![
        ("TIDINGS_DATABASE_URL".to_string(), format!("sqlite://{}", db.display())),
        ("TIDINGS_OUTBOX_PATH".to_string(), outbox.display().to_string()),
    ];
    let settings = Config::from_toml(RULES, "bench", env).and_then(Config::check).unwrap();
    let now: Timestamp = NOW.parse().unwrap();
    let clock = ManualClock::new(now);
    let app = App::start(settings, Arc::new(clock.clone())).await.unwrap();
    let t = Instant::now();
    seed(&format!("sqlite://{}", db.display()), n, now).await;
    println!("W4: seeded {n} members in {:.1} s", t.elapsed().as_secs_f64());
    let changes = app.store.member_changes().await.unwrap();
    app.store.set_watermark("thanksgiving", now, changes, now).await.unwrap();

    common::reset_peak_rss();
    let cpu0 = common::self_cpu();
    let t = Instant::now();
    let tick = app.tick().await.unwrap();
    let eval_secs = t.elapsed().as_secs_f64();
    assert_eq!(tick.enqueued, n as u64, "one greeting per member");
    // Every member's 09:30 on Nov 26 has passed, in every zone (a manual clock: no waiting).
    clock.set(now.checked_add(SignedDuration::from_hours(48)).unwrap());
    let sent = app.dispatch_all().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cpu = common::self_cpu() - cpu0;
    let peak = common::peak_rss(std::process::id());
    assert_eq!(sent, n, "every message sent");

    // Each member's greeting is in the outbox exactly once.
    let text = std::fs::read_to_string(&outbox).unwrap();
    let mut keys = HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(keys.insert(v["dedupe_key"].as_str().unwrap().to_string()), "sent twice: {line}");
    }
    assert_eq!(keys.len(), n);

    Run {
        workload: "W4".into(),
        variant: format!("sqlite, {} members, outbox", common::group(n as u64)),
        items: sent as u64,
        unit: "messages".into(),
        seconds: secs,
        cpu_us_per_item: cpu.as_secs_f64() * 1e6 / sent as f64,
        peak_rss_mib: common::mib(peak),
        latency: None,
        floor: None,
        target: "< 120 s".into(),
        met: Some(secs < 120.0),
        notes: format!(
            "evaluation {eval_secs:.1} s ({} planned), dispatch {:.1} s; members seeded by raw bulk SQL (not measured)",
            tick.planned,
            secs - eval_secs
        ),
    }
    .emit();
}

async fn seed(url: &str, n: usize, now: Timestamp) {
    let mut rng = StdRng::seed_from_u64(94);
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let created = now.as_millisecond() - 365 * 86_400_000;
    let mut rows = Vec::with_capacity(10_000);
    for i in 0..n {
        rows.push(serde_json::json!([
            format!("h{i:08}"),
            format!("Member {i}"),
            format!("+1415{:07}", i % 10_000_000),
            if i % 3 == 0 { "zh-CN" } else { "en" },
            ZONES[rng.random_range(0..ZONES.len())],
        ]));
        if rows.len() == 10_000 || i + 1 == n {
            sqlx::query(
                "INSERT INTO members (external_id, name, phone, locale, time_zone, points, attributes, created_at,
                                      updated_at, change_seq)
                 SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, 0, '{}', ?2, ?2, 0
                 FROM json_each(?1) j",
            )
            .bind(serde_json::Value::Array(std::mem::take(&mut rows)).to_string())
            .bind(created)
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
}
