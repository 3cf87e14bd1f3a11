//! Applications, endpoints, event types, API tokens and idempotency records.

use tokio_postgres::Row;

use super::pool::PooledConn;
use super::{classify, PgStore};
use crate::filters::{simple_list, ENDPOINT_COLUMNS};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    found, json_decode, json_decode_opt, json_encode, too_many_endpoints, Application, Endpoint,
    EndpointStats, EventType, Result, StoreError, Task, TokenInfo, APP_UID_TAKEN,
    ENDPOINT_UID_TAKEN, EVENT_TYPE_TAKEN,
};

const APP_COLUMNS: &str = "id, uid, name, throttle_rate, metadata, created_at, updated_at";

fn app_from_row(r: &Row) -> Application {
    Application {
        id: r.get(0),
        uid: r.get(1),
        name: r.get(2),
        throttle_rate: r.get::<_, Option<i64>>(3).map(|v| v as u32),
        metadata: json_decode(r.get(4)),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

/// Maps the endpoint columns (`ENDPOINT_COLUMNS`) starting at column `at`.
pub(crate) fn endpoint_from_row(r: &Row, at: usize) -> Endpoint {
    Endpoint {
        id: r.get(at),
        app_id: r.get(at + 1),
        uid: r.get(at + 2),
        url: r.get(at + 3),
        description: r.get(at + 4),
        disabled: r.get(at + 5),
        event_types: json_decode_opt(r.get(at + 6)),
        channels: json_decode_opt(r.get(at + 7)),
        throttle_rate: r.get::<_, Option<i64>>(at + 8).map(|v| v as u32),
        metadata: json_decode(r.get(at + 9)),
        headers: json_decode(r.get(at + 10)),
        secrets: json_decode(r.get(at + 11)),
        created_at: r.get(at + 12),
        updated_at: r.get(at + 13),
        ordered: r.get(at + 14),
        payload_filter: crate::PayloadFilter::from_stored(r.get(at + 15)),
        transformation: crate::Transformation::from_stored(r.get(at + 16)),
    }
}

const EVENT_TYPE_COLUMNS: &str =
    "name, description, archived, deprecated, schemas, feature_flag, created_at, updated_at";

fn event_type_from_row(r: &Row) -> EventType {
    EventType {
        name: r.get(0),
        description: r.get(1),
        archived: r.get(2),
        deprecated: r.get(3),
        schemas: json_decode_opt(r.get(4)),
        feature_flag: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

fn opt_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(json_encode)
}

impl PgStore {
    pub(crate) async fn find_endpoint(&self, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = $1 AND (id = $2 OR uid = $2) ORDER BY (id = $2) DESC LIMIT 1"),
                &[&app_id, &id_or_uid],
            )
            .await?;
        row.map(|r| endpoint_from_row(&r, 0))
            .ok_or(StoreError::NotFound)
    }
}

/// Inserts an application row (also the application of a new source, in its
/// transaction).
pub(super) async fn insert_app(conn: &mut PooledConn<'_>, app: &Application) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO application ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &app.id,
            &app.uid,
            &app.name,
            &app.throttle_rate.map(i64::from),
            &json_encode(&app.metadata),
            &app.created_at,
            &app.updated_at,
        ],
    )
    .await
    .map_err(|e| classify(e, APP_UID_TAKEN))?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::Apps for PgStore {
    async fn app_get(&self, id_or_uid: &str) -> Result<Application> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {APP_COLUMNS} FROM application WHERE id = $1 OR uid = $1 ORDER BY (id = $1) DESC LIMIT 1"),
                &[&id_or_uid],
            )
            .await?;
        row.map(|r| app_from_row(&r)).ok_or(StoreError::NotFound)
    }

    async fn app_list(
        &self,
        q: ListQuery,
        hidden_uid: Option<String>,
    ) -> Result<Page<Application>> {
        let hidden: Vec<String> = hidden_uid.into_iter().collect();
        let select = format!(
            "SELECT {APP_COLUMNS} FROM (SELECT * FROM application WHERE uid IS NULL OR {}) AS t",
            crate::filters::none_of("uid", &hidden)
        );
        let list = simple_list(Dialect::Postgres, &select, None, &q, "id");
        let rows = self.query_built(&list, app_from_row).await?;
        Ok(q.finish(rows, |a| a.id.clone()))
    }

    async fn app_insert(&self, app: Application) -> Result<Application> {
        let mut conn = self.pool.get().await?;
        insert_app(&mut conn, &app).await?;
        Ok(app)
    }

    async fn app_update(&self, app: Application) -> Result<Application> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE application SET uid = $2, name = $3, throttle_rate = $4, metadata = $5, updated_at = $6 WHERE id = $1",
                &[
                    &app.id,
                    &app.uid,
                    &app.name,
                    &app.throttle_rate.map(i64::from),
                    &json_encode(&app.metadata),
                    &app.updated_at,
                ],
            )
            .await
            .map_err(|e| classify(e, APP_UID_TAKEN))?;
        found(n)?;
        Ok(app)
    }

    async fn app_delete(&self, id: &str) -> Result<()> {
        // Deleting what hangs under it may deadlock with the recording of an attempt.
        super::retrying_conflicts(|| async {
            let mut conn = self.pool.get().await?;
            super::parents::delete_application(&mut conn, id).await
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::Endpoints for PgStore {
    async fn endpoint_get(&self, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        self.find_endpoint(app_id, id_or_uid).await
    }

    async fn endpoint_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Endpoint>> {
        let select = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint");
        let list = simple_list(
            Dialect::Postgres,
            &select,
            Some(("app_id", app_id)),
            &q,
            "id",
        );
        let rows = self.query_built(&list, |r| endpoint_from_row(r, 0)).await?;
        Ok(q.finish(rows, |e| e.id.clone()))
    }

    async fn endpoint_insert(&self, ep: Endpoint, max_per_app: usize) -> Result<Endpoint> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            // Locking the application row makes the count exact across nodes.
            if conn
                .query_opt("SELECT 1 FROM application WHERE id = $1 FOR UPDATE", &[&ep.app_id])
                .await?
                .is_none()
            {
                return Err(StoreError::NotFound);
            }
            let count: i64 = conn
                .query("SELECT count(*) FROM endpoint WHERE app_id = $1", &[&ep.app_id])
                .await?[0]
                .get(0);
            if count as usize >= max_per_app {
                return Err(too_many_endpoints(max_per_app));
            }
            conn.execute(
                &format!("INSERT INTO endpoint ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
                &[
                    &ep.id, &ep.app_id, &ep.uid, &ep.url, &ep.description, &ep.disabled,
                    &opt_json(&ep.event_types), &opt_json(&ep.channels), &ep.throttle_rate.map(i64::from),
                    &json_encode(&ep.metadata), &json_encode(&ep.headers), &json_encode(&ep.secrets),
                    &ep.created_at, &ep.updated_at, &ep.ordered,
                    &crate::PayloadFilter::stored(&ep.payload_filter),
                    &crate::Transformation::stored(ep.transformation.as_deref()),
                ],
            )
            .await
            .map_err(|e| classify(e, ENDPOINT_UID_TAKEN))?;
            Ok(())
        }
        .await;
        conn.finish(outcome).await?;
        Ok(ep)
    }

    async fn endpoint_update(&self, ep: Endpoint) -> Result<Endpoint> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                // Re-enabling starts a new failure streak.
                "UPDATE endpoint SET failing_since = CASE WHEN disabled AND NOT $5 THEN NULL ELSE failing_since END, \
                 uid = $2, url = $3, description = $4, disabled = $5, event_types = $6, \
                 channels = $7, throttle_rate = $8, metadata = $9, headers = $10, secrets = $11, updated_at = $12, ordered = $13, \
                 payload_filter = $14 WHERE id = $1",
                &[
                    &ep.id, &ep.uid, &ep.url, &ep.description, &ep.disabled, &opt_json(&ep.event_types),
                    &opt_json(&ep.channels), &ep.throttle_rate.map(i64::from), &json_encode(&ep.metadata),
                    &json_encode(&ep.headers), &json_encode(&ep.secrets), &ep.updated_at, &ep.ordered,
                    &crate::PayloadFilter::stored(&ep.payload_filter),
                ],
            )
            .await
            .map_err(|e| classify(e, ENDPOINT_UID_TAKEN))?;
        found(n)?;
        Ok(ep)
    }

    async fn endpoint_set_transformation(
        &self,
        endpoint_id: &str,
        transformation: Option<crate::Transformation>,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE endpoint SET transformation = $2 WHERE id = $1",
                &[
                    &endpoint_id,
                    &crate::Transformation::stored(transformation.as_ref()),
                ],
            )
            .await?,
        )
    }

    async fn endpoint_delete(&self, id: &str) -> Result<()> {
        // Deleting what hangs under it may deadlock with the recording of an attempt.
        super::retrying_conflicts(|| async {
            let mut conn = self.pool.get().await?;
            super::parents::delete_endpoint(&mut conn, id).await
        })
        .await
    }

    async fn endpoint_stats(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
    ) -> Result<EndpointStats> {
        let mut conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT status, leased, count(*) FROM delivery WHERE endpoint_id = $1 AND created_at >= $2 \
                 AND created_at < $3 GROUP BY status, leased",
                &[&endpoint_id, &since, &until],
            )
            .await?;
        let mut stats = EndpointStats::default();
        for r in rows {
            let (status, leased, n): (i64, bool, i64) = (r.get(0), r.get(1), r.get(2));
            match (status, leased) {
                (0, _) => stats.success += n,
                (1, false) => stats.pending += n,
                (1, true) => stats.sending += n,
                (4, _) => stats.canceled += n,
                _ => stats.fail += n,
            }
        }
        Ok(stats)
    }
}

