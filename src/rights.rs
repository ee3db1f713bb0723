//! Member rights (PIPL, GDPR): export everything held about a member, and erase a member. This
//! file holds the pure part (the keyed address hash, the tombstone id, scrubbing text of a
//! member's addresses, which suppressions survive an erasure) and the two entry points the API
//! and the command line call; the per-table steps are in `store/rights.rs` and each backend's
//! `rights.rs`.
//!
//! Erasure keeps one thing about the person: where they asked not to be written to, or where
//! their address bounced, the address survives as an HMAC-SHA256 under `privacy.hash_key`, so a
//! re-import of the same person is still not sent to. A plain SHA-256 of a phone number can be
//! reversed by trying every number; a keyed one cannot without the key.

use std::fmt;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::Deserialize;

use crate::channels::{ChannelKind, Purpose};
use crate::config::{ConfigProblem, Secret, resolve_secret};
use crate::store::{ErasureReport, MemberExport, Store, StoreError, Suppression};

/// The name and version of the export document (`format`, `version`).
pub const EXPORT_FORMAT: &str = "tidings.member_export";
pub const EXPORT_VERSION: u32 = 1;
/// The shortest hash key accepted: 32 bytes, e.g. `openssl rand -base64 32`.
pub const MIN_HASH_KEY_LEN: usize = 32;
/// What a hashed address starts with in `suppressions.address`: never a phone, email or id.
pub const HASH_PREFIX: &str = "hmac-sha256:";
/// What an erased member's external id starts with.
pub const TOMBSTONE_PREFIX: &str = "erased:";
/// What replaces an address in a text kept after erasure (a history detail, a reason).
pub const SCRUBBED: &str = "[erased]";
/// The reason scheduled messages of an erased member are skipped with.
pub const ERASED_REASON: &str = "member erased";

/// `[privacy]`: the key erased members' suppressed addresses are hashed with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// At least 32 characters; or `hash_key_file`. Without it, erasure is refused. Never change
    /// it: addresses hashed under the old key would no longer be recognised.
    #[serde(default)]
    pub hash_key: Option<Secret>,
    #[serde(default)]
    pub hash_key_file: Option<PathBuf>,
}

/// The key addresses are hashed with. Never printed.
#[derive(Clone)]
pub struct HashKey(ring::hmac::Key);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// Binds the hash to this use of the key.
const CONTEXT: &[u8] = b"tidings/suppression\0";

