//! Template versions on PostgreSQL.

use jiff::Timestamp;

use super::PgStore;
use crate::store::Result;
use crate::store::templates::{
    ACTOR_SEED, COLUMNS, NewTemplateVersion, Published, Row, SeedTemplate, TemplateVersion, created_detail, version,
};

/// The advisory lock seeding holds: "tpl-seed".
const SEED_LOCK: i64 = 0x7470_6c2d_7365_6564;

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl PgStore {
    pub async fn published_templates(&self) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE state = 'published' ORDER BY key"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn latest_templates(&self) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions t
             WHERE version = (SELECT max(version) FROM template_versions l WHERE l.key = t.key) ORDER BY key"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn template_versions(&self, key: &str, before: Option<i64>, limit: u32) -> Result<Vec<TemplateVersion>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = $1 AND ($2::bigint IS NULL OR version < $2)
             ORDER BY version DESC LIMIT $3"
        )))
        .bind(key)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(version).collect()
    }

    pub async fn template_version(&self, key: &str, v: i64) -> Result<Option<TemplateVersion>> {
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM template_versions WHERE key = $1 AND version = $2"
        )))
        .bind(key)
        .bind(v)
        .fetch_optional(&self.pool)
        .await?;
        row.map(version).transpose()
    }

    pub async fn templates_mark(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(published_at) FROM template_versions").fetch_one(&self.pool).await?)
    }

    pub async fn add_template_version(&self, v: &NewTemplateVersion<'_>, now: Timestamp) -> Result<TemplateVersion> {
        let mut tx = self.pool.begin().await?;
        // Two writers of one key take turns, so each gets its own next version number.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)").bind(v.key).execute(&mut *tx).await?;
        let next: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) + 1 FROM template_versions WHERE key = $1")
                .bind(v.key)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO template_versions (key, version, state, content, created_at, created_by, note, rollback_of)
             VALUES ($1, $2, 'draft', $3, $4, $5, $6, $7)",
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
            "SELECT {COLUMNS} FROM template_versions WHERE key = $1 AND version = $2"
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)").bind(key).execute(&mut *tx).await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM template_versions WHERE key = $1 AND version = $2")
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
            "SELECT {COLUMNS} FROM template_versions WHERE key = $1 AND version = $2"
        )))
        .bind(key)
        .bind(v)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Published::Done(version(row)?))
    }

    pub async fn seed_templates(&self, templates: &[SeedTemplate], now: Timestamp) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Instances starting together seed once: the second waits here, then finds the rows.
        sqlx::query("SELECT pg_advisory_xact_lock($1::bigint)").bind(SEED_LOCK).execute(&mut *tx).await?;
        let any: i64 = sqlx::query_scalar("SELECT count(*) FROM template_versions").fetch_one(&mut *tx).await?;
        if any > 0 {
            return Ok(false);
        }
        for t in templates {
            sqlx::query(
                "INSERT INTO template_versions (key, version, state, content, created_at, created_by, note)
                 VALUES ($1, 1, 'draft', $2, $3, $4, 'seeded from the configured templates')",
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
        "UPDATE template_versions SET state = 'superseded' WHERE key = $1 AND state = 'published' RETURNING version",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    sqlx::query("UPDATE template_versions SET state = 'published', published_at = $1 WHERE key = $2 AND version = $3")
        .bind(now.as_millisecond())
        .bind(key)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    let detail = serde_json::json!({"version": v, "previous": previous, "digest": digest}).to_string();
    audit(tx, actor, "template.publish", key, &detail, now).await?;
    sqlx::query(
        "INSERT INTO audited_config (kind, name, digest) VALUES ('template', $1, $2)
         ON CONFLICT (kind, name) DO UPDATE SET digest = excluded.digest",
    )
    .bind(key)
    .bind(digest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn audit(tx: &mut Tx, actor: &str, action: &str, key: &str, detail: &str, now: Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(now.as_millisecond())
        .bind(actor)
        .bind(action)
        .bind(format!("template:{key}"))
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
