//! Exports spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding
//! (`POST <endpoint>/v1/traces`), in batches, from a background task. Spans that cannot
//! be sent (the collector is down) are dropped after a log line: tracing must never
//! slow deliveries down or hold memory without bound.

use std::time::Duration;

use herald_core::trace::{hex, Span, SpanSink};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Spans waiting for export at most; more are dropped.
const QUEUE: usize = 10_000;
/// Spans per request at most.
const BATCH: usize = 512;

#[derive(Debug)]
pub struct OtlpExporter {
    spans: mpsc::Sender<Span>,
}

impl OtlpExporter {
    /// Starts exporting to `endpoint` (e.g. `http://collector:4318`) as `service_name`.
    /// The collector is the operator's choice, so the SSRF guard does not apply.
    pub fn start(endpoint: &str, service_name: &str) -> OtlpExporter {
        let (spans, rx) = mpsc::channel(QUEUE);
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        tokio::spawn(export(url, service_name.to_string(), rx));
        OtlpExporter { spans }
    }
}

impl SpanSink for OtlpExporter {
    fn record(&self, span: Span) {
        // A full queue means the collector is not keeping up: drop, never block.
        let _ = self.spans.try_send(span);
    }
}

async fn export(url: String, service_name: String, mut rx: mpsc::Receiver<Span>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Let a burst gather into one request.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
        }
        let body = encode(&service_name, &batch);
        let n = batch.len();
        batch.clear();
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        match request.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                spans = n,
                "the OTLP collector refused spans"
            ),
            Err(e) => {
                tracing::warn!(error = %e, spans = n, "could not send spans to the OTLP collector")
            }
        }
    }
}

/// The OTLP JSON body (`ExportTraceServiceRequest`) for `spans`.
pub fn encode(service_name: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "name": s.name,
                // SPAN_KIND_SERVER for ingest, SPAN_KIND_CLIENT for attempts.
                "kind": if s.name == "herald.ingest" { 2 } else { 3 },
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
                // STATUS_CODE_OK = 1, STATUS_CODE_ERROR = 2.
                "status": {"code": if s.error { 2 } else { 1 }},
            });
            if let Some(parent) = s.parent_span_id {
                span["parentSpanId"] = hex(&parent).into();
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]},
            "scopeSpans": [{"scope": {"name": "herald", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}]
        }]
    })
}
