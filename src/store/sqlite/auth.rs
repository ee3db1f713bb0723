//! API keys and console sessions on SQLite.

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::Result;
use crate::store::auth::{
    ApiKey, KEY_COLUMNS, KeyHashRow, KeyRow, NewApiKey, Revoked, SessionRow, StoredKey, api_key, session, stored_key,
};

impl SqliteStore {
    pub async fn insert_api_key(&self, key: &NewApiKey<'_>, now: Timestamp) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "INSERT INTO api_keys (name, role, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(key.name)
        .bind(key.role)
        .bind(key.prefix)
        .bind(key.hash)
        .bind(now.as_millisecond())
        .fetch_optional(&self.write)
        .await?)
    }

    pub async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredKey>> {
        let row: Option<KeyHashRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, k.hash FROM api_keys k WHERE k.prefix = ?1"
        )))
        .bind(prefix)
        .fetch_optional(&self.read)
        .await?;
        row.map(stored_key).transpose()
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM api_keys k ORDER BY k.name")))
                .fetch_all(&self.read)
                .await?;
        rows.into_iter().map(api_key).collect()
    }

    pub async fn touch_api_key(&self, id: i64, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
        )
        .bind(now.as_millisecond())
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn revoke_api_key(&self, name: &str, now: Timestamp) -> Result<Revoked> {
        let mut tx = self.begin().await?;
        let row: Option<(i64, Option<i64>)> = sqlx::query_as("SELECT id, revoked_at FROM api_keys WHERE name = ?1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match row {
            None => Revoked::NoSuchKey,
            Some((_, Some(_))) => Revoked::Already,
            Some((id, None)) => {
                sqlx::query("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2")
                    .bind(now.as_millisecond())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE key_id = ?1").bind(id).execute(&mut *tx).await?;
                Revoked::Now
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn insert_session(&self, hash: &str, key_id: i64, now: Timestamp, expires_at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1").bind(now.as_millisecond()).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO sessions (hash, key_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(hash)
            .bind(key_id)
            .bind(now.as_millisecond())
            .bind(expires_at.as_millisecond())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session_key(&self, hash: &str, now: Timestamp) -> Result<Option<(ApiKey, Timestamp)>> {
        let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, s.expires_at FROM sessions s JOIN api_keys k ON k.id = s.key_id
                 WHERE s.hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL"
        )))
        .bind(hash)
        .bind(now.as_millisecond())
        .fetch_optional(&self.read)
        .await?;
        row.map(session).transpose()
    }

    pub async fn delete_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?1").bind(hash).execute(&self.write).await?;
        Ok(())
    }
}
