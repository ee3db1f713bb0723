//! Several instances on one PostgreSQL database: one evaluator at a time, wake-ups across
//! instances, claims that never overlap.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::app::{Backend, TestApp};

const RULES: &str = "[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\nchannels = [\"sms\"]\n\
                     template = \"birthday\"\nsend_at = \"09:30\"\nmax_lateness = \"6h\"\n";

async fn with_birthdays(n: usize) -> TestApp {
    let t = TestApp::start_on(Backend::Postgres, RULES, "2026-11-23T09:00:00Z").await;
    let jsonl = (0..n)
        .map(|i| {
            json!({"external_id": format!("p{i}"), "name": "Pat", "phone": format!("+1415555{i:04}"),
                   "time_zone": "UTC", "birth_date": "1990-11-23"})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(t.import_jsonl(&jsonl).await.counts.inserted, n as u64);
    t
}

#[tokio::test]
async fn one_instance_evaluates_at_a_time() {
    let t = with_birthdays(3).await;
    let other = t.another_instance().await;
    let held = t.app.store.try_evaluator_lock().await.unwrap().expect("the lock is free");
    assert!(other.store.try_evaluator_lock().await.unwrap().is_none(), "taken by the first instance");
    let busy = other.tick().await.unwrap();
    assert!(busy.busy && busy.enqueued == 0, "{busy:?}");
    t.app.store.release_evaluator_lock(held).await;
    let report = other.tick().await.unwrap();
    assert!(!report.busy);
    assert_eq!(report.enqueued, 3);
    // An instance that dies holding it (its session closes) does not keep it.
    let orphan = t.app.store.try_evaluator_lock().await.unwrap().expect("free again");
    drop(orphan);
    let mut freed = None;
    for _ in 0..500 {
        freed = other.store.try_evaluator_lock().await.unwrap();
        if freed.is_some() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(freed.is_some(), "a dropped holder's lock is released with its session");
}

#[tokio::test]
async fn an_instance_is_woken_when_another_schedules_messages() {
    let t = with_birthdays(2).await;
    let other = t.another_instance().await;
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let listening = wake.notified();
    tokio::pin!(listening);
    listening.as_mut().enable();
    let task = other.store.listen_due(wake.clone(), stop.clone()).expect("PostgreSQL listens");
    tokio::time::timeout(Duration::from_secs(10), listening).await.expect("listening");

    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    assert_eq!(t.tick().await.enqueued, 2);
    tokio::time::timeout(Duration::from_secs(10), woken).await.expect("woken by the other instance's NOTIFY");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn claims_by_two_instances_never_overlap() {
    let t = with_birthdays(200).await;
    let other = t.another_instance().await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    let lease = t.now().checked_add(jiff::SignedDuration::from_mins(2)).unwrap();
    let (a, b) = tokio::join!(
        t.app.store.claim("instance-a", t.now(), lease, 150),
        other.store.claim("instance-b", t.now(), lease, 150)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 200, "{} + {}", a.len(), b.len());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "no message claimed twice");
}
