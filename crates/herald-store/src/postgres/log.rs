//! Messages (ingest with fan-out) and the delivery log.

use std::sync::Arc;

use herald_core::ids;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::catalog::endpoint_from_row;
use super::{classify, PgStore, DUE_CHANNEL};
use crate::filters::{
    self, AttemptFilter, AttemptScope, MessageFilter, ATTEMPT_COLUMNS, ENDPOINT_COLUMNS,
    MESSAGE_COLUMNS,
};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    effective_status, found, json_decode_opt, json_encode, message_targets, Attempt,
    DeliveredMessage, DeliveryJob, DeliveryTarget, Message, NewMessage, Result, StoreError,
    Trigger, EVENT_ID_TAKEN,
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
    /// Two round trips: `BEGIN`, the message, its payload and the endpoints go out
    /// together; then the deliveries (and the `NOTIFY`) with the `COMMIT`.
    async fn message_create(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)> {
        let id = ids::generate(ids::MESSAGE);
        let expires_at = now + i64::from(new.retention_hours) * 3_600_000;
        let lease_until = new
            .lease_until
            .filter(|_| new.deliver_at.is_none_or(|t| t <= now));
        let due_at = new.deliver_at.filter(|t| *t > now).unwrap_or(now);
        let channels = new.channels.as_ref().map(json_encode);
        let mut conn = self.pool.get().await?;
        let insert_message = conn
            .prepare(
                "INSERT INTO message (id, app_id, event_id, event_type, channels, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        let insert_payload = conn
            .prepare("INSERT INTO message_payload (msg_id, payload) VALUES ($1, $2)")
            .await?;
        // Read inside the transaction, never from a cache: another node may have
        // changed the endpoints a moment ago.
        let select_endpoints = conn
            .prepare(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = $1 ORDER BY id"
            ))
            .await?;
        let insert_deliveries = conn
            .prepare(
                "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                 SELECT $1, e, $3, 1, 0, $4, $5, 0, $6, $6 FROM unnest($2::text[]) AS e RETURNING id, endpoint_id",
            )
            .await?;
        let notify = conn.prepare("SELECT pg_notify($1, '')").await?;

        conn.begin_pipelined();
        let first = {
            let c = conn.client();
            let message_args: [&(dyn ToSql + Sync); 7] = [
                &id,
                &new.app_id,
                &new.event_id,
                &new.event_type,
                &channels,
                &now,
                &expires_at,
            ];
            let payload_args: [&(dyn ToSql + Sync); 2] = [&id, &new.payload];
            let endpoint_args: [&(dyn ToSql + Sync); 1] = [&new.app_id];
            // All four complete; the first failure in statement order is the cause (the
            // later ones only say the transaction was aborted).
            let (begin, message, payload, endpoints) = tokio::join!(
                c.batch_execute("BEGIN"),
                c.execute(&insert_message, &message_args),
                c.execute(&insert_payload, &payload_args),
                c.query(&select_endpoints, &endpoint_args),
            );
            begin.and(message).and(payload).and(endpoints)
        };
        let outcome = async {
            let rows = first.map_err(|e| classify(e, EVENT_ID_TAKEN))?;
            let endpoints: Vec<_> = rows.iter().map(|r| endpoint_from_row(r, 0)).collect();
            let targets: Vec<_> = message_targets(&endpoints, &new).collect();
            let target_ids: Vec<&str> = targets.iter().map(|e| e.id.as_str()).collect();
            let announce = lease_until.is_none() && due_at <= now && !targets.is_empty();
            let c = conn.client();
            let deliveries = async {
                if targets.is_empty() {
                    return Ok(Vec::new());
                }
                let (at, leased) = (lease_until.unwrap_or(due_at), lease_until.is_some());
                let args: [&(dyn ToSql + Sync); 6] =
                    [&id, &target_ids, &new.app_id, &at, &leased, &now];
                c.query(&insert_deliveries, &args).await
            };
            let announced = async {
                if announce {
                    // Delivered to the listening workers when this transaction commits.
                    c.query(&notify, &[&DUE_CHANNEL]).await?;
                }
                Ok(())
            };
            let (rows, announced) = tokio::join!(deliveries, announced);
            // The first failure in statement order is the cause.
            let rows = rows.and_then(|rows| announced.map(|()| rows))?;
            let Some(lease_until) = lease_until else {
                return Ok(Vec::new());
            };
            let payload: Arc<str> = Arc::from(new.payload.as_str());
            let mut jobs = Vec::with_capacity(rows.len());
            for row in rows {
                let endpoint_id: String = row.get(1);
                let Some(ep) = targets.iter().find(|e| e.id == endpoint_id) else {
                    continue;
                };
                jobs.push(DeliveryJob {
                    delivery_id: row.get(0),
                    msg_id: id.clone(),
                    app_id: new.app_id.clone(),
                    endpoint_id,
                    url: ep.url.clone(),
                    payload: payload.clone(),
                    headers: ep
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    secrets: ep.signing_keys(now),
                    attempts: 0,
                    trigger: Trigger::Scheduled,
                    lease_until,
                });
            }
            Ok(jobs)
        }
        .await;
        let jobs = conn.finish(outcome).await?;
        let message = Message {
            id,
            app_id: new.app_id,
            event_id: new.event_id,
            event_type: new.event_type,
            channels: new.channels,
            payload: Some(new.payload),
            created_at: now,
            expires_at,
        };
        Ok((message, jobs))
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
                &format!("SELECT {ATTEMPT_COLUMNS} FROM attempt a WHERE a.id = $1 AND a.msg_id = $2 AND a.app_id = $3"),
                &[&attempt_id, &msg_id, &app_id],
            )
            .await?;
        row.map(|r| attempt_from_row(&r))
            .ok_or(StoreError::NotFound)
    }

    async fn attempt_expunge(&self, attempt_id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE attempt SET response = '' WHERE id = $1",
                &[&attempt_id],
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
                let (status, leased, next): (i64, bool, Option<i64>) =
                    (r.get(14), r.get(15), r.get(16));
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
