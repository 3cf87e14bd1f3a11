//! Applications.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{json_decode, json_encode, Application, Result, StoreError, APP_UID_TAKEN};

const COLUMNS: &str = "id, uid, name, throttle_rate, metadata, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: row.get(0)?,
        uid: row.get(1)?,
        name: row.get(2)?,
        throttle_rate: row.get(3)?,
        metadata: json_decode(row.get_ref(4)?.as_str()?),
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// Finds an application by id or uid.
pub(crate) fn find(conn: &Connection, id_or_uid: &str) -> Result<Application> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM application WHERE id = ?1 OR uid = ?1 ORDER BY id = ?1 DESC LIMIT 1"
    ))?
    .query_row([id_or_uid], from_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Inserts an application row (also the application of a new source).
pub(crate) fn insert(conn: &Connection, app: &Application) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO application ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        app.id,
        app.uid,
        app.name,
        app.throttle_rate,
        json_encode(&app.metadata),
        app.created_at,
        app.updated_at
    ])
    .map_err(|e| conflict_on_unique(e, APP_UID_TAKEN))?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::Apps for SqliteStore {
    async fn app_get(&self, id_or_uid: &str) -> Result<Application> {
        let key = id_or_uid.to_string();
        self.read(move |c| find(c, &key)).await
    }

    async fn app_list(
        &self,
        q: ListQuery,
        hidden_uid: Option<String>,
    ) -> Result<Page<Application>> {
        self.read(move |c| {
            let hidden: Vec<String> = hidden_uid.into_iter().collect();
            let select = format!(
                "SELECT {COLUMNS} FROM (SELECT * FROM application WHERE uid IS NULL OR {}) AS t",
                crate::filters::none_of("uid", &hidden)
            );
            let rows = query_rows(
                c,
                &simple_list(Dialect::Sqlite, &select, None, &q, "id"),
                from_row,
            )?;
            Ok(q.finish(rows, |a| a.id.clone()))
        })
        .await
    }

    async fn app_insert(&self, app: Application) -> Result<Application> {
        self.write(move |c| {
            insert(c, &app)?;
            Ok(app)
        })
        .await
    }

    /// Replaces the mutable fields of the application with `app.id`.
    async fn app_update(&self, app: Application) -> Result<Application> {
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE application SET uid = ?2, name = ?3, throttle_rate = ?4, metadata = ?5, updated_at = ?6 WHERE id = ?1")?
                .execute(params![app.id, app.uid, app.name, app.throttle_rate, json_encode(&app.metadata), app.updated_at])
                .map_err(|e| conflict_on_unique(e, APP_UID_TAKEN))?;
            found(n)?;
            Ok(app)
        })
        .await
    }

    /// Deletes the application and, by cascade, its endpoints, messages and log.
    async fn app_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write_routes(move |c| found(c.execute("DELETE FROM application WHERE id = ?1", [id])?))
            .await
    }
}
