//! Rules and journeys defined through the API: an append-only history per (kind, id), the
//! latest row in force. Writing one also cancels, in the same transaction, what a disabled or
//! removed definition had waiting: its scheduled messages are skipped and, for a journey, its
//! active runs end.

use jiff::Timestamp;
use serde::Serialize;

use super::{Backend, Result, Store};

/// A rule or a journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionKind {
    Rule,
    Journey,
}

impl DefinitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Rule => "rule",
            DefinitionKind::Journey => "journey",
        }
    }

    pub fn parse(s: &str) -> Option<DefinitionKind> {
        match s {
            "rule" => Some(DefinitionKind::Rule),
            "journey" => Some(DefinitionKind::Journey),
            _ => None,
        }
    }
}

/// One stored version of a definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDefinition {
    pub kind: DefinitionKind,
    pub id: String,
    /// Its version: the history row's sequence number, unique across all definitions.
    pub version: i64,
    /// As written (`[[rules]]` or `[[journeys]]` keys); `None`: removed.
    pub body: Option<serde_json::Value>,
    pub actor: String,
    pub at: Timestamp,
}

/// A definition to write.
#[derive(Debug, Clone)]
pub struct DefinitionWrite<'a> {
    pub kind: DefinitionKind,
    pub id: &'a str,
    /// `None` removes it.
    pub body: Option<&'a serde_json::Value>,
    /// Written only if the version in force is still this one (`Some(None)`: none stored yet).
    pub expect: Option<Option<i64>>,
    /// Its scheduled messages are skipped with this reason (and a journey's active runs end):
    /// set when the write disables or removes it.
    pub cancel: Option<&'a str>,
    pub actor: &'a str,
    pub now: Timestamp,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionWritten {
    /// Stored as this version; `cancelled` messages skipped and `runs` ended.
    Stored { version: i64, cancelled: u64, runs: u64 },
    /// Someone changed it first: the version now in force.
    Stale { current: Option<i64> },
}

impl Store {
    /// The definitions in force (the latest version of each, unless removed), in the order they
    /// were first created.
    pub async fn definitions(&self) -> Result<Vec<StoredDefinition>> {
        on_backend!(self.definitions())
    }

    /// Every version of one definition, newest first.
    pub async fn definition_history(&self, kind: DefinitionKind, id: &str) -> Result<Vec<StoredDefinition>> {
        on_backend!(self.definition_history(kind, id))
    }

    /// How many versions have been written (0: none): cheap, read every tick to see whether
    /// another instance changed something. A count, not the highest sequence number: on
    /// PostgreSQL a sequence number is taken when a row is inserted, not when it commits, so a
    /// slower writer's lower number can become visible after a higher one was read; the count
    /// of an append-only table grows with every commit.
    pub async fn definitions_version(&self) -> Result<i64> {
        on_backend!(self.definitions_version())
    }

    /// Writes a new version (or removal) of a definition, in one transaction with the
    /// cancellations it asks for.
    pub async fn write_definition(&self, w: &DefinitionWrite<'_>) -> Result<DefinitionWritten> {
        on_backend!(self.write_definition(w))
    }
}

/// A row as both backends read it.
pub(super) type DefinitionRow = (String, String, i64, Option<String>, String, i64);

pub(super) fn definition(r: DefinitionRow) -> Result<StoredDefinition> {
    let kind =
        DefinitionKind::parse(&r.0).ok_or_else(|| super::StoreError::Corrupt(format!("definition kind {:?}", r.0)))?;
    let body = match r.3 {
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| super::StoreError::Corrupt(format!("definition {} {}: {e}", r.0, r.1)))?,
        ),
        None => None,
    };
    Ok(StoredDefinition { kind, id: r.1, version: r.2, body, actor: r.4, at: super::types::ts(r.5)? })
}
