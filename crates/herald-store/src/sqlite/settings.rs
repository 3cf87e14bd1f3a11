//! The environment's settings on SQLite: one row.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{Result, StoreError};

#[async_trait::async_trait]
impl crate::Settings for SqliteStore {
    async fn settings_get(&self) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .read(|c| {
                Ok(
                    c.prepare_cached("SELECT settings FROM environment_settings WHERE id = 1")?
                        .query_row([], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Invalid(e.to_string())))
            .transpose()
    }

    async fn settings_put(&self, settings: serde_json::Value, now: i64) -> Result<()> {
        let text = settings.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO environment_settings (id, settings, updated_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                params![text, now],
            )?;
            Ok(())
        })
        .await
    }
}
