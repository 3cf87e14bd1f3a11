//! Inbound sources and the log of requests that arrived at them.

use tokio_postgres::Row;

use super::{classify, PgStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    found, json_decode, json_encode, Application, InboundRequest, Result, Source, StoreError,
    SOURCE_TAKEN,
};

const SOURCE_COLUMNS: &str = "id, app_id, name, config, created_at, updated_at";
const INBOUND_COLUMNS: &str =
    "id, source_id, msg_id, received_at, method, path, query, headers, body, verified, reason";

fn source_from_row(r: &Row) -> Source {
    Source {
        id: r.get(0),
        app_id: r.get(1),
        name: r.get(2),
        config: serde_json::from_str(r.get(3)).unwrap_or_default(),
        created_at: r.get(4),
        updated_at: r.get(5),
    }
}

fn inbound_from_row(r: &Row) -> InboundRequest {
    InboundRequest {
        id: r.get(0),
        source_id: r.get(1),
        msg_id: r.get(2),
        received_at: r.get(3),
        method: r.get(4),
        path: r.get(5),
        query: r.get(6),
        headers: json_decode(r.get(7)),
        body: r.get(8),
        verified: r.get(9),
        reason: r.get(10),
    }
}

#[async_trait::async_trait]
impl crate::Sources for PgStore {
    async fn source_insert(&self, app: Application, src: Source) -> Result<Source> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            super::catalog::insert_app(&mut conn, &app).await?;
            conn.execute(
                &format!("INSERT INTO source ({SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &[
                    &src.id,
                    &src.app_id,
                    &src.name,
                    &src.config.to_string(),
                    &src.created_at,
                    &src.updated_at,
                ],
            )
            .await
            .map_err(|e| classify(e, SOURCE_TAKEN))?;
            Ok(())
        }
        .await;
        conn.finish(outcome).await?;
        Ok(src)
    }

    async fn source_get(&self, id: &str) -> Result<Source> {
        let mut conn = self.pool.get().await?;
        conn.query_opt(
            &format!("SELECT {SOURCE_COLUMNS} FROM source WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| source_from_row(&r))
        .ok_or(StoreError::NotFound)
    }

    async fn source_list(&self, q: ListQuery) -> Result<Page<Source>> {
        let select = format!("SELECT {SOURCE_COLUMNS} FROM source");
        let list = simple_list(Dialect::Postgres, &select, None, &q, "id");
        let rows = self.query_built(&list, source_from_row).await?;
        Ok(q.finish(rows, |s| s.id.clone()))
    }

    async fn source_update(&self, src: Source) -> Result<Source> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE source SET name = $2, config = $3, updated_at = $4 WHERE id = $1",
                &[&src.id, &src.name, &src.config.to_string(), &src.updated_at],
            )
            .await?,
        )?;
        Ok(src)
    }

    async fn source_delete(&self, id: &str) -> Result<()> {
        super::retrying_conflicts(|| async {
            let mut conn = self.pool.get().await?;
            let app_id: String = conn
                .query_opt("SELECT app_id FROM source WHERE id = $1", &[&id])
                .await?
                .ok_or(crate::StoreError::NotFound)?
                .get(0);
            super::parents::delete_application(&mut conn, &app_id).await
        })
        .await
    }

    async fn inbound_insert(&self, req: InboundRequest) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            &format!(
                "INSERT INTO inbound_request ({INBOUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &req.id,
                &req.source_id,
                &req.msg_id,
                &req.received_at,
                &req.method,
                &req.path,
                &req.query,
                &json_encode(&req.headers),
                &req.body,
                &req.verified,
                &req.reason,
            ],
        )
        .await?;
        Ok(())
    }

    async fn inbound_list(&self, source_id: &str, q: ListQuery) -> Result<Page<InboundRequest>> {
        let select = format!("SELECT {INBOUND_COLUMNS} FROM inbound_request");
        let list = simple_list(
            Dialect::Postgres,
            &select,
            Some(("source_id", source_id)),
            &q,
            "id",
        );
        let rows = self.query_built(&list, inbound_from_row).await?;
        Ok(q.finish(rows, |r| r.id.clone()))
    }

    async fn inbound_prune(&self, received_before: i64, limit: usize) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "DELETE FROM inbound_request WHERE id IN \
                 (SELECT id FROM inbound_request WHERE received_at < $1 LIMIT $2)",
                &[&received_before, &(limit as i64)],
            )
            .await?;
        Ok(n as usize)
    }
}
