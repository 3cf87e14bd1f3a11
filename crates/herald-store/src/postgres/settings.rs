//! The environment's settings on PostgreSQL: one row.

use super::PgStore;
use crate::{Result, StoreError};

#[async_trait::async_trait]
impl crate::Settings for PgStore {
    async fn settings_get(&self) -> Result<Option<serde_json::Value>> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT settings FROM environment_settings WHERE id = 1",
                &[],
            )
            .await?;
        row.map(|r| {
            serde_json::from_str(&r.get::<_, String>(0))
                .map_err(|e| StoreError::Invalid(e.to_string()))
        })
        .transpose()
    }

    async fn settings_put(&self, settings: serde_json::Value, now: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO environment_settings (id, settings, updated_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            &[&settings.to_string(), &now],
        )
        .await?;
        Ok(())
    }
}
