//! The embedded SQLite store, Herald's default backend.
//!
//! Writes go through one writer thread that batches whatever is queued into a single
//! transaction (group commit): a caller's future resolves only after the batch holding
//! its write is durable, so durability costs one fsync per batch, not per request (see
//! writer.rs). Reads use a small pool of connections, which WAL mode lets run beside the
//! writer. One process owns the file (the server takes a lock file).

mod apps;
mod attempts;
mod audit;
mod compact_keys;
mod destinations;
mod endpoints;
mod event_types;
mod idempotency;
mod messages;
mod people;
mod queue;
mod readers;
mod route_cache;
mod settings;
mod sources;
mod tokens;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use crate::sql::{Arg, Query};
use crate::{Result, StoreError};

const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;

/// A foreign-key failure means a parent row vanished meanwhile (say the application was
/// deleted): `NotFound`, as on PostgreSQL.
impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if e.extended_code == SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                StoreError::NotFound
            }
            _ => StoreError::Db(err.to_string()),
        }
    }
}

/// Maps a UNIQUE violation to `Conflict(message)`, and a vanished parent row (say the
/// application was deleted meanwhile) to `NotFound`.
pub(crate) fn conflict_on_unique(err: rusqlite::Error, message: &str) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation
                && e.extended_code != SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::Conflict(message.to_string())
        }
        _ => err.into(),
    }
}

/// Adds a column that a newer schema has to a table created by an older one; says
/// whether it had to.
fn add_column_if_missing(
    conn: &Connection,
    table: &str,
    column: &str,
    definition: &str,
) -> Result<bool> {
    let present: i64 = conn.query_row(
        &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |r| r.get(0),
    )?;
    if present == 0 {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        ))?;
    }
    Ok(present == 0)
}

/// `NotFound` when a statement that targets one row by key changed none.
pub(crate) fn found(changed: usize) -> Result<()> {
    crate::found(changed as u64)
}

