//! `amazonS3`: each batch is written as one object of JSON Lines (one message per
//! line, in order). Its key names the batch, so a batch sent again after a failure
//! writes the same object again instead of a second one:
//! `{appId}/{YYYY-MM-DD of its first message}/{batch id}.jsonl`. A batch
//! transformation may shape the object (`data`) and choose its key (`config.key`).

use std::sync::Arc;

use herald_core::metrics::TransformOutcome;
use herald_core::time::format_rfc3339;
use herald_transform::{BatchOutcome, BatchRunRequest};

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

/// Where an object is: a compatible service addressed by path, AWS by the bucket's own
/// host. Each part of the key is escaped for the path, its `/` kept.
fn object_url(aws: &Aws, bucket: &str, key: &str) -> String {
    let key: String = key
        .split('/')
        .map(|part| {
            url::form_urlencoded::byte_serialize(part.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/");
    match &aws.endpoint {
        Some(endpoint) => format!("{endpoint}/{bucket}/{key}"),
        None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", aws.region),
    }
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let config = StoredConfig(&batch.destination.config);
    let aws = Aws::from_config(engine, &config, "s3")?;
    let bucket = config
        .text("bucket")
        .ok_or_else(|| failure("the destination's config has no bucket"))?;
    let key = object_key(batch);
    let mut url = object_url(&aws, bucket, &key);
    let mut body =
        String::with_capacity(batch.messages.iter().map(|m| m.payload.len() + 160).sum());
    for m in &batch.messages {
        body.push_str(&super::broker::message_json(m));
        body.push('\n');
    }
    let mut content_type = "application/x-ndjson";
    // A batch transformation may shape the object and choose its key
    // (`handler({url: "s3://bucket/key", events}) → {data, config: {key, format}}`).
    if let Some(t) = herald_store::Transformation::active(&batch.destination.transformation) {
        let request = BatchRunRequest {
            code: Arc::from(t.code.as_deref().unwrap_or_default()),
            url: format!("s3://{bucket}/{key}"),
            events: super::http::body(batch),
            variables: Arc::new(t.variables.clone()),
        };
        let outcome = engine
            .config()
            .transforms
            .run_batch(&batch.destination.id, request)
            .await;
        engine.config().metrics.transformation(match &outcome {
            Ok(BatchOutcome::Send(_)) => TransformOutcome::Sent,
            Ok(BatchOutcome::Cancel) => TransformOutcome::Cancelled,
            Err(_) => TransformOutcome::Failed,
        });
        match outcome.map_err(|e| failure(e.to_string()))? {
            // Skipped by the script: delivered as far as the stream is concerned.
            BatchOutcome::Cancel => return Ok(()),
            BatchOutcome::Send(r) => {
                body = r.body;
                content_type = r.content_type;
                if let Some(chosen) = r.key {
                    url = object_url(&aws, bucket, &chosen);
                }
            }
        }
    }
    aws.send(
        engine,
        "PUT",
        &url,
        &[("content-type", content_type)],
        body.into_bytes(),
    )
    .await?;
    Ok(())
}
