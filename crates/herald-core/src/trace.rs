//! Spans for distributed tracing, as plain data. A message's trace id and its ingest
//! span's id are derived from the message id, so every attempt, on any node and after
//! any restart, joins the trace its ingest started without carrying context around.
//! Exporting (OTLP) lives in the engine; this module does no I/O.

use sha2::{Digest, Sha256};

/// One finished operation.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: &'static str,
    /// Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, String)>,
    pub error: bool,
}

/// Where finished spans go (the OTLP exporter, when tracing is on).
pub trait SpanSink: Send + Sync + std::fmt::Debug {
    fn record(&self, span: Span);
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// The trace of a message.
pub fn trace_id(msg_id: &str) -> [u8; 16] {
    digest(&["trace", msg_id])[..16]
        .try_into()
        .expect("16 bytes")
}

/// The span of a message's ingest, parent of its attempts.
pub fn ingest_span_id(msg_id: &str) -> [u8; 8] {
    digest(&["ingest", msg_id])[..8]
        .try_into()
        .expect("8 bytes")
}

/// A span id of its own for an attempt (or anything else with a unique id).
pub fn span_id(unique: &str) -> [u8; 8] {
    digest(&["span", unique])[..8].try_into().expect("8 bytes")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix nanoseconds from Unix milliseconds.
pub fn ns_from_ms(ms: i64) -> u64 {
    (ms.max(0) as u64) * 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_from_the_message_id() {
        assert_eq!(trace_id("msg_1"), trace_id("msg_1"));
        assert_ne!(trace_id("msg_1"), trace_id("msg_2"));
        assert_ne!(ingest_span_id("msg_1"), span_id("msg_1"));
        assert_eq!(hex(&trace_id("msg_1")).len(), 32);
        assert_eq!(hex(&ingest_span_id("msg_1")).len(), 16);
    }
}
