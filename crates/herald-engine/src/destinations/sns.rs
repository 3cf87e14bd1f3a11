//! `sns`: each batch is published to the topic by `PublishBatch` (10 messages a
//! request, in order), a message's body being the message as JSON. On a FIFO topic
//! (`.fifo`) each message carries the message id as its `MessageDeduplicationId` and the
//! application as its `MessageGroupId`; every message carries the `herald-message-id`
//! attribute.

use super::aws::{xml_text, Aws};
use super::broker::{failure, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct SnsSender;

/// Entries per PublishBatch: SNS's limit.
const PER_REQUEST: usize = 10;

impl Sender for SnsSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(send(engine, batch))
    }

    /// The topic's attributes: the topic exists and the keys may reach it.
    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            let config = StoredConfig(&destination.config);
            let aws = Aws::from_config(engine, &config, "sns")?;
            let topic = config
                .text("topicArn")
                .ok_or_else(|| failure("the destination's config has no topicArn"))?;
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("Action", "GetTopicAttributes")
                .append_pair("Version", "2010-03-31")
                .append_pair("TopicArn", topic)
                .finish();
            aws.send(
                engine,
                "POST",
                &format!("{}/", aws.service_endpoint()),
                &[("content-type", "application/x-www-form-urlencoded")],
                body.into_bytes(),
            )
            .await
            .map(|_| ())
        })
    }
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let config = StoredConfig(&batch.destination.config);
    let aws = Aws::from_config(engine, &config, "sns")?;
    let topic = config
        .text("topicArn")
        .ok_or_else(|| failure("the destination's config has no topicArn"))?;
    let fifo = topic.ends_with(".fifo");
    let endpoint = aws.service_endpoint();
    for chunk in batch.messages.chunks(PER_REQUEST) {
        let body = publish_batch_form(topic, fifo, &batch.destination.app_id, chunk);
        let answer = aws
            .send(
                engine,
                "POST",
                &format!("{endpoint}/"),
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await?;
        // Entries SNS did not take are listed under <Failed>.
        if let Some(failed) = xml_text(&answer, "Failed").filter(|f| f.contains("<member>")) {
            return Err(failure(format!(
                "SNS refused a message: {} ({})",
                xml_text(failed, "Message").unwrap_or("no reason given"),
                xml_text(failed, "Code").unwrap_or("?")
            )));
        }
    }
    Ok(())
}

/// The form of one PublishBatch request (built apart: the serializer is not `Send`).
fn publish_batch_form(
    topic: &str,
    fifo: bool,
    group: &str,
    chunk: &[herald_store::StreamMessage],
) -> Vec<u8> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "PublishBatch")
        .append_pair("Version", "2010-03-31")
        .append_pair("TopicArn", topic);
    for (i, m) in chunk.iter().enumerate() {
        let at = format!("PublishBatchRequestEntries.member.{}", i + 1);
        form.append_pair(&format!("{at}.Id"), &i.to_string())
            .append_pair(&format!("{at}.Message"), &super::broker::message_json(m))
            .append_pair(
                &format!("{at}.MessageAttributes.entry.1.Name"),
                "herald-message-id",
            )
            .append_pair(
                &format!("{at}.MessageAttributes.entry.1.Value.DataType"),
                "String",
            )
            .append_pair(
                &format!("{at}.MessageAttributes.entry.1.Value.StringValue"),
                &m.id,
            );
        if fifo {
            form.append_pair(&format!("{at}.MessageDeduplicationId"), &m.id)
                .append_pair(&format!("{at}.MessageGroupId"), group);
        }
    }
    form.finish().into_bytes()
}
