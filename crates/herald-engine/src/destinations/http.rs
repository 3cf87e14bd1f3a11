//! `fifoEndpoint`: one signed HTTP POST per batch, in order. The body is a JSON array of
//! the batch's messages (`id`, `eventType`, `eventId`, `timestamp`, `channels`,
//! `payload`), signed like every Herald delivery (Standard Webhooks, `webhook-id` naming
//! the batch) with the destination's keys; the next batch goes only once the receiver
//! answered 2xx.
//!
//! A destination with a transformation hands the batch to its script first
//! (`handler({url, events}, variables)`): what it returns (`{data, config: {format,
//! url, headers}}`) is the request, signed and sent through the same guard; `{cancel:
//! true}` skips the batch (the destination moves past it); a failed script fails the
//! batch with the script's error, retried like any failure.

use std::sync::Arc;

use herald_core::metrics::TransformOutcome;
use herald_core::secret::Secret;
use herald_core::signing::sign_all;
use herald_core::time::now_ms;
use herald_store::HttpSinkConfig;
use herald_transform::{BatchOutcome, BatchRunRequest};

use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;

/// How much of a refusing receiver's answer the failure reason quotes.
const QUOTED_ANSWER: usize = 200;

pub(crate) struct FifoSender;

impl Sender for FifoSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(send(engine, batch))
    }
}

fn failure(reason: impl Into<String>) -> SendFailure {
    SendFailure {
        reason: reason.into(),
        retry_after: None,
    }
}

/// The request body: the batch's messages, in order.
pub(crate) fn body(batch: &Batch) -> String {
    let mut out = String::with_capacity(batch.messages.iter().map(|m| m.payload.len() + 160).sum());
    out.push('[');
    for (i, m) in batch.messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&super::broker::message_json(m));
    }
    out.push(']');
    out
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let config = engine.config();
    let sink = HttpSinkConfig::from_value(&batch.destination.config)
        .ok_or_else(|| failure("the destination's config is not a fifoEndpoint's"))?;
    let now = now_ms();
    let mut secrets: Vec<Arc<Secret>> = Vec::new();
    for sealed in sink.signing_keys(now) {
        // Never send what the receiver could not verify.
        secrets.push(engine.open_secret(&sealed).map_err(failure)?);
    }
    if secrets.is_empty() {
        return Err(failure("the destination has no signing key"));
    }
    let mut body = body(batch);
    let mut url = sink.url.clone();
    let mut content_type = "application/json";
    let mut script_headers = Vec::new();
    if let Some(t) = herald_store::Transformation::active(&batch.destination.transformation) {
        let request = BatchRunRequest {
            code: Arc::from(t.code.as_deref().unwrap_or_default()),
            url: sink.url.clone(),
            events: body,
            variables: Arc::new(t.variables.clone()),
        };
        let outcome = config
            .transforms
            .run_batch(&batch.destination.id, request)
            .await;
        config.metrics.transformation(match &outcome {
            Ok(BatchOutcome::Send(_)) => TransformOutcome::Sent,
            Ok(BatchOutcome::Cancel) => TransformOutcome::Cancelled,
            Err(_) => TransformOutcome::Failed,
        });
        match outcome.map_err(|e| failure(e.to_string()))? {
            // Skipped by the script: delivered as far as the stream is concerned.
            BatchOutcome::Cancel => return Ok(()),
            BatchOutcome::Send(r) => {
                body = r.body;
                url = r.url.unwrap_or(url);
                content_type = r.content_type;
                script_headers = r.headers;
            }
        }
    }
    let timestamp = now / 1000;
    let signature = sign_all(
        secrets.iter().map(|s| s.as_ref()),
        &batch.id,
        timestamp,
        body.as_bytes(),
    );
    let url = crate::guard::check_destination(&config.destinations, config.https_only, &url)
        .map_err(|blocked| failure(blocked.to_string()))?;
    let mut request = engine.client().post(url);
    // The script's headers win over the destination's own.
    let overridden = |name: &str| {
        script_headers
            .iter()
            .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(name))
    };
    for (name, value) in sink.headers.iter().filter(|(name, _)| !overridden(name)) {
        request = request.header(name.as_str(), header_value(engine, name, value)?);
    }
    let content_type_set = script_headers.iter().any(|(n, _)| n == "content-type");
    for (name, value) in &script_headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if !content_type_set {
        request = request.header("content-type", content_type);
    }
    let ts = timestamp.to_string();
    request = request
        .header("user-agent", config.user_agent.as_str())
        .header("webhook-id", batch.id.as_str())
        .header("webhook-timestamp", ts.as_str())
        .header("webhook-signature", signature.as_str())
        .header("herald-batch-size", batch.messages.len().to_string())
        .header("herald-iterator", batch.next.encode());
    if config.svix_headers {
        request = request
            .header("svix-id", batch.id.as_str())
            .header("svix-timestamp", ts.as_str())
            .header("svix-signature", signature.as_str());
    }
    send_request(engine, request, body, "the receiver").await
}

