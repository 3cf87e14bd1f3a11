//! Idempotency records: the first 2xx answer to a keyed POST, replayed to repeats.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{Result, Task};

#[async_trait::async_trait]
impl crate::Idempotency for SqliteStore {
    /// The stored answer for `key` if it is younger than `max_age_ms`.
    async fn idempotency_get(
        &self,
        key: &str,
        now: i64,
        max_age_ms: i64,
    ) -> Result<Option<(u16, Vec<u8>)>> {
        let key = key.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT status_code, body FROM idempotency WHERE key = ?1 AND created_at > ?2",
            )?
            .query_row(params![key, now - max_age_ms], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
        })
        .await
    }

    async fn idempotency_put(&self, key: &str, status: u16, body: Vec<u8>, now: i64) -> Result<()> {
        let key = key.to_string();
        self.write(move |c| {
            c.prepare_cached("INSERT OR REPLACE INTO idempotency (key, status_code, body, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![key, status, body, now])?;
            Ok(())
        })
        .await
    }

    /// Drops idempotency records older than `max_age_ms`.
    async fn idempotency_prune(&self, now: i64, max_age_ms: i64) -> Result<usize> {
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM idempotency WHERE created_at <= ?1",
                [now - max_age_ms],
            )?)
        })
        .await
    }

    async fn task_save(&self, task: Task) -> Result<Task> {
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO task (id, kind, status, data, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task.id, task.kind, task.status, task.data.to_string(), task.updated_at],
            )?;
            Ok(task)
        })
        .await
    }
}
