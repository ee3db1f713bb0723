//! Entry beyond the calendar, at the edges: evaluating event rules (the events a rule has not
//! seen, read in keyset batches by the change counter stamped on each) and transactional sends
//! (one message per channel now, idempotent on the caller's key). The decisions are pure and
//! live in `triggers` (`event_occurrence`) and `plan`; this module reads and writes the store.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::channels::{ChannelKind, Purpose};
use crate::config::{ConfigProblem, RuleConfig, Settings, parse_duration};
use crate::evaluate::{TickReport, Zones};
use crate::plan::{self, NewMessage};
use crate::store::{EventQuery, SentMessage, Store};
use crate::triggers::{RESERVED_EVENT_FIELDS, Rule, Trigger, Window, event_occurrence};

/// The `rule_id` of transactional messages.
pub const API_RULE: &str = "api";

/// An event's `data` as the API and imports take it: absent, null or a JSON object whose fields
/// are not the event's own (`kind`, `at`, `id`, `amount`).
pub fn event_data(data: Option<Value>) -> Result<Option<Map<String, Value>>, String> {
    match data {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match m.keys().find(|k| RESERVED_EVENT_FIELDS.contains(&k.as_str())) {
            Some(k) => Err(format!("{k:?} is the event's own field in templates; name it otherwise")),
            None => Ok(Some(m)),
        },
        Some(_) => Err("expected a JSON object".into()),
    }
}

/// One event rule's pass: its window, the change counter its last tick saw (`None`: never
/// evaluated) and the counter this tick read before anything else.
#[derive(Debug, Clone, Copy)]
pub struct EventPass<'a> {
    pub rule: &'a Rule,
    pub window: Window,
    pub seen_changes: Option<i64>,
    pub changes: i64,
}