#[async_trait::async_trait]
impl crate::EventTypes for PgStore {
    async fn event_type_get(&self, name: &str) -> Result<EventType> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE name = $1"),
                &[&name],
            )
            .await?;
        row.map(|r| event_type_from_row(&r))
            .ok_or(StoreError::NotFound)
    }

    async fn event_type_list(
        &self,
        q: ListQuery,
        include_archived: bool,
        hidden: Vec<String>,
    ) -> Result<Page<EventType>> {
        let archived = if include_archived {
            "TRUE"
        } else {
            "NOT archived"
        };
        let select = format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM (SELECT * FROM event_type WHERE {archived} AND {}) AS t",
            crate::filters::none_of("name", &hidden)
        );
        let list = simple_list(Dialect::Postgres, &select, None, &q, "name");
        let rows = self.query_built(&list, event_type_from_row).await?;
        Ok(q.finish(rows, |e| e.name.clone()))
    }

    async fn event_type_save(&self, et: EventType, replace: bool) -> Result<EventType> {
        let on_conflict = if replace {
            " ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, archived = EXCLUDED.archived, \
             deprecated = EXCLUDED.deprecated, schemas = EXCLUDED.schemas, feature_flag = EXCLUDED.feature_flag, \
             created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at"
        } else {
            ""
        };
        let mut conn = self.pool.get().await?;
        conn.execute(
            &format!("INSERT INTO event_type ({EVENT_TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8){on_conflict}"),
            &[
                &et.name,
                &et.description,
                &et.archived,
                &et.deprecated,
                &et.schemas.as_ref().map(|s| s.to_string()),
                &et.feature_flag,
                &et.created_at,
                &et.updated_at,
            ],
        )
        .await
        .map_err(|e| classify(e, EVENT_TYPE_TAKEN))?;
        Ok(et)
    }

    async fn event_type_delete(&self, name: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute("DELETE FROM event_type WHERE name = $1", &[&name])
                .await?,
        )
    }

    async fn event_types_missing(&self, names: Vec<String>) -> Result<Vec<String>> {
        let mut conn = self.pool.get().await?;
        let present: Vec<String> = conn
            .query(
                "SELECT name FROM event_type WHERE name = ANY($1) AND NOT archived",
                &[&names],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(names.into_iter().filter(|n| !present.contains(n)).collect())
    }
}

