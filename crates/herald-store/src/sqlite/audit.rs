//! The audit trail on SQLite: one insert per event, in one writer job per batch.

use rusqlite::{params, Row};

use super::{query_rows, SqliteStore};
use crate::filters::audit_list_query;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{AuditEvent, AuditFilter, Result};

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        id: r.get(0)?,
        at: r.get(1)?,
        actor_id: r.get(2)?,
        actor_name: r.get(3)?,
        role: r.get(4)?,
        actor_app_id: r.get(5)?,
        method: r.get(6)?,
        route: r.get(7)?,
        path: r.get(8)?,
        object_id: r.get(9)?,
        status: r.get(10)?,
        allowed: r.get(11)?,
        source: r.get(12)?,
        detail: r.get(13)?,
        after: r.get(14)?,
        before: r.get(15)?,
    })
}

#[async_trait::async_trait]
impl crate::Audit for SqliteStore {
    async fn audit_append(&self, events: Vec<AuditEvent>) -> Result<()> {
        self.write(move |c| {
            let mut insert = c.prepare_cached(
                "INSERT INTO audit_event (id, at, actor_id, actor_name, role, actor_app_id, method, route, path, \
                 object_id, status, allowed, source, detail, after, before_change) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for e in &events {
                insert.execute(params![
                    e.id, e.at, e.actor_id, e.actor_name, e.role, e.actor_app_id, e.method, e.route, e.path,
                    e.object_id, e.status, e.allowed, e.source, e.detail, e.after, e.before
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_list(&self, filter: AuditFilter, q: ListQuery) -> Result<Page<AuditEvent>> {
        self.read(move |c| {
            let list = audit_list_query(Dialect::Sqlite, &filter, &q);
            let rows = query_rows(c, &list, from_row)?;
            Ok(q.finish(rows, |e| e.id.clone()))
        })
        .await
    }

    async fn audit_prune(&self, before: i64, limit: usize) -> Result<usize> {
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM audit_event WHERE id IN (SELECT id FROM audit_event WHERE at < ?1 LIMIT ?2)",
            )?
            .execute(params![before, limit as i64])?)
        })
        .await
    }
}
