//! The audit trail on PostgreSQL: a batch of events in one statement.

use tokio_postgres::Row;

use super::PgStore;
use crate::filters::audit_list_query;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{AuditEvent, AuditFilter, Result};

fn from_row(r: &Row) -> AuditEvent {
    AuditEvent {
        id: r.get(0),
        at: r.get(1),
        actor_id: r.get(2),
        actor_name: r.get(3),
        role: r.get(4),
        actor_app_id: r.get(5),
        method: r.get(6),
        route: r.get(7),
        path: r.get(8),
        object_id: r.get(9),
        status: r.get(10),
        allowed: r.get(11),
        source: r.get(12),
        detail: r.get(13),
        after: r.get(14),
        before: r.get(15),
    }
}

#[async_trait::async_trait]
impl crate::Audit for PgStore {
    async fn audit_append(&self, events: Vec<AuditEvent>) -> Result<()> {
        let col = |f: fn(&AuditEvent) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
        let ids = col(|e| Some(e.id.clone()));
        let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
        let actor_ids = col(|e| Some(e.actor_id.clone()));
        let actor_names = col(|e| Some(e.actor_name.clone()));
        let roles = col(|e| e.role.clone());
        let app_ids = col(|e| e.actor_app_id.clone());
        let methods = col(|e| Some(e.method.clone()));
        let routes = col(|e| Some(e.route.clone()));
        let paths = col(|e| Some(e.path.clone()));
        let objects = col(|e| e.object_id.clone());
        let statuses: Vec<i64> = events.iter().map(|e| e.status).collect();
        let allowed: Vec<bool> = events.iter().map(|e| e.allowed).collect();
        let sources = col(|e| e.source.clone());
        let details = col(|e| e.detail.clone());
        let afters = col(|e| e.after.clone());
        let befores = col(|e| e.before.clone());
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO audit_event (id, at, actor_id, actor_name, role, actor_app_id, method, route, path, \
             object_id, status, allowed, source, detail, after, before_change) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::int8[], $12::bool[], $13::text[], $14::text[], $15::text[], $16::text[])",
            &[&ids, &ats, &actor_ids, &actor_names, &roles, &app_ids, &methods, &routes, &paths, &objects,
              &statuses, &allowed, &sources, &details, &afters, &befores],
        )
        .await?;
        Ok(())
    }

    async fn audit_list(&self, filter: AuditFilter, q: ListQuery) -> Result<Page<AuditEvent>> {
        let list = audit_list_query(Dialect::Postgres, &filter, &q);
        let rows = self.query_built(&list, from_row).await?;
        Ok(q.finish(rows, |e| e.id.clone()))
    }

    async fn audit_prune(&self, before: i64, limit: usize) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "DELETE FROM audit_event WHERE id IN (SELECT id FROM audit_event WHERE at < $1 LIMIT $2)",
                &[&before, &(limit as i64)],
            )
            .await?;
        Ok(n as usize)
    }
}
