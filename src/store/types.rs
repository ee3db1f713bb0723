//! The store's types, shared by both backends: message states, claims, attempt outcomes, the
//! rows operators see, and the decoders that turn a database row (of either backend) into them.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use super::{Result, StoreError};
use crate::channels::{ChannelKind, Purpose};
use crate::members::Member;

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// What recording events did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventCounts {
    pub recorded: u64,
    /// Already recorded (same `event_id`).
    pub duplicate: u64,
    /// External ids of members not found; those events were not recorded.
    pub unknown_members: Vec<String>,
    /// The `event_id`s this call recorded (events without one are always recorded): what a
    /// caller acts on once, such as journey exits, reads only these.
    #[serde(skip)]
    pub recorded_ids: Vec<String>,
}

/// The states a message moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for `run_at` (also between retries).
    Scheduled,
    /// Taken by a worker under a lease; nothing has gone on the wire yet.
    Claimed,
    /// Handed to the provider; a crash now leaves it `ambiguous`.
    Sending,
    Sent,
    /// A permanent error: never retried.
    Failed,
    /// Transient errors until the attempts ran out.
    Dead,
    /// Not sent, on purpose: late, no address.
    Skipped,
    /// The worker died while the provider had it: it may or may not have gone out, so it is
    /// neither resent nor dropped silently.
    Ambiguous,
    /// The provider reported it delivered (a delivery receipt).
    Delivered,
    /// The provider reported it could not be delivered.
    Undelivered,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Scheduled,
        State::Claimed,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Dead,
        State::Skipped,
        State::Ambiguous,
        State::Delivered,
        State::Undelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Claimed => "claimed",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Dead => "dead",
            State::Skipped => "skipped",
            State::Ambiguous => "ambiguous",
            State::Delivered => "delivered",
            State::Undelivered => "undelivered",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message a worker holds under its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub dedupe_key: String,
    pub rule_id: String,
    pub member_id: i64,
    pub occurrence: String,
    pub channel: ChannelKind,
    pub template: String,
    pub vars: Map<String, Value>,
    pub run_at: Timestamp,
    pub deadline: Option<Timestamp>,
    /// This attempt's number (1 for the first); with the lease owner, the finalize fence.
    pub attempt: u32,
    /// The channels to try, in order, when the member has no address on `channel`.
    pub fallback: Vec<ChannelKind>,
    pub purpose: Purpose,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finalize {
    Sent {
        provider: String,
        provider_id: String,
    },
    Retry {
        at: Timestamp,
        error: String,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
    Skipped {
        reason: String,
    },
    /// The provider may or may not have it (its answer was lost).
    Ambiguous {
        error: String,
    },
}

/// A message as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    pub id: i64,
    pub dedupe_key: String,
    pub rule_id: String,
    pub member_id: i64,
    pub member: String,
    pub occurrence: String,
    pub channel: String,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub run_at: Timestamp,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    /// The daemon instance that last handled it.
    pub instance: Option<String>,
    pub rendered: Option<Value>,
    pub sent_at: Option<Timestamp>,
    /// The experiment the member was in, and their arm (a variant's id or `holdout`).
    pub experiment: Option<String>,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub state: String,
    pub detail: Option<String>,
}

/// Filters for listing messages; all optional.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub id: Option<i64>,
    pub rule_id: Option<String>,
    pub member: Option<String>,
    pub state: Option<State>,
    pub channel: Option<ChannelKind>,
    pub limit: u32,
}

/// One finalized attempt as the finalize statement reads it.
#[derive(Serialize)]
pub(super) struct FinalRow<'a> {
    id: i64,
    attempt: u32,
    state: &'static str,
    reason: Option<&'a str>,
    provider: Option<&'a str>,
    provider_id: Option<&'a str>,
    run_at: Option<i64>,
    sent_at: Option<i64>,
    /// The history entry's text.
    detail: String,
}

