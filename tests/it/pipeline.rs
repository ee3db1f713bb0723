//! The whole pipeline on the real daemon pieces: members in, messages out through a real SMTP
//! server and a Twilio-checking HTTP server, with the clock moved by hand across days, a DST
//! change, restarts and crashes. Nothing may be sent twice and nothing lost.

use std::collections::{BTreeMap, HashMap};

use jiff::SignedDuration;
use jiff::civil::Date;
use serde_json::json;
use tidings::store::{Finalize, MessageFilter, State};

use crate::support::app::{Backend, TestApp};
use crate::support::copy_dir;
use crate::support::smtp::{SmtpOptions, SmtpPeer};
use crate::support::twilio::{Reply, TwilioPeer};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-token";

const ZONES: [&str; 5] = ["America/New_York", "Europe/London", "Asia/Shanghai", "Asia/Kolkata", "UTC"];

fn config(twilio: &TwilioPeer, smtp: &SmtpPeer, extra: &str) -> String {
    format!(
        r#"
[programme]
name = "Jade Club"
[channels]
sms = "twilio"
email = "smtp"
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+14155550100"
base_url = "{base}"
timeout_secs = 5
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Jade Club <club@example.com>"
pool_size = 4
timeout_secs = 5
[dispatch]
batch_size = 100
max_attempts = 3
backoff_base = "1m"
backoff_max = "10m"
{extra}
"#,
        base = twilio.base_url(),
        port = smtp.port(),
    )
}

/// Service rules: this test is about exactly-once delivery across restarts and DST, so its
/// members get every rule's message; caps and collisions between marketing messages are
/// tested in tests/it/caps.rs.
const RULES: &str = r#"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms", "email"]
template = "birthday"
purpose = "service"
send_at = "09:30"
max_lateness = "6h"

[[rules]]
id = "anniversary"
trigger = "anniversary"
channels = ["email"]
template = "anniversary"
purpose = "service"
send_at = "10:00"

[[rules]]
id = "all-saints"
trigger = "holiday"
date = "11-01"
names = { en = "All Saints' Day", zh-CN = "万圣节" }
channels = ["push"]
template = "holiday"
purpose = "service"
send_at = "08:00"

[[rules]]
id = "winback"
trigger = "inactivity"
days = 30
channels = ["sms"]
template = "winback"
purpose = "service"
send_at = "11:00"
"#;

fn phone(i: usize) -> String {
    format!("+1415555{i:04}")
}

