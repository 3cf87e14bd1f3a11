//! `sqs`: each batch goes to the queue by `SendMessageBatch` (10 messages a request, in
//! order, each request only after the previous one was taken), a message's body being
//! the message as JSON. On a FIFO queue (`.fifo`) each message carries the message id as
//! its `MessageDeduplicationId` (SQS drops a repeat within five minutes) and the
//! application as its `MessageGroupId` (order is kept per application); on a standard
//! queue the id is the `herald-message-id` attribute.

use serde_json::{json, Value};

use super::aws::Aws;
use super::broker::{failure, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct SqsSender;

/// Entries per SendMessageBatch: SQS's limit.
const PER_REQUEST: usize = 10;

impl Sender for SqsSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(send(engine, batch))
    }

    /// The queue's attributes: the queue exists and the keys may reach it.
    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            let config = StoredConfig(&destination.config);
            let aws = Aws::from_config(engine, &config, "sqs")?;
            let queue_url = config.open_required(engine, "queueUrl")?;
            let body = json!({"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]}).to_string();
            aws.send(
                engine,
                "POST",
                &format!("{}/", aws.service_endpoint()),
                &[
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", "AmazonSQS.GetQueueAttributes"),
                ],
                body.into_bytes(),
            )
            .await
            .map(|_| ())
        })
    }
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let config = StoredConfig(&batch.destination.config);
    let aws = Aws::from_config(engine, &config, "sqs")?;
    let queue_url = config.open_required(engine, "queueUrl")?;
    let fifo = queue_url.ends_with(".fifo");
    let endpoint = aws.service_endpoint();
    for chunk in batch.messages.chunks(PER_REQUEST) {
        let entries: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut entry = json!({
                    "Id": i.to_string(),
                    "MessageBody": super::broker::message_json(m),
                    "MessageAttributes": {
                        "herald-message-id": {"DataType": "String", "StringValue": m.id},
                        "herald-event-type": {"DataType": "String", "StringValue": m.event_type},
                    },
                });
                if fifo {
                    entry["MessageDeduplicationId"] = json!(m.id);
                    entry["MessageGroupId"] = json!(batch.destination.app_id);
                }
                entry
            })
            .collect();
        let body = json!({"QueueUrl": queue_url, "Entries": entries}).to_string();
        let answer = aws
            .send(
                engine,
                "POST",
                &format!("{endpoint}/"),
                &[
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", "AmazonSQS.SendMessageBatch"),
                ],
                body.into_bytes(),
            )
            .await?;
        let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        if let Some(failed) = answer["Failed"].as_array().and_then(|f| f.first()) {
            let index: usize = failed["Id"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let id = chunk.get(index).map_or("a message", |m| m.id.as_str());
            return Err(failure(format!(
                "SQS refused {id}: {} ({})",
                failed["Message"].as_str().unwrap_or("no reason given"),
                failed["Code"].as_str().unwrap_or("?")
            )));
        }
    }
    Ok(())
}