impl Finalize {
    pub(super) fn row<'a>(&'a self, id: i64, attempt: u32, now_ms: i64) -> FinalRow<'a> {
        let row = |state: State, reason: &'a str, detail: String| FinalRow {
            id,
            attempt,
            state: state.as_str(),
            reason: Some(reason),
            provider: None,
            provider_id: None,
            run_at: None,
            sent_at: None,
            detail,
        };
        match self {
            Finalize::Sent { provider, provider_id } => FinalRow {
                reason: None,
                provider: Some(provider),
                provider_id: Some(provider_id),
                sent_at: Some(now_ms),
                ..row(State::Sent, "", format!("{provider} accepted: {provider_id}"))
            },
            Finalize::Retry { at, error } => FinalRow {
                run_at: Some(at.as_millisecond()),
                ..row(State::Scheduled, error, format!("attempt {attempt} failed: {error}; retry at {at}"))
            },
            Finalize::Failed { error } => row(State::Failed, error, format!("attempt {attempt}: {error}")),
            Finalize::Dead { error } => row(State::Dead, error, format!("attempt {attempt}: {error}")),
            Finalize::Skipped { reason } => row(State::Skipped, reason, reason.clone()),
            Finalize::Ambiguous { error } => {
                row(State::Ambiguous, error, format!("attempt {attempt}: {error}; not resent"))
            }
        }
    }
}

/// A row of either backend that decodes the column types the schema uses (text, big integers),
/// so each row is turned into a store type in one place.
pub(super) trait StoreRow<'r>: Row
where
    &'r str: ColumnIndex<Self>,
{
    fn text(&'r self, column: &'r str) -> Result<String>;
    fn opt_text(&'r self, column: &'r str) -> Result<Option<String>>;
    fn int(&'r self, column: &'r str) -> Result<i64>;
    fn opt_int(&'r self, column: &'r str) -> Result<Option<i64>>;
    fn opt_float(&'r self, column: &'r str) -> Result<Option<f64>>;
}

impl<'r, R> StoreRow<'r> for R
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    fn text(&'r self, column: &'r str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&'r self, column: &'r str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&'r self, column: &'r str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&'r self, column: &'r str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn opt_float(&'r self, column: &'r str) -> Result<Option<f64>> {
        Ok(self.try_get(column)?)
    }
}

pub(super) fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("instant {ms}: {e}")))
}

pub(super) fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(ts).transpose()
}

fn date(text: Option<String>, column: &str) -> Result<Option<Date>> {
    text.map(|t| t.parse::<Date>().map_err(|e| StoreError::Corrupt(format!("{column} {t:?}: {e}")))).transpose()
}

/// The member columns both backends read (the same SQL in both dialects). A member row with its value (`member_value`) joined: `SELECT {MEMBER_COLUMNS} FROM {MEMBERS} …`.
pub(super) const MEMBER_COLUMNS: &str = "members.id, external_id, name, phone, email, locale, time_zone, birth_date, \
     lunar_birthday, member_since, tier, points, attributes, last_activity_at, created_at, updated_at, change_seq, \
     v.recency_days, v.frequency, v.monetary, v.r_score, v.f_score, v.m_score, v.segment, v.p_alive, \
     v.expected_purchases, v.last_purchase_at, v.churn_crossed_at, v.scored_at";
/// A member row without its value: the evaluator's scan when no rule looks at member value.
pub(super) const PLAIN_MEMBER_COLUMNS: &str = "members.id, external_id, name, phone, email, locale, time_zone, birth_date, \
     lunar_birthday, member_since, tier, points, attributes, last_activity_at, created_at, updated_at, change_seq";
pub(super) const MEMBERS: &str = "members LEFT JOIN member_value v ON v.member_id = members.id";

