//! Event types (global to the server, like Svix's per-organisation catalog).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{EventType, Result, StoreError, EVENT_TYPE_TAKEN};

const COLUMNS: &str =
    "name, description, archived, deprecated, schemas, feature_flag, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<EventType> {
    Ok(EventType {
        name: row.get(0)?,
        description: row.get(1)?,
        archived: row.get(2)?,
        deprecated: row.get(3)?,
        schemas: crate::json_decode_opt(row.get_ref(4)?.as_str_or_null()?),
        feature_flag: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// Names from `names` that are not existing, unarchived event types.
pub(crate) fn missing(conn: &Connection, names: &[String]) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM event_type WHERE name = ?1 AND archived = 0")?;
    let mut out = Vec::new();
    for name in names {
        if stmt.query_row([name], |_| Ok(())).optional()?.is_none() {
            out.push(name.clone());
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl crate::EventTypes for SqliteStore {
    async fn event_type_get(&self, name: &str) -> Result<EventType> {
        let name = name.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM event_type WHERE name = ?1"))?
                .query_row([name], from_row)
                .optional()?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn event_type_list(
        &self,
        q: ListQuery,
        include_archived: bool,
        hidden: Vec<String>,
    ) -> Result<Page<EventType>> {
        self.read(move |c| {
            let archived = if include_archived {
                "1=1"
            } else {
                "archived = 0"
            };
            let select = format!(
                "SELECT {COLUMNS} FROM (SELECT * FROM event_type WHERE {archived} AND {}) AS t",
                crate::filters::none_of("name", &hidden)
            );
            let rows = query_rows(
                c,
                &simple_list(Dialect::Sqlite, &select, None, &q, "name"),
                from_row,
            )?;
            Ok(q.finish(rows, |e| e.name.clone()))
        })
        .await
    }

    /// Inserts, or with `replace` overwrites, an event type.
    async fn event_type_save(&self, et: EventType, replace: bool) -> Result<EventType> {
        self.write(move |c| {
            let verb = if replace {
                "INSERT OR REPLACE"
            } else {
                "INSERT"
            };
            c.prepare_cached(&format!(
                "{verb} INTO event_type ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                et.name,
                et.description,
                et.archived,
                et.deprecated,
                et.schemas.as_ref().map(|s| s.to_string()),
                et.feature_flag,
                et.created_at,
                et.updated_at
            ])
            .map_err(|e| conflict_on_unique(e, EVENT_TYPE_TAKEN))?;
            Ok(et)
        })
        .await
    }

    async fn event_type_delete(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |c| found(c.execute("DELETE FROM event_type WHERE name = ?1", [name])?))
            .await
    }

    /// Of `names`, those that are not existing, unarchived event types.
    async fn event_types_missing(&self, names: Vec<String>) -> Result<Vec<String>> {
        self.read(move |c| missing(c, &names)).await
    }
}
