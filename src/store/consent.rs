//! Consent and the audit log in the store: each member's current consent per channel and
//! purpose, its append-only history, and the audit log of who changed consent, templates, rules
//! and journeys. Every consent change writes its history row and its audit entry in the same
//! transaction as the change, and is committed before the call returns.
//!
//! The rule that protects a member's own decision lives here, in the one upsert that applies
//! changes: a grant made by `import` never overrides a revocation the member made themselves
//! (actor `member`: an unsubscribe link, an SMS reply). Anything else changes the state when it
//! differs from the stored one; repeating the same decision records nothing, except that a
//! member repeating a revocation someone else made takes it over (so an import cannot undo it).

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::{Backend, Result, Store};
use crate::channels::{ChannelKind, Purpose};

/// The actor of a member's own decision (an unsubscribe link, an SMS reply).
pub const ACTOR_MEMBER: &str = "member";
/// The actor of consent given in an import (JSON Lines, CSV, or members posted to the API).
pub const ACTOR_IMPORT: &str = "import";

/// One change of consent asked for: the member (by external id), channel, purpose, whether it
/// is granted, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentChange {
    pub member: String,
    pub channel: ChannelKind,
    pub purpose: Purpose,
    pub granted: bool,
    pub source: String,
}

/// A consent as stored: the current state of one (channel, purpose), or one history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    pub channel: ChannelKind,
    pub purpose: Purpose,
    pub granted: bool,
    pub source: String,
    pub actor: String,
    pub at: Timestamp,
}

/// What a batch of consent changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsentOutcome {
    /// Changes that moved a member's consent (each with its history row and audit entry).
    pub changed: u64,
    /// Changes that repeated the stored state, or an import's grant that a member's own
    /// revocation outranks.
    pub unchanged: u64,
    /// External ids that name no member.
    pub unknown_members: Vec<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Value,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub subject: Option<String>,
    pub action: Option<String>,
    /// Only entries with an id below this (the previous page's last id).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A configuration item whose digest changed since the audit log last recorded it: `digest`
/// `None` when it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// `rule` or `template`.
    pub kind: String,
    pub name: String,
    pub digest: Option<String>,
}

/// The row each backend applies: a change resolved to its member.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ResolvedChange {
    pub member_id: i64,
    pub member: String,
    pub channel: &'static str,
    pub purpose: &'static str,
    pub status: &'static str,
    pub source: String,
}

impl ResolvedChange {
    pub(super) fn new(
        member_id: i64,
        member: &str,
        channel: ChannelKind,
        purpose: Purpose,
        granted: bool,
        source: &str,
    ) -> Self {
        ResolvedChange {
            member_id,
            member: member.to_string(),
            channel: channel.as_str(),
            purpose: purpose.as_str(),
            status: if granted { "granted" } else { "revoked" },
            source: source.to_string(),
        }
    }
}

/// The same change asked twice in one batch keeps the last (a single upsert may not touch a row
/// twice).
pub(super) fn last_per_key(changes: &[ConsentChange]) -> Vec<&ConsentChange> {
    let mut seen = HashSet::new();
    let mut out: Vec<&ConsentChange> =
        changes.iter().rev().filter(|c| seen.insert((c.member.as_str(), c.channel, c.purpose))).collect();
    out.reverse();
    out
}

