//! The PostgreSQL store: several Herald nodes on one database.
//!
//! Every write is a PostgreSQL transaction committed with the server's default
//! `synchronous_commit = on`, so a resolved write is on the database's disk. Nodes share
//! nothing but the database: deliveries are claimed with `FOR UPDATE SKIP LOCKED` under
//! a lease (see queue.rs), idempotency records live in a table, and new deliveries left
//! for the workers are announced with `NOTIFY herald_due` (see `listen_for_due_work`).
//! Lost connections surface as `StoreError::Unavailable`, and the pool reconnects on the
//! next use, so a database restart heals by itself.

mod audit;
mod catalog;
mod destinations;
mod ingest;
mod log;
mod parents;
mod people;
mod pool;
mod queue;
mod settings;
mod sources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql::{Arg, Query};
use crate::{Result, StoreError};
use pool::Pool;

/// The migrations, in order: version N is `MIGRATIONS[N - 1]`. The version a database
/// is at is kept in `herald_schema`; each migration runs in its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/1_schema.sql"),
    include_str!("migrations/2_retention.sql"),
    include_str!("migrations/3_failing_since.sql"),
    include_str!("migrations/4_ordered.sql"),
    include_str!("migrations/5_ordering_key.sql"),
    include_str!("migrations/6_sources.sql"),
    include_str!("migrations/7_row_keys_in_code.sql"),
    include_str!("migrations/8_fair_claims.sql"),
    include_str!("migrations/9_destinations.sql"),
    include_str!("migrations/10_transformations.sql"),
    include_str!("migrations/11_token_roles.sql"),
    include_str!("migrations/12_audit.sql"),
    include_str!("migrations/13_people.sql"),
    include_str!("migrations/14_environments.sql"),
    include_str!("migrations/15_fewer_indexes.sql"),
];

const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock that serialises migrations between nodes starting together.
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44; // "HERALD"

/// The channel new due deliveries are announced on.
const DUE_CHANNEL: &str = "herald_due";
/// Announces that tokens or sessions ended, so every node forgets what it cached.
const REVOKED_CHANNEL: &str = "herald_revoked";

#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
    due: Arc<Notify>,
    /// Woken by `NOTIFY herald_revoked` (another node ended a token or session).
    revoked: Arc<Notify>,
    ingest: Arc<ingest::Ingest>,
}

/// Where a database URL points, without its password, for messages; "an invalid URL"
/// when it does not parse.
pub fn describe_url(url: &str) -> String {
    url.parse::<tokio_postgres::Config>()
        .map(|c| describe(&c))
        .unwrap_or_else(|_| "an invalid URL".into())
}

/// `url` with its database name replaced by `name` (tools and tests make scratch
/// databases beside the one a URL names).
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// How to reach the database, without the password, for messages.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}

impl PgStore {
    /// Connects to the database at `url`, waiting up to `wait` for it to accept
    /// connections, and brings its schema up to date.
    pub async fn connect(url: &str, pool_size: usize, wait: Duration) -> Result<PgStore> {
        Self::connect_in_schema(url, None, pool_size, wait).await
    }

