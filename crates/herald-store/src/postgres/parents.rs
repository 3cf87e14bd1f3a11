//! Parent rows of the per-message tables, kept by Herald rather than by foreign keys.
//!
//! `message`, `message_payload`, `delivery` and `attempt` have no foreign keys (version
//! 7): a key checks each inserted row with a query of its own that also locks the parent
//! row, which made up about a third of PostgreSQL's CPU per message. Their two promises
//! are kept here and at the few places that insert such rows:
//!
//! - **No row outlives its parent.** Deleting an application, an endpoint or a pruned
//!   message deletes what hangs under it (the functions below), in one transaction.
//! - **No row is inserted under a parent being deleted.** Writers lock the parents they
//!   insert under with `FOR KEY SHARE`, once per batch instead of once per row: ingest
//!   locks the batch's applications and their endpoints, a resend or replay locks its
//!   endpoint and messages, and an attempt is only inserted after the update of its
//!   delivery row has found (and locked) that row. A delete takes the parent's row lock
//!   first, so it waits for writers in flight and writers that come after it find no
//!   parent (`NotFound`); and it deletes children in statements of their own after
//!   that, each of which sees the rows those writers committed.

use super::pool::PooledConn;
use crate::{found, Result, StoreError};

/// Locks endpoint `id` against deletion until the transaction ends; `NotFound` when it
/// is gone.
pub(crate) async fn lock_endpoint(conn: &mut PooledConn<'_>, id: &str) -> Result<()> {
    let sql = "SELECT 1 FROM endpoint WHERE id = $1 FOR KEY SHARE";
    lock_one(conn, sql, &[&id]).await
}

/// Locks message `id` of application `app_id` against deletion until the transaction
/// ends; `NotFound` when it is gone.
pub(crate) async fn lock_message(conn: &mut PooledConn<'_>, app_id: &str, id: &str) -> Result<()> {
    let sql = "SELECT 1 FROM message WHERE id = $1 AND app_id = $2 FOR KEY SHARE";
    lock_one(conn, sql, &[&id, &app_id]).await
}

/// Runs `sql`, a `SELECT 1 … FOR …` of one row; `NotFound` when there is none.
async fn lock_one(
    conn: &mut PooledConn<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<()> {
    conn.query_opt(sql, params)
        .await?
        .map(drop)
        .ok_or(StoreError::NotFound)
}

/// The tables under an endpoint, in the order they are deleted: deliveries before
/// attempts, because an attempt being recorded holds its delivery row, and once it
/// commits the next statement sees the attempt it inserted.
const CHILDREN_OF_ENDPOINT: [&str; 2] = ["delivery", "attempt"];

/// Deletes application `app_id` with its messages, payloads, deliveries and attempts;
/// its endpoints, tokens and source go with it through their own keys.
pub(crate) async fn delete_application(conn: &mut PooledConn<'_>, app_id: &str) -> Result<()> {
    conn.begin().await?;
    let outcome = async {
        // Waits for ingest batches holding the application, and keeps new ones out.
        let sql = "SELECT 1 FROM application WHERE id = $1 FOR UPDATE";
        lock_one(conn, sql, &[&app_id]).await?;
        conn.execute(
            "WITH gone AS (DELETE FROM message WHERE app_id = $1 RETURNING id) \
             DELETE FROM message_payload WHERE msg_id IN (SELECT id FROM gone)",
            &[&app_id],
        )
        .await?;
        for table in CHILDREN_OF_ENDPOINT {
            conn.execute(
                &format!("DELETE FROM {table} WHERE endpoint_id IN (SELECT id FROM endpoint WHERE app_id = $1)"),
                &[&app_id],
            )
            .await?;
        }
        conn.execute("DELETE FROM application WHERE id = $1", &[&app_id])
            .await?;
        Ok(())
    }
    .await;
    conn.finish(outcome).await
}

/// Deletes endpoint `endpoint_id` with its deliveries and attempts.
pub(crate) async fn delete_endpoint(conn: &mut PooledConn<'_>, endpoint_id: &str) -> Result<()> {
    conn.begin().await?;
    let outcome = async {
        found(
            conn.execute("DELETE FROM endpoint WHERE id = $1", &[&endpoint_id])
                .await?,
        )?;
        for table in CHILDREN_OF_ENDPOINT {
            conn.execute(
                &format!("DELETE FROM {table} WHERE endpoint_id = $1"),
                &[&endpoint_id],
            )
            .await?;
        }
        Ok(())
    }
    .await;
    conn.finish(outcome).await
}

/// Deletes up to `limit` messages created before `created_before` that have nothing
/// pending, with their payloads, deliveries and attempts; returns how many.
pub(crate) async fn prune_messages(
    conn: &mut PooledConn<'_>,
    created_before: i64,
    limit: usize,
) -> Result<usize> {
    conn.begin().await?;
    let outcome = async {
        let rows = conn
            .query(
                "DELETE FROM message WHERE id IN (SELECT m.id FROM message m WHERE m.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.status = 1) LIMIT $2) \
                 RETURNING id, app_id, xid, seq",
                &[&created_before, &(limit as i64)],
            )
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        super::destinations::raise_horizons(
            conn,
            rows.iter()
                .map(|r| (r.get(1), crate::StreamPos { xid: r.get(2), seq: r.get(3) }))
                .collect(),
        )
        .await?;
        if !ids.is_empty() {
            for table in ["message_payload", "delivery", "attempt"] {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE msg_id = ANY($1)"),
                    &[&ids],
                )
                .await?;
            }
        }
        Ok(ids.len())
    }
    .await;
    conn.finish(outcome).await
}
