//! `postgres`: each batch is inserted into the consumer's table in one statement, one
//! row per message, `ON CONFLICT (message_id) DO NOTHING`, so a batch sent again after a
//! failure never doubles a row. The table is created when missing:
//!
//! `message_id text PRIMARY KEY, event_type text, event_id text, channels jsonb,
//! payload jsonb, created_at timestamptz`
//!
//! The connection goes to an address the destination policy allows (like every
//! delivery), without TLS for now (the API refuses `sslRootCert`).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::broker::{checked_address, failure, Connections, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct PostgresSender;

static CONNECTIONS: std::sync::LazyLock<Connections<Client>> =
    std::sync::LazyLock::new(Connections::new);

impl Sender for PostgresSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let id = &batch.destination.id;
            let outcome = send(engine, batch).await;
            if outcome.is_err() {
                CONNECTIONS.drop_for(id);
            }
            outcome
        })
    }

    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            let config = StoredConfig(&destination.config);
            let table = config
                .text("tableName")
                .ok_or_else(|| failure("the destination's config has no tableName"))?;
            let client = connect(engine, &config).await?;
            ensure_table(&client, table).await
        })
    }
}

async fn ensure_table(client: &Client, table: &str) -> Result<(), SendFailure> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (message_id text PRIMARY KEY, event_type text NOT NULL, \
             event_id text, channels jsonb, payload jsonb NOT NULL, created_at timestamptz NOT NULL)",
            quoted_table(table)
        ))
        .await
        .map_err(|e| failure(described(&e)))
}

/// `schema.table` with each part double-quoted (the API allows only letters, digits
/// and `_` in them).
fn quoted_table(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn described(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL said: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    }
}

async fn connect(engine: &Engine, config: &StoredConfig<'_>) -> Result<Client, SendFailure> {
    let url = config.open_required(engine, "url")?;
    let mut pg: tokio_postgres::Config = url.parse().map_err(|e| {
        failure(format!(
            "the destination's url is not a PostgreSQL URL: {e}"
        ))
    })?;
    if let Some(password) = config.open(engine, "password")? {
        pg.password(password);
    }
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => return Err(failure("the destination's url names no TCP host")),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let address = checked_address(engine, &host, port).await?;
    let timeout = engine.config().request_timeout.max(Duration::from_secs(1));
    // The host name stays (for messages); the connection goes to the checked address.
    pg.hostaddr(address.ip())
        .connect_timeout(timeout)
        .application_name("herald");
    let (client, connection) = tokio::time::timeout(timeout, pg.connect(NoTls))
        .await
        .map_err(|_| {
            failure(format!(
                "connecting to PostgreSQL at {host}:{port} timed out"
            ))
        })?
        .map_err(|e| failure(described(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL destination's connection ended");
        }
    });
    Ok(client)
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let stored = &batch.destination.config;
    let config = StoredConfig(stored);
    let table = config
        .text("tableName")
        .ok_or_else(|| failure("the destination's config has no tableName"))?;
    let fingerprint = stored.to_string();
    let client = match CONNECTIONS.get(&batch.destination.id, &fingerprint) {
        Some(client) if !client.is_closed() => client,
        _ => {
            let client = Arc::new(connect(engine, &config).await?);
            ensure_table(&client, table).await?;
            CONNECTIONS.keep(&batch.destination.id, &fingerprint, client.clone());
            client
        }
    };
    let mut ids = Vec::with_capacity(batch.messages.len());
    let mut types = Vec::with_capacity(batch.messages.len());
    let mut event_ids = Vec::with_capacity(batch.messages.len());
    let mut channels = Vec::with_capacity(batch.messages.len());
    let mut payloads = Vec::with_capacity(batch.messages.len());
    let mut times = Vec::with_capacity(batch.messages.len());
    for m in &batch.messages {
        ids.push(m.id.as_str());
        types.push(m.event_type.as_str());
        event_ids.push(m.event_id.as_deref());
        channels.push(
            m.channels
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("strings serialize")),
        );
        payloads.push(m.payload.as_str());
        times.push(m.created_at);
    }
    let insert = format!(
        "INSERT INTO {} (message_id, event_type, event_id, channels, payload, created_at) \
         SELECT m, e, i, c::jsonb, p::jsonb, to_timestamp(t / 1000.0) \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[]) AS x(m, e, i, c, p, t) \
         ON CONFLICT (message_id) DO NOTHING",
        quoted_table(table)
    );
    let timeout = engine.config().request_timeout.max(Duration::from_secs(1));
    tokio::time::timeout(
        timeout,
        client.execute(
            &insert,
            &[&ids, &types, &event_ids, &channels, &payloads, &times],
        ),
    )
    .await
    .map_err(|_| failure("PostgreSQL did not answer the insert in time"))?
    .map_err(|e| failure(described(&e)))?;
    Ok(())
}
