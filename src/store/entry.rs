//! Entry triggers and transactional sends in the store: the events an event rule has not seen
//! (by the change counter stamped on each), the idempotency keys of transactional sends, and
//! messages by dedupe key. Built-in events are recorded by the member writes themselves
//! (`members.rs` of each backend, through `insert_builtin` there).

use jiff::Timestamp;

use super::{Backend, Result, State, Store};
use crate::members::builtin::BuiltinEvents;
use crate::triggers::EventRecord;

/// Which events an event rule reads: of `kinds`, stamped in `(after_seq, upto_seq]`, that
/// happened after `at_after`, with a row id above `after_id` (keyset), at most `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery<'a> {
    pub kinds: &'a [String],
    /// `None`: from the first event (a rule's first tick, bounded by `at_after` instead).
    pub after_seq: Option<i64>,
    pub upto_seq: i64,
    pub at_after: Option<Timestamp>,
    pub after_id: i64,
    pub limit: u32,
}

/// A message found by its dedupe key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentMessage {
    pub id: i64,
    #[serde(skip)]
    pub dedupe_key: String,
    pub channel: String,
    pub state: State,
}

impl Store {
    /// This store recording built-in events with the programme's tier order and purchase kinds
    /// (the default: no order, `purchase`).
    pub fn with_builtin_events(mut self, builtin: BuiltinEvents) -> Store {
        self.builtin = std::sync::Arc::new(builtin);
        self
    }

    /// A batch of the events an event rule has to look at, in row id order.
    pub async fn events_for_rule(&self, q: &EventQuery<'_>) -> Result<Vec<EventRecord>> {
        match &self.backend {
            Backend::Sqlite(s) => s.events_for_rule(q).await,
            Backend::Postgres(s) => s.events_for_rule(q).await,
        }
    }

    /// Takes an idempotency key for `request` (its canonical JSON), or finds it taken: returns the
    /// request stored under the key, which is `request` itself the first time.
    pub async fn take_send_key(&self, key: &str, request: &str, now: Timestamp) -> Result<String> {
        match &self.backend {
            Backend::Sqlite(s) => s.take_send_key(key, request, now).await,
            Backend::Postgres(s) => s.take_send_key(key, request, now).await,
        }
    }

    /// The messages with these dedupe keys (those that exist).
    pub async fn messages_by_dedupe_keys(&self, keys: &[String]) -> Result<Vec<SentMessage>> {
        match &self.backend {
            Backend::Sqlite(s) => s.messages_by_dedupe_keys(keys).await,
            Backend::Postgres(s) => s.messages_by_dedupe_keys(keys).await,
        }
    }
}

/// An events row as both backends select it.
pub(super) type EventRow = (i64, Option<String>, i64, String, Option<f64>, i64, Option<String>, i64);

pub(super) fn event_from_row(row: EventRow) -> Result<EventRecord> {
    let (id, event_id, member_id, kind, amount, at, data, change_seq) = row;
    let data = match data {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(super::StoreError::Corrupt(format!("event {id}: data is not a JSON object"))),
        },
    };
    let at = Timestamp::from_millisecond(at).map_err(|e| super::StoreError::Corrupt(format!("event {id}: {e}")))?;
    Ok(EventRecord { id, event_id, member_id, kind, amount, at, data, change_seq })
}

/// The built-in events as the JSON array both backends insert in one statement.
pub(super) fn builtin_rows(events: &[crate::members::builtin::NewBuiltin]) -> String {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({"event_id": e.event_id, "member_id": e.member_id, "kind": e.kind, "at": e.at,
                               "data": e.data.to_string()})
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
