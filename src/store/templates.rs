//! Template versions in the store: each key's content as JSON, one row per version (draft,
//! published or superseded), exactly one published per key. Creating, publishing and seeding
//! write their audit entries (and the template's audited digest, so `App::audit_config` does not
//! record the same change again) in the transaction that makes the change.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::{Backend, Result, Store};

/// The actor of the versions stored from the configured source on first start.
pub const ACTOR_SEED: &str = "seed";

/// One stored version of a template key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateVersion {
    pub id: i64,
    pub key: String,
    pub version: i64,
    /// `draft`, `published` or `superseded`.
    pub state: String,
    /// The key's content: `{"fixture": {…}, "locales": {"en": {"sms": …}}}`.
    pub content: Value,
    pub created_at: Timestamp,
    pub created_by: String,
    pub note: Option<String>,
    /// For a rollback: the version whose content this one copies.
    pub rollback_of: Option<i64>,
    pub published_at: Option<Timestamp>,
}

/// A version to add: its content as JSON text and the digest the audit log records for it.
#[derive(Debug, Clone)]
pub struct NewTemplateVersion<'a> {
    pub key: &'a str,
    pub content: &'a str,
    pub digest: &'a str,
    pub actor: &'a str,
    pub note: Option<&'a str>,
    pub rollback_of: Option<i64>,
    /// Publish it at once (a rollback), superseding the published version.
    pub publish: bool,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    Done(TemplateVersion),
    NoSuchVersion,
    /// The version is not a draft: `published` or `superseded`.
    NotDraft(String),
}

/// A seeded key: its name, content JSON and digest.
#[derive(Debug, Clone)]
pub struct SeedTemplate {
    pub key: String,
    pub content: String,
    pub digest: String,
}

/// The row both backends read, in `COLUMNS` order.
pub(super) type Row = (i64, String, i64, String, String, i64, String, Option<String>, Option<i64>, Option<i64>);

pub(super) const COLUMNS: &str =
    "id, key, version, state, content, created_at, created_by, note, rollback_of, published_at";

pub(super) fn version(r: Row) -> Result<TemplateVersion> {
    Ok(TemplateVersion {
        id: r.0,
        key: r.1,
        version: r.2,
        state: r.3,
        content: serde_json::from_str(&r.4)
            .map_err(|e| super::StoreError::Corrupt(format!("template version {}: {e}", r.0)))?,
        created_at: super::types::ts(r.5)?,
        created_by: r.6,
        note: r.7,
        rollback_of: r.8,
        published_at: super::types::opt_ts(r.9)?,
    })
}

/// The audit detail of a new version.
pub(super) fn created_detail(v: &NewTemplateVersion<'_>, version: i64) -> String {
    serde_json::json!({"version": version, "note": v.note, "rollback_of": v.rollback_of, "digest": v.digest})
        .to_string()
}

impl Store {
    /// The published version of every key, by key.
    pub async fn published_templates(&self) -> Result<Vec<TemplateVersion>> {
        on_backend!(self.published_templates())
    }

    /// The newest version of every key (a draft when one is pending), by key.
    pub async fn latest_templates(&self) -> Result<Vec<TemplateVersion>> {
        on_backend!(self.latest_templates())
    }

    /// One key's versions, newest first, those below `before` (a version number) only.
    pub async fn template_versions(&self, key: &str, before: Option<i64>, limit: u32) -> Result<Vec<TemplateVersion>> {
        on_backend!(self.template_versions(key, before, limit))
    }

    pub async fn template_version(&self, key: &str, version: i64) -> Result<Option<TemplateVersion>> {
        on_backend!(self.template_version(key, version))
    }

    /// A number that grows with every publish (the versions ever published): cheap to compare,
    /// so an instance sees another one's publish by polling it.
    pub async fn templates_mark(&self) -> Result<i64> {
        on_backend!(self.templates_mark())
    }

    /// Adds the key's next version as a draft (or, with `publish`, published at once), with its
    /// audit entries (`template.draft`, and `template.publish`), in one transaction.
    pub async fn add_template_version(&self, v: &NewTemplateVersion<'_>, now: Timestamp) -> Result<TemplateVersion> {
        on_backend!(self.add_template_version(v, now))
    }

    /// Publishes a draft: the key's published version becomes superseded, the audit entry
    /// (`template.publish`) and audited digest are written, in one transaction.
    pub async fn publish_template_version(
        &self,
        key: &str,
        version: i64,
        digest: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Published> {
        on_backend!(self.publish_template_version(key, version, digest, actor, now))
    }

    /// Stores `templates` as version 1 of each key, published by [`ACTOR_SEED`], if the table
    /// is empty; `false` when it was not (another start, or another instance, seeded it).
    pub async fn seed_templates(&self, templates: &[SeedTemplate], now: Timestamp) -> Result<bool> {
        on_backend!(self.seed_templates(templates, now))
    }
}