pub(super) fn member_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<Member>
where
    &'r str: ColumnIndex<R>,
{
    let attributes = r.text("attributes")?;
    let attributes = match serde_json::from_str::<Value>(&attributes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(Member {
        id: r.int("id")?,
        external_id: r.text("external_id")?,
        name: r.text("name")?,
        phone: r.opt_text("phone")?,
        email: r.opt_text("email")?,
        locale: r.opt_text("locale")?,
        time_zone: r.opt_text("time_zone")?,
        birth_date: date(r.opt_text("birth_date")?, "birth_date")?,
        lunar_birthday: r
            .opt_text("lunar_birthday")?
            .map(|b| b.parse().map_err(|e| StoreError::Corrupt(format!("lunar_birthday {b:?}: {e}"))))
            .transpose()?,
        member_since: date(r.opt_text("member_since")?, "member_since")?,
        tier: r.opt_text("tier")?,
        points: r.int("points")?,
        attributes,
        last_activity_at: opt_ts(r.opt_int("last_activity_at")?)?,
        value: member_value_from_row(r)?,
        created_at: ts(r.int("created_at")?)?,
        updated_at: ts(r.int("updated_at")?)?,
        change_seq: r.int("change_seq")?,
    })
}

/// A member's value from the joined `member_value` columns; `None` before the first refresh, or
/// when the read did not join them.
fn member_value_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<Option<crate::members::MemberValue>>
where
    &'r str: ColumnIndex<R>,
{
    use sqlx::Column;
    if !r.columns().iter().any(|c| c.name() == "scored_at") {
        return Ok(None);
    }
    let Some(scored_at) = r.opt_int("scored_at")? else { return Ok(None) };
    let score = |c: &'r str| -> Result<u8> { Ok(r.opt_int(c)?.unwrap_or(0).clamp(0, 5) as u8) };
    let segment = r.opt_text("segment")?.unwrap_or_default();
    Ok(Some(crate::members::MemberValue {
        recency_days: r.opt_float("recency_days")?,
        frequency: r.opt_int("frequency")?.unwrap_or(0).max(0) as u32,
        monetary: r.opt_float("monetary")?.unwrap_or(0.0),
        r: score("r_score")?,
        f: score("f_score")?,
        m: score("m_score")?,
        segment: segment.parse().map_err(|e| StoreError::Corrupt(format!("segment {segment:?}: {e}")))?,
        p_alive: r.opt_float("p_alive")?,
        expected_purchases: r.opt_float("expected_purchases")?,
        last_purchase_at: opt_ts(r.opt_int("last_purchase_at")?)?,
        churn_crossed_at: opt_ts(r.opt_int("churn_crossed_at")?)?,
        scored_at: ts(scored_at)?,
    }))
}

pub(super) fn claimed_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<Claimed>
where
    &'r str: ColumnIndex<R>,
{
    let channel = r.text("channel")?;
    let vars = r.text("vars")?;
    let attempts = r.int("attempts")?;
    Ok(Claimed {
        id: r.int("id")?,
        dedupe_key: r.text("dedupe_key")?,
        rule_id: r.text("rule_id")?,
        member_id: r.int("member_id")?,
        occurrence: r.text("occurrence")?,
        channel: ChannelKind::parse(&channel).ok_or_else(|| StoreError::Corrupt(format!("channel {channel:?}")))?,
        template: r.text("template")?,
        vars: match serde_json::from_str(&vars) {
            Ok(Value::Object(m)) => m,
            _ => return Err(StoreError::Corrupt(format!("vars {vars:?}"))),
        },
        run_at: ts(r.int("run_at")?)?,
        deadline: opt_ts(r.opt_int("deadline")?)?,
        attempt: u32::try_from(attempts).map_err(|_| StoreError::Corrupt(format!("attempts {attempts}")))?,
        fallback: parse_fallback(&r.text("fallback")?)?,
        purpose: {
            let purpose = r.text("purpose")?;
            Purpose::parse(&purpose).ok_or_else(|| StoreError::Corrupt(format!("purpose {purpose:?}")))?
        },
    })
}

/// The stored form of a fallback list: channel names joined by commas.
pub(super) fn fallback_text(channels: &[ChannelKind]) -> String {
    channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

fn parse_fallback(text: &str) -> Result<Vec<ChannelKind>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|c| ChannelKind::parse(c).ok_or_else(|| StoreError::Corrupt(format!("fallback channel {c:?}"))))
        .collect()
}

