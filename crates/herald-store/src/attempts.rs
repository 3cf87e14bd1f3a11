//! The delivery log: attempts, and deliveries seen per endpoint or per message.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row};

use crate::messages::{self, MessageFilter};
use crate::page::{ListQuery, Page};
use crate::{
    endpoints, found, Attempt, DeliveredMessage, DeliveryStatus, DeliveryTarget, Result, Store,
    StoreError,
};

const COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, a.app_id, a.url, a.status, a.response_status_code, a.response, \
     a.response_duration_ms, a.trigger_type, a.created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: row.get(0)?,
        msg_id: row.get(1)?,
        endpoint_id: row.get(2)?,
        app_id: row.get(3)?,
        url: row.get(4)?,
        status: row.get(5)?,
        response_status_code: row.get(6)?,
        response: row.get(7)?,
        response_duration_ms: row.get(8)?,
        trigger_type: row.get(9)?,
        created_at: row.get(10)?,
    })
}

/// Filters for attempt lists.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    pub status: Option<i64>,
    /// 0, 100, 200, 300, 400 or 500: the hundred the response code falls in.
    pub status_code_class: Option<i64>,
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Only attempts to this endpoint (an id).
    pub endpoint_id: Option<String>,
}

/// Which attempts a list covers.
#[derive(Clone, Debug)]
pub enum AttemptScope {
    Endpoint(String),
    Message(String),
}

impl Store {
    pub async fn attempt_list(
        &self,
        app_id: &str,
        scope: AttemptScope,
        f: AttemptFilter,
        q: ListQuery,
    ) -> Result<Page<Attempt>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let mut sql = format!("SELECT {COLUMNS} FROM attempt a JOIN message m ON m.id = a.msg_id WHERE a.app_id = ?");
            let mut params = vec![Value::Text(app_id)];
            match scope {
                AttemptScope::Endpoint(id) => {
                    sql.push_str(" AND a.endpoint_id = ?");
                    params.push(Value::Text(id));
                }
                AttemptScope::Message(id) => {
                    sql.push_str(" AND a.msg_id = ?");
                    params.push(Value::Text(id));
                }
            }
            if let Some(ep) = f.endpoint_id {
                sql.push_str(" AND a.endpoint_id = ?");
                params.push(Value::Text(ep));
            }
            if let Some(s) = f.status {
                sql.push_str(" AND a.status = ?");
                params.push(Value::Integer(s));
            }
            if let Some(class) = f.status_code_class {
                sql.push_str(" AND a.response_status_code >= ? AND a.response_status_code < ?");
                params.push(Value::Integer(class));
                params.push(Value::Integer(class + 100));
            }
            if let Some(t) = f.before {
                sql.push_str(" AND a.created_at < ?");
                params.push(Value::Integer(t));
            }
            if let Some(t) = f.after {
                sql.push_str(" AND a.created_at > ?");
                params.push(Value::Integer(t));
            }
            let msg_filter = MessageFilter { channel: f.channel, event_types: f.event_types, ..Default::default() };
            msg_filter.apply(&mut sql, &mut params);
            q.apply(&mut sql, &mut params, "a.id");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params), from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(q.finish(rows, |a| a.id.clone()))
        })
        .await
    }

    pub async fn attempt_get(
        &self,
        app_id: &str,
        msg_id: &str,
        attempt_id: &str,
    ) -> Result<Attempt> {
        let (app_id, msg_id, attempt_id) = (
            app_id.to_string(),
            msg_id.to_string(),
            attempt_id.to_string(),
        );
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM attempt a WHERE a.id = ?1 AND a.msg_id = ?2 AND a.app_id = ?3"))?
                .query_row([attempt_id, msg_id, app_id], from_row)
                .optional()?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Clears the response body kept for one attempt.
    pub async fn attempt_expunge(&self, attempt_id: &str) -> Result<()> {
        let id = attempt_id.to_string();
        self.write(move |c| {
            found(c.execute("UPDATE attempt SET response = '' WHERE id = ?1", [id])?)
        })
        .await
    }

    /// Messages delivered (or being delivered) to one endpoint, newest first by default.
    pub async fn delivered_messages(
        &self,
        endpoint_id: &str,
        f: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<DeliveredMessage>> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |c| {
            let mut sql = String::from(
                "SELECT m.id, m.app_id, m.event_id, m.event_type, m.channels, m.created_at, m.expires_at, p.payload, \
                 d.status, d.leased, d.next_attempt_at FROM delivery d JOIN message m ON m.id = d.msg_id \
                 LEFT JOIN message_payload p ON p.msg_id = m.id WHERE d.endpoint_id = ?",
            );
            let mut params = vec![Value::Text(endpoint_id)];
            f.apply(&mut sql, &mut params);
            q.apply(&mut sql, &mut params, "m.id");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params), |r| {
                    let (status, leased, next) = (r.get::<_, i64>(8)?, r.get::<_, bool>(9)?, r.get(10)?);
                    Ok(DeliveredMessage {
                        message: messages::from_row(r, f.with_content)?,
                        status: effective_status(status, leased),
                        next_attempt_at: if status == 1 { next } else { None },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(q.finish(rows, |d| d.message.id.clone()))
        })
        .await
    }

    /// Endpoints one message went to, with the delivery status of each.
    pub async fn delivery_targets(
        &self,
        msg_id: &str,
        q: ListQuery,
    ) -> Result<Page<DeliveryTarget>> {
        let msg_id = msg_id.to_string();
        self.read(move |c| {
            let mut sql = format!(
                "SELECT {}, d.status, d.leased, d.next_attempt_at FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
                 WHERE d.msg_id = ?",
                endpoints::prefixed_columns("e")
            );
            let mut params = vec![Value::Text(msg_id)];
            q.apply(&mut sql, &mut params, "e.id");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params), |r| {
                    let (status, leased, next) = (r.get::<_, i64>(14)?, r.get::<_, bool>(15)?, r.get(16)?);
                    Ok(DeliveryTarget {
                        endpoint: endpoints::from_row(r)?,
                        status: effective_status(status, leased),
                        next_attempt_at: if status == 1 { next } else { None },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(q.finish(rows, |d| d.endpoint.id.clone()))
        })
        .await
    }
}

fn effective_status(status: i64, leased: bool) -> DeliveryStatus {
    match DeliveryStatus::from_i64(status) {
        DeliveryStatus::Pending if leased => DeliveryStatus::Sending,
        s => s,
    }
}