/// Evaluates one event rule over the events stamped after `seen_changes` up to `changes`: each of
/// its kinds becomes an occurrence for the event's member, planned (late ones skipped) and
/// enqueued. A rule never evaluated (`seen_changes` is `None`) looks only at events since
/// `window.from` (now minus its lateness), so a new rule does not greet every past event.
pub async fn evaluate_event_rule(
    store: &Store,
    settings: &Settings,
    pass: EventPass<'_>,
    zones: &mut Zones,
    report: &mut TickReport,
) -> anyhow::Result<()> {
    let EventPass { rule, window, seen_changes, changes } = pass;
    let Trigger::Event { kinds, .. } = &rule.trigger else { return Ok(()) };
    let batch = settings.raw.evaluation.member_batch;
    let mut after_id = 0;
    loop {
        let q = EventQuery {
            kinds,
            after_seq: seen_changes,
            upto_seq: changes,
            at_after: seen_changes.is_none().then_some(window.from),
            after_id,
            limit: batch,
        };
        let events = store.events_for_rule(&q).await?;
        let Some(last) = events.last() else { break };
        after_id = last.id;
        let mut ids: Vec<i64> = events.iter().map(|e| e.member_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let members: std::collections::HashMap<i64, crate::members::Member> =
            store.members_by_ids(&ids).await?.into_iter().map(|m| (m.id, m)).collect();
        report.members += members.len() as u64;
        let mut pending: Vec<NewMessage> = Vec::new();
        // A journey whose entry is an event: its members enter the journey (a welcome series).
        let journey = crate::journeys::find(&settings.journeys, &rule.id);
        let mut entered = Vec::new();
        for event in &events {
            let Some(member) = members.get(&event.member_id) else { continue };
            let tz = zones.of(member, &settings.programme_tz);
            if let Some(occ) = event_occurrence(rule, member, event, &tz) {
                match journey {
                    Some(j) => entered.push((j, member.clone(), occ)),
                    None => pending.extend(plan::plan(rule, member, &occ, window.now, &tz)),
                }
            }
        }
        report.planned += pending.len() as u64;
        report.skipped += pending.iter().filter(|m| m.skip.is_some()).count() as u64;
        report.enqueued += store.enqueue(&pending, window.now).await?;
        if !entered.is_empty() {
            let j = crate::journeys::enter(store, &entered, zones, &settings.programme_tz, window.now).await?;
            report.planned += j.planned;
            report.skipped += j.skipped;
            report.enqueued += j.enqueued;
        }
        if events.len() < batch as usize {
            break;
        }
    }
    Ok(())
}

/// Occurrence variables the daemon sets and reads back (the key, journeys, coupons, collisions,
/// win-back checks): a transactional request's `data` may not set them.
const RESERVED_VARS: &[&str] = &[
    "key",
    "date",
    crate::journeys::plan::VAR_JOURNEY,
    crate::journeys::plan::VAR_STEP,
    crate::journeys::plan::VAR_ENTRY,
    crate::journeys::plan::VAR_LAST,
    crate::journeys::plan::VAR_UNLESS,
    crate::journeys::plan::VAR_EXIT_ON,
    crate::journeys::plan::VAR_SINCE,
    crate::journeys::plan::VAR_COUPON,
    crate::journeys::plan::VAR_COUPON_POOL,
    crate::journeys::plan::VAR_COUPON_PREFIX,
    crate::triggers::INACTIVE_SINCE,
    "also",
];

/// `POST /api/messages/send` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The member's external id.
    pub member: String,
    pub template: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Given to the template as `occurrence.*`.
    #[serde(default)]
    pub data: Option<Value>,
    pub idempotency_key: String,
    /// `service` (the default) or `marketing`.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// Why a transactional send was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request is wrong in `field`.
    #[error("{field}: {problem}")]
    Bad { field: &'static str, problem: String },
    #[error("no member {0:?}")]
    NoMember(String),
    /// The key was used before with another request, differing in `field`.
    #[error("idempotency_key: used before with another {field}")]
    Conflict { field: &'static str },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What a transactional send did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendOutcome {
    pub messages: Vec<SentMessage>,
    /// The key had been used with this same request: nothing new was created.
    pub replayed: bool,
}

/// The request after validation, in the canonical form stored under its key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
struct Canonical {
    member: String,
    template: String,
    channels: Vec<ChannelKind>,
    data: Map<String, Value>,
    purpose: Purpose,
}

fn bad(field: &'static str, problem: impl Into<String>) -> SendError {
    SendError::Bad { field, problem: problem.into() }
}

/// Checks a transactional request: the key, the channels (one of `channel` or `channels`), the
/// purpose and the data's shape. Pure.
fn canonical(r: SendRequest) -> Result<(String, Canonical, &'static str), SendError> {
    let key = r.idempotency_key.trim().to_string();
    if key.is_empty() || key.chars().count() > 200 || key.chars().any(char::is_control) {
        return Err(bad("idempotency_key", "must be 1 to 200 characters without control characters"));
    }
    let (field, names) = match (r.channel, r.channels) {
        (Some(c), None) => ("channel", vec![c]),
        (None, Some(cs)) => ("channels", cs),
        (Some(_), Some(_)) => return Err(bad("channels", "give channel or channels, not both")),
        (None, None) => return Err(bad("channels", "missing: give channel or channels")),
    };
    let mut channels = Vec::new();
    for name in &names {
        match ChannelKind::parse(name) {
            Some(c) if channels.contains(&c) => return Err(bad(field, format!("{name:?} is listed twice"))),
            Some(c) => channels.push(c),
            None => return Err(bad(field, format!("unknown channel {name:?} (sms, email, push or webhook)"))),
        }
    }
    if channels.is_empty() {
        return Err(bad(field, "name at least one channel"));
    }
    let purpose = match r.purpose.as_deref() {
        None => Purpose::Service,
        Some(p) => Purpose::parse(p).ok_or_else(|| bad("purpose", format!("{p:?}: use service or marketing")))?,
    };
    let data = match r.data {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("data", "expected a JSON object")),
    };
    if let Some(k) = data.keys().find(|k| RESERVED_VARS.contains(&k.as_str())) {
        return Err(bad("data", format!("{k:?} is set by the daemon (occurrence.{k}); name it otherwise")));
    }
    if r.member.trim().is_empty() {
        return Err(bad("member", "missing"));
    }
    if r.template.trim().is_empty() {
        return Err(bad("template", "missing"));
    }
    Ok((key, Canonical { member: r.member, template: r.template, channels, data, purpose }, field))
}

/// The first field in which two requests under one key differ.
fn differing_field(a: &Canonical, b: &Canonical) -> Option<&'static str> {
    if a.member != b.member {
        Some("member")
    } else if a.template != b.template {
        Some("template")
    } else if a.channels != b.channels {
        Some("channels")
    } else if a.data != b.data {
        Some("data")
    } else if a.purpose != b.purpose {
        Some("purpose")
    } else {
        None
    }
}

