//! Inbound sources and the log of requests that arrived at them.

use rusqlite::{params, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    json_decode, json_encode, Application, InboundRequest, Result, Source, StoreError, SOURCE_TAKEN,
};

const SOURCE_COLUMNS: &str = "id, app_id, name, config, created_at, updated_at";
const INBOUND_COLUMNS: &str =
    "id, source_id, msg_id, received_at, method, path, query, headers, body, verified, reason";

fn source_from_row(row: &Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        id: row.get(0)?,
        app_id: row.get(1)?,
        name: row.get(2)?,
        config: serde_json::from_str(row.get_ref(3)?.as_str()?).unwrap_or_default(),
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn inbound_from_row(row: &Row<'_>) -> rusqlite::Result<InboundRequest> {
    Ok(InboundRequest {
        id: row.get(0)?,
        source_id: row.get(1)?,
        msg_id: row.get(2)?,
        received_at: row.get(3)?,
        method: row.get(4)?,
        path: row.get(5)?,
        query: row.get(6)?,
        headers: json_decode(row.get_ref(7)?.as_str()?),
        body: row.get(8)?,
        verified: row.get(9)?,
        reason: row.get(10)?,
    })
}

#[async_trait::async_trait]
impl crate::Sources for SqliteStore {
    async fn source_insert(&self, app: Application, src: Source) -> Result<Source> {
        self.write(move |c| {
            super::apps::insert(c, &app)?;
            c.prepare_cached(&format!(
                "INSERT INTO source ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                src.id,
                src.app_id,
                src.name,
                src.config.to_string(),
                src.created_at,
                src.updated_at
            ])
            .map_err(|e| conflict_on_unique(e, SOURCE_TAKEN))?;
            Ok(src)
        })
        .await
    }

    async fn source_get(&self, id: &str) -> Result<Source> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SOURCE_COLUMNS} FROM source WHERE id = ?1"
            ))?
            .query_row([id], source_from_row)
            .optional()?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn source_list(&self, q: ListQuery) -> Result<Page<Source>> {
        self.read(move |c| {
            let select = format!("SELECT {SOURCE_COLUMNS} FROM source");
            let rows = query_rows(
                c,
                &simple_list(Dialect::Sqlite, &select, None, &q, "id"),
                source_from_row,
            )?;
            Ok(q.finish(rows, |s| s.id.clone()))
        })
        .await
    }

    async fn source_update(&self, src: Source) -> Result<Source> {
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE source SET name = ?2, config = ?3, updated_at = ?4 WHERE id = ?1",
                )?
                .execute(params![
                    src.id,
                    src.name,
                    src.config.to_string(),
                    src.updated_at
                ])?;
            found(n)?;
            Ok(src)
        })
        .await
    }

    async fn source_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write_routes(move |c| {
            found(c.execute(
                "DELETE FROM application WHERE id = (SELECT app_id FROM source WHERE id = ?1)",
                [id],
            )?)
        })
        .await
    }

    async fn inbound_insert(&self, req: InboundRequest) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO inbound_request ({INBOUND_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                req.id,
                req.source_id,
                req.msg_id,
                req.received_at,
                req.method,
                req.path,
                req.query,
                json_encode(&req.headers),
                req.body,
                req.verified,
                req.reason
            ])?;
            Ok(())
        })
        .await
    }

    async fn inbound_list(&self, source_id: &str, q: ListQuery) -> Result<Page<InboundRequest>> {
        let source_id = source_id.to_string();
        self.read(move |c| {
            let select = format!("SELECT {INBOUND_COLUMNS} FROM inbound_request");
            let rows = query_rows(
                c,
                &simple_list(
                    Dialect::Sqlite,
                    &select,
                    Some(("source_id", &source_id)),
                    &q,
                    "id",
                ),
                inbound_from_row,
            )?;
            Ok(q.finish(rows, |r| r.id.clone()))
        })
        .await
    }

    async fn inbound_prune(&self, received_before: i64, limit: usize) -> Result<usize> {
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM inbound_request WHERE id IN \
                 (SELECT id FROM inbound_request WHERE received_at < ?1 LIMIT ?2)",
            )?
            .execute(params![received_before, limit as i64])?)
        })
        .await
    }
}