#[async_trait::async_trait]
impl crate::Tokens for PgStore {
    async fn token_insert(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        app_id: Option<&str>,
        role: Option<&str>,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO api_token (id, hash, name, app_id, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&id, &hash, &name, &app_id, &role, &now, &expires_at],
        )
        .await
        .map_err(|e| classify(e, "a token with this hash already exists"))?;
        Ok(())
    }

    async fn token_find(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT id, app_id, expires_at, destination_id, role, name FROM api_token WHERE hash = $1",
                &[&hash],
            )
            .await?;
        Ok(row.map(|r| TokenInfo {
            id: r.get(0),
            app_id: r.get(1),
            expires_at: r.get(2),
            destination_id: r.get(3),
            role: r.get(4),
            name: r.get(5),
        }))
    }

    async fn token_expire(&self, hash: &str, at: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE api_token SET expires_at = least(coalesce(expires_at, $2), $2) WHERE hash = $1",
                &[&hash, &at],
            )
            .await?,
        )?;
        conn.execute("SELECT pg_notify($1, '')", &[&super::REVOKED_CHANNEL])
            .await?;
        Ok(())
    }

    async fn token_list(&self, q: ListQuery) -> Result<Page<crate::TokenRecord>> {
        let list = crate::filters::token_list_query(Dialect::Postgres, &q);
        let rows = self
            .query_built(&list, |r| crate::TokenRecord {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                app_id: r.get(3),
                destination_id: r.get(4),
                created_at: r.get(5),
                expires_at: r.get(6),
                last_used_at: r.get(7),
            })
            .await?;
        Ok(q.finish(rows, |t| t.id.clone()))
    }

    async fn token_revoke(&self, id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "DELETE FROM api_token WHERE id = $1 AND destination_id IS NULL",
                &[&id],
            )
            .await?,
        )?;
        // Every node forgets the token at once, not when its cached copy ages out.
        conn.execute("SELECT pg_notify($1, '')", &[&super::REVOKED_CHANNEL])
            .await?;
        Ok(())
    }

    async fn token_touch(&self, id: &str, at: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "UPDATE api_token SET last_used_at = $2 WHERE id = $1",
            &[&id, &at],
        )
        .await?;
        Ok(())
    }

    async fn admin_token_count(&self) -> Result<i64> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .query("SELECT count(*) FROM api_token WHERE app_id IS NULL", &[])
            .await?[0]
            .get(0))
    }
}