impl HashKey {
    /// The key from configuration; `key` names it in the error.
    pub fn new(secret: &Secret, key: &str) -> Result<HashKey, ConfigProblem> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < MIN_HASH_KEY_LEN {
            return Err(ConfigProblem::new(
                key,
                format!(
                    "must be at least {MIN_HASH_KEY_LEN} characters (e.g. the output of `openssl rand -base64 32`)"
                ),
            ));
        }
        Ok(HashKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes)))
    }

    /// The unlinkable form of an address on a channel: `hmac-sha256:<hex>`. Email addresses are
    /// compared without case, everything without surrounding spaces.
    pub fn address(&self, channel: ChannelKind, address: &str) -> String {
        let address = address.trim();
        let normal = match channel {
            ChannelKind::Email => address.to_lowercase(),
            _ => address.to_string(),
        };
        let mut ctx = ring::hmac::Context::with_key(&self.0);
        ctx.update(CONTEXT);
        ctx.update(channel.as_str().as_bytes());
        ctx.update(b"\0");
        ctx.update(normal.as_bytes());
        let tag = ctx.sign();
        let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
        out.push_str(HASH_PREFIX);
        for b in tag.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// The hash key from `[privacy]`, when one is configured.
pub fn hash_key(cfg: &PrivacyConfig) -> Result<Option<HashKey>, ConfigProblem> {
    if cfg.hash_key.is_none() && cfg.hash_key_file.is_none() {
        return Ok(None);
    }
    let secret = resolve_secret(cfg.hash_key.as_ref(), cfg.hash_key_file.as_deref(), "privacy.hash_key")?;
    let inline = cfg.hash_key.as_ref().is_some_and(|s| !s.expose().is_empty());
    HashKey::new(&secret, if inline { "privacy.hash_key" } else { "privacy.hash_key_file" }).map(Some)
}

/// A fresh opaque external id for an erased member's row: nothing of the host's id survives,
/// and a later import of that id makes a new member.
pub fn tombstone_id() -> String {
    format!("{TOMBSTONE_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// The addresses a member is written to at, by channel: what suppressions are keyed by (a push
/// address is a device, and devices are deleted, not listed).
pub fn member_addresses(external_id: &str, phone: Option<&str>, email: Option<&str>) -> Vec<(ChannelKind, String)> {
    let mut out = Vec::new();
    if let Some(p) = phone.filter(|p| !p.is_empty()) {
        out.push((ChannelKind::Sms, p.to_string()));
    }
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        out.push((ChannelKind::Email, e.to_string()));
    }
    out.push((ChannelKind::Webhook, external_id.to_string()));
    out
}

/// `text` with every occurrence of each needle replaced by [`SCRUBBED`] (longest first, so an
/// address inside another is not half-replaced). Empty needles are ignored.
pub fn scrub(text: &str, needles: &[String]) -> String {
    let mut needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for n in needles {
        if out.contains(n.as_str()) {
            out = out.replace(n.as_str(), SCRUBBED);
        }
    }
    out
}

/// The suppressions an erasure leaves, all under hashed addresses: each of the member's
/// suppressed addresses (its reason scrubbed of `needles`), and each channel they had opted out
/// of on the address they had there. A suppressed address comes first and keeps its reason.
pub fn erasure_suppressions(
    key: &HashKey,
    addresses: &[(ChannelKind, String)],
    suppressed: &[Suppression],
    opt_outs: &[(ChannelKind, Purpose)],
    needles: &[String],
) -> Vec<Suppression> {
    let mut out: Vec<Suppression> = Vec::new();
    let mut push = |s: Suppression| {
        if !out.iter().any(|o| o.channel == s.channel && o.address == s.address) {
            out.push(s);
        }
    };
    for s in suppressed {
        push(Suppression {
            channel: s.channel,
            address: key.address(s.channel, &s.address),
            reason: scrub(&s.reason, needles),
            source: s.source.clone(),
        });
    }
    for (channel, purpose) in opt_outs {
        for (c, a) in addresses.iter().filter(|(c, _)| c == channel) {
            push(Suppression {
                channel: *c,
                address: key.address(*c, a),
                reason: format!("opted out of {} {c} before erasure", purpose.as_str()),
                source: "erasure".into(),
            });
        }
    }
    out
}

/// Why an erasure did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no member {0:?}")]
    UnknownMember(String),
    #[error(
        "erasure needs privacy.hash_key (or privacy.hash_key_file): suppressed addresses are kept only as a \
         keyed hash"
    )]
    NoHashKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything held about the member with this external id, as one document; `None` when there
/// is no such member.
pub async fn export(store: &Store, external_id: &str, now: Timestamp) -> Result<Option<MemberExport>, StoreError> {
    let Some(mut doc) = store.export_member(external_id, now).await? else { return Ok(None) };
    if let Some((current, history)) = store.member_consent(external_id).await? {
        doc.consent = current;
        doc.consent_history = history;
    }
    doc.journey_runs = store.journey_runs_of(&[doc.member.id]).await?;
    let about = crate::store::consent::AuditFilter {
        subject: Some(format!("member:{external_id}")),
        limit: 10_000,
        ..Default::default()
    };
    doc.audit = store.audit(&about).await?;
    Ok(Some(doc))
}

