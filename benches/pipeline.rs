//! `cargo bench --bench pipeline [-- MEMBERS]` (100,000 by default): the pipeline's hot paths
//! on a temporary SQLite file, with deterministic members (seeded) and a manual clock. Prints
//! one line per workload: import; a first evaluation tick (birthday, anniversary, inactivity for
//! everyone, a 24-hour window); the same tick again (its window is spent: nothing to enqueue);
//! the steady one-minute tick; dispatch of the due messages through the outbox; purchase events
//! (none for one member in five, a year of repeat buying for the rest) and the nightly value refresh over them (histories read,
//! BG/NBD fit, RFM scores and segments written). Nothing leaves the machine.

use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidings::app::App;
use tidings::clock::ManualClock;
use tidings::config::Config;
use tidings::members::{EventInput, MemberInput};

const ZONES: [&str; 8] = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Europe/Berlin",
    "UTC",
];

fn members(n: usize) -> Vec<MemberInput> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| MemberInput {
            external_id: format!("b{i:08}"),
            name: format!("Member {i}"),
            phone: Some(format!("+1415{:07}", i % 10_000_000)),
            email: (i % 2 == 0).then(|| format!("b{i}@example.com")),
            locale: Some(if i % 3 == 0 { "zh-CN" } else { "en" }.into()),
            time_zone: Some(ZONES[i % ZONES.len()].into()),
            birth_date: Some(jiff::civil::date(
                1950 + rng.random_range(0..50),
                rng.random_range(1..13),
                rng.random_range(1..29),
            )),
            lunar_birthday: None,
            member_since: Some(jiff::civil::date(
                2015 + rng.random_range(0..10),
                rng.random_range(1..13),
                rng.random_range(1..29),
            )),
            tier: None,
            points: rng.random_range(0..100_000),
            attributes: Default::default(),
        })
        .collect()
}

const RULES: &str = r#"
[evaluation]
lookahead = "24h"
[dispatch]
batch_size = 500
concurrency = 64
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms", "email"]
template = "birthday"
max_lateness = "2d"
[[rules]]
id = "anniversary"
trigger = "anniversary"
channels = ["email"]
template = "anniversary"
max_lateness = "2d"
[[rules]]
id = "winback"
trigger = "inactivity"
days = 30
channels = ["sms"]
template = "winback"
"#;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize =
        std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(if benching { 100_000 } else { 1_000 });
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("TIDINGS_DATABASE_URL".to_string(), format!("sqlite://{}", dir.path().join("bench.db").display())),
        ("TIDINGS_OUTBOX_PATH".to_string(), dir.path().join("outbox.jsonl").display().to_string()),
    ];
    let settings = Config::from_toml(RULES, "bench", env).and_then(Config::check).unwrap();
    let start: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let app = App::start(settings, Arc::new(clock.clone())).await.unwrap();
    println!("members: {n}");

    let rows = members(n);
    let t = Instant::now();
    for chunk in rows.chunks(1000) {
        app.store.upsert_members(chunk, start).await.unwrap();
    }
    report("import", n, t);

    // A day later, so the first tick is an ordinary one: a 24-hour window for every rule.
    clock.set(start.checked_add(SignedDuration::from_hours(1)).unwrap());
    let t = Instant::now();
    let first = app.tick().await.unwrap();
    report(&format!("tick (24h window, {} planned, {} enqueued)", first.planned, first.enqueued), n, t);
    let t = Instant::now();
    let again = app.tick().await.unwrap();
    assert_eq!(again.enqueued, 0);
    report("tick again (nothing new)", n, t);

    // The steady state: a minute later, a one-minute window.
    clock.set(start.checked_add(SignedDuration::from_mins(61)).unwrap());
    let t = Instant::now();
    let steady = app.tick().await.unwrap();
    report(&format!("tick a minute later ({} enqueued)", steady.enqueued), n, t);

    clock.set(start.checked_add(SignedDuration::from_hours(25)).unwrap());
    let t = Instant::now();
    let sent = app.dispatch_all().await.unwrap();
    report("dispatch through the outbox", sent, t);

    let events = purchases(n, start);
    let t = Instant::now();
    for chunk in events.chunks(5000) {
        app.store.record_events(chunk, start).await.unwrap();
    }
    report("record purchase events", events.len(), t);
    let t = Instant::now();
    let refreshed = app.refresh_value().await.unwrap().unwrap();
    assert!(refreshed.fit.accepted, "{:?}", refreshed.fit);
    report(
        &format!("value refresh ({} customers; fit {} ms)", refreshed.customers, refreshed.fit_ms),
        refreshed.members as usize,
        t,
    );
}

/// Purchases drawn as repeat buying works: each member buys at random at their own rate and may
/// stop after each purchase; some never buy.
fn purchases(n: usize, now: Timestamp) -> Vec<EventInput> {
    let mut rng = StdRng::seed_from_u64(43);
    let mut events = Vec::new();
    for i in 0..n {
        let rate = 1.0 / (10.0 * 12f64.powf(rng.random::<f64>()));
        // Members differ widely in how likely they are to stop (mostly rarely, some soon).
        let stop = 0.6 * rng.random::<f64>().powi(3);
        let mut t: f64 = rng.random_range(1.0..365.0);
        let mut k = 0;
        while t > 0.0 && i % 5 != 0 {
            events.push(EventInput {
                event_id: Some(format!("b{i:08}-{k}")),
                member: format!("b{i:08}"),
                kind: "purchase".into(),
                amount: Some(f64::from(rng.random_range(10..500_u32))),
                at: now.checked_sub(SignedDuration::from_secs_f64(t * 86_400.0)).unwrap(),
                data: None,
            });
            if rng.random::<f64>() < stop {
                break;
            }
            t -= -(1.0 - rng.random::<f64>()).ln() / rate;
            k += 1;
        }
    }
    events
}

fn report(what: &str, items: usize, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    println!("{what:<60} {items:>9} items {secs:>8.3} s {:>10.0}/s", items as f64 / secs.max(1e-9));
}
