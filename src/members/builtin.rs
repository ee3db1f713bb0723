//! Built-in events: what the daemon records itself when members are written, so rules can start
//! on them like on any event the host sends: `member.joined` (a member first inserted),
//! `member.tier_upgraded` / `member.tier_downgraded` / `member.tier_changed` (an upsert changed
//! the tier), `member.first_purchase` (a member's first event of a purchase kind arrived).
//!
//! Pure: the store calls these inside the transaction of the write that causes the event and
//! inserts what they return in one statement.

use serde_json::{Value, json};

pub const JOINED: &str = "member.joined";
pub const TIER_UPGRADED: &str = "member.tier_upgraded";
pub const TIER_DOWNGRADED: &str = "member.tier_downgraded";
pub const TIER_CHANGED: &str = "member.tier_changed";
pub const FIRST_PURCHASE: &str = "member.first_purchase";

/// What the store needs to know to record built-in events: the programme's tier order and the
/// event kinds that are purchases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinEvents {
    /// Lowest first (`programme.tiers`); empty: every tier change is `member.tier_changed`.
    pub tiers: Vec<String>,
    /// `model.purchase_events`.
    pub purchase_kinds: Vec<String>,
}

impl Default for BuiltinEvents {
    fn default() -> Self {
        BuiltinEvents { tiers: Vec::new(), purchase_kinds: vec!["purchase".into()] }
    }
}

/// One built-in event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBuiltin {
    pub member_id: i64,
    /// Unique: `member.joined:42`, so a member joins once however often the write is retried.
    pub event_id: String,
    pub kind: &'static str,
    /// Epoch milliseconds.
    pub at: i64,
    pub data: Value,
}

impl BuiltinEvents {
    /// The kind of a tier change from `from` to `to`, with its data `{from, to}`; `None` when the
    /// tier did not change. Up or down by the configured order; `member.tier_changed` when there
    /// is no order, or either side is unset or not in it.
    pub fn tier_change(&self, from: Option<&str>, to: Option<&str>) -> Option<(&'static str, Value)> {
        if from == to {
            return None;
        }
        let rank = |t: Option<&str>| t.and_then(|t| self.tiers.iter().position(|x| x == t));
        let kind = match (rank(from), rank(to)) {
            (Some(a), Some(b)) if b > a => TIER_UPGRADED,
            (Some(a), Some(b)) if b < a => TIER_DOWNGRADED,
            _ => TIER_CHANGED,
        };
        Some((kind, json!({"from": from, "to": to})))
    }

    pub fn is_purchase(&self, kind: &str) -> bool {
        self.purchase_kinds.iter().any(|k| k == kind)
    }

    /// The built-in events of one member upsert run: `written` are the rows the upsert wrote
    /// `(member id, external id, tier)`, `before` the tiers of those that existed before it.
    pub fn of_upsert(
        &self,
        written: &[(i64, String, Option<String>)],
        before: &std::collections::HashMap<String, Option<String>>,
        change: i64,
        now_ms: i64,
    ) -> Vec<NewBuiltin> {
        let mut out = Vec::new();
        for (id, external_id, tier) in written {
            match before.get(external_id) {
                None => out.push(NewBuiltin {
                    member_id: *id,
                    event_id: format!("{JOINED}:{id}"),
                    kind: JOINED,
                    at: now_ms,
                    data: json!({"tier": tier}),
                }),
                Some(old) => {
                    if let Some((kind, data)) = self.tier_change(old.as_deref(), tier.as_deref()) {
                        out.push(NewBuiltin {
                            member_id: *id,
                            event_id: format!("{kind}:{id}:{change}"),
                            kind,
                            at: now_ms,
                            data,
                        });
                    }
                }
            }
        }
        out
    }

    /// `member.first_purchase` for each member with a purchase among the `recorded` events
    /// `(row id, member id, at, kind, amount, event id)` and none before them (`had_purchase`):
    /// the earliest of theirs in this batch, by `at` then arrival.
    pub fn first_purchases(
        &self,
        recorded: &[RecordedEvent],
        had_purchase: &std::collections::HashSet<i64>,
    ) -> Vec<NewBuiltin> {
        let mut first: std::collections::BTreeMap<i64, &RecordedEvent> = std::collections::BTreeMap::new();
        for e in recorded.iter().filter(|e| self.is_purchase(&e.kind) && !had_purchase.contains(&e.member_id)) {
            let entry = first.entry(e.member_id).or_insert(e);
            if (e.at, e.id) < (entry.at, entry.id) {
                *entry = e;
            }
        }
        first
            .into_values()
            .map(|e| NewBuiltin {
                member_id: e.member_id,
                event_id: format!("{FIRST_PURCHASE}:{}", e.member_id),
                kind: FIRST_PURCHASE,
                at: e.at,
                data: json!({"kind": e.kind, "amount": e.amount, "event_id": e.event_id}),
            })
            .collect()
    }
}

