//! API keys and roles. A key is `tdk_<prefix>_<secret>`: the prefix (8 base32 characters) is
//! public and finds the key, the secret (40 base62 characters) is shown once when the key is
//! made; the store keeps only the SHA-256 of the whole key, compared in constant time. Each key
//! has one [`Role`]; which role may call what is the HTTP layer's access table
//! (`http::auth::access`). Console sessions are random tokens kept hashed, each with a CSRF
//! token derived from it (nothing more to store).
//!
//! Creating and revoking keys is written to the audit log with the actor who did it.

pub mod cli;

use std::fmt;

use jiff::Timestamp;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::auth::{ApiKey, NewApiKey, Revoked};
use crate::store::{Store, StoreError};

/// What a key may do; see the README's role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Templates, rules, journeys, reports, forecasts, test sends; reads members and messages.
    Marketer,
    /// Reads: every `GET` under `/api` except a member's export.
    Viewer,
    /// The host system: members, events, consent, devices, transactional sends, suppressions,
    /// coupon imports.
    Integration,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Marketer, Role::Viewer, Role::Integration];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketer => "marketer",
            Role::Viewer => "viewer",
            Role::Integration => "integration",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The actor of what the command line does (keys made or revoked, members erased).
pub const ACTOR_CLI: &str = "cli";

/// Every key starts with this, so a leaked one is easy to recognise (and to scan for).
pub const KEY_START: &str = "tdk_";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 40;
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A freshly made key: the whole key (shown once), its prefix and its hash.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

/// Makes a random key.
pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    let prefix: String = (0..PREFIX_LEN).map(|_| BASE32[rng.random_range(0..BASE32.len())] as char).collect();
    let secret: String = (0..SECRET_LEN).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let key = format!("{KEY_START}{prefix}_{secret}");
    let hash = hash(&key);
    NewKey { key, prefix, hash }
}

/// The prefix of a well-formed key; `None` for anything else.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_START)?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| BASE32.contains(&b))
        && (32..=128).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some(prefix)
}

/// Lower-case hex SHA-256 of `text` (a whole key, or a session token).
pub fn hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub fn hash_matches(stored: &str, presented: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(hash(presented).as_bytes()))
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("name: 1 to 64 letters, digits, '.', '-' or '_'")]
    BadName,
    #[error("name: a key named {0:?} exists (revoked keys keep their names)")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Makes a key named `name` with `role`, audited as `key.create` by `actor`. Returns the key
/// as stored and the whole key, which is never available again.
pub async fn create(
    store: &Store,
    name: &str,
    role: Role,
    actor: &str,
    now: Timestamp,
) -> Result<(ApiKey, String), KeyError> {
    if !valid_name(name) {
        return Err(KeyError::BadName);
    }
    let new = generate();
    let row = NewApiKey { name, role: role.as_str(), prefix: &new.prefix, hash: &new.hash };
    let Some(id) = store.insert_api_key(&row, now).await? else {
        return Err(KeyError::Taken(name.to_string()));
    };
    let detail = serde_json::json!({"role": role, "prefix": new.prefix});
    store.record_audit(actor, "key.create", &format!("key:{name}"), &detail, now).await?;
    let key = ApiKey {
        id,
        name: name.to_string(),
        role: role.as_str().to_string(),
        prefix: new.prefix,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    Ok((key, new.key))
}

/// Revokes the key named `name` (its sessions end with it), audited as `key.revoke` by `actor`
/// when it was live.
pub async fn revoke(store: &Store, name: &str, actor: &str, now: Timestamp) -> Result<Revoked, StoreError> {
    let outcome = store.revoke_api_key(name, now).await?;
    if outcome == Revoked::Now {
        store.record_audit(actor, "key.revoke", &format!("key:{name}"), &serde_json::json!({}), now).await?;
    }
    Ok(outcome)
}

/// How often a key's `last_used_at` is written at most (not on every request).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The live key `presented` is, with its role; `None` for a malformed, unknown, wrong or revoked
/// key (or one whose role this build does not know).
pub async fn verify(store: &Store, presented: &str, now: Timestamp) -> Result<Option<(ApiKey, Role)>, StoreError> {
    let Some(prefix) = prefix_of(presented) else { return Ok(None) };
    let Some(stored) = store.api_key_by_prefix(prefix).await? else { return Ok(None) };
    if !hash_matches(&stored.hash, presented) || stored.key.revoked_at.is_some() {
        return Ok(None);
    }
    let Some(role) = Role::parse(&stored.key.role) else {
        tracing::warn!(key = %stored.key.name, role = %stored.key.role, "api key with an unknown role refused");
        return Ok(None);
    };
    let stale = stored.key.last_used_at.is_none_or(|t| now.as_millisecond() - t.as_millisecond() >= TOUCH_EVERY_MS);
    if stale {
        store.touch_api_key(stored.key.id, now).await?;
    }
    Ok(Some((stored.key, role)))
}

/// A new console session token (the cookie's value): 32 random bytes, base64url.
pub fn session_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token of a session: derived from its token, so it is never stored, and useless
/// without the cookie it belongs to.
pub fn csrf_token(session: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(format!("tidings csrf\0{session}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `presented` is the CSRF token of `session`, in constant time.
pub fn csrf_matches(session: &str, presented: &str) -> bool {
    bool::from(csrf_token(session).as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_has_the_documented_shape_and_hash() {
        let k = generate();
        assert!(k.key.starts_with("tdk_"), "{}", k.key);
        assert_eq!(prefix_of(&k.key), Some(k.prefix.as_str()));
        assert_eq!(k.key.len(), 4 + 8 + 1 + 40);
        assert!(hash_matches(&k.hash, &k.key));
        assert!(!hash_matches(&k.hash, &format!("{}x", k.key)));
        assert_ne!(generate().key, k.key);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        let secret = "a".repeat(32);
        for (key, ok) in [
            (format!("tdk_abcdefgh_{secret}"), true),
            (format!("tdk_abcdefg_{secret}"), false),
            (format!("tdk_ABCDEFGH_{secret}"), false),
            (format!("tdk_abcdefgh_{}", &secret[..31]), false),
            (format!("tdk_abcdefgh_{secret}!"), false),
            (format!("xyz_abcdefgh_{secret}"), false),
            ("".to_string(), false),
        ] {
            assert_eq!(prefix_of(&key).is_some(), ok, "{key}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let (a, b) = (session_token(), session_token());
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&a, &csrf_token(&b)));
        assert!(!csrf_matches(&a, ""));
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
