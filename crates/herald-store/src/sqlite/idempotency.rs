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

    async fn task_get(&self, id: &str) -> Result<Task> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT id, kind, status, data, updated_at FROM task WHERE id = ?1")?
                .query_row([id], task_from_row)
                .optional()?
                .ok_or(crate::StoreError::NotFound)
        })
        .await
    }

    async fn task_list(
        &self,
        q: crate::ListQuery,
        status: Option<String>,
        kind: Option<String>,
    ) -> Result<crate::Page<Task>> {
        self.read(move |c| {
            let list = crate::task_list_query(crate::sql::Dialect::Sqlite, &q, status, kind);
            let rows = super::query_rows(c, &list, task_from_row)?;
            Ok(q.finish(rows, |t| t.id.clone()))
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

fn task_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        kind: r.get(1)?,
        status: r.get(2)?,
        data: crate::json_decode(r.get_ref(3)?.as_str()?),
        updated_at: r.get(4)?,
    })
}