/// Sends a transactional message now: one per channel, through the normal dispatch path
/// (opt-outs, suppressions, retries). Idempotent on the request's key: the same request again
/// creates nothing and answers with the same messages; another request under a used key is a
/// conflict. The key is taken before the messages are enqueued, so a retry after a crash between
/// the two completes the send.
pub async fn send(app: &App, request: SendRequest) -> Result<SendOutcome, SendError> {
    let (key, req, channel_field) = canonical(request)?;
    let templates = app.templates.current();
    if templates.locales(&req.template).is_empty() {
        return Err(bad("template", format!("no template {:?}", req.template)));
    }
    if let Some(c) = req.channels.iter().find(|&&c| !templates.has(&req.template, c)) {
        return Err(bad(channel_field, format!("template {:?} has no {c} variant", req.template)));
    }
    let member =
        app.store.member_by_external_id(&req.member).await?.ok_or_else(|| SendError::NoMember(req.member.clone()))?;
    let now = app.now();
    let s = &app.settings().raw.programme;
    let locale = member.locale.clone().unwrap_or_else(|| s.default_locale.clone());
    let zone = member.time_zone.clone().unwrap_or_else(|| s.time_zone.clone());
    let tz = jiff::tz::TimeZone::get(&zone).unwrap_or_else(|_| app.settings().programme_tz.clone());
    let occurrence = format!("{API_RULE}:{key}");
    let mut vars = req.data.clone();
    vars.insert("key".into(), json!(occurrence));
    vars.insert("date".into(), json!(now.to_zoned_datetime(tz).date().to_string()));
    // A template that needs data the request lacks is refused now, not failed at dispatch.
    let ctx = crate::render::context::build(&member, &vars, &s.name, API_RULE, &locale, &zone);
    for &c in &req.channels {
        if let Err(e) = templates.render(&req.template, c, &ctx) {
            return Err(bad("data", format!("template {:?} does not render for {c}: {e}", req.template)));
        }
    }
    let text = serde_json::to_string(&req).expect("a request serializes");
    let stored = app.store.take_send_key(&key, &text, now).await?;
    let replayed = stored != text;
    if replayed {
        let first: Canonical = serde_json::from_str(&stored)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("send request {key:?}: {e}")))?;
        if let Some(field) = differing_field(&first, &req) {
            return Err(SendError::Conflict { field });
        }
    }
    let msgs: Vec<NewMessage> = req
        .channels
        .iter()
        .map(|&channel| NewMessage {
            dedupe_key: plan::dedupe_key(API_RULE, member.id, &occurrence, channel),
            rule_id: API_RULE.into(),
            member_id: member.id,
            occurrence: occurrence.clone(),
            channel,
            template: req.template.clone(),
            vars: vars.clone(),
            run_at: now,
            deadline: None,
            skip: None,
            fallback: Vec::new(),
            purpose: req.purpose,
            experiment: None,
            variant: None,
        })
        .collect();
    let keys: Vec<String> = msgs.iter().map(|m| m.dedupe_key.clone()).collect();
    let created = app.store.enqueue(&msgs, now).await?;
    if created > 0 {
        app.wake.notify_waiters();
    }
    let mut messages = app.store.messages_by_dedupe_keys(&keys).await?;
    messages.sort_by_key(|m| keys.iter().position(|k| *k == m.dedupe_key));
    Ok(SendOutcome { messages, replayed: replayed || created == 0 })
}

impl Settings {
    /// What the store needs to record built-in events: `programme.tiers`, `model.purchase_events`.
    pub fn builtin_events(&self) -> crate::members::builtin::BuiltinEvents {
        crate::members::builtin::BuiltinEvents {
            tiers: self.raw.programme.tiers.clone(),
            purchase_kinds: self.raw.model.purchase_events.clone(),
        }
    }
}

