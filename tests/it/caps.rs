//! Frequency caps, collisions and quiet hours, on both backends, with the clock injected: a cap
//! hit across two rules, a birthday and a holiday on the same day (one message, or one merged
//! message), a message due at 06:00 member-local waiting until 08:00 (also across a DST
//! change), one that would wait past its lateness skipped, and a fallback channel claimed in its
//! quiet hours handed back without using an attempt.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tidings::store::{MessageFilter, MessageRow};

use crate::support::app::{Backend, TestApp};

fn member(id: &str, zone: &str, birth: &str, since: Option<&str>, email: Option<&str>) -> String {
    json!({"external_id": id, "name": id, "phone": "+14155550101", "email": email, "locale": "en",
           "time_zone": zone, "birth_date": birth, "member_since": since})
    .to_string()
}

async fn messages(t: &TestApp) -> Vec<MessageRow> {
    let mut rows = t.app.store.messages(&MessageFilter { limit: 1000, ..Default::default() }).await.unwrap();
    rows.sort_by_key(|m| m.id);
    rows
}

/// (rule, state, reason) of every message, in id order.
async fn outcomes(t: &TestApp) -> Vec<(String, String, Option<String>)> {
    messages(t).await.into_iter().map(|m| (m.rule_id, m.state, m.reason)).collect()
}

fn row(rule: &str, state: &str, reason: Option<&str>) -> (String, String, Option<String>) {
    (rule.to_string(), state.to_string(), reason.map(str::to_string))
}

fn ts(t: &str) -> Timestamp {
    t.parse().unwrap()
}

const TEN_MINUTES: SignedDuration = SignedDuration::from_mins(10);

/// Two service rules on one day under a service cap: the second is capped.
const SERVICE_CAP: &str = r#"
[[caps]]
channels = ["sms"]
purpose = "service"
max = 1
per = "1d"

[[rules]]
id = "birthday-notice"
trigger = "birthday"
purpose = "service"
channels = ["sms"]
template = "birthday"
send_at = "09:30"

[[rules]]
id = "anniversary-notice"
trigger = "anniversary"
purpose = "service"
channels = ["sms"]
template = "anniversary"
send_at = "12:00"
"#;

async fn a_cap_is_hit_across_two_rules_on_the_same_day(backend: Backend) {
    // 09:00 in Shanghai on 10 March.
    let t = TestApp::start_on(backend, SERVICE_CAP, "2026-03-10T01:00:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", Some("2020-03-10"), None)).await;
    t.run_until("2026-03-10T05:00:00Z", TEN_MINUTES).await;
    assert_eq!(
        outcomes(&t).await,
        [
            row("birthday-notice", "sent", None),
            row("anniversary-notice", "skipped", Some("capped: 1 service sms per 1d"))
        ]
    );
    assert_eq!(t.outbox().len(), 1);
}

/// The default caps (one marketing SMS a day): a birthday at 20:00 and an anniversary at 09:30
/// the next morning are different days, so they do not collide, but the second is inside the
/// rolling day.
const TWO_DAYS: &str = r#"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "20:00"

[[rules]]
id = "anniversary"
trigger = "anniversary"
channels = ["sms"]
template = "anniversary"
send_at = "09:30"
"#;

async fn the_default_marketing_sms_cap_is_a_rolling_day(backend: Backend) {
    let t = TestApp::start_on(backend, TWO_DAYS, "2026-03-10T11:00:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", Some("2020-03-11"), None)).await;
    t.run_until("2026-03-11T02:00:00Z", TEN_MINUTES).await;
    assert_eq!(
        outcomes(&t).await,
        [row("birthday", "sent", None), row("anniversary", "skipped", Some("capped: 1 marketing sms per 1d"))]
    );
}

/// A holiday at 09:30 and a birthday at 18:00 on the same day: the birthday (lifecycle) wins over
/// the holiday (promotional) even though the holiday is due first and the birthday is not yet
/// planned when it is.
fn collision_toml(merge: bool) -> String {
    format!(
        r#"
caps = []

[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "18:00"
merge = {merge}

[[rules]]
id = "founders"
trigger = "holiday"
date = "03-10"
names = {{ en = "Founders' Day" }}
channels = ["sms"]
template = "holiday"
send_at = "09:30"
"#
    )
}

async fn a_birthday_and_a_holiday_on_one_day_send_one_message(backend: Backend) {
    let t = TestApp::start_on(backend, &collision_toml(false), "2026-03-10T01:00:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", None, None)).await;
    t.run_until("2026-03-10T11:00:00Z", TEN_MINUTES).await;
    assert_eq!(
        outcomes(&t).await,
        [row("founders", "skipped", Some("collided with birthday")), row("birthday", "sent", None)]
    );
    let outbox = t.outbox();
    assert_eq!(outbox.len(), 1, "never both: {outbox:?}");
    let text = outbox[0]["message"]["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("Happy birthday") && !text.contains("Founders"), "{outbox:?}");
}

async fn a_merging_winner_greets_both(backend: Backend) {
    let t = TestApp::start_on(backend, &collision_toml(true), "2026-03-10T01:00:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", None, None)).await;
    t.run_until("2026-03-10T11:00:00Z", TEN_MINUTES).await;
    assert_eq!(
        outcomes(&t).await,
        [row("founders", "skipped", Some("collided with birthday")), row("birthday", "sent", None)]
    );
    let outbox = t.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let text = outbox[0]["message"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("Happy birthday") && text.contains("And a happy Founders' Day too!"), "{text}");
}