pub(super) fn message_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<MessageRow>
where
    &'r str: ColumnIndex<R>,
{
    let rendered = r.opt_text("rendered")?;
    Ok(MessageRow {
        id: r.int("id")?,
        dedupe_key: r.text("dedupe_key")?,
        rule_id: r.text("rule_id")?,
        member_id: r.int("member_id")?,
        member: r.text("member")?,
        occurrence: r.text("occurrence")?,
        channel: r.text("channel")?,
        state: r.text("state")?,
        reason: r.opt_text("reason")?,
        attempts: r.int("attempts")?,
        run_at: ts(r.int("run_at")?)?,
        provider: r.opt_text("provider")?,
        provider_id: r.opt_text("provider_id")?,
        instance: r.opt_text("instance")?,
        rendered: rendered.and_then(|s| serde_json::from_str(&s).ok()),
        sent_at: opt_ts(r.opt_int("sent_at")?)?,
        experiment: r.opt_text("experiment")?,
        variant: r.opt_text("variant")?,
    })
}

pub(super) fn history_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<HistoryEntry>
where
    &'r str: ColumnIndex<R>,
{
    Ok(HistoryEntry { at: ts(r.int("at")?)?, state: r.text("state")?, detail: r.opt_text("detail")? })
}

/// The state a newly enqueued message starts in: skipped when planning said why, else scheduled.
pub(super) fn first_state(m: &crate::plan::NewMessage) -> State {
    if m.skip.is_some() { State::Skipped } else { State::Scheduled }
}

/// The detail of a newly enqueued message's first history row.
pub(super) fn history_detail(m: &crate::plan::NewMessage) -> String {
    m.skip.clone().unwrap_or_else(|| format!("due {}", m.run_at))
}

