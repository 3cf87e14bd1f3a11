//! Messages and the delivery log (ingest itself is in ingest.rs).

use tokio_postgres::Row;

use super::catalog::endpoint_from_row;
use super::PgStore;
use crate::filters::{
    self, AttemptFilter, AttemptScope, MessageFilter, ATTEMPT_COLUMNS, ENDPOINT_COLUMN_COUNT,
    MESSAGE_COLUMNS,
};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    effective_status, found, json_decode_opt, Attempt, DeliveredMessage, DeliveryJob,
    DeliveryTarget, Message, NewMessage, Result, StoreError,
};

/// Maps `MESSAGE_COLUMNS` followed by an optional payload column at index 7.
fn message_from_row(r: &Row, with_payload: bool) -> Message {
    Message {
        id: r.get(0),
        app_id: r.get(1),
        event_id: r.get(2),
        event_type: r.get(3),
        channels: json_decode_opt(r.get(4)),
        created_at: r.get(5),
        expires_at: r.get(6),
        payload: if with_payload { r.get(7) } else { None },
    }
}

fn attempt_from_row(r: &Row) -> Attempt {
    Attempt {
        id: r.get(0),
        msg_id: r.get(1),
        endpoint_id: r.get(2),
        app_id: r.get(3),
        url: r.get(4),
        status: r.get(5),
        response_status_code: r.get(6),
        response: r.get(7),
        response_duration_ms: r.get(8),
        trigger_type: r.get(9),
        created_at: r.get(10),
    }
}

#[async_trait::async_trait]
impl crate::Messages for PgStore {
    /// Queued for a batcher, which stores it in one transaction with whatever else is
    /// queued (see ingest.rs).
    async fn message_create(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)> {
        self.ingest.submit(new, now).await
    }

    async fn message_get(&self, app_id: &str, id_or_event_id: &str) -> Result<Message> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {MESSAGE_COLUMNS}, p.payload FROM message m LEFT JOIN message_payload p ON p.msg_id = m.id \
                     WHERE m.app_id = $1 AND (m.id = $2 OR m.event_id = $2) ORDER BY (m.id = $2) DESC LIMIT 1"
                ),
                &[&app_id, &id_or_event_id],
            )
            .await?;
        row.map(|r| message_from_row(&r, true))
            .ok_or(StoreError::NotFound)
    }

    async fn message_list(
        &self,
        app_id: &str,
        filter: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<Message>> {
        let list = filters::message_list(Dialect::Postgres, app_id, &filter, &q);
        let rows = self
            .query_built(&list, |r| message_from_row(r, filter.with_content))
            .await?;
        Ok(q.finish(rows, |m| m.id.clone()))
    }

    async fn purge_expired_payloads(&self, now: i64, limit: usize) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "DELETE FROM message_payload WHERE msg_id IN (SELECT m.id FROM message m \
                 JOIN message_payload p ON p.msg_id = m.id WHERE m.expires_at < $1 LIMIT $2)",
                &[&now, &(limit as i64)],
            )
            .await?;
        Ok(n as usize)
    }

    async fn prune_messages(&self, created_before: i64, limit: usize) -> Result<usize> {
        super::retrying_conflicts(|| async {
            let mut conn = self.pool.get().await?;
            super::parents::prune_messages(&mut conn, created_before, limit).await
        })
        .await
    }

    async fn message_expunge(&self, msg_id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute("DELETE FROM message_payload WHERE msg_id = $1", &[&msg_id])
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::DeliveryLog for PgStore {
    async fn attempt_list(
        &self,
        app_id: &str,
        scope: AttemptScope,
        f: AttemptFilter,
        q: ListQuery,
    ) -> Result<Page<Attempt>> {
        let list = filters::attempt_list(Dialect::Postgres, app_id, &scope, &f, &q);
        let rows = self.query_built(&list, attempt_from_row).await?;
        Ok(q.finish(rows, |a| a.id.clone()))
    }

    async fn attempt_get(&self, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {ATTEMPT_COLUMNS} FROM attempt a JOIN message m ON m.id = a.msg_id WHERE a.id = $1 AND a.msg_id = $2 AND a.app_id = $3"),
                &[&attempt_id, &msg_id, &app_id],
            )
            .await?;
        row.map(|r| attempt_from_row(&r))
            .ok_or(StoreError::NotFound)
    }

    async fn attempt_expunge(&self, msg_id: &str, attempt_id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE attempt SET response = '' WHERE msg_id = $1 AND id = $2",
                &[&msg_id, &attempt_id],
            )
            .await?,
        )
    }

    async fn delivered_messages(
        &self,
        endpoint_id: &str,
        f: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<DeliveredMessage>> {
        let list = filters::delivered_messages(Dialect::Postgres, endpoint_id, &f, &q);
        let rows = self
            .query_built(&list, |r| {
                let (status, leased, next): (i64, bool, Option<i64>) =
                    (r.get(8), r.get(9), r.get(10));
                DeliveredMessage {
                    message: message_from_row(r, f.with_content),
                    status: effective_status(status, leased),
                    next_attempt_at: if status == 1 { next } else { None },
                }
            })
            .await?;
        Ok(q.finish(rows, |d| d.message.id.clone()))
    }

    async fn delivery_targets(&self, msg_id: &str, q: ListQuery) -> Result<Page<DeliveryTarget>> {
        let list = filters::delivery_targets(Dialect::Postgres, msg_id, &q);
        let rows = self
            .query_built(&list, |r| {
                let (status, leased, next): (i64, bool, Option<i64>) = (
                    r.get(ENDPOINT_COLUMN_COUNT),
                    r.get(ENDPOINT_COLUMN_COUNT + 1),
                    r.get(ENDPOINT_COLUMN_COUNT + 2),
                );
                DeliveryTarget {
                    endpoint: endpoint_from_row(r, 0),
                    status: effective_status(status, leased),
                    next_attempt_at: if status == 1 { next } else { None },
                }
            })
            .await?;
        Ok(q.finish(rows, |d| d.endpoint.id.clone()))
    }
}
