//! Endpoints, their secrets and their delivery statistics.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::{simple_list, ENDPOINT_COLUMNS as COLUMNS};
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{
    json_decode, json_decode_opt, json_encode, too_many_endpoints, Endpoint, EndpointStats,
    PayloadFilter, Result, StoreError, ENDPOINT_UID_TAKEN,
};

pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    from_row_at(row, 0)
}

/// Maps the `COLUMNS` starting at column `at`.
pub(crate) fn from_row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        id: row.get(at)?,
        app_id: row.get(at + 1)?,
        uid: row.get(at + 2)?,
        url: row.get(at + 3)?,
        description: row.get(at + 4)?,
        disabled: row.get(at + 5)?,
        event_types: json_decode_opt(row.get_ref(at + 6)?.as_str_or_null()?),
        channels: json_decode_opt(row.get_ref(at + 7)?.as_str_or_null()?),
        throttle_rate: row.get(at + 8)?,
        metadata: json_decode(row.get_ref(at + 9)?.as_str()?),
        headers: json_decode(row.get_ref(at + 10)?.as_str()?),
        secrets: json_decode(row.get_ref(at + 11)?.as_str()?),
        created_at: row.get(at + 12)?,
        updated_at: row.get(at + 13)?,
        ordered: row.get(at + 14)?,
        payload_filter: PayloadFilter::from_stored(row.get_ref(at + 15)?.as_str_or_null()?),
        transformation: crate::Transformation::from_stored(row.get_ref(at + 16)?.as_str_or_null()?),
    })
}

pub(crate) fn find(conn: &Connection, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoint WHERE app_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row([app_id, id_or_uid], from_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// All endpoints of an application, for fan-out.
pub(crate) fn all_of_app(conn: &Connection, app_id: &str) -> Result<Vec<Endpoint>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM endpoint WHERE app_id = ?1 ORDER BY id"
        ))?
        .query_map([app_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn opt_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(json_encode)
}

#[async_trait::async_trait]
impl crate::Endpoints for SqliteStore {
    async fn endpoint_get(&self, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        let (app_id, key) = (app_id.to_string(), id_or_uid.to_string());
        self.read(move |c| find(c, &app_id, &key)).await
    }

    async fn endpoint_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Endpoint>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let select = format!("SELECT {COLUMNS} FROM endpoint");
            let list = simple_list(
                Dialect::Sqlite,
                &select,
                Some(("app_id", &app_id)),
                &q,
                "id",
            );
            let rows = query_rows(c, &list, from_row)?;
            Ok(q.finish(rows, |e| e.id.clone()))
        })
        .await
    }

    /// Inserts an endpoint, refusing when the application already has `max_per_app`.
    async fn endpoint_insert(&self, ep: Endpoint, max_per_app: usize) -> Result<Endpoint> {
        self.write_routes(move |c| {
            let count: i64 = c.prepare_cached("SELECT count(*) FROM endpoint WHERE app_id = ?1")?.query_row([&ep.app_id], |r| r.get(0))?;
            if count as usize >= max_per_app {
                return Err(too_many_endpoints(max_per_app));
            }
            c.prepare_cached(&format!(
                "INSERT INTO endpoint ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ))?
            .execute(params![
                ep.id, ep.app_id, ep.uid, ep.url, ep.description, ep.disabled, opt_json(&ep.event_types),
                opt_json(&ep.channels), ep.throttle_rate, json_encode(&ep.metadata), json_encode(&ep.headers),
                json_encode(&ep.secrets), ep.created_at, ep.updated_at, ep.ordered,
                PayloadFilter::stored(&ep.payload_filter),
                crate::Transformation::stored(ep.transformation.as_deref())
            ])
            .map_err(|e| conflict_on_unique(e, ENDPOINT_UID_TAKEN))?;
            Ok(ep)
        })
        .await
    }

    /// Replaces every mutable field of the endpoint with `ep.id`.
    async fn endpoint_update(&self, ep: Endpoint) -> Result<Endpoint> {
        self.write_routes(move |c| {
            let n = c
                .prepare_cached(
                    // Re-enabling starts a new failure streak.
                    "UPDATE endpoint SET failing_since = CASE WHEN ?5 = 0 AND disabled = 1 THEN NULL ELSE failing_since END, \
                     uid = ?2, url = ?3, description = ?4, disabled = ?5, event_types = ?6, \
                     channels = ?7, throttle_rate = ?8, metadata = ?9, headers = ?10, secrets = ?11, updated_at = ?12, ordered = ?13, \
                     payload_filter = ?14 WHERE id = ?1",
                )?
                .execute(params![
                    ep.id, ep.uid, ep.url, ep.description, ep.disabled, opt_json(&ep.event_types), opt_json(&ep.channels),
                    ep.throttle_rate, json_encode(&ep.metadata), json_encode(&ep.headers), json_encode(&ep.secrets),
                    ep.updated_at, ep.ordered, PayloadFilter::stored(&ep.payload_filter)
                ])
                .map_err(|e| conflict_on_unique(e, ENDPOINT_UID_TAKEN))?;
            found(n)?;
            Ok(ep)
        })
        .await
    }

    async fn endpoint_set_transformation(
        &self,
        endpoint_id: &str,
        transformation: Option<crate::Transformation>,
    ) -> Result<()> {
        let (id, stored) = (
            endpoint_id.to_string(),
            crate::Transformation::stored(transformation.as_ref()),
        );
        // Through the route cache's writer path: fan-out hands the script to the jobs.
        self.write_routes(move |c| {
            found(c.execute(
                "UPDATE endpoint SET transformation = ?2 WHERE id = ?1",
                params![id, stored],
            )?)
        })
        .await
    }

    async fn endpoint_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write_routes(move |c| found(c.execute("DELETE FROM endpoint WHERE id = ?1", [id])?))
            .await
    }

    /// Delivery counts by status for deliveries created in [since, until).
    async fn endpoint_stats(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
    ) -> Result<EndpointStats> {
        let id = endpoint_id.to_string();
        self.read(move |c| {
            let mut stats = EndpointStats::default();
            let mut stmt = c.prepare_cached(
                "SELECT status, leased, count(*) FROM delivery WHERE ep = (SELECT ekey FROM endpoint WHERE id = ?1) AND created_at >= ?2 \
                 AND created_at < ?3 GROUP BY status, leased",
            )?;
            let rows = stmt.query_map(params![id, since, until], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (status, leased, n) = row?;
                match (status, leased) {
                    (0, _) => stats.success += n,
                    (1, false) => stats.pending += n,
                    (1, true) => stats.sending += n,
                    (4, _) => stats.canceled += n,
                    _ => stats.fail += n,
                }
            }
            Ok(stats)
        })
        .await
    }
}
