//! `nats` (Herald extension): each message of a batch is published to the configured
//! subject through JetStream with the message id as `Nats-Msg-Id`, so the stream drops a
//! repeat within its duplicate window; the batch is delivered once JetStream has
//! acknowledged every message. A subject no stream takes fails the batch with that
//! reason.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use super::broker::{checked_address, failure, Connections, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct NatsSender;

static CONNECTIONS: std::sync::LazyLock<Connections<jetstream::Context>> =
    std::sync::LazyLock::new(Connections::new);

impl Sender for NatsSender {
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
            let config = StoredConfig(&destination.config);
            let subject = config
                .text("subject")
                .ok_or_else(|| failure("the destination's config has no subject"))?;
            let context = connect(engine, &config).await?;
            tokio::time::timeout(timeout_of(engine), context.stream_by_subject(subject))
                .await
                .map_err(|_| failure("JetStream did not answer in time"))?
                .map(|_| ())
                .map_err(|e| {
                    failure(format!(
                        "no JetStream stream takes subject {subject:?}: {e}"
                    ))
                })
        })
    }
}

fn timeout_of(engine: &Engine) -> Duration {
    engine.config().request_timeout.max(Duration::from_secs(1))
}

async fn connect(
    engine: &Engine,
    config: &StoredConfig<'_>,
) -> Result<jetstream::Context, SendFailure> {
    let text = config.open_required(engine, "url")?;
    let url = url::Url::parse(&text)
        .map_err(|e| failure(format!("the destination's url is not a NATS URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| failure("the destination's url has no host"))?
        .to_string();
    let port = url.port().unwrap_or(4222);
    let address = checked_address(engine, &host, port).await?;
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(timeout_of(engine))
        .request_timeout(Some(timeout_of(engine)))
        .name("herald");
    if !url.username().is_empty() {
        let user = percent_decoded(url.username());
        let password = percent_decoded(url.password().unwrap_or_default());
        options = options.user_and_password(user, password);
    }
    if let Some(token) = config.open(engine, "token")? {
        options = options.token(token);
    }
    let client = tokio::time::timeout(
        timeout_of(engine),
        options.connect(format!("nats://{address}")),
    )
    .await
    .map_err(|_| failure(format!("connecting to NATS at {host}:{port} timed out")))?
    .map_err(|e| failure(format!("NATS at {host}:{port}: {e}")))?;
    Ok(jetstream::new(client))
}

/// A URL's user or password as it was before the URL escaped it.
fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let stored = &batch.destination.config;
    let config = StoredConfig(stored);
    let subject = config
        .text("subject")
        .ok_or_else(|| failure("the destination's config has no subject"))?
        .to_string();
    let fingerprint = stored.to_string();
    let context = match CONNECTIONS.get(&batch.destination.id, &fingerprint) {
        Some(c) => c,
        None => {
            let c = Arc::new(connect(engine, &config).await?);
            CONNECTIONS.keep(&batch.destination.id, &fingerprint, c.clone());
            c
        }
    };
    let mut acks = Vec::with_capacity(batch.messages.len());
    for m in &batch.messages {
        let publish = jetstream::message::PublishMessage::build()
            .message_id(m.id.as_str())
            .header("Content-Type", "application/json")
            .header("Herald-Event-Type", m.event_type.as_str())
            .payload(super::broker::message_json(m).into());
        let ack = context
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| failure(format!("NATS: publishing {}: {e}", m.id)))?;
        acks.push((m.id.as_str(), ack));
    }
    let deadline = tokio::time::Instant::now() + timeout_of(engine);
    for (id, ack) in acks {
        tokio::time::timeout_at(deadline, ack)
            .await
            .map_err(|_| failure("JetStream did not acknowledge the batch in time"))?
            .map_err(|e| {
                failure(format!(
                    "JetStream did not take {id} on subject {subject:?}: {e}"
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_password_is_decoded_as_a_url_escapes_it() {
        // `+` stays a plus (form decoding would make it a space); `%2B` is a plus too.
        assert_eq!(super::percent_decoded("p%2Bq+r%40s"), "p+q+r@s");
    }
}
