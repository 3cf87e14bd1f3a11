//! API tokens, stored only as SHA-256 hashes (the caller hashes).

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{Result, TokenInfo, TokenRecord};

#[async_trait::async_trait]
impl crate::Tokens for SqliteStore {
    async fn token_insert(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        app_id: Option<&str>,
        role: Option<&str>,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let (id, hash, name, app_id, role) = (
            id.to_string(),
            hash.to_string(),
            name.to_string(),
            app_id.map(str::to_string),
            role.map(str::to_string),
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_token (id, hash, name, app_id, role, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, hash, name, app_id, role, now, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_find(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let hash = hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, app_id, expires_at, destination_id, role, name FROM api_token WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    expires_at: r.get(2)?,
                    destination_id: r.get(3)?,
                    role: r.get(4)?,
                    name: r.get(5)?,
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

    async fn token_list(&self, q: ListQuery) -> Result<Page<TokenRecord>> {
        self.read(move |c| {
            let list = crate::filters::token_list_query(Dialect::Sqlite, &q);
            let rows = super::query_rows(c, &list, |r| {
                Ok(TokenRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    app_id: r.get(3)?,
                    destination_id: r.get(4)?,
                    created_at: r.get(5)?,
                    expires_at: r.get(6)?,
                    last_used_at: r.get(7)?,
                })
            })?;
            Ok(q.finish(rows, |t| t.id.clone()))
        })
        .await
    }

    async fn token_revoke(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            super::found(c.execute(
                "DELETE FROM api_token WHERE id = ?1 AND destination_id IS NULL",
                [id],
            )?)
        })
        .await
    }

    async fn token_touch(&self, id: &str, at: i64) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE api_token SET last_used_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(())
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