/// One text or a list of them (`event = "purchase"` or `event = ["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The trigger of an `event` or `date` rule from its keys, every bad key named.
pub fn rule_trigger(r: &RuleConfig, key: &dyn Fn(&str) -> String, problems: &mut Vec<ConfigProblem>) -> Trigger {
    if r.trigger == "date" {
        let attribute = match r.attribute.as_deref().map(str::trim) {
            Some(a) if valid_attribute(a) => a.to_string(),
            Some(a) => {
                problems.push(ConfigProblem::new(key("attribute"), format!("{a:?}: use letters, digits and _")));
                String::new()
            }
            None => {
                problems.push(ConfigProblem::new(
                    key("attribute"),
                    "a date rule needs attribute = \"birth_date\", \"member_since\" or an attribute name",
                ));
                String::new()
            }
        };
        return Trigger::Date { attribute, yearly: r.yearly };
    }
    let kinds = r.event.as_ref().map(OneOrMany::to_vec).unwrap_or_default();
    if kinds.is_empty() {
        problems.push(ConfigProblem::new(key("event"), "an event rule needs event = \"<kind>\" (or a list)"));
    }
    for k in &kinds {
        if !crate::members::builtin::valid_kind(k) {
            problems.push(ConfigProblem::new(key("event"), format!("{k:?}: use letters, digits, ., _, - and :")));
        }
    }
    for d in &r.event_data {
        if !valid_attribute(d) || RESERVED_EVENT_FIELDS.contains(&d.as_str()) {
            problems.push(ConfigProblem::new(
                key("event_data"),
                format!("{d:?}: use letters, digits and _, and not kind, at, id or amount"),
            ));
        }
    }
    let delay = match (&r.delay, &r.send_at) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem::new(key("delay"), "give delay or send_at, not both"));
            None
        }
        (Some(d), None) => match parse_duration(d) {
            Ok(d) if d.is_negative() => {
                problems.push(ConfigProblem::new(key("delay"), "must not be negative"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(ConfigProblem::new(key("delay"), e));
                None
            }
        },
        (None, Some(_)) => None,
        (None, None) => Some(jiff::SignedDuration::ZERO),
    };
    if delay.is_some() && r.offset_days != 0 {
        problems
            .push(ConfigProblem::new(key("offset_days"), "needs send_at: with a delay, the event time is the base"));
    }
    Trigger::Event { kinds, delay, data: r.event_data.clone() }
}

/// Names the event and date keys a rule of another trigger would ignore.
pub fn unused_entry_keys(r: &RuleConfig, key: &dyn Fn(&str) -> String, problems: &mut Vec<ConfigProblem>) {
    let unused = |field: &str, set: bool, problems: &mut Vec<ConfigProblem>| {
        if set {
            problems.push(ConfigProblem::new(key(field), format!("not used by a {} rule", r.trigger)));
        }
    };
    let event = r.trigger == "event";
    unused("event", !event && r.event.is_some(), problems);
    unused("delay", !event && r.delay.is_some(), problems);
    unused("event_data", !event && !r.event_data.is_empty(), problems);
    unused("attribute", r.trigger != "date" && r.attribute.is_some(), problems);
    unused("yearly", r.trigger != "date" && r.yearly, problems);
}

/// `programme.tiers`: named, each once.
pub fn check_tiers(tiers: &[String], problems: &mut Vec<ConfigProblem>) {
    for (i, t) in tiers.iter().enumerate() {
        if t.trim().is_empty() {
            problems.push(ConfigProblem::new("programme.tiers", format!("tier {} is empty", i + 1)));
        } else if tiers[..i].contains(t) {
            problems.push(ConfigProblem::new("programme.tiers", format!("{t:?} is listed twice")));
        }
    }
}