/// An event row just inserted, as the store's `RETURNING` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub id: i64,
    pub member_id: i64,
    pub at: i64,
    pub kind: String,
    pub amount: Option<f64>,
    pub event_id: Option<String>,
}

/// The columns `RETURNING` gives, in [`RecordedEvent`]'s order.
pub type RecordedRow = (i64, i64, i64, String, Option<f64>, Option<String>);

impl From<RecordedRow> for RecordedEvent {
    fn from((id, member_id, at, kind, amount, event_id): RecordedRow) -> Self {
        RecordedEvent { id, member_id, at, kind, amount, event_id }
    }
}

/// Whether `kind` is a usable event kind: 1 to 64 of letters, digits, `.`, `_`, `-` and `:`.
pub fn valid_kind(kind: &str) -> bool {
    (1..=64).contains(&kind.len())
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn order() -> BuiltinEvents {
        BuiltinEvents { tiers: vec!["silver".into(), "gold".into(), "platinum".into()], ..BuiltinEvents::default() }
    }

    #[test]
    fn tier_changes_follow_the_configured_order() {
        let check = |b: &BuiltinEvents, from: Option<&str>, to: Option<&str>, want: Option<&str>| {
            assert_eq!(b.tier_change(from, to).map(|(k, _)| k), want, "{from:?} -> {to:?}");
        };
        let b = order();
        check(&b, Some("silver"), Some("gold"), Some(TIER_UPGRADED));
        check(&b, Some("silver"), Some("platinum"), Some(TIER_UPGRADED));
        check(&b, Some("platinum"), Some("gold"), Some(TIER_DOWNGRADED));
        check(&b, Some("gold"), Some("gold"), None);
        check(&b, None, None, None);
        check(&b, None, Some("gold"), Some(TIER_CHANGED));
        check(&b, Some("gold"), Some("diamond"), Some(TIER_CHANGED));
        check(&BuiltinEvents::default(), Some("silver"), Some("gold"), Some(TIER_CHANGED));
        assert_eq!(b.tier_change(Some("silver"), Some("gold")).unwrap().1, json!({"from": "silver", "to": "gold"}));
    }

    #[test]
    fn an_upsert_records_joins_and_tier_changes_only() {
        let b = order();
        let before: HashMap<String, Option<String>> =
            [("A".to_string(), Some("silver".to_string())), ("B".to_string(), Some("gold".to_string()))].into();
        let written = vec![
            (1, "A".to_string(), Some("gold".to_string())),
            (2, "B".to_string(), Some("gold".to_string())),
            (3, "C".to_string(), None),
        ];
        let events = b.of_upsert(&written, &before, 9, 1000);
        let kinds: Vec<_> = events.iter().map(|e| (e.member_id, e.kind, e.event_id.as_str())).collect();
        assert_eq!(kinds, [(1, TIER_UPGRADED, "member.tier_upgraded:1:9"), (3, JOINED, "member.joined:3")]);
    }

    #[test]
    fn first_purchase_is_the_earliest_of_a_member_without_one_before() {
        let e = |id: i64, member_id: i64, at: i64, kind: &str| RecordedEvent {
            id,
            member_id,
            at,
            kind: kind.into(),
            amount: Some(10.0),
            event_id: Some(format!("e{id}")),
        };
        let recorded =
            vec![e(1, 7, 50, "purchase"), e(2, 7, 40, "purchase"), e(3, 8, 10, "visit"), e(4, 9, 5, "purchase")];
        let had: HashSet<i64> = [9].into();
        let firsts = BuiltinEvents::default().first_purchases(&recorded, &had);
        assert_eq!(firsts.len(), 1);
        assert_eq!(firsts[0].member_id, 7);
        assert_eq!(firsts[0].at, 40);
        assert_eq!(firsts[0].event_id, "member.first_purchase:7");
        assert_eq!(firsts[0].data["event_id"], "e2");
    }

    #[test]
    fn event_kinds() {
        for ok in ["purchase", "member.joined", "order:paid", "a-b_c"] {
            assert!(valid_kind(ok), "{ok}");
        }
        for bad in ["", "has space", "emoji😀", &"x".repeat(65)] {
            assert!(!valid_kind(bad), "{bad}");
        }
    }
}
