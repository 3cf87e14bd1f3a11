//! `otelTracing`: each batch is one OTLP/HTTP export (`ExportTraceServiceRequest`, JSON)
//! POSTed to the configured URL, one span per message. A message's span joins the
//! message's own trace (its trace id is derived from the message id, as Herald's ingest
//! and attempt spans are), as a child of its ingest span, and carries the message id,
//! event type, application, destination and payload as attributes. The request goes
//! through the same SSRF-guarded client as every delivery; a refusal fails the batch.

use herald_core::text::truncate_utf8;
use herald_core::time::now_ms;
use herald_core::trace::{self, Span};

use super::broker::{failure, StoredConfig};
use super::{Batch, SendFailure, SendFuture, Sender};
use crate::Engine;
use herald_store::Destination;

pub(crate) struct OtelSender;

/// The most of a payload a span's attribute carries.
const PAYLOAD_ATTRIBUTE_BYTES: usize = 64 * 1024;

impl Sender for OtelSender {
    fn send<'a>(&'a self, engine: &'a Engine, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(send(engine, batch))
    }

    /// An export with no spans: the collector answers it as it would a batch.
    fn probe<'a>(&'a self, engine: &'a Engine, destination: &'a Destination) -> SendFuture<'a> {
        Box::pin(export(
            engine,
            destination,
            "{\"resourceSpans\":[]}".to_string(),
        ))
    }
}

/// The spans of a batch.
pub(crate) fn spans(batch: &Batch, sent_at_ms: i64) -> Vec<Span> {
    batch
        .messages
        .iter()
        .map(|m| {
            let mut payload = m.payload.clone();
            truncate_utf8(&mut payload, PAYLOAD_ATTRIBUTE_BYTES);
            Span {
                trace_id: trace::trace_id(&m.id),
                span_id: trace::span_id(&format!("{}/{}", batch.destination.id, m.id)),
                parent_span_id: Some(trace::ingest_span_id(&m.id)),
                name: "herald.message",
                start_ns: trace::ns_from_ms(m.created_at),
                end_ns: trace::ns_from_ms(sent_at_ms.max(m.created_at)),
                attributes: vec![
                    ("herald.message_id", m.id.clone()),
                    ("herald.event_type", m.event_type.clone()),
                    ("herald.app_id", batch.destination.app_id.clone()),
                    ("herald.destination_id", batch.destination.id.clone()),
                    ("herald.payload", payload),
                ],
                error: false,
            }
        })
        .collect()
}

async fn send(engine: &Engine, batch: &Batch) -> Result<(), SendFailure> {
    let body = crate::otlp::encode("herald", &spans(batch, now_ms())).to_string();
    export(engine, &batch.destination, body).await
}

async fn export(
    engine: &Engine,
    destination: &Destination,
    body: String,
) -> Result<(), SendFailure> {
    let config = engine.config();
    let stored = StoredConfig(&destination.config);
    let url = stored.open_required(engine, "url")?;
    let url = crate::guard::check_destination(&config.destinations, config.https_only, &url)
        .map_err(|blocked| failure(blocked.to_string()))?;
    let mut request = engine
        .client()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", config.user_agent.as_str());
    let headers = destination
        .config
        .get("headers")
        .and_then(serde_json::Value::as_object);
    for (name, value) in headers.into_iter().flatten() {
        let Some(value) = value.as_str() else {
            continue;
        };
        let value = super::http::header_value(engine, name, value)?;
        request = request.header(name.as_str(), value);
    }
    super::http::send_request(engine, request, body, "the OTLP collector").await
}
