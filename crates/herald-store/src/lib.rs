//! Herald's storage: the embedded SQLite store. All SQL lives in this crate.
//!
//! Writes go through one writer thread that batches whatever is queued into a single
//! transaction (group commit): a caller's future resolves only after the batch holding
//! its write has been committed with `synchronous=FULL`, so durability costs one fsync per
//! batch, not per request. Reads use a small pool of connections, which WAL mode lets run
//! beside the writer.

mod apps;
pub mod attempts;
mod endpoints;
mod event_types;
mod idempotency;
pub mod messages;
pub mod model;
pub mod page;
mod queue;
mod route_cache;
mod tokens;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use model::*;
pub use page::{ListQuery, Page};
pub use rusqlite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("the store is shut down")]
    Closed,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a UNIQUE violation to `Conflict(message)`.
pub(crate) fn conflict_on_unique(err: rusqlite::Error, message: &str) -> StoreError {
    const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;
    match &err {
        // A parent row vanished under us (say the application was deleted meanwhile).
        rusqlite::Error::SqliteFailure(e, _) if e.extended_code == SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::NotFound
        }
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(message.to_string())
        }
        _ => StoreError::Db(err),
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    routes: Arc<route_cache::RouteCache>,
    readers: Mutex<Vec<Connection>>,
}

const READ_POOL_SIZE: usize = 8;

/// The schema version `schema.sql` creates, kept in SQLite's `user_version`. A database
/// from a newer Herald is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

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
    // full read pool costs little memory.
    let cache_kib = if read_only { 2_000 } else { 16_000 };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib}; PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode with full fsync
    /// on commit, and applies the schema.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = open_connection(path, false)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 4000;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "{} has schema version {version}, newer than this Herald understands ({SCHEMA_VERSION}); run a newer herald",
                path.display()
            )));
        }
        conn.execute_batch(include_str!("schema.sql"))?;
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
        let on_failed_commit = {
            let routes = routes.clone();
            Box::new(move || routes.clear())
        };
        let writer = writer::Writer::start(conn, wal, on_failed_commit);
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer,
                routes,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&inner.path, true)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READ_POOL_SIZE {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` inside the writer's current batch; resolves after the batch commits.
    /// An error from `f` rolls back only `f`'s own changes.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.writer.submit(f).await
    }

    /// (writes run, transactions committed, WAL fsyncs) since the store was opened: how
    /// well the group commit is grouping.
    pub fn write_stats(&self) -> (u64, u64, u64) {
        self.inner.writer.stats()
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

    /// A health check that touches the database.
    pub async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

/// `NotFound` when a statement that targets one row by key changed none.
pub(crate) fn found(changed: usize) -> Result<()> {
    match changed {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// Encodes a value for a JSON text column.
pub(crate) fn json_encode<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// Decodes a JSON text column written by `json_encode`; a damaged value reads as the
/// type's default rather than failing the whole list it is part of.
pub(crate) fn json_decode<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// Decodes a nullable JSON column.
pub(crate) fn json_decode_opt<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_from_a_newer_herald_is_refused() {
        let dir = std::env::temp_dir().join(format!(
            "herald-ver-{}-{}",
            std::process::id(),
            herald_core::ids::random_base62(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        drop(crate::Store::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            1
        );
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = crate::Store::open(&path).err().expect("refused");
        assert!(err.to_string().contains("schema version 99"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
