//! `redisStream` (Herald extension): each batch is appended to a Redis stream in one
//! MULTI/EXEC transaction, one entry per message (`XADD <stream> MAXLEN ~ <maxLen> *`),
//! with the fields `id`, `eventType`, `timestamp` and `message` (the message as JSON).
//! Redis streams do not de-duplicate: a batch sent again after a lost answer appears
//! again with the same `id`, which consumers use to drop the repeat.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::broker::{checked_address, failure, Connections, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct RedisStreamSender;

static CONNECTIONS: std::sync::LazyLock<Connections<MultiplexedConnection>> =
    std::sync::LazyLock::new(Connections::new);

impl Sender for RedisStreamSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let outcome = send(engine, batch).await;
            if outcome.is_err() {
                CONNECTIONS.drop_for(&batch.destination.id);
            }
            outcome
        })
    }

    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            let mut connection = connect(engine, &StoredConfig(&destination.config)).await?;
            tokio::time::timeout(
                timeout_of(engine),
                redis::cmd("PING").query_async::<()>(&mut connection),
            )
            .await
            .map_err(|_| failure("Redis did not answer PING in time"))?
            .map_err(|e| failure(described(&e)))
        })
    }
}

fn timeout_of(engine: &Engine) -> Duration {
    engine.config().request_timeout.max(Duration::from_secs(1))
}

/// What Redis said, without the URL (which may hold the password).
fn described(e: &redis::RedisError) -> String {
    format!("Redis: {e}")
}

async fn connect(
    engine: &Engine,
    config: &StoredConfig<'_>,
) -> Result<MultiplexedConnection, SendFailure> {
    let url = config.open_required(engine, "url")?;
    let mut info: redis::ConnectionInfo =
        redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
            failure(format!(
                // Its kind only: the error's text may quote the URL and its password.
                "the destination's url is not a Redis URL: {:?}",
                e.kind()
            ))
        })?;
    let (host, port) = match &info.addr {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        _ => return Err(failure("the destination's url names no TCP host")),
    };
    let address = checked_address(engine, &host, port).await?;
    info.addr = redis::ConnectionAddr::Tcp(address.ip().to_string(), address.port());
    let client = redis::Client::open(info).map_err(|e| failure(described(&e)))?;
    tokio::time::timeout(
        timeout_of(engine),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| failure(format!("connecting to Redis at {host}:{port} timed out")))?
    .map_err(|e| failure(described(&e)))
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let stored = &batch.destination.config;
    let config = StoredConfig(stored);
    let stream = config
        .text("stream")
        .ok_or_else(|| failure("the destination's config has no stream"))?;
    let max_len = config.int("maxLen", 1_000_000);
    let fingerprint = stored.to_string();
    let connection = match CONNECTIONS.get(&batch.destination.id, &fingerprint) {
        Some(c) => c,
        None => {
            let c = Arc::new(connect(engine, &config).await?);
            CONNECTIONS.keep(&batch.destination.id, &fingerprint, c.clone());
            c
        }
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    for m in &batch.messages {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("id")
            .arg(&m.id)
            .arg("eventType")
            .arg(&m.event_type)
            .arg("timestamp")
            .arg(herald_core::time::format_rfc3339(m.created_at))
            .arg("message")
            .arg(super::broker::message_json(m))
            .ignore();
    }
    let mut connection = (*connection).clone();
    tokio::time::timeout(timeout_of(engine), pipe.query_async::<()>(&mut connection))
        .await
        .map_err(|_| failure("Redis did not answer the batch in time"))?
        .map_err(|e| failure(described(&e)))
}
