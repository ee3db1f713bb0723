//! Rules and journeys defined through the API, on SQLite.

use crate::store::definitions::{
    DefinitionKind, DefinitionRow, DefinitionWrite, DefinitionWritten, StoredDefinition, definition,
};
use crate::store::{Result, State};

use super::SqliteStore;

impl SqliteStore {
    pub async fn definitions(&self) -> Result<Vec<StoredDefinition>> {
        let rows: Vec<DefinitionRow> = sqlx::query_as(
            "SELECT d.kind, d.id, d.seq, d.body, d.actor, d.at FROM definitions d
             WHERE d.seq = (SELECT max(e.seq) FROM definitions e WHERE e.kind = d.kind AND e.id = d.id)
               AND d.body IS NOT NULL
             ORDER BY (SELECT min(f.seq) FROM definitions f WHERE f.kind = d.kind AND f.id = d.id)",
        )
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(definition).collect()
    }

    pub async fn definition_history(&self, kind: DefinitionKind, id: &str) -> Result<Vec<StoredDefinition>> {
        let rows: Vec<DefinitionRow> = sqlx::query_as(
            "SELECT kind, id, seq, body, actor, at FROM definitions WHERE kind = ?1 AND id = ?2 ORDER BY seq DESC",
        )
        .bind(kind.as_str())
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(definition).collect()
    }

    pub async fn definitions_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM definitions").fetch_one(&self.read).await?)
    }

    pub async fn write_definition(&self, w: &DefinitionWrite<'_>) -> Result<DefinitionWritten> {
        let now = w.now.as_millisecond();
        let mut tx = self.begin().await?;
        // The version in force: the latest row, unless it is a removal.
        let current: Option<i64> = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT CASE WHEN body IS NULL THEN NULL ELSE seq END FROM definitions
             WHERE kind = ?1 AND id = ?2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(w.kind.as_str())
        .bind(w.id)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(expect) = w.expect
            && expect != current
        {
            return Ok(DefinitionWritten::Stale { current });
        }
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO definitions (kind, id, body, actor, at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
        )
        .bind(w.kind.as_str())
        .bind(w.id)
        .bind(w.body.map(|b| b.to_string()))
        .bind(w.actor)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let (mut cancelled, mut runs) = (0, 0);
        if let Some(reason) = w.cancel {
            let ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE messages SET state = 'skipped', reason = ?2, lease_owner = NULL, lease_until = NULL,
                        updated_at = ?3
                 WHERE rule_id = ?1 AND state = 'scheduled' RETURNING id",
            )
            .bind(w.id)
            .bind(reason)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if !ids.is_empty() {
                sqlx::query(
                    "INSERT INTO message_history (message_id, at, state, detail)
                     SELECT value, ?2, ?3, ?4 FROM json_each(?1)",
                )
                .bind(serde_json::to_string(&ids).expect("ids serialize"))
                .bind(now)
                .bind(State::Skipped.as_str())
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
            cancelled = ids.len() as u64;
            if w.kind == DefinitionKind::Journey {
                runs = sqlx::query(
                    "UPDATE journey_runs SET state = 'exited', exit_reason = ?2, ended_at = ?3
                     WHERE journey_id = ?1 AND state = 'active'",
                )
                .bind(w.id)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        tx.commit().await?;
        Ok(DefinitionWritten::Stored { version, cancelled, runs })
    }
}