/// An attribute or data field name: 1 to 64 letters, digits and `_`.
fn valid_attribute(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether the trigger reads events rather than members.
pub fn is_event_rule(rule: &Rule) -> bool {
    matches!(rule.trigger, Trigger::Event { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: Value) -> SendRequest {
        let mut body = json!({"member": "M1", "template": "receipt", "channel": "sms", "idempotency_key": "order-1"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    fn field_of(r: SendRequest) -> &'static str {
        match canonical(r) {
            Err(SendError::Bad { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let (key, c, _) = canonical(request(json!({"data": {"order": "A1"}}))).unwrap();
        assert_eq!(key, "order-1");
        assert_eq!(c.channels, [ChannelKind::Sms]);
        assert_eq!(c.purpose, Purpose::Service);
        assert_eq!(field_of(request(json!({"idempotency_key": " "}))), "idempotency_key");
        assert_eq!(field_of(request(json!({"channel": "fax"}))), "channel");
        assert_eq!(field_of(request(json!({"channels": ["sms"]}))), "channels");
        assert_eq!(field_of(request(json!({"channel": null, "channels": []}))), "channels");
        assert_eq!(field_of(request(json!({"purpose": "spam"}))), "purpose");
        assert_eq!(field_of(request(json!({"data": [1]}))), "data");
        assert_eq!(field_of(request(json!({"data": {"key": 1}}))), "data");
    }

    #[test]
    fn a_reused_key_names_the_field_that_differs() {
        let (_, a, _) = canonical(request(json!({}))).unwrap();
        let (_, b, _) = canonical(request(json!({"data": {"x": 1}}))).unwrap();
        let (_, c, _) = canonical(request(json!({"channel": null, "channels": ["sms", "email"]}))).unwrap();
        assert_eq!(differing_field(&a, &a.clone()), None);
        assert_eq!(differing_field(&a, &b), Some("data"));
        assert_eq!(differing_field(&a, &c), Some("channels"));
    }

    fn config_problems(rules: &str) -> Vec<String> {
        let toml = format!("[programme]\ntiers = [\"silver\", \"gold\"]\n{rules}");
        match crate::config::Config::from_toml(&toml, "test.toml", Vec::<(String, String)>::new())
            .and_then(crate::config::Config::check)
        {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn rule(trigger: &str, extra: &str) -> String {
        format!(
            "[[rules]]\nid = \"r\"\ntrigger = \"{trigger}\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\n{extra}"
        )
    }

    #[test]
    fn event_and_date_rules_name_each_bad_key() {
        let check = |trigger: &str, extra: &str, want: &[&str]| {
            assert_eq!(config_problems(&rule(trigger, extra)), want, "{trigger}: {extra}");
        };
        check("event", "event = \"member.joined\"", &[]);
        check("event", "event = [\"a\", \"b\"]\ndelay = \"2h\"\nevent_data = [\"order\"]", &[]);
        check("event", "event = \"purchase\"\nsend_at = \"10:00\"\noffset_days = 2", &[]);
        check("event", "", &["rules[0].event"]);
        check("event", "event = \"has space\"", &["rules[0].event"]);
        check("event", "event = \"x\"\ndelay = \"soon\"", &["rules[0].delay"]);
        check("event", "event = \"x\"\ndelay = \"1h\"\nsend_at = \"10:00\"", &["rules[0].delay"]);
        check("event", "event = \"x\"\noffset_days = 1", &["rules[0].offset_days"]);
        check("event", "event = \"x\"\nevent_data = [\"kind\"]", &["rules[0].event_data"]);
        check("date", "attribute = \"points_expire_on\"\noffset_days = -7", &[]);
        check("date", "attribute = \"member_since\"\nyearly = true", &[]);
        check("date", "", &["rules[0].attribute"]);
        check("date", "attribute = \"a.b\"", &["rules[0].attribute"]);
        check(
            "birthday",
            "event = \"x\"\nattribute = \"y\"\nyearly = true",
            &["rules[0].event", "rules[0].attribute", "rules[0].yearly"],
        );
        let dup = "[programme]\ntiers = [\"gold\", \"gold\"]";
        let problems = match crate::config::Config::from_toml(dup, "t.toml", Vec::<(String, String)>::new())
            .and_then(crate::config::Config::check)
        {
            Err(crate::config::ConfigError::Invalid(p)) => p.into_iter().map(|p| p.key).collect::<Vec<_>>(),
            other => panic!("{:?}", other.err()),
        };
        assert_eq!(problems, ["programme.tiers"]);
    }

    #[test]
    fn an_event_rule_without_delay_or_send_at_sends_at_once() {
        let settings = crate::config::Config::from_toml(
            &rule("event", "event = \"member.joined\""),
            "t.toml",
            Vec::<(String, String)>::new(),
        )
        .and_then(crate::config::Config::check)
        .unwrap();
        match &settings.rules[0].trigger {
            Trigger::Event { kinds, delay, .. } => {
                assert_eq!(kinds, &["member.joined"]);
                assert_eq!(*delay, Some(jiff::SignedDuration::ZERO));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(settings.builtin_events().tiers, Vec::<String>::new());
    }

    #[test]
    fn event_data_is_an_object_without_the_events_own_fields() {
        assert_eq!(event_data(None), Ok(None));
        assert_eq!(event_data(Some(json!({"order": "A1"}))).unwrap().unwrap()["order"], "A1");
        assert!(event_data(Some(json!("x"))).unwrap_err().contains("object"));
        assert!(event_data(Some(json!({"kind": "x"}))).unwrap_err().contains("\"kind\""));
    }
}
