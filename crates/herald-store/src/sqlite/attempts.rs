//! The delivery log: attempts, and deliveries seen per endpoint or per message.

use rusqlite::{OptionalExtension, Row};

use super::{endpoints, found, messages, query_rows, SqliteStore};
use crate::filters::{
    self, attempt_columns, AttemptFilter, AttemptScope, MessageFilter, ENDPOINT_COLUMN_COUNT,
};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{effective_status, Attempt, DeliveredMessage, DeliveryTarget, Result, StoreError};

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

#[async_trait::async_trait]
impl crate::DeliveryLog for SqliteStore {
    async fn attempt_list(
        &self,
        app_id: &str,
        scope: AttemptScope,
        f: AttemptFilter,
        q: ListQuery,
    ) -> Result<Page<Attempt>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let list = filters::attempt_list(Dialect::Sqlite, &app_id, &scope, &f, &q);
            let rows = query_rows(c, &list, from_row)?;
            Ok(q.finish(rows, |a| a.id.clone()))
        })
        .await
    }

    async fn attempt_get(&self, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt> {
        let (app_id, msg_id, attempt_id) = (
            app_id.to_string(),
            msg_id.to_string(),
            attempt_id.to_string(),
        );
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM message m JOIN attempt a ON a.msg_seq = m.seq WHERE a.id = ?1 AND m.id = ?2 AND m.app_id = ?3",
                attempt_columns(Dialect::Sqlite)
            ))?
                .query_row([attempt_id, msg_id, app_id], from_row)
                .optional()?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn attempt_expunge(&self, msg_id: &str, attempt_id: &str) -> Result<()> {
        let (msg_id, id) = (msg_id.to_string(), attempt_id.to_string());
        self.write(move |c| {
            found(c.execute(
                "UPDATE attempt SET response = '' WHERE msg_seq = (SELECT seq FROM message WHERE id = ?1) AND id = ?2",
                [msg_id, id],
            )?)
        })
        .await
    }

    async fn delivered_messages(
        &self,
        endpoint_id: &str,
        f: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<DeliveredMessage>> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |c| {
            let list = filters::delivered_messages(Dialect::Sqlite, &endpoint_id, &f, &q);
            let rows = query_rows(c, &list, |r| {
                let (status, leased, next) =
                    (r.get::<_, i64>(8)?, r.get::<_, bool>(9)?, r.get(10)?);
                Ok(DeliveredMessage {
                    message: messages::from_row(r, f.with_content)?,
                    status: effective_status(status, leased),
                    next_attempt_at: if status == 1 { next } else { None },
                })
            })?;
            Ok(q.finish(rows, |d| d.message.id.clone()))
        })
        .await
    }

    async fn delivery_targets(&self, msg_id: &str, q: ListQuery) -> Result<Page<DeliveryTarget>> {
        let msg_id = msg_id.to_string();
        self.read(move |c| {
            let list = filters::delivery_targets(Dialect::Sqlite, &msg_id, &q);
            let rows = query_rows(c, &list, |r| {
                let (status, leased, next) = (
                    r.get::<_, i64>(ENDPOINT_COLUMN_COUNT)?,
                    r.get::<_, bool>(ENDPOINT_COLUMN_COUNT + 1)?,
                    r.get(ENDPOINT_COLUMN_COUNT + 2)?,
                );
                Ok(DeliveryTarget {
                    endpoint: endpoints::from_row(r)?,
                    status: effective_status(status, leased),
                    next_attempt_at: if status == 1 { next } else { None },
                })
            })?;
            Ok(q.finish(rows, |d| d.endpoint.id.clone()))
        })
        .await
    }
}
