//! API tokens, stored only as SHA-256 hashes (the caller hashes).

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{Result, TokenInfo};

#[async_trait::async_trait]
impl crate::Tokens for SqliteStore {
    async fn token_insert(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        app_id: Option<&str>,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let (id, hash, name, app_id) = (
            id.to_string(),
            hash.to_string(),
            name.to_string(),
            app_id.map(str::to_string),
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_token (id, hash, name, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, hash, name, app_id, now, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_find(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let hash = hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, app_id, expires_at, destination_id FROM api_token WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    expires_at: r.get(2)?,
                    destination_id: r.get(3)?,
                })
            })
            .optional()?)
        })
        .await
    }

    /// How many admin (unscoped) tokens exist; zero means this is a first start.
    async fn token_expire(&self, hash: &str, at: i64) -> Result<()> {
        let hash = hash.to_string();
        self.write(move |c| {
            super::found(c.execute(
                "UPDATE api_token SET expires_at = min(coalesce(expires_at, ?2), ?2) WHERE hash = ?1",
                rusqlite::params![hash, at],
            )?)
        })
        .await
    }

    async fn admin_token_count(&self) -> Result<i64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM api_token WHERE app_id IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }
}