/// The audit rows of applied consent changes, as the JSON array both backends insert from.
pub(super) fn consent_audit_rows(applied: &[ResolvedChange]) -> String {
    let rows: Vec<Value> = applied
        .iter()
        .map(|c| {
            serde_json::json!({
                "action": if c.status == "granted" { "consent.grant" } else { "consent.revoke" },
                "subject": format!("member:{}", c.member),
                "detail": serde_json::json!({"channel": c.channel, "purpose": c.purpose, "source": c.source}).to_string(),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// Who stands behind an opt-out recorded by `source`: the member for an unsubscribe link or an
/// SMS reply, else the API.
pub fn actor_of_source(source: &str) -> &'static str {
    if source.starts_with("unsubscribe") || source.starts_with("sms-reply") || source.starts_with("sms reply") {
        ACTOR_MEMBER
    } else {
        "api"
    }
}

impl Store {
    /// Applies consent changes in one transaction, each with its history row and audit entry
    /// (by `actor`); committed before it returns. An `import` grant does not override a
    /// member's own revocation.
    pub async fn change_consent(
        &self,
        changes: &[ConsentChange],
        actor: &str,
        now: Timestamp,
    ) -> Result<ConsentOutcome> {
        if changes.is_empty() {
            return Ok(ConsentOutcome::default());
        }
        on_backend!(self.change_consent(changes, actor, now))
    }

    /// Revokes `purposes` on `channel` for every member with this address (their phone for SMS,
    /// email for email), as one transaction with history and audit; returns how many members
    /// have the address.
    pub async fn revoke_address(
        &self,
        channel: ChannelKind,
        address: &str,
        purposes: &[Purpose],
        source: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64> {
        on_backend!(self.revoke_address(channel, address, purposes, source, actor, now))
    }

    /// Records that the member wants no more `purpose` messages on `channel`. Committed before
    /// it returns. `false` when there is no such member. The actor is the member for an
    /// unsubscribe link or an SMS reply ([`actor_of_source`]), else `api`.
    pub async fn opt_out(
        &self,
        external_id: &str,
        channel: ChannelKind,
        purpose: Purpose,
        source: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let change =
            ConsentChange { member: external_id.to_string(), channel, purpose, granted: false, source: source.into() };
        let outcome = self.change_consent(&[change], actor_of_source(source), now).await?;
        Ok(outcome.unknown_members.is_empty())
    }

    /// Opts every member with this phone number out of `channel` for each of `purposes` (an
    /// inbound STOP), committed before it returns; returns how many members have the number.
    pub async fn opt_out_phone(
        &self,
        phone: &str,
        channel: ChannelKind,
        purposes: &[Purpose],
        source: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.revoke_address(channel, phone, purposes, source, actor_of_source(source), now).await
    }

    /// The revocations of these members.
    pub async fn opted_out(&self, member_ids: &[i64]) -> Result<HashSet<(i64, ChannelKind, Purpose)>> {
        let states = self.consents(member_ids).await?;
        Ok(states.into_iter().filter(|(_, granted)| !granted).map(|(k, _)| k).collect())
    }

    /// The consent state of these members: whether each (member, channel, purpose) they have
    /// said something about is granted. One query.
    pub async fn consents(&self, member_ids: &[i64]) -> Result<HashMap<(i64, ChannelKind, Purpose), bool>> {
        on_backend!(self.consents(member_ids))
    }

    /// One member's current consent and its whole history (oldest first); `None` when there is
    /// no such member.
    pub async fn member_consent(&self, external_id: &str) -> Result<Option<(Vec<ConsentRecord>, Vec<ConsentRecord>)>> {
        on_backend!(self.member_consent(external_id))
    }

    /// Appends one entry to the audit log; returns its id. For changes made outside this
    /// module (member erasure, journeys), in their own transaction.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &Value,
        now: Timestamp,
    ) -> Result<i64> {
        on_backend!(self.record_audit(actor, action, subject, detail, now))
    }

    /// Audit entries matching the filter, newest first.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        on_backend!(self.audit(f))
    }

    /// The digests last recorded for configuration items of `kind` (`rule`, `template`).
    pub async fn audited_config(&self, kind: &str) -> Result<HashMap<String, String>> {
        on_backend!(self.audited_config(kind))
    }

    /// Records configuration changes: one audit entry each (`<kind>.add`, `.change` or
    /// `.remove`, actor `actor`) and the new digests, in one transaction.
    pub async fn record_config_changes(&self, changes: &[ConfigChange], actor: &str, now: Timestamp) -> Result<()> {
        on_backend!(self.record_config_changes(changes, actor, now))
    }
}

/// The audit action of a configuration change: added, changed or removed.
pub(super) fn config_action(c: &ConfigChange, known: bool) -> String {
    match (&c.digest, known) {
        (None, _) => format!("{}.remove", c.kind),
        (Some(_), false) => format!("{}.add", c.kind),
        (Some(_), true) => format!("{}.change", c.kind),
    }
}

/// An audit row as both backends read it.
pub(super) fn audit_entry(
    (id, at, actor, action, subject, detail): (i64, i64, String, String, String, String),
) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id,
        at: super::types::ts(at)?,
        actor,
        action,
        subject,
        detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
    })
}

impl Store {
    /// [`Store::mark_sending`] under the whole consent policy: a message is not moved when its
    /// member revoked consent on the chosen channel for its purpose, or never gave it where the
    /// policy requires it. Checked in the same statement that marks the message, so an opt-out
    /// committed before it is never overtaken by a message already claimed.
    pub async fn mark_sending_consented(
        &self,
        owner: &str,
        batch: &[(i64, u32, ChannelKind, String)],
        policy: crate::plan::consent::ConsentPolicy,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        on_backend!(self.mark_sending(owner, batch, policy, now))
    }
}