/// The batch `enqueue` inserts, as the JSON array both backends read in one statement: one
/// object per message (a dedupe key twice in a batch is kept once; it would be inserted once but
/// given two history entries).
pub(super) fn enqueue_rows(msgs: &[crate::plan::NewMessage]) -> String {
    let mut keys = std::collections::HashSet::new();
    let rows: Vec<Value> = msgs
        .iter()
        .filter(|m| keys.insert(m.dedupe_key.as_str()))
        .map(|m| {
            let state = first_state(m);
            serde_json::json!({
                "key": m.dedupe_key, "rule": m.rule_id, "member": m.member_id, "occurrence": m.occurrence,
                "channel": m.channel.as_str(), "template": m.template,
                "vars": Value::Object(m.vars.clone()).to_string(),
                "run_at": m.run_at.as_millisecond(), "deadline": m.deadline.map(|d| d.as_millisecond()),
                "state": state.as_str(), "reason": m.skip,
                "fallback": fallback_text(&m.fallback), "purpose": m.purpose.as_str(),
                "experiment": m.experiment, "variant": m.variant,
                "detail": history_detail(m),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The batch a member upsert writes, as the JSON array both backends read in one statement.
pub(super) fn member_rows(rows: &[crate::members::MemberInput]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|m| {
            serde_json::json!({
                "external_id": m.external_id, "name": m.name, "phone": m.phone, "email": m.email,
                "locale": m.locale, "time_zone": m.time_zone,
                "birth_date": m.birth_date.map(|d| d.to_string()),
                "lunar_birthday": m.lunar_birthday.map(|b| b.to_string()),
                "member_since": m.member_since.map(|d| d.to_string()),
                "tier": m.tier, "points": m.points,
                // Stored as the text serde_json writes, so an unchanged row compares equal.
                "attributes": Value::Object(m.attributes.clone()).to_string(),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The batch `record_events` writes, as the JSON array both backends read in one statement.
pub(super) fn event_rows(events: &[crate::members::EventInput]) -> String {
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({"event_id": e.event_id, "member": e.member, "kind": e.kind, "amount": e.amount,
                               "at": e.at.as_millisecond(),
                               "data": e.data.as_ref().map(|d| Value::Object(d.clone()).to_string())})
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The events' members the store does not know, one entry per such event, in order.
pub(super) fn unknown_members(
    events: &[crate::members::EventInput],
    known: &std::collections::HashSet<String>,
) -> Vec<String> {
    events.iter().filter(|e| !known.contains(&e.member)).map(|e| e.member.clone()).collect()
}

/// An address never to be sent to again, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub channel: ChannelKind,
    pub address: String,
    /// e.g. `hard bounce: 550 5.1.1 user unknown`.
    pub reason: String,
    /// What reported it: a provider's name, `api`, an operator.
    pub source: String,
}

/// A receipt's line in the message's history: `twilio reported undelivered: 30003`.
pub(super) fn receipt_detail(r: &crate::channels::Receipt) -> String {
    let state = match r.status {
        crate::channels::DeliveryStatus::Delivered => State::Delivered,
        crate::channels::DeliveryStatus::Undelivered => State::Undelivered,
    };
    match r.code.as_deref().filter(|c| !c.is_empty()) {
        Some(code) => format!("{} reported {state}: {code}", r.provider),
        None => format!("{} reported {state}", r.provider),
    }
}

/// The batch `record_receipts` writes, as the JSON array both backends read in one statement.
pub(super) fn receipt_rows(receipts: &[crate::channels::Receipt], now_ms: i64) -> String {
    let rows: Vec<Value> = receipts
        .iter()
        .filter(|r| !r.provider_id.is_empty())
        .map(|r| {
            let state = match r.status {
                crate::channels::DeliveryStatus::Delivered => State::Delivered,
                crate::channels::DeliveryStatus::Undelivered => State::Undelivered,
            };
            serde_json::json!({
                "provider": r.provider, "provider_id": r.provider_id, "state": state.as_str(),
                "code": r.code, "at": r.at.map_or(now_ms, |t| t.as_millisecond()),
                "detail": receipt_detail(r),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// A `push_devices` row: member id, platform, token, p256dh, auth.
pub(super) type DeviceRow = (i64, String, String, Option<String>, Option<String>);

pub(super) fn device_from_row(
    (member, platform, token, p256dh, auth): DeviceRow,
) -> Result<(i64, crate::channels::PushDevice)> {
    let platform = crate::channels::Platform::parse(&platform)
        .ok_or_else(|| StoreError::Corrupt(format!("platform {platform:?}")))?;
    Ok((member, crate::channels::PushDevice { platform, token, p256dh, auth }))
}

/// The batch `suppress` writes, as the JSON array both backends read in one statement.
pub(super) fn suppression_rows(entries: &[Suppression]) -> String {
    let rows: Vec<Value> = entries
        .iter()
        .map(|s| {
            serde_json::json!({"channel": s.channel.as_str(), "address": s.address, "reason": s.reason,
                               "source": s.source})
        })
        .collect();
    Value::Array(rows).to_string()
}

pub(super) fn parse_channel(c: &str) -> Result<ChannelKind> {
    ChannelKind::parse(c).ok_or_else(|| StoreError::Corrupt(format!("channel {c:?}")))
}

pub(super) fn parse_purpose(p: &str) -> Result<Purpose> {
    Purpose::parse(p).ok_or_else(|| StoreError::Corrupt(format!("purpose {p:?}")))
}

/// One member's purchase history as the value refresh reads it, with what the last refresh
/// stored (to see who crossed a churn threshold since).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub history: crate::members::value::rfm::History,
    pub previous: Option<Previous>,
}

/// What the last refresh stored of a member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Previous {
    pub p_alive: Option<f64>,
    pub last_purchase_at: Option<Timestamp>,
    pub churn_crossed_at: Option<Timestamp>,
}

/// A member's value as the refresh writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    pub member_id: i64,
    pub value: crate::members::MemberValue,
}

/// A fit of a model, accepted or not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelRecord {
    pub id: i64,
    /// `bgnbd`.
    pub kind: String,
    pub fitted_at: Timestamp,
    pub params: Value,
    pub log_likelihood: Option<f64>,
    pub customers: i64,
    pub iterations: i64,
    pub converged: bool,
    /// Became the current model (a fit that did not converge is recorded, never accepted).
    pub accepted: bool,
    /// Members below the at-risk threshold after this fit.
    pub at_risk: i64,
    pub duration_ms: i64,
    pub note: Option<String>,
}

/// The batch `write_member_values` writes, as the JSON array both backends read in one statement.
pub(super) fn value_rows(rows: &[ValueRow]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let v = &r.value;
            serde_json::json!({
                "member_id": r.member_id, "recency_days": v.recency_days, "frequency": v.frequency,
                "monetary": v.monetary, "r_score": v.r, "f_score": v.f, "m_score": v.m,
                "segment": v.segment.as_str(), "p_alive": v.p_alive, "expected_purchases": v.expected_purchases,
                "last_purchase_at": v.last_purchase_at.map(|t| t.as_millisecond()),
                "churn_crossed_at": v.churn_crossed_at.map(|t| t.as_millisecond()),
                "scored_at": v.scored_at.as_millisecond(),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// A purchase-history row of either backend.
pub(super) fn purchases_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<HistoryRow>
where
    &'r str: ColumnIndex<R>,
{
    // Joined: the programme join date when the host system gave one, else when the row was made.
    let joined = match date(r.opt_text("member_since")?, "member_since")? {
        Some(d) => jiff::tz::Offset::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .unwrap_or(ts(r.int("created_at")?)?),
        None => ts(r.int("created_at")?)?,
    };
    Ok(HistoryRow {
        history: crate::members::value::rfm::History {
            member_id: r.int("member_id")?,
            joined,
            purchase_days: r.int("purchase_days")?.max(0) as u32,
            first_purchase: opt_ts(r.opt_int("first_at")?)?,
            last_purchase: opt_ts(r.opt_int("last_at")?)?,
            spend: r.opt_float("spend")?.unwrap_or(0.0),
        },
        previous: match r.opt_int("previous_scored_at")? {
            None => None,
            Some(_) => Some(Previous {
                p_alive: r.opt_float("previous_p_alive")?,
                last_purchase_at: opt_ts(r.opt_int("previous_last_purchase_at")?)?,
                churn_crossed_at: opt_ts(r.opt_int("previous_churn_crossed_at")?)?,
            }),
        },
    })
}

/// A `models` row of either backend (`converged` and `accepted` decoded by the caller).
pub(super) fn model_from_row<'r, R: StoreRow<'r>>(r: &'r R, converged: bool, accepted: bool) -> Result<ModelRecord>
where
    &'r str: ColumnIndex<R>,
{
    let params = r.text("params")?;
    Ok(ModelRecord {
        id: r.int("id")?,
        kind: r.text("kind")?,
        fitted_at: ts(r.int("fitted_at")?)?,
        params: serde_json::from_str(&params).map_err(|e| StoreError::Corrupt(format!("model params: {e}")))?,
        log_likelihood: r.opt_float("log_likelihood")?,
        customers: r.int("customers")?,
        iterations: r.int("iterations")?,
        converged,
        accepted,
        at_risk: r.int("at_risk")?,
        duration_ms: r.int("duration_ms")?,
        note: r.opt_text("note")?,
    })
}