#[async_trait::async_trait]
impl crate::Idempotency for PgStore {
    async fn idempotency_get(
        &self,
        key: &str,
        now: i64,
        max_age_ms: i64,
    ) -> Result<Option<(u16, Vec<u8>)>> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT status_code, body FROM idempotency WHERE key = $1 AND created_at > $2",
                &[&key, &(now - max_age_ms)],
            )
            .await?;
        Ok(row.map(|r| (r.get::<_, i64>(0) as u16, r.get(1))))
    }

    async fn idempotency_put(&self, key: &str, status: u16, body: Vec<u8>, now: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO idempotency (key, status_code, body, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET status_code = EXCLUDED.status_code, body = EXCLUDED.body, created_at = EXCLUDED.created_at",
            &[&key, &i64::from(status), &body, &now],
        )
        .await?;
        Ok(())
    }

    async fn idempotency_prune(&self, now: i64, max_age_ms: i64) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .execute(
                "DELETE FROM idempotency WHERE created_at <= $1",
                &[&(now - max_age_ms)],
            )
            .await? as usize)
    }

    async fn task_get(&self, id: &str) -> Result<Task> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT id, kind, status, data, updated_at FROM task WHERE id = $1",
                &[&id],
            )
            .await?;
        row.map(|r| task_from_row(&r)).ok_or(StoreError::NotFound)
    }

    async fn task_list(
        &self,
        q: ListQuery,
        status: Option<String>,
        kind: Option<String>,
    ) -> Result<Page<Task>> {
        let list = crate::task_list_query(Dialect::Postgres, &q, status, kind);
        let rows = self.query_built(&list, task_from_row).await?;
        Ok(q.finish(rows, |t| t.id.clone()))
    }

    async fn task_save(&self, task: Task) -> Result<Task> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO task (id, kind, status, data, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status, data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
            &[&task.id, &task.kind, &task.status, &task.data.to_string(), &task.updated_at],
        )
        .await?;
        Ok(task)
    }
}

fn task_from_row(r: &Row) -> Task {
    Task {
        id: r.get(0),
        kind: r.get(1),
        status: r.get(2),
        data: json_decode(r.get(3)),
        updated_at: r.get(4),
    }
}
