//! What the senders of the consumer's own systems (PostgreSQL, RabbitMQ, NATS, Redis)
//! share: reading their stored config (the API's `broker_config.rs` writes it: URLs and
//! secrets sealed), reaching a host only at an address the destination policy allows,
//! one message as JSON, and a connection kept per destination.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use herald_core::time::format_rfc3339;
use herald_store::StreamMessage;
use serde_json::Value;

use super::SendFailure;
use crate::Engine;

pub(crate) fn failure(reason: impl Into<String>) -> SendFailure {
    SendFailure {
        reason: reason.into(),
        retry_after: None,
    }
}

/// A broker destination's stored config.
pub(crate) struct StoredConfig<'a>(pub &'a Value);

impl StoredConfig<'_> {
    /// A plain field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(default)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.0.get(name).and_then(Value::as_i64).unwrap_or(default)
    }

    /// A sealed field (a URL or a secret), opened; `None` when it is not set.
    pub fn open(&self, engine: &Engine, name: &str) -> Result<Option<String>, SendFailure> {
        let Some(sealed) = self.text(name) else {
            return Ok(None);
        };
        engine
            .config()
            .sealer
            .open(sealed)
            .map(Some)
            .map_err(|e| failure(format!("cannot open the destination's {name}: {e}")))
    }

    /// A sealed field that must be there.
    pub fn open_required(&self, engine: &Engine, name: &str) -> Result<String, SendFailure> {
        self.open(engine, name)?
            .ok_or_else(|| failure(format!("the destination's config has no {name}")))
    }
}

/// The address to connect to for `host:port`: the configured fixed answers (`resolve`)
/// first, else DNS; only an address the destination policy allows (the SSRF guard that
/// HTTP deliveries pass, `allowed_subnets` included).
pub(crate) async fn checked_address(
    engine: &Engine,
    host: &str,
    port: u16,
) -> Result<SocketAddr, SendFailure> {
    let config = engine.config();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else if let Some((_, ip)) = config
        .resolve
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(host))
    {
        vec![*ip]
    } else {
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| failure(format!("cannot resolve {host}: {e}")))?
            .map(|a| a.ip())
            .collect()
    };
    let mut refused = None;
    for ip in candidates {
        match config.destinations.check(ip) {
            Ok(()) => return Ok(SocketAddr::new(ip, port)),
            Err(why) => refused = Some(why),
        }
    }
    Err(failure(match refused {
        Some(why) => format!("{host} is not an address deliveries may reach: {why}"),
        None => format!("{host} has no address"),
    }))
}

/// One message as the brokers get it: the same object a fifoEndpoint's batch holds.
pub(crate) fn message_json(m: &StreamMessage) -> String {
    let text = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut out = String::with_capacity(m.payload.len() + 160);
    out.push_str("{\"id\":");
    out.push_str(&text(&m.id));
    out.push_str(",\"eventType\":");
    out.push_str(&text(&m.event_type));
    out.push_str(",\"eventId\":");
    out.push_str(&m.event_id.as_deref().map_or("null".into(), text));
    out.push_str(",\"timestamp\":");
    out.push_str(&text(&format_rfc3339(m.created_at)));
    out.push_str(",\"channels\":");
    out.push_str(&serde_json::to_string(&m.channels).expect("strings serialize"));
    out.push_str(",\"payload\":");
    // Stored payloads are JSON objects as received (`{}` once expunged).
    out.push_str(&m.payload);
    out.push('}');
    out
}

/// Connections kept per destination, made again when its config changes and dropped
/// after a failure. Bounded: past `MAX_KEPT` destinations it starts over.
pub(crate) struct Connections<C> {
    kept: Mutex<HashMap<String, (String, Arc<C>)>>,
}

const MAX_KEPT: usize = 1024;

impl<C> Connections<C> {
    pub fn new() -> Self {
        Connections {
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The connection of `destination` made under `config` (its stored form, sealed),
    /// or `None`.
    pub fn get(&self, destination: &str, config: &str) -> Option<Arc<C>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(destination)
            .filter(|(made_under, _)| made_under == config)
            .map(|(_, c)| c.clone())
    }

    pub fn keep(&self, destination: &str, config: &str, connection: Arc<C>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(destination.to_string(), (config.to_string(), connection));
    }

    /// Forgets a destination's connection (it failed: the next batch connects again).
    pub fn drop_for(&self, destination: &str) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(destination);
    }
}