/// A destination's custom header value as it is sent: a sensitive one is stored sealed
/// and opened here.
pub(crate) fn header_value(
    engine: &Engine,
    name: &str,
    value: &str,
) -> Result<String, SendFailure> {
    if herald_core::validate::is_sensitive_header(name) && herald_core::sealing::is_sealed(value) {
        Ok(engine
            .open_header(name, value)
            .map_err(failure)?
            .to_string())
    } else {
        Ok(value.to_string())
    }
}

/// Sends a destination's HTTP request: a 2xx delivers the batch; anything else is a
/// failure that quotes the answer and keeps its `Retry-After`. `who` names the receiver
/// in the reason.
pub(crate) async fn send_request(
    engine: &Engine,
    request: reqwest::RequestBuilder,
    body: String,
    who: &str,
) -> Result<(), SendFailure> {
    let timeout = engine.config().request_timeout;
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| failure(crate::attempt::describe_error(&e, timeout)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::attempt::parse_retry_after);
    let mut answer = response.text().await.unwrap_or_default();
    herald_core::text::truncate_utf8(&mut answer, QUOTED_ANSWER);
    Err(SendFailure {
        reason: format!("{who} answered {}: {}", status.as_u16(), answer.trim()),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store::{Destination, DestinationStatus, StreamMessage, StreamPos};

    #[test]
    fn a_batch_body_is_a_json_array_of_its_messages_in_order() {
        let message = |seq: i64, event_id: Option<&str>| StreamMessage {
            pos: StreamPos { xid: 0, seq },
            id: format!("msg_{seq}"),
            event_id: event_id.map(Into::into),
            event_type: "order.paid".into(),
            channels: Some(vec!["eu".into()]),
            payload: format!(r#"{{"n":{seq},"q":"a\"b"}}"#),
            headers: Vec::new(),
            created_at: 1_700_000_000_000,
        };
        let batch = Batch {
            destination: Destination {
                id: "dest_1".into(),
                app_id: "app_1".into(),
                uid: None,
                kind: "fifoEndpoint".into(),
                status: DestinationStatus::Enabled,
                config: serde_json::json!({}),
                batch_size: 10,
                max_wait_secs: 0,
                event_types: None,
                channels: None,
                metadata: Default::default(),
                position: StreamPos::default(),
                failure_reason: None,
                next_retry_at: None,
                failures: 0,
                created_at: 0,
                updated_at: 0,
                payload_filter: None,
                transformation: None,
            },
            messages: vec![message(1, Some("e-\"1")), message(2, None)],
            next: StreamPos { xid: 0, seq: 2 },
            id: "batch".into(),
        };
        let parsed: serde_json::Value = serde_json::from_str(&body(&batch)).unwrap();
        assert_eq!(parsed[0]["id"], "msg_1");
        assert_eq!(parsed[0]["eventId"], "e-\"1");
        assert_eq!(parsed[0]["payload"]["q"], "a\"b");
        assert_eq!(parsed[0]["channels"][0], "eu");
        assert_eq!(parsed[0]["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(parsed[1]["eventId"], serde_json::Value::Null);
        assert_eq!(parsed[1]["payload"]["n"], 2);
        assert_eq!(parsed.as_array().unwrap().len(), 2);
    }
}