/// An SMS due at 06:00 member-local; the second rule allows only an hour of lateness.
const EARLY: &str = r#"
caps = []

[[rules]]
id = "early"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "06:00"

[[rules]]
id = "early-strict"
trigger = "anniversary"
channels = ["sms"]
template = "anniversary"
send_at = "06:00"
max_lateness = "1h"
"#;

async fn a_message_due_in_quiet_hours_waits_for_the_morning(backend: Backend) {
    // 05:30 in Shanghai.
    let t = TestApp::start_on(backend, EARLY, "2026-03-09T21:30:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", Some("2020-03-10"), None)).await;
    t.tick().await;
    let planned = messages(&t).await;
    assert_eq!(planned[0].rule_id, "early");
    assert_eq!(planned[0].state, "scheduled");
    assert_eq!(planned[0].run_at, ts("2026-03-10T00:00:00Z"), "08:00 in Shanghai");
    assert_eq!(planned[1].state, "skipped");
    assert!(planned[1].reason.as_deref().unwrap().starts_with("quiet hours: sms is sent 08:00-21:00"), "{planned:?}");
    // At 06:00 and until 08:00 nothing goes.
    t.run_until("2026-03-09T23:55:00Z", TEN_MINUTES).await;
    assert!(t.outbox().is_empty());
    t.run_until("2026-03-10T00:05:00Z", TEN_MINUTES).await;
    assert_eq!(t.outbox().len(), 1);
    assert_eq!(outcomes(&t).await[0], row("early", "sent", None));
}

async fn quiet_hours_follow_the_members_clock_across_dst(backend: Backend) {
    // New York springs forward on 8 March 2026: 06:00 EDT is 10:00Z, 08:00 EDT is 12:00Z
    // (at the day's starting offset it would have been 13:00Z).
    let t = TestApp::start_on(backend, EARLY, "2026-03-08T09:30:00Z").await;
    t.import_jsonl(&member("bob", "America/New_York", "1990-03-08", None, None)).await;
    t.tick().await;
    let planned = messages(&t).await;
    assert_eq!(planned[0].run_at, ts("2026-03-08T12:00:00Z"), "{planned:?}");
    t.run_until("2026-03-08T11:55:00Z", TEN_MINUTES).await;
    assert!(t.outbox().is_empty());
    t.run_until("2026-03-08T12:05:00Z", TEN_MINUTES).await;
    assert_eq!(t.outbox().len(), 1);
}

/// Email first (no quiet hours), SMS as the fallback: a member without an email address is
/// reached on SMS, which at 06:00 is in quiet hours.
const FALLBACK: &str = r#"
caps = []

[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["email", "sms"]
fallback = true
template = "birthday"
send_at = "06:00"
"#;

async fn a_fallback_claimed_in_its_quiet_hours_waits_without_using_an_attempt(backend: Backend) {
    let t = TestApp::start_on(backend, FALLBACK, "2026-03-09T21:30:00Z").await;
    t.import_jsonl(&member("ada", "Asia/Shanghai", "1990-03-10", None, None)).await;
    t.tick().await;
    assert_eq!(messages(&t).await[0].run_at, ts("2026-03-09T22:00:00Z"), "email has no quiet hours");
    t.set("2026-03-09T22:00:00Z");
    t.dispatch_all().await;
    let m = &messages(&t).await[0];
    assert_eq!((m.state.as_str(), m.attempts, m.run_at), ("scheduled", 0, ts("2026-03-10T00:00:00Z")), "{m:?}");
    let history = t.app.store.history(m.id).await.unwrap();
    assert!(history.last().unwrap().detail.as_deref().unwrap().starts_with("quiet hours: sms"), "{history:?}");
    assert!(t.outbox().is_empty());
    t.set("2026-03-10T00:00:00Z");
    t.dispatch_all().await;
    let m = &messages(&t).await[0];
    assert_eq!((m.state.as_str(), m.attempts, m.channel.as_str()), ("sent", 1, "sms"));
}

on_both_backends!(
    a_cap_is_hit_across_two_rules_on_the_same_day,
    the_default_marketing_sms_cap_is_a_rolling_day,
    a_birthday_and_a_holiday_on_one_day_send_one_message,
    a_merging_winner_greets_both,
    a_message_due_in_quiet_hours_waits_for_the_morning,
    quiet_hours_follow_the_members_clock_across_dst,
    a_fallback_claimed_in_its_quiet_hours_waits_without_using_an_attempt,
);