/// Runs a statement built by `sql.rs` and maps each row.
pub(crate) fn query_rows<T>(
    conn: &Connection,
    q: &Query,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let params = q.args.iter().map(|a| match a {
        Arg::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Arg::Int(i) => rusqlite::types::Value::Integer(*i),
    });
    Ok(conn
        .prepare_cached(&q.sql)?
        .query_map(rusqlite::params_from_iter(params), map)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    routes: Arc<route_cache::RouteCache>,
    /// The next stream position to give a message (only the writer takes from it, so
    /// positions follow commit order).
    seq: Arc<std::sync::atomic::AtomicI64>,
    readers: readers::Readers,
}

/// When the store hands back the memory it keeps for busy times: a read connection (and
/// its page cache, up to 2 MB) unused this long is closed, and after a window this long
/// with few writes the writer empties its page cache (up to 16 MB) and the fan-out
/// routes. The next busy period fills them again.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// The schema version `schema.sql` creates, kept in SQLite's `user_version`. A database
/// from a newer Herald is refused rather than misread.
const SCHEMA_VERSION: i64 = 11;

fn open_connection(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // temp_store = MEMORY keeps the savepoint sub-journals of the group commit off disk.
    // The writer gets a 16 MiB page cache; readers, mostly idle, 2 MiB each, so that a
    // full set of read threads costs little memory.
    let cache_kib = if read_only { 2_000 } else { 16_000 };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib}; PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode with full fsync
    /// on commit, and applies the schema.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = open_connection(path, false)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 4000;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "{} has schema version {version}, newer than this Herald understands ({SCHEMA_VERSION}); run a newer herald",
                path.display()
            )));
        }
        // Columns added after version 1 (CREATE TABLE IF NOT EXISTS leaves old tables as
        // they were).
        if version >= 1 {
            add_column_if_missing(&conn, "endpoint", "failing_since", "INTEGER")?;
            add_column_if_missing(&conn, "endpoint", "ordered", "INTEGER NOT NULL DEFAULT 0")?;
            add_column_if_missing(&conn, "message", "ordering_key", "TEXT")?;
            add_column_if_missing(&conn, "message_payload", "headers", "TEXT")?;
            if add_column_if_missing(&conn, "message", "seq", "INTEGER")? {
                // Messages from before streams take their place in insertion order.
                conn.execute_batch("UPDATE message SET seq = rowid WHERE seq IS NULL")?;
            }
            add_column_if_missing(&conn, "endpoint", "payload_filter", "TEXT")?;
            add_column_if_missing(&conn, "endpoint", "transformation", "TEXT")?;
            // Version 9: a token's role. An older Herald would take such a token for an
            // admin's, so it must refuse this database (the version says so).
            add_column_if_missing(&conn, "api_token", "role", "TEXT")?;
            add_column_if_missing(&conn, "api_token", "last_used_at", "INTEGER")?;
            // A poller's token is scoped to its destination (version 8).
            add_column_if_missing(&conn, "api_token", "destination_id", "TEXT")?;
        }
        if version >= 8 {
            // Destinations (made in version 8) take a payload filter and a transformation.
            add_column_if_missing(&conn, "destination", "payload_filter", "TEXT")?;
            add_column_if_missing(&conn, "destination", "transformation", "TEXT")?;
        }
        if version >= 9 {
            // Version 10: a person's roles in the other environments.
            add_column_if_missing(&conn, "person", "environment_roles", "TEXT")?;
            // And the audit trail's "before".
            add_column_if_missing(&conn, "audit_event", "before_change", "TEXT")?;
        }
        // Version 11 keys messages by seq (compact_keys.rs).
        if compact_keys::needs_rebuild(&conn)? {
            compact_keys::rebuild(&conn)?;
        }
        conn.execute_batch(include_str!("schema.sql"))?;
        let next_seq = destinations::next_seq(&conn)?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        // Durability: see writer.rs. With the WAL file open for our own fdatasync, SQLite
        // may commit without syncing (NORMAL); without it, it must sync every commit (FULL).
        let wal_path = {
            let mut p = path.as_os_str().to_owned();
            p.push("-wal");
            PathBuf::from(p)
        };
        let wal = match std::fs::File::options()
            .read(true)
            .write(true)
            .open(&wal_path)
        {
            Ok(file) => {
                conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
                Some(file)
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %wal_path.display(), "cannot open the WAL file; every commit will fsync on its own");
                None
            }
        };
        let routes = Arc::new(route_cache::RouteCache::default());
        // The fan-out routes are forgotten after a failed commit (they may hold its rows)
        // and, with the page cache, when writes stop for a while.
        let clear_routes = || -> Box<dyn Fn() + Send> {
            let routes = routes.clone();
            Box::new(move || routes.clear())
        };
        let writer = writer::Writer::start(conn, wal, clear_routes(), (IDLE_AFTER, clear_routes()));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer,
                routes,
                seq: Arc::new(std::sync::atomic::AtomicI64::new(next_seq)),
                readers: readers::Readers::start(path, readers::pool_size(), IDLE_AFTER),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.run(f).await
    }

    /// Runs `f` inside the writer's current batch; resolves after the batch commits.
    /// An error from `f` rolls back only `f`'s own changes.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.writer.submit(f).await
    }

    /// Runs `f` in the writer like `write`, then forgets the cached fan-out routes (for
    /// writes that change endpoints or delete applications).
    pub(crate) async fn write_routes<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let routes = self.inner.routes.clone();
        self.write(move |c| {
            routes.clear();
            f(c)
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    fn write_stats(&self) -> Option<herald_core::metrics::StoreWrites> {
        Some(self.inner.writer.stats())
    }
}

/// A new, empty directory under the system's temp directory, for one test.
#[cfg(test)]
pub(crate) fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-{prefix}-{}-{}",
        std::process::id(),
        herald_core::ids::random_base62(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_from_a_newer_herald_is_refused() {
        let dir = super::scratch_dir("ver");
        let path = dir.join("t.db");
        drop(crate::SqliteStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            super::SCHEMA_VERSION
        );
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = crate::SqliteStore::open(&path).err().expect("refused");
        assert!(err.to_string().contains("schema version 99"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_version_2_database_is_brought_up_to_date() {
        let dir = super::scratch_dir("upgrade");
        let path = dir.join("t.db");
        drop(crate::SqliteStore::open(&path).unwrap());
        // Make it look like version 2: no failing_since column.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE endpoint DROP COLUMN failing_since; ALTER TABLE endpoint DROP COLUMN ordered; PRAGMA user_version = 2",
        )
        .unwrap();
        drop(conn);
        drop(crate::SqliteStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let has_column: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('endpoint') WHERE name IN ('failing_since', 'ordered')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(has_column, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
