//! The audit log's view of configuration: at start-up and after each template reload, each
//! rule's configuration and each template's published content are digested and compared with
//! what the log last recorded; every rule or template added, changed or removed gets one entry
//! (actor `config`). Consent changes are audited by the store, in the transaction that makes
//! them; template drafts and publishes too, with the digest this module computes.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::store::consent::ConfigChange;
use crate::store::templates::TemplateVersion;

/// The actor of configuration changes.
pub const ACTOR_CONFIG: &str = "config";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each journey's digest, by journey id: its configuration as written (entry, steps, exit).
pub fn journey_digests(settings: &Settings) -> BTreeMap<String, String> {
    settings.raw.journeys.iter().map(|j| (j.id.clone(), hex(&Sha256::digest(format!("{j:?}").as_bytes())))).collect()
}

/// The sending policies' digest (caps, quiet hours, consent), as one item `policy`.
pub fn policy_digests(settings: &Settings) -> BTreeMap<String, String> {
    let raw = &settings.raw;
    let text = format!("{:?}{:?}{:?}{:?}", raw.caps, raw.quiet_hours, raw.consent.marketing, raw.consent.service);
    BTreeMap::from([("policy".to_string(), hex(&Sha256::digest(text.as_bytes())))])
}

/// Each rule's digest, by rule id: its configuration as written.
pub fn rule_digests(settings: &Settings) -> BTreeMap<String, String> {
    settings.raw.rules.iter().map(|r| (r.id.clone(), hex(&Sha256::digest(format!("{r:?}").as_bytes())))).collect()
}

/// Each template's digest, by key: its published version's content. Publishing (and seeding)
/// records the same digest in the transaction that writes its own audit entry, so a look here
/// after a publish finds nothing new.
pub fn template_digests(published: &[TemplateVersion]) -> BTreeMap<String, String> {
    published.iter().map(|v| (v.key.clone(), template_digest(&v.content))).collect()
}

/// The digest of a template's content (its JSON, keys in order).
pub fn template_digest(content: &serde_json::Value) -> String {
    hex(&Sha256::digest(content.to_string().as_bytes()))
}

/// What changed between the digests last recorded and the current ones: pure.
pub fn changes(
    kind: &str,
    recorded: &HashMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<ConfigChange> {
    let mut out: Vec<ConfigChange> = current
        .iter()
        .filter(|(name, digest)| recorded.get(*name) != Some(*digest))
        .map(|(name, digest)| ConfigChange { kind: kind.into(), name: name.clone(), digest: Some(digest.clone()) })
        .collect();
    let mut gone: Vec<&String> = recorded.keys().filter(|name| !current.contains_key(*name)).collect();
    gone.sort();
    out.extend(gone.into_iter().map(|name| ConfigChange { kind: kind.into(), name: name.clone(), digest: None }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_and_removed_items_are_listed_once() {
        let recorded: HashMap<String, String> =
            [("same", "1"), ("edited", "2"), ("gone", "3")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let current: BTreeMap<String, String> =
            [("same", "1"), ("edited", "2b"), ("new", "4")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let got: Vec<(String, Option<String>)> =
            changes("rule", &recorded, &current).into_iter().map(|c| (c.name, c.digest)).collect();
        assert_eq!(
            got,
            [("edited".into(), Some("2b".into())), ("new".into(), Some("4".into())), ("gone".into(), None)]
        );
        assert!(changes("rule", &current.clone().into_iter().collect(), &current).is_empty());
    }
}
