//! Messages: ingest with fan-out, reads, lists and expunging payloads.

use std::sync::Arc;

use herald_core::fanout::{matches, Subscription};
use herald_core::ids;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::page::{ListQuery, Page};
use crate::route_cache::RouteCache;
use crate::{
    conflict_on_unique, json_decode_opt, json_encode, DeliveryJob, Message, NewMessage, Result,
    Store, StoreError, Trigger,
};

const COLUMNS: &str =
    "m.id, m.app_id, m.event_id, m.event_type, m.channels, m.created_at, m.expires_at";

/// Maps `COLUMNS` followed by an optional payload column at index 7.
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

pub(crate) fn select_with_payload() -> String {
    format!(
        "SELECT {COLUMNS}, p.payload FROM message m LEFT JOIN message_payload p ON p.msg_id = m.id"
    )
}

pub(crate) fn find(conn: &Connection, app_id: &str, id_or_event_id: &str) -> Result<Message> {
    conn.prepare_cached(&format!(
        "{} WHERE m.app_id = ?1 AND (m.id = ?2 OR m.event_id = ?2) ORDER BY m.id = ?2 DESC LIMIT 1",
        select_with_payload()
    ))?
    .query_row([app_id, id_or_event_id], |r| from_row(r, true))
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Filters for message lists.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub channel: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub event_types: Vec<String>,
    pub with_content: bool,
}

impl MessageFilter {
    /// Appends the SQL conditions for the message table aliased `m`.
    pub(crate) fn apply(&self, sql: &mut String, params: &mut Vec<Value>) {
        if let Some(ch) = &self.channel {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM json_each(m.channels) WHERE json_each.value = ?)",
            );
            params.push(Value::Text(ch.clone()));
        }
        if let Some(t) = self.before {
            sql.push_str(" AND m.created_at < ?");
            params.push(Value::Integer(t));
        }
        if let Some(t) = self.after {
            sql.push_str(" AND m.created_at > ?");
            params.push(Value::Integer(t));
        }
        if !self.event_types.is_empty() {
            let marks = vec!["?"; self.event_types.len()].join(", ");
            sql.push_str(&format!(" AND m.event_type IN ({marks})"));
            params.extend(self.event_types.iter().cloned().map(Value::Text));
        }
    }
}

/// How long a freshly ingested delivery stays leased to the process that hands it to its
/// dispatcher in memory; after a crash, start-up releases these leases at once.
pub const HANDOFF_LEASE_MS: i64 = 120_000;

/// Inserts the message, its payload and one leased delivery per matching endpoint, and
/// returns the jobs for the in-memory hand-off. Runs inside the writer's transaction.
fn insert_message(
    conn: &Connection,
    routes: &RouteCache,
    new: NewMessage,
    now: i64,
) -> Result<(Message, Vec<DeliveryJob>)> {
    let id = ids::generate(ids::MESSAGE);
    let expires_at = now + i64::from(new.retention_hours) * 3_600_000;
    // A scheduled message's deliveries (and all of them when the caller has no room for
    // a hand-off) are left to the scheduler; others are leased to the caller.
    let left_to_scheduler = match new.deliver_at.filter(|t| *t > now) {
        Some(at) => Some(at),
        None if !new.hand_off => Some(now),
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO message (id, app_id, event_id, event_type, channels, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        new.app_id,
        new.event_id,
        new.event_type,
        new.channels.as_ref().map(json_encode),
        now,
        expires_at
    ])
    .map_err(|e| {
        conflict_on_unique(
            e,
            "a message with this eventId already exists in this application",
        )
    })?;
    conn.prepare_cached("INSERT INTO message_payload (msg_id, payload) VALUES (?1, ?2)")?
        .execute(params![id, new.payload])?;

    let payload: Arc<str> = Arc::from(new.payload.as_str());
    let mut jobs = Vec::new();
    let mut insert_delivery = conn.prepare_cached(
        "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 1, 0, ?4, ?5, 0, ?6, ?6)",
    )?;
    for ep in routes.endpoints(conn, &new.app_id)?.iter() {
        let sub = Subscription {
            disabled: ep.disabled,
            event_types: ep.event_types.as_deref(),
            channels: ep.channels.as_deref(),
        };
        let wanted = match &new.only_endpoint {
            Some(only) => &ep.id == only,
            None => matches(&sub, &new.event_type, new.channels.as_deref()),
        };
        if !wanted {
            continue;
        }
        if let Some(at) = left_to_scheduler {
            insert_delivery.execute(params![id, ep.id, new.app_id, at, false, now])?;
            continue;
        }
        insert_delivery.execute(params![
            id,
            ep.id,
            new.app_id,
            now + HANDOFF_LEASE_MS,
            true,
            now
        ])?;
        jobs.push(DeliveryJob {
            delivery_id: conn.last_insert_rowid(),
            msg_id: id.clone(),
            app_id: new.app_id.clone(),
            endpoint_id: ep.id.clone(),
            secrets: ep.signing_keys(now),
            headers: ep
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            url: ep.url.clone(),
            payload: payload.clone(),
            attempts: 0,
            trigger: Trigger::Scheduled,
            lease_until: now + HANDOFF_LEASE_MS,
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

impl Store {
    /// Stores a message and its deliveries durably; the returned jobs are leased to the
    /// caller, who should hand them to the dispatcher.
    pub async fn message_create(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)> {
        let routes = self.inner.routes.clone();
        self.write(move |c| insert_message(c, &routes, new, now))
            .await
    }

    pub async fn message_get(&self, app_id: &str, id_or_event_id: &str) -> Result<Message> {
        let (app_id, key) = (app_id.to_string(), id_or_event_id.to_string());
        self.read(move |c| find(c, &app_id, &key)).await
    }

    pub async fn message_list(
        &self,
        app_id: &str,
        filter: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<Message>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let mut sql = if filter.with_content {
                format!("{} WHERE m.app_id = ?", select_with_payload())
            } else {
                format!("SELECT {COLUMNS} FROM message m WHERE m.app_id = ?")
            };
            let mut params = vec![Value::Text(app_id)];
            filter.apply(&mut sql, &mut params);
            q.apply(&mut sql, &mut params, "m.id");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params), |r| {
                    from_row(r, filter.with_content)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(q.finish(rows, |m| m.id.clone()))
        })
        .await
    }

    /// Deletes a message's payload; the message and its log stay.
    pub async fn message_expunge(&self, msg_id: &str) -> Result<()> {
        let id = msg_id.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM message_payload WHERE msg_id = ?1", [id])?;
            Ok(())
        })
        .await
    }
}
