//! The store contract, on both backends, for the statements the pipeline and API tests reach
//! only indirectly: enqueue's idempotence, leases (renew, settle without claiming), the next due
//! instant, an upsert batch naming a member twice, and opening an existing database.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tidings::channels::ChannelKind;
use tidings::members::MemberInput;
use tidings::plan::NewMessage;
use tidings::store::{Finalize, MessageFilter, Store};

use crate::support::app::{Backend, TestApp};

const NOW: &str = "2026-11-23T09:00:00Z";

fn member(id: &str, name: &str, email: Option<&str>) -> MemberInput {
    serde_json::from_value(json!({
        "external_id": id, "name": name, "phone": "+14155550100", "email": email, "locale": null,
        "time_zone": "UTC", "birth_date": null, "member_since": null, "tier": null, "points": 0,
        "attributes": {"vip": true}
    }))
    .unwrap()
}

fn message(member_id: i64, key: &str, run_at: Timestamp, deadline: Option<Timestamp>) -> NewMessage {
    NewMessage {
        dedupe_key: key.into(),
        rule_id: "r".into(),
        member_id,
        occurrence: "o".into(),
        channel: ChannelKind::Sms,
        template: "birthday".into(),
        vars: serde_json::Map::new(),
        run_at,
        deadline,
        skip: None,
        fallback: Vec::new(),
        purpose: tidings::channels::Purpose::Marketing,
        experiment: None,
        variant: None,
    }
}

async fn upserts_enqueues_and_leases_behave_the_same(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    let store = &t.app.store;
    let now = t.now();

    // A batch naming a member twice: the later row wins; an identical re-run changes nothing,
    // NULLs included.
    let counts = store
        .upsert_members(
            &[member("a", "Ada", None), member("b", "Bo", None), member("a", "Ada L", Some("ada@example.com"))],
            now,
        )
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated, counts.unchanged), (2, 1, 0));
    let before = store.member_changes().await.unwrap();
    let counts = store
        .upsert_members(&[member("a", "Ada L", Some("ada@example.com")), member("b", "Bo", None)], now)
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated, counts.unchanged), (0, 0, 2));
    assert_eq!(store.member_changes().await.unwrap(), before + 1, "one change number per write transaction");
    let a = store.member_by_external_id("a").await.unwrap().unwrap();
    assert_eq!((a.name.as_str(), a.email.as_deref()), ("Ada L", Some("ada@example.com")));
    assert_eq!(a.attributes["vip"], json!(true));
    assert_eq!(store.member_count().await.unwrap(), 2);
    let b = store.member_by_external_id("b").await.unwrap().unwrap();
    assert_eq!(store.members_after(a.id.min(b.id), 10, true).await.unwrap().len(), 1);
    assert_eq!(store.members_after(a.id.min(b.id), 10, false).await.unwrap().len(), 1);
    let mut ids: Vec<i64> = store.members_by_ids(&[a.id, b.id]).await.unwrap().iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids.len(), 2);

    // Enqueue is idempotent, a key twice in one batch included.
    let due = now.checked_add(SignedDuration::from_mins(30)).unwrap();
    let late = now.checked_add(SignedDuration::from_mins(10)).unwrap();
    let batch = [
        message(a.id, "k1", due, None),
        message(b.id, "k2", due, None),
        message(a.id, "k1", due, None),
        message(b.id, "k3", now, Some(late)),
    ];
    assert_eq!(store.enqueue(&batch, now).await.unwrap(), 3);
    assert_eq!(store.enqueue(&batch, now).await.unwrap(), 0);
    assert_eq!(store.next_due().await.unwrap(), Some(now));

    // A claim at `now` takes k3; its lease is renewed, so settling before the new end leaves it.
    let lease = now.checked_add(SignedDuration::from_mins(1)).unwrap();
    let claimed = store.claim("w1", now, lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.dedupe_key.as_str()).collect::<Vec<_>>(), ["k3"]);
    let k3 = claimed[0].id;
    let renewed = now.checked_add(SignedDuration::from_mins(5)).unwrap();
    assert_eq!(store.renew_lease("w1", &[k3], renewed).await.unwrap(), 1);
    assert_eq!(store.renew_lease("w2", &[k3], renewed).await.unwrap(), 0, "only the owner renews");
    store.settle(now.checked_add(SignedDuration::from_mins(2)).unwrap()).await.unwrap();
    assert_eq!(t.states().await.get("claimed"), Some(&1));
    // After the renewed lease: back to scheduled, then skipped as late (its deadline passed).
    store.settle(now.checked_add(SignedDuration::from_mins(11)).unwrap()).await.unwrap();
    let rows = store.messages(&MessageFilter { id: Some(k3), ..Default::default() }).await.unwrap();
    assert_eq!(rows[0].state, "skipped");
    assert!(rows[0].reason.as_deref().unwrap().starts_with("late"));
    let history: Vec<String> = store.history(k3).await.unwrap().into_iter().map(|h| h.state).collect();
    assert_eq!(history, ["scheduled", "scheduled", "skipped"]);
    assert_eq!(store.finalize("w1", &[(k3, 1, Finalize::Failed { error: "x".into() })], now).await.unwrap(), 0);

    // Two claims in run_at order, the rest of the batch limited.
    let claimed = store.claim("w2", due, lease, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].dedupe_key, "k1");
    assert_eq!(store.next_due().await.unwrap(), Some(due));
}

async fn an_existing_database_opens_without_migrating(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    let url = t.app.settings().raw.database.url.clone();
    let store = Store::open_existing(&url).await.unwrap();
    assert_eq!(
        store.backend_name(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    let status = store.migration_status().await.unwrap();
    assert!(!status.is_empty() && status.iter().all(|(_, _, applied)| *applied), "{status:?}");
    store.ping().await.unwrap();
    // Migrating again is harmless.
    store.migrate().await.unwrap();
    store.close().await;
    assert!(tidings::store::lock_for_daemon(&url).is_ok());
}

on_both_backends!(upserts_enqueues_and_leases_behave_the_same, an_existing_database_opens_without_migrating);
