//! API keys and console sessions in the store. A key is kept as the SHA-256 of the whole key and
//! found by its public prefix; a session as the SHA-256 of its cookie value, tied to the key that
//! logged in. Revoking a key ends its sessions in the same transaction. What a key may do, and
//! how keys are made and checked, is `crate::auth`'s business, not the store's.

use jiff::Timestamp;
use serde::Serialize;

use super::{Backend, Result, Store};

/// An API key as listed: never its secret, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// `admin`, `marketer`, `viewer` or `integration` (checked by `crate::auth::Role`).
    pub role: String,
    /// The public part of the key (`tdk_<prefix>_…`), to tell keys apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A key with its stored hash, for verifying a presented key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key: ApiKey,
    /// Lower-case hex SHA-256 of the whole key.
    pub hash: String,
}

/// A key to insert.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub prefix: &'a str,
    pub hash: &'a str,
}

/// How a revocation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
    NoSuchKey,
}

/// The row both backends read: id, name, role, prefix, created, last used, revoked.
pub(super) type KeyRow = (i64, String, String, String, i64, Option<i64>, Option<i64>);

pub(super) const KEY_COLUMNS: &str = "k.id, k.name, k.role, k.prefix, k.created_at, k.last_used_at, k.revoked_at";

/// A key row followed by its hash.
pub(super) type KeyHashRow = (i64, String, String, String, i64, Option<i64>, Option<i64>, String);
/// A key row followed by a session's expiry.
pub(super) type SessionRow = (i64, String, String, String, i64, Option<i64>, Option<i64>, i64);

pub(super) fn stored_key(r: KeyHashRow) -> Result<StoredKey> {
    Ok(StoredKey { key: api_key((r.0, r.1, r.2, r.3, r.4, r.5, r.6))?, hash: r.7 })
}

pub(super) fn session(r: SessionRow) -> Result<(ApiKey, Timestamp)> {
    Ok((api_key((r.0, r.1, r.2, r.3, r.4, r.5, r.6))?, super::types::ts(r.7)?))
}

pub(super) fn api_key(r: KeyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.0,
        name: r.1,
        role: r.2,
        prefix: r.3,
        created_at: super::types::ts(r.4)?,
        last_used_at: super::types::opt_ts(r.5)?,
        revoked_at: super::types::opt_ts(r.6)?,
    })
}

impl Store {
    /// Inserts a key; `None` when its name (or, improbably, its prefix) is taken.
    pub async fn insert_api_key(&self, key: &NewApiKey<'_>, now: Timestamp) -> Result<Option<i64>> {
        on_backend!(self.insert_api_key(key, now))
    }

    /// The key with this prefix, revoked or not.
    pub async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredKey>> {
        on_backend!(self.api_key_by_prefix(prefix))
    }

    /// Every key, by name.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        on_backend!(self.api_keys())
    }

    /// Records that the key was used at `now`.
    pub async fn touch_api_key(&self, id: i64, now: Timestamp) -> Result<()> {
        on_backend!(self.touch_api_key(id, now))
    }

    /// Revokes the key named `name` and ends its sessions, in one transaction.
    pub async fn revoke_api_key(&self, name: &str, now: Timestamp) -> Result<Revoked> {
        on_backend!(self.revoke_api_key(name, now))
    }

    /// Starts a session (kept as `hash`) for key `key_id` until `expires_at`; sessions already
    /// expired are deleted on the way.
    pub async fn insert_session(&self, hash: &str, key_id: i64, now: Timestamp, expires_at: Timestamp) -> Result<()> {
        on_backend!(self.insert_session(hash, key_id, now, expires_at))
    }

    /// The key behind a live session: not expired at `now`, its key not revoked. With the
    /// session's expiry.
    pub async fn session_key(&self, hash: &str, now: Timestamp) -> Result<Option<(ApiKey, Timestamp)>> {
        on_backend!(self.session_key(hash, now))
    }

    /// Ends a session (a logout); nothing when there is none.
    pub async fn delete_session(&self, hash: &str) -> Result<()> {
        on_backend!(self.delete_session(hash))
    }
}
