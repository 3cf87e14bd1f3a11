//! `rabbitMq`: each message of a batch is published (AMQP 0.9.1) to the configured
//! exchange (the default one unless `exchange` says otherwise) with the routing key,
//! persistent, with the message id as the AMQP `message-id` (so consumers can drop a
//! repeat), on a channel in confirm mode; the batch is delivered once the broker has
//! confirmed every message. With `mandatory` (Herald's default) a message no queue takes
//! is returned by the broker, and the batch fails with that reason instead of the
//! message being dropped.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::broker::{checked_address, failure, Connections, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct RabbitMqSender;

/// A connection and its confirm-mode channel.
pub(crate) struct Publisher {
    _connection: Connection,
    channel: Channel,
}

static CONNECTIONS: std::sync::LazyLock<Connections<Publisher>> =
    std::sync::LazyLock::new(Connections::new);

impl Sender for RabbitMqSender {
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
            connect(engine, &StoredConfig(&destination.config)).await?;
            Ok(())
        })
    }
}

fn timeout_of(engine: &Engine) -> Duration {
    engine.config().request_timeout.max(Duration::from_secs(1))
}

async fn connect(engine: &Engine, config: &StoredConfig<'_>) -> Result<Publisher, SendFailure> {
    let text = config.open_required(engine, "uri")?;
    let mut uri: AMQPUri = text
        .parse()
        .map_err(|e| failure(format!("the destination's uri is not an AMQP URI: {e}")))?;
    let host = uri.authority.host.clone();
    let address = checked_address(engine, &host, uri.authority.port).await?;
    // Connect to the address the guard checked, not to whatever DNS says next.
    uri.authority.host = address.ip().to_string();
    let connecting = Connection::connect_uri(uri, ConnectionProperties::default());
    let connection = tokio::time::timeout(timeout_of(engine), connecting)
        .await
        .map_err(|_| failure(format!("connecting to RabbitMQ at {host} timed out")))?
        .map_err(|e| failure(format!("RabbitMQ at {host}: {e}")))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| failure(format!("RabbitMQ: opening a channel: {e}")))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| failure(format!("RabbitMQ: turning on publisher confirms: {e}")))?;
    Ok(Publisher {
        _connection: connection,
        channel,
    })
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let stored = &batch.destination.config;
    let config = StoredConfig(stored);
    let routing_key = config
        .text("routingKey")
        .ok_or_else(|| failure("the destination's config has no routingKey"))?;
    let exchange = config.text("exchange").unwrap_or("");
    let mandatory = config.flag("mandatory", true);
    let fingerprint = stored.to_string();
    let publisher = match CONNECTIONS.get(&batch.destination.id, &fingerprint) {
        Some(p) if p.channel.status().connected() => p,
        _ => {
            let p = Arc::new(connect(engine, &config).await?);
            CONNECTIONS.keep(&batch.destination.id, &fingerprint, p.clone());
            p
        }
    };
    let options = BasicPublishOptions {
        mandatory,
        ..BasicPublishOptions::default()
    };
    let mut confirms = Vec::with_capacity(batch.messages.len());
    for m in &batch.messages {
        let body = super::broker::message_json(m);
        let properties = BasicProperties::default()
            .with_message_id(m.id.clone().into())
            .with_content_type("application/json".into())
            .with_type(m.event_type.clone().into())
            .with_timestamp((m.created_at / 1000) as u64)
            // Persistent: kept by a durable queue across a broker restart.
            .with_delivery_mode(2);
        let confirm = publisher
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body.as_bytes(),
                properties,
            )
            .await
            .map_err(|e| failure(format!("RabbitMQ: publishing {}: {e}", m.id)))?;
        confirms.push((m.id.as_str(), confirm));
    }
    let deadline = tokio::time::Instant::now() + timeout_of(engine);
    for (id, confirm) in confirms {
        let confirmation = tokio::time::timeout_at(deadline, confirm)
            .await
            .map_err(|_| failure("RabbitMQ did not confirm the batch in time"))?
            .map_err(|e| failure(format!("RabbitMQ: confirming {id}: {e}")))?;
        match confirmation {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                return Err(failure(format!(
                    "RabbitMQ returned {id}: {} ({}); no queue is bound to routing key {routing_key:?}{}",
                    returned.reply_text,
                    returned.reply_code,
                    if exchange.is_empty() { String::new() } else { format!(" on exchange {exchange:?}") }
                )))
            }
            Confirmation::Nack(None) => {
                return Err(failure(format!("RabbitMQ refused {id} (nack)")))
            }
            Confirmation::NotRequested => {
                return Err(failure("RabbitMQ did not confirm: publisher confirms are off"))
            }
        }
    }
    Ok(())
}
