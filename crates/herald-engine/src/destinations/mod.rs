//! Destinations the engine pushes to: the contract every pushing type implements
//! (`Sender`: deliver one ordered batch, or say why not), and the registry of types.
//!
//! The engine's core (`runner.rs`) knows nothing of any type: it leases destinations,
//! reads each one's stream from its position, waits for a batch to fill, hands the
//! batch to the type's `Sender`, moves the position on success and retries with backoff
//! on failure. A new type (part 2: brokers, databases, object stores) is a module with a
//! `Sender` and one line in `sender_for`.
//!
//! Pulling types (`pollingEndpoint`) have no sender: their consumers read the stream
//! through the API.

mod aws;
mod broker;
mod http;
mod nats;
mod otel;
mod postgres;
mod rabbitmq;
mod redis_stream;
pub(crate) mod runner;
mod s3;
mod sns;
mod sqs;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use herald_store::{Destination, StreamMessage, StreamPos};

use crate::Engine;

/// One ordered batch of a destination's stream.
pub(crate) struct Batch {
    pub destination: Destination,
    /// In stream order; never empty.
    pub messages: Vec<StreamMessage>,
    /// The position after the batch: where the destination stands once it is delivered.
    pub next: StreamPos,
    /// Names this batch (its first and last positions), the same on every retry of the
    /// same messages.
    pub id: String,
}

/// Why a batch was not delivered.
#[derive(Debug)]
pub(crate) struct SendFailure {
    /// In words an operator can act on (shown as the destination's `failureReason`).
    pub reason: String,
    /// The receiver asked to be left alone this long.
    pub retry_after: Option<Duration>,
}

pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendFailure>> + Send + 'a>>;

/// What a pushing destination type does with a batch: deliver all of it, in order, or
/// fail (the whole batch is then tried again later, so delivery is at least once).
pub(crate) trait Sender: Send + Sync {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a>;

    /// Connects as a batch would and checks that the destination would take one,
    /// sending nothing (the console's "test connection").
    fn probe<'a>(&'a self, _engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            Err(SendFailure {
                reason: format!("a {} destination has no connection test", destination.kind),
                retry_after: None,
            })
        })
    }
}

impl Engine {
    /// Tries a destination's connection without sending anything: `Err` says why it
    /// would fail.
    pub async fn test_destination(&self, destination: &Destination) -> Result<(), String> {
        let Some(sender) = sender_for(&destination.kind) else {
            return Err(format!(
                "a {} destination has no connection to test",
                destination.kind
            ));
        };
        sender
            .probe(self, destination)
            .await
            .map_err(|failure| failure.reason)
    }
}

/// The types the engine pushes to.
pub(crate) const PUSHED_KINDS: &[&str] = &[
    "fifoEndpoint",
    "postgres",
    "rabbitMq",
    "nats",
    "redisStream",
    "otelTracing",
    "sqs",
    "sns",
    "amazonS3",
];

/// The sender of a destination type, or `None` for a type the engine does not push to.
pub(crate) fn sender_for(kind: &str) -> Option<&'static dyn Sender> {
    match kind {
        "fifoEndpoint" => Some(&http::FifoSender),
        "postgres" => Some(&postgres::PostgresSender),
        "rabbitMq" => Some(&rabbitmq::RabbitMqSender),
        "nats" => Some(&nats::NatsSender),
        "redisStream" => Some(&redis_stream::RedisStreamSender),
        "otelTracing" => Some(&otel::OtelSender),
        "sqs" => Some(&sqs::SqsSender),
        "sns" => Some(&sns::SnsSender),
        "amazonS3" => Some(&s3::S3Sender),
        _ => None,
    }
}