/// Erases the member with this external id, in one transaction (see `Store::erase_member`),
/// audited as done by `actor` (`key:<name>` over HTTP, `cli` from the command line).
pub async fn erase(store: &Store, external_id: &str, actor: &str, now: Timestamp) -> Result<ErasureReport, EraseError> {
    let key = store.hash_key().cloned().ok_or(EraseError::NoHashKey)?;
    let report = store
        .erase_member(external_id, &key, &tombstone_id(), now)
        .await?
        .ok_or_else(|| EraseError::UnknownMember(external_id.to_string()))?;
    // The audit log keeps that an erasure happened, under the tombstone only.
    let detail = serde_json::to_value(&report).unwrap_or_default();
    store.record_audit(actor, "member.erase", &format!("member:{}", report.tombstone), &detail, now).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> HashKey {
        HashKey::new(&Secret::new(k), "privacy.hash_key").unwrap()
    }

    const K: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_hash_is_keyed_stable_and_bound_to_the_channel() {
        let a = key(K).address(ChannelKind::Sms, "+8613800138000");
        assert!(a.starts_with(HASH_PREFIX) && a.len() == HASH_PREFIX.len() + 64, "{a}");
        assert_eq!(a, key(K).address(ChannelKind::Sms, " +8613800138000 "));
        assert_ne!(a, key("another key, also 32 characters long").address(ChannelKind::Sms, "+8613800138000"));
        assert_ne!(a, key(K).address(ChannelKind::Webhook, "+8613800138000"));
        // Not the plain SHA-256 of the number, which anyone could recompute.
        use sha2::Digest;
        let plain: String = sha2::Sha256::digest(b"+8613800138000").iter().map(|b| format!("{b:02x}")).collect();
        assert!(!a.contains(&plain));
    }

    #[test]
    fn email_addresses_hash_without_case() {
        let k = key(K);
        assert_eq!(
            k.address(ChannelKind::Email, "Li.Wei@Example.com"),
            k.address(ChannelKind::Email, "li.wei@example.com")
        );
    }

    #[test]
    fn a_short_key_is_refused_naming_its_key() {
        let e = HashKey::new(&Secret::new("short"), "privacy.hash_key").unwrap_err();
        assert_eq!(e.key, "privacy.hash_key");
        assert!(e.problem.contains("32"), "{e}");
        let cfg = PrivacyConfig::default();
        assert!(hash_key(&cfg).unwrap().is_none());
        let cfg = PrivacyConfig { hash_key: None, hash_key_file: Some("/nonexistent/key".into()) };
        assert_eq!(hash_key(&cfg).unwrap_err().key, "privacy.hash_key_file");
        assert_eq!(format!("{:?}", key(K)), "HashKey(***)");
    }

    #[test]
    fn scrub_replaces_every_address_longest_first() {
        let check = |text: &str, needles: &[&str], expected: &str| {
            let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
            assert_eq!(scrub(text, &needles), expected);
        };
        check("twilio accepted: SM1", &["SM1"], "twilio accepted: [erased]");
        check("550 <a@b.com> unknown; a@b.com", &["a@b.com"], "550 <[erased]> unknown; [erased]");
        check("+86138 and +861380", &["+86138", "+861380"], "[erased] and [erased]");
        check("nothing here", &["", "x@y"], "nothing here");
    }

    #[test]
    fn member_addresses_skip_missing_ones() {
        assert_eq!(
            member_addresses("m1", Some("+1415"), None),
            vec![(ChannelKind::Sms, "+1415".to_string()), (ChannelKind::Webhook, "m1".to_string())]
        );
    }

    #[test]
    fn suppressions_and_opt_outs_survive_erasure_only_as_hashes() {
        let k = key(K);
        let addresses = member_addresses("m1", Some("+1415"), Some("a@b.com"));
        let bounced = Suppression {
            channel: ChannelKind::Email,
            address: "a@b.com".into(),
            reason: "hard bounce: 550 a@b.com unknown".into(),
            source: "smtp".into(),
        };
        let got = erasure_suppressions(
            &k,
            &addresses,
            &[bounced],
            &[
                (ChannelKind::Sms, Purpose::Marketing),
                (ChannelKind::Sms, Purpose::Service),
                (ChannelKind::Email, Purpose::Marketing),
            ],
            &["a@b.com".to_string(), "+1415".to_string()],
        );
        assert_eq!(
            got,
            vec![
                Suppression {
                    channel: ChannelKind::Email,
                    address: k.address(ChannelKind::Email, "a@b.com"),
                    reason: "hard bounce: 550 [erased] unknown".into(),
                    source: "smtp".into(),
                },
                Suppression {
                    channel: ChannelKind::Sms,
                    address: k.address(ChannelKind::Sms, "+1415"),
                    reason: "opted out of marketing sms before erasure".into(),
                    source: "erasure".into(),
                },
            ]
        );
        // A push opt-out has no address to keep (devices are deleted).
        assert!(erasure_suppressions(&k, &addresses, &[], &[(ChannelKind::Push, Purpose::Marketing)], &[]).is_empty());
    }
}
