//! A small connection pool: at most `size` connections, each with its own cache of
//! prepared statements. A connection that broke, or was dropped inside a transaction,
//! is discarded instead of reused; the next `get` opens a fresh one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::{Result, StoreError};

/// Statements kept per connection at most; past that the cache starts over.
const MAX_CACHED_STATEMENTS: usize = 256;

/// How long `get` waits for a free connection before answering `Unavailable`.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A connection checked out of the pool; it goes back when dropped.
pub(crate) struct PooledConn<'a> {
    conn: Option<Connection>,
    pool: &'a Pool,
    in_transaction: bool,
    _permit: OwnedSemaphorePermit,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Pool {
    pub(crate) fn new(config: tokio_postgres::Config, size: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// Opens a connection outside the pool; the caller drives `Connection` itself.
    pub(crate) async fn connect_raw(
        &self,
    ) -> Result<(
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        Ok(self.config.connect(NoTls).await?)
    }

    pub(crate) async fn get(&self) -> Result<PooledConn<'_>> {
        let permit = tokio::time::timeout(CHECKOUT_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("no free database connection".into()))?
            .map_err(|_| StoreError::Closed)?;
        let reused = loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match next {
                Some(c) if c.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(c) => c,
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "a PostgreSQL connection ended");
                    }
                });
                Connection {
                    client,
                    statements: HashMap::new(),
                }
            }
        };
        Ok(PooledConn {
            conn: Some(conn),
            pool: self,
            in_transaction: false,
            _permit: permit,
        })
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.in_transaction && !conn.client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
        }
    }
}

impl PooledConn<'_> {
    fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until dropped")
    }

    /// The prepared statement for `sql`, from this connection's cache.
    pub(crate) async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let conn = self.conn();
        if let Some(s) = conn.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = conn.client.prepare(sql).await?;
        if conn.statements.len() >= MAX_CACHED_STATEMENTS {
            conn.statements.clear();
        }
        conn.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.conn().client.query(&statement, params).await
    }

    pub(crate) async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.conn().client.query_opt(&statement, params).await
    }

    pub(crate) async fn execute(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.conn().client.execute(&statement, params).await
    }

    /// Runs `sql` as an unnamed statement, which PostgreSQL plans with these parameters'
    /// values every time (in the same round trip). A cached statement is switched to a
    /// generic plan after five runs, costed with the table sizes of that moment: on a
    /// fresh database the delivery table is empty then, and the generic plan for a
    /// batch joined to it by key scans the whole table, and keeps doing so as the table
    /// grows (one run read 24 million rows in 1,042 scans for 50,000 messages). For
    /// statements that join a batch to a table that grows with every message.
    pub(crate) async fn execute_planned_each_time(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.conn().client.execute_typed(sql, params).await
    }

    /// The client, for requests sent together: tokio-postgres pipelines requests that
    /// are polled concurrently, so they share one round trip.
    pub(crate) fn client(&self) -> &Client {
        &self.conn.as_ref().expect("present until dropped").client
    }

    /// Starts a transaction whose `BEGIN` the caller sends itself (pipelined with the
    /// first statements); `finish` ends it.
    pub(crate) fn begin_pipelined(&mut self) {
        self.in_transaction = true;
    }

    /// Runs statements without parameters (simple query protocol).
    pub(crate) async fn batch(&mut self, sql: String) -> Result<()> {
        Ok(self.conn().client.batch_execute(&sql).await?)
    }

    pub(crate) async fn begin(&mut self) -> Result<()> {
        self.in_transaction = true;
        self.batch("BEGIN".into()).await
    }

    /// Commits when `outcome` is Ok, rolls back otherwise; returns `outcome` (or the
    /// commit's failure).
    pub(crate) async fn finish<T>(&mut self, outcome: Result<T>) -> Result<T> {
        match outcome {
            Ok(value) => {
                self.batch("COMMIT".into()).await?;
                self.in_transaction = false;
                Ok(value)
            }
            Err(e) => {
                if self.batch("ROLLBACK".into()).await.is_ok() {
                    self.in_transaction = false;
                }
                Err(e)
            }
        }
    }
}
