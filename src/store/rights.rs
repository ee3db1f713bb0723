//! Member rights in the store: the export document's rows, the erasure report, and the store
//! methods behind `tidings members export|erase`. Each backend's `rights.rs` holds the per-table
//! steps, one after another in one place; [`MEMBER_TABLES`] names the tables they cover, and a
//! test fails when the schema has a table with a `member_id` column that is not in it.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use sqlx::ColumnIndex;

use super::types::{HistoryEntry, StoreRow, opt_ts, ts};
use super::{Backend, Result, Store, Suppression};
use crate::channels::ChannelKind;
use crate::members::Member;
use crate::rights::HashKey;

/// Every table that holds data about a member (by `member_id`, through a message, or by
/// address): export reads each, erasure clears or anonymises each. A new table with a
/// `member_id` column must be added here and to both steps on both backends.
pub const MEMBER_TABLES: &[&str] = &[
    "members",
    "member_value",
    "events",
    "messages",
    "message_history",
    "push_devices",
    "opt_outs",
    "suppressions",
    "consents",
    "consent_history",
    "journey_runs",
    "coupon_codes",
];

/// Everything held about one member (format `tidings.member_export`, version 1).
#[derive(Debug, Clone, Serialize)]
pub struct MemberExport {
    pub format: &'static str,
    pub version: u32,
    pub exported_at: Timestamp,
    /// The member row with its attributes, lunar birthday and `value` (the last refresh's).
    pub member: Member,
    pub events: Vec<ExportEvent>,
    /// Every message planned for the member, with what was sent and its history.
    pub messages: Vec<ExportMessage>,
    pub push_devices: Vec<ExportDevice>,
    pub opt_outs: Vec<ExportOptOut>,
    /// Suppressions of the member's phone, email or id (as plain or hashed addresses).
    pub suppressions: Vec<ExportSuppression>,
    /// Consent per channel and purpose as it stands, and every change with its source and actor.
    pub consent: Vec<super::consent::ConsentRecord>,
    pub consent_history: Vec<super::consent::ConsentRecord>,
    /// The member's journey runs (coupon codes issued show in the messages that carried them).
    pub journey_runs: Vec<super::JourneyRun>,
    /// Audit log entries about the member.
    pub audit: Vec<super::consent::AuditEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportEvent {
    pub event_id: Option<String>,
    pub kind: String,
    pub amount: Option<f64>,
    pub at: Timestamp,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportMessage {
    pub id: i64,
    pub rule_id: String,
    pub occurrence: String,
    pub channel: String,
    pub purpose: String,
    pub template: String,
    pub vars: Value,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub run_at: Timestamp,
    pub deadline: Option<Timestamp>,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    /// The last delivery receipt's code.
    pub provider_code: Option<String>,
    /// What was sent (as rendered when handed to the provider).
    pub rendered: Option<Value>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportDevice {
    pub platform: String,
    pub token: String,
    pub p256dh: Option<String>,
    pub auth: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportOptOut {
    pub channel: String,
    pub purpose: String,
    pub source: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSuppression {
    pub channel: String,
    pub address: String,
    pub reason: String,
    pub source: String,
    pub created_at: Timestamp,
}

/// What an erasure did, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// The row id the anonymised messages still point at.
    pub member_id: i64,
    /// The opaque external id the row now has.
    pub tombstone: String,
    pub events_deleted: u64,
    pub push_devices_deleted: u64,
    pub opt_outs_deleted: u64,
    pub member_value_deleted: u64,
    pub messages_anonymised: u64,
    /// Scheduled (or claimed, not yet sending) messages skipped as `member erased`.
    pub messages_skipped: u64,
    pub history_scrubbed: u64,
    /// Plain suppressions removed, and hashed ones written in their place (with opt-outs).
    pub suppressions_removed: u64,
    pub suppressions_hashed: u64,
    /// Consent states deleted (their history goes with them).
    pub consents_deleted: u64,
    /// Audit entries about the member whose subject now names the tombstone, details cleared.
    pub audit_scrubbed: u64,
}

/// The parts of an export a backend reads, in one snapshot.
pub(super) struct ExportRows {
    pub member: Member,
    pub events: Vec<ExportEvent>,
    pub messages: Vec<ExportMessage>,
    pub history: Vec<(i64, HistoryEntry)>,
    pub push_devices: Vec<ExportDevice>,
    pub opt_outs: Vec<ExportOptOut>,
    pub suppressions: Vec<ExportSuppression>,
}

impl Store {
    /// Uses `key` to hash erased members' addresses: [`Store::suppressed`] then matches a plain
    /// address against its hashed entries too.
    pub fn with_hash_key(mut self, key: Option<HashKey>) -> Store {
        self.hash_key = key;
        self
    }

    pub fn hash_key(&self) -> Option<&HashKey> {
        self.hash_key.as_ref()
    }

    /// The suppression check with hashed entries: each address is looked up as it is and as its
    /// hash, in the same one query; a hit on either answers the plain address.
    pub(super) async fn suppressed_plain_or_hashed(
        &self,
        addresses: &[(ChannelKind, String)],
    ) -> Result<HashSet<(ChannelKind, String)>> {
        let Some(key) = &self.hash_key else { return on_backend!(self.suppressed(addresses)) };
        let mut lookup = addresses.to_vec();
        let mut plain: HashMap<(ChannelKind, String), String> = HashMap::new();
        for (c, a) in addresses {
            let hashed = key.address(*c, a);
            plain.insert((*c, hashed.clone()), a.clone());
            lookup.push((*c, hashed));
        }
        let found = on_backend!(self.suppressed(&lookup))?;
        Ok(found
            .into_iter()
            .map(|(c, a)| match plain.get(&(c, a.clone())) {
                Some(p) => (c, p.clone()),
                None => (c, a),
            })
            .collect())
    }

    /// Everything held about the member with this external id, read in one snapshot; `None`
    /// when there is no such member (an erased one has none).
    pub async fn export_member(&self, external_id: &str, now: Timestamp) -> Result<Option<MemberExport>> {
        let key = self.hash_key.as_ref();
        let Some(rows) = on_backend!(self.export_member(external_id, key))? else { return Ok(None) };
        let mut history: HashMap<i64, Vec<HistoryEntry>> = HashMap::new();
        for (id, h) in rows.history {
            history.entry(id).or_default().push(h);
        }
        let messages = rows
            .messages
            .into_iter()
            .map(|mut m| {
                m.history = history.remove(&m.id).unwrap_or_default();
                m
            })
            .collect();
        Ok(Some(MemberExport {
            format: crate::rights::EXPORT_FORMAT,
            version: crate::rights::EXPORT_VERSION,
            exported_at: now,
            member: rows.member,
            events: rows.events,
            messages,
            push_devices: rows.push_devices,
            opt_outs: rows.opt_outs,
            suppressions: rows.suppressions,
            consent: Vec::new(),
            consent_history: Vec::new(),
            journey_runs: Vec::new(),
            audit: Vec::new(),
        }))
    }

    /// Erases the member with this external id in one transaction: personal fields cleared and
    /// the external id replaced by `tombstone`; events, push devices, member value and opt-outs
    /// deleted; messages anonymised (vars, rendered text, provider ids and addresses in reasons
    /// cleared; states and instants kept), scheduled ones skipped as `member erased`; history
    /// details scrubbed of addresses and provider ids; suppressions of the member's addresses
    /// and their opt-outs kept only as `key` hashes. `None` when there is no such member.
    pub async fn erase_member(
        &self,
        external_id: &str,
        key: &HashKey,
        tombstone: &str,
        now: Timestamp,
    ) -> Result<Option<ErasureReport>> {
        on_backend!(self.erase_member(external_id, key, tombstone, now))
    }

    /// The schema's tables with a `member_id` column (for the coverage check against
    /// [`MEMBER_TABLES`]).
    pub async fn tables_with_member_id(&self) -> Result<Vec<String>> {
        on_backend!(self.tables_with_member_id())
    }
}

// Row decoders shared by both backends' export steps.

pub(super) fn event_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<ExportEvent>
where
    &'r str: ColumnIndex<R>,
{
    Ok(ExportEvent {
        event_id: r.opt_text("event_id")?,
        kind: r.text("kind")?,
        amount: r.opt_float("amount")?,
        at: ts(r.int("at")?)?,
        received_at: ts(r.int("received_at")?)?,
    })
}

/// The message columns the export reads (the same SQL in both dialects).
pub(super) const EXPORT_MESSAGE_COLUMNS: &str = "id, rule_id, occurrence, channel, purpose, template, vars, state, \
     reason, attempts, run_at, deadline, provider, provider_id, provider_code, rendered, created_at, sent_at, \
     delivered_at";

pub(super) fn message_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<ExportMessage>
where
    &'r str: ColumnIndex<R>,
{
    let json = |t: String| serde_json::from_str(&t).unwrap_or(Value::String(t));
    Ok(ExportMessage {
        id: r.int("id")?,
        rule_id: r.text("rule_id")?,
        occurrence: r.text("occurrence")?,
        channel: r.text("channel")?,
        purpose: r.text("purpose")?,
        template: r.text("template")?,
        vars: json(r.text("vars")?),
        state: r.text("state")?,
        reason: r.opt_text("reason")?,
        attempts: r.int("attempts")?,
        run_at: ts(r.int("run_at")?)?,
        deadline: opt_ts(r.opt_int("deadline")?)?,
        provider: r.opt_text("provider")?,
        provider_id: r.opt_text("provider_id")?,
        provider_code: r.opt_text("provider_code")?,
        rendered: r.opt_text("rendered")?.map(json),
        created_at: ts(r.int("created_at")?)?,
        sent_at: opt_ts(r.opt_int("sent_at")?)?,
        delivered_at: opt_ts(r.opt_int("delivered_at")?)?,
        history: Vec::new(),
    })
}

pub(super) fn history_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<(i64, HistoryEntry)>
where
    &'r str: ColumnIndex<R>,
{
    Ok((
        r.int("message_id")?,
        HistoryEntry { at: ts(r.int("at")?)?, state: r.text("state")?, detail: r.opt_text("detail")? },
    ))
}

pub(super) fn device_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<ExportDevice>
where
    &'r str: ColumnIndex<R>,
{
    Ok(ExportDevice {
        platform: r.text("platform")?,
        token: r.text("token")?,
        p256dh: r.opt_text("p256dh")?,
        auth: r.opt_text("auth")?,
        created_at: ts(r.int("created_at")?)?,
    })
}

pub(super) fn opt_out_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<ExportOptOut>
where
    &'r str: ColumnIndex<R>,
{
    Ok(ExportOptOut {
        channel: r.text("channel")?,
        purpose: r.text("purpose")?,
        source: r.text("source")?,
        created_at: ts(r.int("created_at")?)?,
    })
}

pub(super) fn suppression_from_row<'r, R: StoreRow<'r>>(r: &'r R) -> Result<ExportSuppression>
where
    &'r str: ColumnIndex<R>,
{
    Ok(ExportSuppression {
        channel: r.text("channel")?,
        address: r.text("address")?,
        reason: r.text("reason")?,
        source: r.text("source")?,
        created_at: ts(r.int("created_at")?)?,
    })
}

/// The (channel, address) pairs whose suppressions belong in a member's export: each address as
/// it is, and hashed when a key is configured.
pub(super) fn export_suppression_keys(
    addresses: &[(ChannelKind, String)],
    key: Option<&HashKey>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (c, a) in addresses {
        out.push((c.as_str().to_string(), a.clone()));
        if let Some(k) = key {
            out.push((c.as_str().to_string(), k.address(*c, a)));
        }
    }
    out
}

/// An existing suppression as erasure reads it.
pub(super) fn plain_suppression(
    (channel, address, reason, source): (String, String, String, String),
) -> Result<Suppression> {
    Ok(Suppression { channel: super::types::parse_channel(&channel)?, address, reason, source })
}
