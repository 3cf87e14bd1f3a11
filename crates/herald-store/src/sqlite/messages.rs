//! Messages: ingest with fan-out, reads, lists and expunging payloads.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use herald_core::ids;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::route_cache::RouteCache;
use super::{conflict_on_unique, query_rows, SqliteStore};
use crate::filters::{self, MessageFilter, MESSAGE_COLUMNS};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    delivery_headers, json_decode_opt, json_encode, message_targets, DeliveryJob, Message,
    NewMessage, Result, StoreError, Trigger, EVENT_ID_TAKEN,
};

/// Maps `MESSAGE_COLUMNS` followed by an optional payload column at index 7.
pub(crate) fn from_row(row: &Row<'_>, with_payload: bool) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        app_id: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        channels: json_decode_opt(row.get_ref(4)?.as_str_or_null()?),
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        payload: if with_payload { row.get(7)? } else { None },
    })
}

fn find(conn: &Connection, app_id: &str, id_or_event_id: &str) -> Result<Message> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS}, p.payload FROM message m LEFT JOIN message_payload p ON p.msg_seq = m.seq \
         WHERE m.seq = coalesce((SELECT seq FROM message WHERE id = ?2 AND app_id = ?1), \
         (SELECT seq FROM message WHERE app_id = ?1 AND event_id = ?2))"
    ))?
    .query_row([app_id, id_or_event_id], |r| from_row(r, true))
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Inserts the message, its payload and one delivery per matching endpoint, and returns
/// the jobs for the in-memory hand-off. Runs inside the writer's transaction.
fn insert_message(
    conn: &Connection,
    routes: &RouteCache,
    stream_seq: &AtomicI64,
    new: NewMessage,
    now: i64,
) -> Result<(Message, Vec<DeliveryJob>)> {
    let id = ids::generate(ids::MESSAGE);
    let expires_at = now + i64::from(new.retention_hours) * 3_600_000;
    // A scheduled message's deliveries (and all of them when the caller takes no
    // hand-off) are left to the scheduler; others are leased to the caller.
    let lease_until = new
        .lease_until
        .filter(|_| new.deliver_at.is_none_or(|t| t <= now));
    let due_at = new.deliver_at.filter(|t| *t > now).unwrap_or(now);
    // Only the writer thread runs this, one job at a time, so positions follow the
    // commit order; a job rolled back leaves a gap, which readers do not mind.
    let seq = stream_seq.fetch_add(1, Ordering::Relaxed);
    conn.prepare_cached(
        "INSERT INTO message (id, app_id, event_id, event_type, channels, created_at, expires_at, ordering_key, seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        new.app_id,
        new.event_id,
        new.event_type,
        new.channels.as_ref().map(json_encode),
        now,
        expires_at,
        new.ordering_key,
        seq
    ])
    .map_err(|e| conflict_on_unique(e, EVENT_ID_TAKEN))?;
    let extra_headers = (!new.headers.is_empty()).then(|| json_encode(&new.headers));
    conn.prepare_cached(
        "INSERT INTO message_payload (msg_seq, payload, headers) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![seq, new.payload, extra_headers])?;

    let payload: Arc<str> = Arc::from(new.payload.as_str());
    let mut jobs = Vec::new();
    let mut insert_delivery = conn.prepare_cached(
        "INSERT INTO delivery (msg_seq, ep, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
         SELECT ?1, ekey, 1, 0, ?3, ?4, 0, ?5, ?5 FROM endpoint WHERE id = ?2",
    )?;
    let endpoints = routes.endpoints(conn, &new.app_id)?;
    for ep in message_targets(&endpoints, &new) {
        // An ordered endpoint's deliveries go through the scheduler, which sends each
        // only after the ones before it.
        let Some(lease_until) = lease_until.filter(|_| !ep.ordered) else {
            insert_delivery.execute(params![seq, ep.id, due_at, false, now])?;
            continue;
        };
        if insert_delivery.execute(params![seq, ep.id, lease_until, true, now])? == 0 {
            // The routes are cleared by every endpoint change, so this does not happen;
            // were the endpoint gone, there would be no delivery to hand off.
            continue;
        }
        jobs.push(DeliveryJob {
            delivery_id: conn.last_insert_rowid(),
            msg_id: id.clone(),
            app_id: new.app_id.clone(),
            endpoint_id: ep.id.clone(),
            event_type: new.event_type.clone(),
            transformation: crate::Transformation::active(&ep.transformation),
            secrets: ep.signing_keys(now),
            headers: delivery_headers(ep, &new.headers),
            url: ep.url.clone(),
            payload: payload.clone(),
            attempts: 0,
            trigger: Trigger::Scheduled,
            lease_until,
            throttle_rate: ep.throttle_rate,
            app_throttle_rate: new.app_throttle_rate,
        });
    }
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

#[async_trait::async_trait]
impl crate::Messages for SqliteStore {
    async fn message_create(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)> {
        let routes = self.inner.routes.clone();
        let seq = self.inner.seq.clone();
        self.write(move |c| insert_message(c, &routes, &seq, new, now))
            .await
    }

    async fn message_get(&self, app_id: &str, id_or_event_id: &str) -> Result<Message> {
        let (app_id, key) = (app_id.to_string(), id_or_event_id.to_string());
        self.read(move |c| find(c, &app_id, &key)).await
    }

    async fn message_list(
        &self,
        app_id: &str,
        filter: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<Message>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let list = filters::message_list(Dialect::Sqlite, &app_id, &filter, &q);
            let rows = query_rows(c, &list, |r| from_row(r, filter.with_content))?;
            Ok(q.finish(rows, |m| m.id.clone()))
        })
        .await
    }

    async fn purge_expired_payloads(&self, now: i64, limit: usize) -> Result<usize> {
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM message_payload WHERE msg_seq IN (SELECT m.seq FROM message m \
                 JOIN message_payload p ON p.msg_seq = m.seq WHERE m.expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![now, limit as i64])?)
        })
        .await
    }

    async fn prune_messages(&self, created_before: i64, limit: usize) -> Result<usize> {
        self.write(move |c| {
            let pruned: Vec<(String, Option<i64>)> = c
                .prepare_cached(
                    "DELETE FROM message WHERE seq IN (SELECT m.seq FROM message m WHERE m.created_at < ?1 \
                     AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_seq = m.seq AND d.status = 1) LIMIT ?2) \
                     RETURNING app_id, seq",
                )?
                .query_map(params![created_before, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            super::destinations::raise_horizons(c, &pruned)?;
            Ok(pruned.len())
        })
        .await
    }

    async fn message_expunge(&self, msg_id: &str) -> Result<()> {
        let id = msg_id.to_string();
        self.write(move |c| {
            c.execute(
                "DELETE FROM message_payload WHERE msg_seq = (SELECT seq FROM message WHERE id = ?1)",
                [id],
            )?;
            Ok(())
        })
        .await
    }
}
