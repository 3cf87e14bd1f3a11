//! `amazonS3`: each batch is written as one object of JSON Lines (one message per
//! line, in order). Its key names the batch, so a batch sent again after a failure
//! writes the same object again instead of a second one:
//! `{appId}/{YYYY-MM-DD of its first message}/{batch id}.jsonl`.

use herald_core::time::format_rfc3339;

use super::aws::Aws;
use super::broker::{failure, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct S3Sender;

impl Sender for S3Sender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(send(engine, batch))
    }

    /// The bucket's first key, if any: the bucket exists and the keys may list it.
    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(async move {
            let config = StoredConfig(&destination.config);
            let aws = Aws::from_config(engine, &config, "s3")?;
            let bucket = config
                .text("bucket")
                .ok_or_else(|| failure("the destination's config has no bucket"))?;
            let url = match &aws.endpoint {
                Some(endpoint) => format!("{endpoint}/{bucket}?list-type=2&max-keys=1"),
                None => format!(
                    "https://{bucket}.s3.{}.amazonaws.com/?list-type=2&max-keys=1",
                    aws.region
                ),
            };
            aws.send(engine, "GET", &url, &[], Vec::new())
                .await
                .map(|_| ())
        })
    }
}

/// The object key of a batch.
pub(crate) fn object_key(batch: &Batch) -> String {
    let day = format_rfc3339(batch.messages[0].created_at);
    format!(
        "{}/{}/{}.jsonl",
        batch.destination.app_id,
        &day[..10],
        batch.id
    )
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let config = StoredConfig(&batch.destination.config);
    let aws = Aws::from_config(engine, &config, "s3")?;
    let bucket = config
        .text("bucket")
        .ok_or_else(|| failure("the destination's config has no bucket"))?;
    let key = object_key(batch);
    // A compatible service is addressed by path; AWS by the bucket's own host.
    let url = match &aws.endpoint {
        Some(endpoint) => format!("{endpoint}/{bucket}/{key}"),
        None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", aws.region),
    };
    let mut body =
        String::with_capacity(batch.messages.iter().map(|m| m.payload.len() + 160).sum());
    for m in &batch.messages {
        body.push_str(&super::broker::message_json(m));
        body.push('\n');
    }
    aws.send(
        engine,
        "PUT",
        &url,
        &[("content-type", "application/x-ndjson")],
        body.into_bytes(),
    )
    .await?;
    Ok(())
}
