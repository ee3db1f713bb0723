//! The audit log's view of configuration: at start-up and after each template reload, each
//! rule's configuration and each template's files are digested and compared with what the log
//! last recorded; every rule or template added, changed or removed gets one entry (actor
//! `config`). Consent changes are audited by the store, in the transaction that makes them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::render::{Source, Templates};
use crate::store::consent::ConfigChange;

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

/// Each template's digest, by key: its files (paths and contents) under the template directory,
/// or the build's version for the templates shipped inside the binary.
pub fn template_digests(source: &Source, templates: &Templates) -> BTreeMap<String, String> {
    templates
        .keys()
        .into_iter()
        .map(|key| {
            let digest = match source {
                Source::Builtin => hex(&Sha256::digest(format!("builtin {}", env!("CARGO_PKG_VERSION")).as_bytes())),
                Source::Dir(dir) => dir_digest(&dir.join(&key)),
            };
            (key, digest)
        })
        .collect()
}

/// A digest over every file below `dir`, in path order.
fn dir_digest(dir: &Path) -> String {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut h = Sha256::new();
    for (rel, bytes) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    hex(&h.finalize())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push((rel, bytes));
        }
    }
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