/// A thousand members: zones around the world, birthdays Oct 31 to Nov 3, half with email,
/// a tenth with a membership anniversary in the run.
fn members_jsonl() -> String {
    (0..1000)
        .map(|i| {
            let mut m = json!({
                "external_id": format!("m{i:04}"),
                "name": if i % 3 == 0 { format!("王{i}") } else { format!("D'Arcy O'Neil {i}") },
                "phone": phone(i),
                "locale": if i % 3 == 0 { "zh-CN" } else { "en" },
                "time_zone": ZONES[i % ZONES.len()],
                "birth_date": Date::new(1980 + (i % 30) as i16, 10, 31).unwrap()
                    .checked_add(jiff::Span::new().days((i % 4) as i64)).unwrap().to_string(),
            });
            if i % 2 == 0 {
                m["email"] = json!(format!("m{i:04}@example.com"));
            }
            if i % 10 == 0 {
                m["member_since"] = json!(format!("2020-11-0{}", 1 + i % 3));
            }
            m.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_thousand_members_over_days_and_a_dst_change_get_each_message_exactly_once(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let mut t = TestApp::start_on(backend, &config(&twilio, &smtp, RULES), "2026-10-30T00:00:00Z").await;

    let report = t.import_jsonl(&members_jsonl()).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.counts.inserted, 1000);
    // Twenty members last bought on Oct 3: they cross 30 days of silence on Nov 2.
    let events: Vec<_> = (0..1000)
        .step_by(50)
        .map(|i| tidings::members::EventInput {
            event_id: Some(format!("e{i}")),
            member: format!("m{i:04}"),
            kind: "purchase".into(),
            amount: Some(42.0),
            at: "2026-10-03T12:00:00Z".parse().unwrap(),
            data: None,
        })
        .collect();
    t.app.store.record_events(&events, t.now()).await.unwrap();

    let step = SignedDuration::from_mins(30);
    // Two days, then a restart as after a crash (nothing drained), then the rest.
    t.run_until("2026-11-01T06:00:00Z", step).await;
    let before_restart = twilio.count();
    assert!(before_restart > 0);
    t = t.restart().await;
    while t.now() < "2026-11-04T12:00:00Z".parse().unwrap() {
        let first = t.tick().await;
        // The same window evaluated again inserts nothing.
        let again = t.tick().await;
        assert_eq!(again.enqueued, 0, "a repeated tick enqueued {again:?} after {first:?}");
        t.dispatch_all().await;
        t.advance(step);
    }
    t.tick().await;
    t.dispatch_all().await;

    // SMS: one birthday greeting per member, plus a win-back for each of the twenty.
    assert!(twilio.violations().is_empty(), "{:?}", twilio.violations());
    let mut per_phone: HashMap<String, Vec<String>> = HashMap::new();
    for r in twilio.received() {
        per_phone.entry(r.field("To").unwrap().to_string()).or_default().push(r.field("Body").unwrap().to_string());
    }
    assert_eq!(twilio.count(), 1000 + 20);
    for i in 0..1000 {
        let expected = if i % 50 == 0 { 2 } else { 1 };
        assert_eq!(
            per_phone.get(&phone(i)).map_or(0, Vec::len),
            expected,
            "member {i}: {:?}",
            per_phone.get(&phone(i))
        );
    }
    // Apostrophes stay apostrophes in SMS (member 1 is English: greeted by first name).
    assert!(per_phone[&phone(1)][0].contains("Happy birthday, D'Arcy!"), "{:?}", per_phone[&phone(1)]);
    assert!(twilio.received().iter().all(|r| !r.field("Body").unwrap().contains("&#x27;")));

    // Email: a birthday greeting for each of the 500 with an address, and 100 anniversaries.
    let mail = smtp.received();
    assert_eq!(mail.len(), 500 + 100);
    let mut ids: Vec<String> = mail
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data).to_string();
            text.lines().find(|l| l.to_ascii_lowercase().starts_with("message-id:")).unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 600, "every email has its own Message-ID");

    // Push went to the outbox: one All Saints' greeting per member.
    let outbox = t.outbox();
    assert_eq!(outbox.len(), 1000);
    assert!(outbox.iter().all(|l| l["rule"] == "all-saints" && l["message"]["channel"] == "push"));

    // Every message is accounted for: sent, or skipped with a reason (no email address).
    let states = t.states().await;
    assert_eq!(states.get("sent"), Some(&(1020 + 600 + 1000)));
    assert_eq!(states.get("skipped"), Some(&500), "{states:?}");
    assert_eq!(states.len(), 2, "{states:?}");

    // Send times are member-local across New York's DST change (Nov 1, 02:00 EDT -> 01:00 EST).
    let expect_run_at = |member: usize, at: &str| {
        let store = t.app.store.clone();
        let at = at.to_string();
        async move {
            let rows = store
                .messages(&MessageFilter {
                    member: Some(format!("m{member:04}")),
                    rule_id: Some("birthday".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(!rows.is_empty());
            for r in rows {
                assert_eq!(r.run_at.to_string(), at, "member {member} {}", r.channel);
            }
        }
    };
    // i % 5 == 0 is New York; i % 4 picks Oct 31 + n.
    expect_run_at(0, "2026-10-31T13:30:00Z").await; // Oct 31, EDT
    expect_run_at(5, "2026-11-01T14:30:00Z").await; // Nov 1, EST
    expect_run_at(10, "2026-11-02T14:30:00Z").await;
    expect_run_at(2, "2026-11-02T01:30:00Z").await; // Shanghai, Nov 2 09:30 +08
    expect_run_at(3, "2026-11-03T04:00:00Z").await; // Kolkata, Nov 3 09:30 +05:30
}

/// A small app with three members whose birthday is today (UTC), sending through the peers.
async fn three_birthdays(backend: Backend, twilio: &TwilioPeer, smtp: &SmtpPeer, extra: &str) -> TestApp {
    three_birthdays_with_env(backend, twilio, smtp, extra, &[]).await
}

async fn three_birthdays_with_env(
    backend: Backend,
    twilio: &TwilioPeer,
    smtp: &SmtpPeer,
    extra: &str,
    env: &[(&str, &str)],
) -> TestApp {
    let rules = format!(
        "{extra}\n[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\nsend_at = \"09:30\"\nmax_lateness = \"6h\"\n"
    );
    let t = TestApp::start_with_env_on(backend, &config(twilio, smtp, &rules), "2026-11-23T09:00:00Z", env).await;
    let jsonl = (0..3)
        .map(|i| {
            json!({"external_id": format!("b{i}"), "name": format!("Ada {i}"), "phone": phone(i),
                   "time_zone": "UTC", "birth_date": "1990-11-23"})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(t.import_jsonl(&jsonl).await.counts.inserted, 3);
    t
}

async fn a_crash_after_claiming_loses_nothing_and_a_crash_mid_send_is_never_resent(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let mut t = three_birthdays(backend, &twilio, &smtp, "").await;
    assert_eq!(t.tick().await.enqueued, 3);
    t.set("2026-11-23T09:30:00Z");

    // A worker claims two messages and dies: one before handing it to the provider, one while
    // the provider had it.
    let store = &t.app.store;
    let lease = t.now().checked_add(SignedDuration::from_mins(2)).unwrap();
    let claimed = store.claim("doomed", t.now(), lease, 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let mid_send = &claimed[1];
    let moved = store
        .mark_sending("doomed", &[(mid_send.id, mid_send.attempt, mid_send.channel, "{}".into())], t.now())
        .await
        .unwrap();
    assert_eq!(moved, vec![mid_send.id]);

    t = t.restart().await;
    // While the dead worker's lease runs, its messages stay put; the third goes out.
    assert_eq!(t.dispatch_all().await, 1);
    assert_eq!(twilio.count(), 1);
    // Its lease expires: the claimed-only message is sent; the mid-send one is ambiguous.
    t.advance(SignedDuration::from_mins(3));
    t.dispatch_all().await;
    assert_eq!(twilio.count(), 2);
    let states = t.states().await;
    assert_eq!(states.get("sent"), Some(&2));
    assert_eq!(states.get("ambiguous"), Some(&1));
    // Each message names the instance that handled it last.
    for row in t.app.store.messages(&MessageFilter::default()).await.unwrap() {
        let expected = if row.state == "ambiguous" { "doomed" } else { t.app.instance_id.as_str() };
        assert_eq!(row.instance.as_deref(), Some(expected), "{row:?}");
    }
    let history = t.app.store.history(mid_send.id).await.unwrap();
    assert!(history.last().unwrap().detail.as_deref().unwrap().contains("delivery unknown"), "{history:?}");
    // Ticking and dispatching again sends nothing more.
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(twilio.count(), 2);
    // Once an operator has sent it again, the old worker's late result is fenced out...
    let doomed = (mid_send.id, mid_send.attempt, Finalize::Failed { error: "late".into() });
    let only = MessageFilter { id: Some(mid_send.id), ..Default::default() };
    assert_eq!(t.app.store.retry_messages(&only, t.now(), "retried by an operator").await.unwrap(), 1);
    assert_eq!(t.app.store.finalize("doomed", std::slice::from_ref(&doomed), t.now()).await.unwrap(), 0);
    t.dispatch_all().await;
    assert_eq!(t.states().await.get("sent"), Some(&3));
}

async fn a_worker_whose_lease_was_taken_over_sends_nothing(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let t = three_birthdays(backend, &twilio, &smtp, "").await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    let store = &t.app.store;
    let lease = t.now().checked_add(SignedDuration::from_mins(2)).unwrap();
    let stale = store.claim("stalled", t.now(), lease, 3).await.unwrap();
    assert_eq!(stale.len(), 3);
    // The stalled worker's lease runs out; this instance takes the work over and sends it.
    t.advance(SignedDuration::from_mins(3));
    assert_eq!(t.dispatch_all().await, 3);
    // The stalled worker wakes and tries to hand its batch to the provider: the fence refuses.
    let marks: Vec<_> = stale.iter().map(|c| (c.id, c.attempt, c.channel, "{}".to_string())).collect();
    assert!(store.mark_sending("stalled", &marks, t.now()).await.unwrap().is_empty());
    assert_eq!(twilio.count(), 3, "each sent once, by the instance holding the lease");
}

async fn a_slow_worker_s_own_result_settles_what_its_expired_lease_left_ambiguous(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let t = three_birthdays(backend, &twilio, &smtp, "").await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    // A worker hands one message to its provider, then stalls (the database is away, say) past
    // its lease; another worker settles it as ambiguous and, rightly, does not resend it.
    let store = &t.app.store;
    let lease = t.now().checked_add(SignedDuration::from_mins(2)).unwrap();
    let c = store.claim("slow", t.now(), lease, 1).await.unwrap().remove(0);
    store.mark_sending("slow", &[(c.id, c.attempt, c.channel, "{}".into())], t.now()).await.unwrap();
    t.advance(SignedDuration::from_mins(3));
    t.dispatch_all().await;
    let row = |id| async move {
        store.messages(&MessageFilter { id: Some(id), ..Default::default() }).await.unwrap().remove(0)
    };
    assert_eq!(row(c.id).await.state, "ambiguous");
    // The slow worker comes back with the provider's answer: it is recorded, as it is the truth.
    let sent = Finalize::Sent { provider: "twilio".into(), provider_id: "SM1".into() };
    assert_eq!(store.finalize("slow", &[(c.id, c.attempt, sent)], t.now()).await.unwrap(), 1);
    let settled = row(c.id).await;
    assert_eq!((settled.state.as_str(), settled.provider_id.as_deref()), ("sent", Some("SM1")));
    // Another worker's result for it is still refused.
    let other = Finalize::Failed { error: "late".into() };
    assert_eq!(store.finalize("someone-else", &[(c.id, c.attempt, other)], t.now()).await.unwrap(), 0);
}

async fn transient_failures_retry_with_backoff_permanent_ones_fail_and_exhausted_ones_die(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    // One send at a time, in id order, so the scripted answers meet the intended members.
    let t = three_birthdays_with_env(backend, &twilio, &smtp, "", &[("TIDINGS_DISPATCH_CONCURRENCY", "1")]).await;
    // b0: a 503, then accepted. b1: a bad number, permanently. b2: always 503 (3 attempts).
    twilio.on_number(&phone(1), Reply::error(400, 21211, "The 'To' number is not a valid phone number."));
    twilio.on_number(&phone(2), Reply::error(503, 20500, "Service unavailable"));
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    twilio.script(1, Reply::error(503, 20500, "Service unavailable"));
    t.dispatch_all().await;
    let rows = |state: State| {
        let store = t.app.store.clone();
        async move { store.messages(&MessageFilter { state: Some(state), ..Default::default() }).await.unwrap() }
    };
    let failed = rows(State::Failed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].member, "b1");
    assert!(failed[0].reason.as_deref().unwrap().contains("21211"));
    assert_eq!(rows(State::Scheduled).await.len(), 2, "the 503s are rescheduled, not sent");
    // Nothing is resent before its backoff is over (at least half of the 1 minute base).
    t.advance(SignedDuration::from_secs(20));
    assert_eq!(t.dispatch_all().await, 0);
    for _ in 0..6 {
        t.advance(SignedDuration::from_mins(3));
        t.dispatch_all().await;
    }
    let sent = rows(State::Sent).await;
    let dead = rows(State::Dead).await;
    assert_eq!(sent.len(), 1, "sent {sent:?}");
    assert_eq!((sent[0].member.as_str(), sent[0].attempts), ("b0", 2));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].member, "b2");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].reason.as_deref().unwrap().contains("gave up after 3 attempts"));
    assert_eq!(twilio.received().len(), 1, "one accepted");
    assert_eq!(twilio.count(), 6, "b0 twice, b1 once, b2 three times");
    let history = t.app.store.history(dead[0].id).await.unwrap();
    let states: Vec<_> = history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(states, ["scheduled", "sending", "scheduled", "sending", "scheduled", "sending", "dead"]);
}

async fn after_downtime_the_daemon_catches_up_but_never_sends_late(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let rules = r#"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"
max_lateness = "6h"
"#;
    let mut t = TestApp::start_on(backend, &config(&twilio, &smtp, rules), "2026-11-20T00:00:00Z").await;
    let jsonl = [("d20", "1990-11-20"), ("d21", "1985-11-21"), ("d22", "1970-11-22")]
        .iter()
        .enumerate()
        .map(|(i, (id, born))| {
            json!({"external_id": id, "name": "Ada", "phone": phone(i), "time_zone": "UTC", "birth_date": born})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    t.import_jsonl(&jsonl).await;
    t.run_until("2026-11-20T12:00:00Z", SignedDuration::from_mins(15)).await;
    assert_eq!(twilio.count(), 1);
    // Down from Nov 20 noon to Nov 22 12:00: Nov 21's 09:30 is 50 hours late, Nov 22's 2.5.
    t = t.restart().await;
    t.set("2026-11-22T12:00:00Z");
    t.tick().await;
    t.dispatch_all().await;
    let by_member: BTreeMap<String, (String, Option<String>)> = t
        .app
        .store
        .messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.member, (m.state, m.reason)))
        .collect();
    assert_eq!(by_member["d20"].0, "sent");
    assert_eq!(by_member["d21"].0, "skipped");
    assert!(by_member["d21"].1.as_deref().unwrap().starts_with("late"), "{by_member:?}");
    assert_eq!(by_member["d22"].0, "sent");
    assert_eq!(twilio.count(), 2);
}

async fn a_broken_template_reload_keeps_the_previous_set(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"), dir.path());
    let sms = dir.path().join("birthday/en/sms.hbs");
    std::fs::write(&sms, "Happy birthday {{member.name}}, from the test. Reply STOP to opt out.\n").unwrap();
    let extra = format!("[templates]\ndir = \"{}\"\n", dir.path().display());
    let t = three_birthdays(backend, &twilio, &smtp, &extra).await;

    // A broken edit never reaches the database: the import refuses it, naming the file, and
    // so does a draft posted with it; a reload keeps the published set.
    std::fs::write(&sms, "Happy birthday {{member.nickname}}\n").unwrap();
    let err = tidings::templates::import(&t.app, dir.path(), "test").await.unwrap_err().to_string();
    assert!(err.contains("birthday/en/sms.hbs") && err.contains("member.nickname"), "{err}");
    let mut broken = published_content(&t, "birthday").await;
    broken.locales.get_mut("en").unwrap().sms = Some("Happy birthday {{member.nickname}}\n".into());
    let err = tidings::templates::create_draft(&t.app, "birthday", &broken, "test", None).await.unwrap_err();
    assert!(err.to_string().contains("birthday/en/sms.hbs"), "{err}");
    assert_eq!(t.app.store.template_versions("birthday", None, 10).await.unwrap().len(), 1, "no draft stored");
    t.app.reload_templates().await.unwrap();
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    t.dispatch_all().await;
    assert_eq!(twilio.count(), 3);
    assert!(twilio.received()[0].field("Body").unwrap().starts_with("Happy birthday Ada"), "the old set still sends");

    // A good edit is imported as a draft, which sends nothing until it is published.
    std::fs::write(&sms, "Many happy returns, {{member.name}}! Reply STOP to opt out.\n").unwrap();
    let imported = tidings::templates::import(&t.app, dir.path(), "test").await.unwrap();
    let draft = imported.iter().find(|i| i.key == "birthday").unwrap().draft.expect("a draft");
    assert!(imported.iter().filter(|i| i.key != "birthday").all(|i| i.draft.is_none()), "{imported:?}");
    let text = |p: &tidings::app::Preview| match &p.messages[0].rendered {
        tidings::channels::Rendered::Sms { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    assert!(text(&t.app.preview("birthday", "b0").await.unwrap()).starts_with("Happy birthday Ada 0"));
    tidings::templates::publish(&t.app, "birthday", draft, true, "test").await.unwrap();
    assert!(text(&t.app.preview("birthday", "b0").await.unwrap()).starts_with("Many happy returns, Ada 0"));

    // A version that has lost a rule's channel is refused at publish, naming the rule.
    let mut email_only = published_content(&t, "birthday").await;
    for v in email_only.locales.values_mut() {
        v.sms = None;
        v.sms_providers = None;
    }
    let (draft, _) = tidings::templates::create_draft(&t.app, "birthday", &email_only, "test", None).await.unwrap();
    let err = tidings::templates::publish(&t.app, "birthday", draft.version, true, "test").await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("rules[0].template") && err.contains("birthday"), "{err}");
    assert!(t.app.preview("birthday", "b0").await.is_ok(), "the previous set still renders");
}

async fn published_content(t: &TestApp, key: &str) -> tidings::render::content::Content {
    let published = t.app.store.published_templates().await.unwrap();
    tidings::templates::content_of(published.iter().find(|v| v.key == key).unwrap()).unwrap()
}

async fn a_member_written_while_a_tick_ran_is_evaluated_by_the_next_one(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let t = three_birthdays(backend, &twilio, &smtp, "").await;
    t.set("2026-11-23T10:00:00Z");
    t.tick().await;
    // An import that started before the tick commits after it, stamped with its start time.
    let late_writer: tidings::members::MemberInput = serde_json::from_value(json!({
        "external_id": "slow", "name": "Sam", "phone": phone(7), "email": null, "locale": null,
        "time_zone": "UTC", "birth_date": "1991-11-23", "member_since": null, "tier": null,
        "points": 0, "attributes": {}
    }))
    .unwrap();
    t.app.store.upsert_members(&[late_writer], "2026-11-23T09:59:50Z".parse().unwrap()).await.unwrap();
    t.advance(SignedDuration::from_mins(1));
    assert_eq!(t.tick().await.enqueued, 1, "the 09:30 greeting is still within its lateness");
    t.dispatch_all().await;
    assert!(twilio.received().iter().any(|r| r.field("To") == Some(phone(7).as_str())));
}

async fn a_win_back_planned_before_the_member_came_back_is_not_sent(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let rules = "[evaluation]\nlookahead = \"3h\"\n[[rules]]\nid = \"winback\"\ntrigger = \"inactivity\"\ndays = 30\n\
                 channels = [\"sms\", \"email\"]\ntemplate = \"winback\"\nsend_at = \"11:00\"\n";
    let t = TestApp::start_on(backend, &config(&twilio, &smtp, rules), "2026-11-01T00:00:00Z").await;
    t.import_jsonl(&json!({"external_id": "w", "name": "Wen", "phone": phone(3), "time_zone": "UTC"}).to_string())
        .await;
    let purchase = |at: &str, id: &str| tidings::members::EventInput {
        event_id: Some(id.into()),
        member: "w".into(),
        kind: "purchase".into(),
        amount: Some(10.0),
        at: at.parse().unwrap(),
        data: None,
    };
    t.app.store.record_events(&[purchase("2026-10-01T09:00:00Z", "p1")], t.now()).await.unwrap();
    // Crossed on Oct 31; first seen now, so planned for today's 11:00, three hours ahead.
    t.set("2026-11-01T09:00:00Z");
    assert_eq!(t.tick().await.enqueued, 2);
    // No email address when planned; the host adds one before it is due.
    t.app
        .store
        .upsert_members(
            &[serde_json::from_value(json!({"external_id": "w", "name": "Wen", "phone": phone(3),
                "email": "wen@example.com", "locale": null, "time_zone": "UTC", "birth_date": null,
                "member_since": null, "tier": null, "points": 0, "attributes": {}}))
            .unwrap()],
            t.now(),
        )
        .await
        .unwrap();
    // The member buys something at 10:00, before the 11:00 send.
    t.app.store.record_events(&[purchase("2026-11-01T10:00:00Z", "p2")], t.now()).await.unwrap();
    t.set("2026-11-01T11:00:00Z");
    t.tick().await;
    t.dispatch_all().await;
    assert_eq!(twilio.count(), 0);
    assert!(smtp.received().is_empty());
    let rows = t.app.store.messages(&MessageFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(
            (r.state.as_str(), r.reason.as_deref()),
            ("skipped", Some("member active again since this was planned"))
        );
    }
}

async fn a_stopping_worker_hands_its_unsent_batch_back(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let t = three_birthdays(backend, &twilio, &smtp, "").await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    let dispatcher = t.app.dispatcher();
    dispatcher.stop.cancel();
    assert_eq!(dispatcher.step().await.unwrap(), tidings::dispatch::Step::Worked(3));
    assert_eq!(twilio.count(), 0, "nothing goes out once stopping");
    let rows = t.app.store.messages(&MessageFilter::default()).await.unwrap();
    assert!(rows.iter().all(|r| r.state == "scheduled" && r.attempts == 0), "{rows:?}");
    // The next worker sends them at once, without waiting for a lease to expire.
    assert_eq!(t.dispatch_all().await, 3);
    assert_eq!(twilio.received().len(), 3);
}

async fn a_lost_provider_answer_is_recorded_ambiguous_and_never_resent(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let env = [("TIDINGS_TWILIO_TIMEOUT_SECS", "1"), ("TIDINGS_DISPATCH_CONCURRENCY", "1")];
    let t = three_birthdays_with_env(backend, &twilio, &smtp, "", &env).await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    twilio.script(1, Reply::Hang);
    t.dispatch_all().await;
    t.advance(SignedDuration::from_hours(1));
    t.dispatch_all().await;
    let states = t.states().await;
    assert_eq!((states.get("sent"), states.get("ambiguous")), (Some(&2), Some(&1)), "{states:?}");
    assert_eq!(twilio.count(), 3, "the ambiguous one was not sent again");
    let ambiguous =
        t.app.store.messages(&MessageFilter { state: Some(State::Ambiguous), ..Default::default() }).await.unwrap();
    assert!(ambiguous[0].reason.as_deref().unwrap().contains("may have been created"), "{ambiguous:?}");
}

async fn a_channel_set_to_retry_ambiguous_messages_sends_them_again(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let env = [("TIDINGS_TWILIO_TIMEOUT_SECS", "1"), ("TIDINGS_DISPATCH_CONCURRENCY", "1")];
    // `extra` lands in the [dispatch] table of the test configuration.
    let t = three_birthdays_with_env(backend, &twilio, &smtp, "retry_ambiguous = [\"sms\"]", &env).await;
    t.tick().await;
    t.set("2026-11-23T09:30:00Z");
    twilio.script(1, Reply::Hang);
    t.dispatch_all().await;
    let retrying =
        t.app.store.messages(&MessageFilter { state: Some(State::Scheduled), ..Default::default() }).await.unwrap();
    assert_eq!(retrying.len(), 1);
    assert!(retrying[0].reason.as_deref().unwrap().starts_with("delivery unknown"), "{retrying:?}");
    t.advance(SignedDuration::from_hours(1));
    t.dispatch_all().await;
    assert_eq!(t.states().await.get("sent"), Some(&3));
    assert_eq!(twilio.count(), 4, "the unknown one was sent again, as configured");
}

async fn operators_retry_dead_messages_and_cancel_scheduled_ones(backend: Backend) {
    let twilio = TwilioPeer::start(SID, TOKEN).await;
    let smtp = SmtpPeer::start(SmtpOptions::default()).await;
    let t = three_birthdays(backend, &twilio, &smtp, "").await;
    twilio.on_number(&phone(0), Reply::error(400, 21408, "Permission to send an SMS has not been enabled."));
    t.tick().await;
    // b2's greeting is cancelled before it is due.
    let b2 = MessageFilter { member: Some("b2".into()), ..Default::default() };
    assert_eq!(t.app.store.cancel_messages(&b2, t.now()).await.unwrap(), 1);
    t.set("2026-11-23T09:30:00Z");
    t.dispatch_all().await;
    let states = t.states().await;
    assert_eq!((states.get("failed"), states.get("sent"), states.get("skipped")), (Some(&1), Some(&1), Some(&1)));
    assert_eq!(t.app.store.cancel_messages(&b2, t.now()).await.unwrap(), 0, "only scheduled ones cancel");

    // The permission is granted at the provider; the operator sends the failed one again. A retry
    // touches only dead, failed and ambiguous messages.
    twilio.on_number(&phone(0), Reply::raw(201, "{\"sid\": \"SM00000000000000000000000000000001\"}"));
    let all = MessageFilter { rule_id: Some("birthday".into()), ..Default::default() };
    assert_eq!(t.app.store.retry_messages(&all, t.now(), "retried by an operator").await.unwrap(), 1);
    t.dispatch_all().await;
    let states = t.states().await;
    assert_eq!((states.get("sent"), states.get("skipped")), (Some(&2), Some(&1)), "{states:?}");
    let b0 = t.app.store.messages(&MessageFilter { member: Some("b0".into()), ..Default::default() }).await.unwrap();
    let history: Vec<String> = t.app.store.history(b0[0].id).await.unwrap().into_iter().map(|h| h.state).collect();
    assert_eq!(history, ["scheduled", "sending", "failed", "scheduled", "sending", "sent"]);
}

on_both_backends!(
    a_thousand_members_over_days_and_a_dst_change_get_each_message_exactly_once,
    a_crash_after_claiming_loses_nothing_and_a_crash_mid_send_is_never_resent,
    a_slow_worker_s_own_result_settles_what_its_expired_lease_left_ambiguous,
    a_worker_whose_lease_was_taken_over_sends_nothing,
    transient_failures_retry_with_backoff_permanent_ones_fail_and_exhausted_ones_die,
    after_downtime_the_daemon_catches_up_but_never_sends_late,
    a_broken_template_reload_keeps_the_previous_set,
    a_member_written_while_a_tick_ran_is_evaluated_by_the_next_one,
    a_win_back_planned_before_the_member_came_back_is_not_sent,
    a_stopping_worker_hands_its_unsent_batch_back,
    a_lost_provider_answer_is_recorded_ambiguous_and_never_resent,
    a_channel_set_to_retry_ambiguous_messages_sends_them_again,
    operators_retry_dead_messages_and_cancel_scheduled_ones,
);