    /// Connects like [`PgStore::connect`], keeping everything in the PostgreSQL schema
    /// `schema` (created when missing) instead of the default one: how an environment
    /// other than the default has a store of its own in the same database. Every
    /// connection of the store has it as its only search path.
    pub async fn connect_in_schema(
        url: &str,
        schema: Option<&str>,
        pool_size: usize,
        wait: Duration,
    ) -> Result<PgStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("invalid database URL: {e}")))?;
        config
            .connect_timeout(Duration::from_secs(5))
            .application_name("herald");
        if let Some(schema) = schema {
            let plain = !schema.is_empty()
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !plain {
                return Err(StoreError::Invalid(format!(
                    "schema name '{schema}' may hold only a-z, 0-9 and _"
                )));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let place = describe(&config);
        let pool = Arc::new(Pool::new(config, pool_size));
        let deadline = Instant::now() + wait;
        loop {
            match migrate(&pool, schema).await {
                Ok(()) => break,
                Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                    tracing::warn!(database = %place, error = %e, "PostgreSQL is not reachable yet; waiting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(StoreError::Unavailable(e)) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach PostgreSQL at {place}: {e}"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        let due = Arc::new(Notify::new());
        let revoked = Arc::new(Notify::new());
        tokio::spawn(listen_for_due_work(
            pool.clone(),
            due.clone(),
            revoked.clone(),
        ));
        let ingest = Arc::new(ingest::Ingest::start(pool.clone()));
        Ok(PgStore {
            pool,
            due,
            revoked,
            ingest,
        })
    }

    /// Runs a statement built by `sql.rs` and maps each row.
    async fn query_built<T>(
        &self,
        q: &Query,
        map: impl Fn(&tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>> {
        let args: Vec<Box<dyn ToSql + Sync + Send>> = q
            .args
            .iter()
            .map(|a| -> Box<dyn ToSql + Sync + Send> {
                match a {
                    Arg::Text(t) => Box::new(t.clone()),
                    Arg::Int(i) => Box::new(*i),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        let mut conn = self.pool.get().await?;
        let rows = conn.query(&q.sql, &refs).await?;
        Ok(rows.iter().map(map).collect())
    }
}

/// Creates or upgrades the schema, one node at a time (advisory lock).
async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<()> {
    let mut conn = pool.get().await?;
    conn.batch("SELECT pg_advisory_lock(".to_string() + &MIGRATION_LOCK.to_string() + ")")
        .await?;
    let outcome = async {
        if let Some(schema) = schema {
            conn.batch(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
        conn.batch(
            "CREATE TABLE IF NOT EXISTS herald_schema (version BIGINT NOT NULL, migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                .to_string(),
        )
        .await?;
        let version: i64 = conn
            .query("SELECT coalesce(max(version), 0) FROM herald_schema", &[])
            .await?[0]
            .get(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "the database has schema version {version}, newer than this Herald understands ({SCHEMA_VERSION}); run a newer herald"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let to = i as i64 + 1;
            conn.batch(format!(
                "BEGIN; {sql} INSERT INTO herald_schema (version) VALUES ({to}); COMMIT;"
            ))
            .await?;
            tracing::info!(version = to, "PostgreSQL schema migrated");
        }
        Ok(())
    }
    .await;
    let unlock = conn
        .batch(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    outcome.and(unlock)
}

/// Keeps one connection listening on `herald_due` and `herald_revoked` and wakes `due`
/// or `revoked` for each notification, reconnecting after a loss (and waking both once
/// then, since notifications may have been missed meanwhile).
async fn listen_for_due_work(pool: Arc<Pool>, due: Arc<Notify>, revoked: Arc<Notify>) {
    use tokio_postgres::AsyncMessage;
    let mut wait = Duration::from_millis(200);
    loop {
        match pool.connect_raw().await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                let _ = tx.send(n.channel() == REVOKED_CHANNEL);
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {DUE_CHANNEL}; LISTEN {REVOKED_CHANNEL}"))
                    .await
                    .is_ok()
                {
                    wait = Duration::from_millis(200);
                    due.notify_one();
                    revoked.notify_waiters();
                    while let Some(is_revocation) = rx.recv().await {
                        if is_revocation {
                            revoked.notify_waiters();
                        } else {
                            due.notify_one();
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; the scheduler polls meanwhile");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        classify(e, "")
    }
}

/// Maps a database error: lost connections and a server shutting down or starting up
/// are `Unavailable`; a unique violation is `Conflict(conflict)`; a foreign-key
/// violation (a parent row deleted meanwhile) is `NotFound`.
fn classify(e: tokio_postgres::Error, conflict: &str) -> StoreError {
    if e.is_closed() {
        return StoreError::Unavailable("the connection to PostgreSQL was lost".into());
    }
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION && !conflict.is_empty() => {
            StoreError::Conflict(conflict.to_string())
        }
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NotFound,
        // Two transactions waited on each other (say an application's cascading delete
        // and the recording of one of its attempts): one was cancelled, and running it
        // again succeeds.
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Unavailable(format!("{TRANSIENT_CONFLICT}: {}", describe_db_error(&e)))
        }
        Some(c)
            if c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreError::Unavailable(e.to_string())
        }
        Some(_) => StoreError::Db(describe_db_error(&e)),
        // No SQL state: an I/O error or a protocol failure on the connection.
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// How `classify` begins the reason of a deadlock or serialization failure, which
/// `retrying_conflicts` runs again (and callers see as a 503 to retry).
const TRANSIENT_CONFLICT: &str = "a concurrent transaction conflicted; try again";

/// A database error with its SQL state and message ("db error" alone says nothing).
fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Runs `op` again (up to three times in all) when it failed on a deadlock or a
/// serialization conflict, which PostgreSQL resolves by cancelling one side.
pub(crate) async fn retrying_conflicts<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match op().await {
            Err(StoreError::Unavailable(why))
                if tries < 3 && why.starts_with(TRANSIENT_CONFLICT) =>
            {
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            other => return other,
        }
    }
}

#[async_trait::async_trait]
impl crate::Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.batch("SELECT 1".into()).await
    }

    fn revoked_signal(&self) -> Option<Arc<Notify>> {
        Some(self.revoked.clone())
    }

    fn due_signal(&self) -> Option<Arc<Notify>> {
        Some(self.due.clone())
    }
}
