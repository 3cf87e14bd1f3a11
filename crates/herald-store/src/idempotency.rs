//! Idempotency records: the first 2xx answer to a keyed POST, replayed to repeats.

use rusqlite::{params, OptionalExtension};

use crate::{Result, Store, Task};

impl Store {
    /// The stored answer for `key` if it is younger than `max_age_ms`.
    pub async fn idempotency_get(
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

    pub async fn idempotency_put(
        &self,
        key: &str,
        status: u16,
        body: Vec<u8>,
        now: i64,
    ) -> Result<()> {
        let key = key.to_string();
        self.write(move |c| {
            c.prepare_cached("INSERT OR REPLACE INTO idempotency (key, status_code, body, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![key, status, body, now])?;
            Ok(())
        })
        .await
    }

    /// Drops idempotency records older than `max_age_ms`.
    pub async fn idempotency_prune(&self, now: i64, max_age_ms: i64) -> Result<usize> {
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM idempotency WHERE created_at <= ?1",
                [now - max_age_ms],
            )?)
        })
        .await
    }

    pub async fn task_save(&self, task: Task) -> Result<Task> {
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn records_expire_and_are_pruned() {
        let dir = std::env::temp_dir().join(format!(
            "herald-idem-{}-{}",
            std::process::id(),
            herald_core::ids::random_base62(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::Store::open(&dir.join("t.db")).unwrap();
        let hour = 3_600_000;
        store
            .idempotency_put("old", 202, b"{}".to_vec(), 1_000)
            .await
            .unwrap();
        store
            .idempotency_put("new", 201, b"{\"a\":1}".to_vec(), 10 * hour)
            .await
            .unwrap();
        let now = 10 * hour + 1;
        assert_eq!(
            store.idempotency_get("old", now, 5 * hour).await.unwrap(),
            None,
            "past its time to live"
        );
        assert_eq!(
            store.idempotency_get("new", now, 5 * hour).await.unwrap(),
            Some((201, b"{\"a\":1}".to_vec()))
        );
        assert_eq!(store.idempotency_prune(now, 5 * hour).await.unwrap(), 1);
        assert_eq!(store.idempotency_prune(now, 5 * hour).await.unwrap(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
