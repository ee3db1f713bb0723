//! Template versions on SQLite.

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::Result;
use crate::store::templates::{
    ACTOR_SEED, COLUMNS, NewTemplateVersion, Published, Row, SeedTemplate, TemplateVersion, created_detail, version,
};

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

impl SqliteStore {
    pub async fn published_templates(&self) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE state = 'published' ORDER BY key"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn latest_templates(&self) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions t
             WHERE version = (SELECT max(version) FROM template_versions l WHERE l.key = t.key) ORDER BY key"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn template_versions(&self, key: &str, before: Option<i64>, limit: u32) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = ?1 AND (?2 IS NULL OR version < ?2)
             ORDER BY version DESC LIMIT ?3"
        )))
        .bind(key)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn template_version(&self, key: &str, v: i64) -> Result<Option<TemplateVersion>> {
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = ? AND version = ?"
        )))
        .bind(key)
        .bind(v)
        .fetch_optional(&self.read)
        .await?;
        row.map(version).transpose()
    }

    pub async fn templates_mark(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(published_at) FROM template_versions").fetch_one(&self.read).await?)
    }

    pub async fn add_template_version(&self, v: &NewTemplateVersion<'_>, now: Timestamp) -> Result<TemplateVersion> {
        let mut tx = self.begin().await?;
        let next: i64 = sqlx::query_scalar("SELECT coalesce(max(version), 0) + 1 FROM template_versions WHERE key = ?")
            .bind(v.key)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO template_versions (key, version, state, content, created_at, created_by, note, rollback_of)
             VALUES (?, ?, 'draft', ?, ?, ?, ?, ?)",
        )
        .bind(v.key)
        .bind(next)
        .bind(v.content)
        .bind(now.as_millisecond())
        .bind(v.actor)
        .bind(v.note)
        .bind(v.rollback_of)
        .execute(&mut *tx)
        .await?;
        let action = if v.rollback_of.is_some() { "template.rollback" } else { "template.draft" };
        audit(&mut tx, v.actor, action, v.key, &created_detail(v, next), now).await?;
        if v.publish {
            publish(&mut tx, v.key, next, v.digest, v.actor, now).await?;
        }
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = ? AND version = ?"
        )))
        .bind(v.key)
        .bind(next)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        version(row)
    }

    pub async fn publish_template_version(
        &self,
        key: &str,
        v: i64,
        digest: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Published> {
        let mut tx = self.begin().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM template_versions WHERE key = ? AND version = ?")
                .bind(key)
                .bind(v)
                .fetch_optional(&mut *tx)
                .await?;
        match state.as_deref() {
            None => return Ok(Published::NoSuchVersion),
            Some("draft") => {}
            Some(other) => return Ok(Published::NotDraft(other.to_string())),
        }
        publish(&mut tx, key, v, digest, actor, now).await?;
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = ? AND version = ?"
        )))
        .bind(key)
        .bind(v)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Published::Done(version(row)?))
    }

    pub async fn seed_templates(&self, templates: &[SeedTemplate], now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let any: i64 = sqlx::query_scalar("SELECT count(*) FROM template_versions").fetch_one(&mut *tx).await?;
        if any > 0 {
            return Ok(false);
        }
        for t in templates {
            sqlx::query(
                "INSERT INTO template_versions (key, version, state, content, created_at, created_by, note)
                 VALUES (?, 1, 'draft', ?, ?, ?, 'seeded from the configured templates')",
            )
            .bind(&t.key)
            .bind(&t.content)
            .bind(now.as_millisecond())
            .bind(ACTOR_SEED)
            .execute(&mut *tx)
            .await?;
            publish(&mut tx, &t.key, 1, &t.digest, ACTOR_SEED, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Supersedes the key's published version and publishes `v`, with its audit entry and digest.
async fn publish(tx: &mut Tx, key: &str, v: i64, digest: &str, actor: &str, now: Timestamp) -> Result<()> {
    let previous: Option<i64> = sqlx::query_scalar(
        "UPDATE template_versions SET state = 'superseded' WHERE key = ? AND state = 'published' RETURNING version",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    sqlx::query("UPDATE template_versions SET state = 'published', published_at = ? WHERE key = ? AND version = ?")
        .bind(now.as_millisecond())
        .bind(key)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    let detail = serde_json::json!({"version": v, "previous": previous, "digest": digest}).to_string();
    audit(tx, actor, "template.publish", key, &detail, now).await?;
    sqlx::query(
        "INSERT INTO audited_config (kind, name, digest) VALUES ('template', ?, ?)
         ON CONFLICT (kind, name) DO UPDATE SET digest = excluded.digest",
    )
    .bind(key)
    .bind(digest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn audit(tx: &mut Tx, actor: &str, action: &str, key: &str, detail: &str, now: Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now.as_millisecond())
        .bind(actor)
        .bind(action)
        .bind(format!("template:{key}"))
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
