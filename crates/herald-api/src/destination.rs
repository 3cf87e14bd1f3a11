//! Destinations on the wire: the Svix shapes (`DestinationIn`, `DestinationOut`,
//! `DestinationPatch`, `PollingEndpointOut`, …) and the rules of each destination type's
//! `config`: what a create or a patch may say, how it is stored (secrets sealed) and how
//! it is shown. A new type (part 2: brokers, databases, object stores) adds its arm to
//! `Kind` and its config rules here; the handlers do not change.

use std::collections::BTreeMap;

use herald_core::secret::Secret;
use herald_core::time::format_rfc3339;
use herald_store::{Destination, HttpSinkConfig, StoreError, StoredSecret, StreamMessage};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::Patch;
use crate::error::{invalid, ApiError, ApiResult};
use crate::state::ApiState;

/// The destination types Herald sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The consumer reads the stream itself (`GET …/poller/{id}`).
    Polling,
    /// Herald POSTs ordered batches to an HTTP endpoint.
    Fifo,
    /// Herald writes ordered batches into the consumer's own system (a queue, a
    /// database, a stream): its config rules are a table in `broker_config.rs`.
    Broker(&'static str),
}

/// Every type name the Svix API has; those Herald does not send to yet are refused with
/// a message that says so (rather than "unknown").
const SVIX_KINDS: &[&str] = &[
    "pollingEndpoint",
    "fifoEndpoint",
    "azureBlobStorage",
    "otelTracing",
    "amazonS3",
    "googleCloudStorage",
    "googleCloudPubSub",
    "sqs",
    "sns",
    "bigQuery",
    "clickhouse",
    "eventBridge",
    "snowflake",
    "rabbitMq",
    "redshift",
    "postgres",
    "elasticSearch",
];

impl Kind {
    pub(crate) fn parse(name: &str) -> ApiResult<Kind> {
        match name {
            "pollingEndpoint" => Ok(Kind::Polling),
            "fifoEndpoint" => Ok(Kind::Fifo),
            other => match crate::broker_config::find(other) {
                Some(t) => Ok(Kind::Broker(t.name)),
                None if SVIX_KINDS.contains(&other) => Err(invalid(
                    &["body", "type"],
                    format!(
                        "Herald does not send to {other} destinations yet; the types it has are {}",
                        Kind::names()
                    ),
                )),
                None => Err(invalid(
                    &["body", "type"],
                    format!(
                        "unknown destination type {other:?}; Herald has {}",
                        Kind::names()
                    ),
                )),
            },
        }
    }

    /// Every type Herald has, for messages.
    fn names() -> String {
        let mut names = vec!["pollingEndpoint", "fifoEndpoint"];
        names.extend(crate::broker_config::TYPES.iter().map(|t| t.name));
        names.join(", ")
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Polling => "pollingEndpoint",
            Kind::Fifo => "fifoEndpoint",
            Kind::Broker(name) => name,
        }
    }

    /// The config table of a broker type.
    fn broker(name: &str) -> ApiResult<&'static crate::broker_config::BrokerType> {
        crate::broker_config::find(name).ok_or(ApiError::Internal)
    }
}

/// What an iterator looks like on the wire (`StreamPos::encode`: two numbers), for the
/// OpenAPI document; `StreamPos::parse` accepts exactly these.
pub(crate) const ITERATOR_PATTERN: &str = "^[0-9]{1,18}-[0-9]{1,18}$";

/// Batch sizes a destination may have, and the default.
pub(crate) const MAX_BATCH_SIZE: i64 = 1_000;
pub(crate) const DEFAULT_BATCH_SIZE: i64 = 100;
/// The longest a destination may wait to fill a batch.
pub(crate) const MAX_WAIT_SECS: i64 = 3_600;

// ---- wire types ----

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationIn {
    #[serde(default)]
    pub uid: Option<String>,
    /// `enabled` (default) or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Messages per batch, 1 to 1000 (default 100).
    #[serde(default)]
    pub batch_size: Option<i64>,
    /// Seconds to wait for a batch to fill before sending what there is, 0 to 3600
    /// (default 0: send at once).
    #[serde(default)]
    pub max_wait_secs: Option<i64>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Herald extension: only messages whose payload and headers pass this filter
    /// (docs/filters.md) are sent or read.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<Value>,
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's settings: `{}` for pollingEndpoint; `{url, headers?, key?}` for
    /// fifoEndpoint.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub batch_size: Option<i64>,
    #[serde(default)]
    pub max_wait_secs: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Patch<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Herald extension: the payload filter (`null` removes it).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Patch<Value>,
    /// The destination's type, which a patch cannot change (the Svix SDK sends it).
    #[serde(rename = "type")]
    pub kind: String,
    /// fifoEndpoint: `{url?, headers?}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationOut {
    pub id: String,
    pub uid: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    /// enabled, disabled, paused (stopped by Herald: retries ran out or the position
    /// expired) or retrying.
    pub status: String,
    /// The destination's position in its application's stream.
    pub current_iterator: String,
    pub failure_reason: Option<String>,
    pub next_retry_at: Option<String>,
    pub batch_size: i64,
    pub max_wait_secs: i64,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    /// Herald extension: the payload filter, if any.
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<Value>,
    #[schema(value_type = Object)]
    pub config: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Destination> for DestinationOut {
    fn from(d: Destination) -> Self {
        let config = shown_config(&d);
        DestinationOut {
            id: d.id,
            uid: d.uid,
            kind: d.kind,
            status: d.status.as_str().into(),
            current_iterator: d.position.encode(),
            failure_reason: d.failure_reason,
            next_retry_at: d.next_retry_at.map(format_rfc3339),
            batch_size: d.batch_size,
            max_wait_secs: d.max_wait_secs,
            event_types: d.event_types,
            channels: d.channels,
            metadata: d.metadata,
            payload_filter: d.payload_filter.map(|f| f.doc),
            config,
            created_at: format_rfc3339(d.created_at),
            updated_at: format_rfc3339(d.updated_at),
        }
    }
}

/// `{key}`: a fifoEndpoint's signing secret, or a pollingEndpoint's token.
#[derive(Serialize, ToSchema)]
pub struct DestinationSecretOut {
    pub key: String,
}

/// Herald extension: move a destination (or a consumer) to a time or an iterator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeekIn {
    /// The first message at or after this time comes next.
    #[serde(default)]
    pub after: Option<String>,
    /// Or: what comes after this iterator comes next.
    #[serde(default)]
    pub iterator: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SeekOut {
    pub iterator: String,
}

/// Herald extension: how far a destination is behind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatsOut {
    /// Messages after the position that its event types let through (counted up to
    /// 100,000).
    pub lag_messages: i64,
    /// How old the oldest of them is, in seconds (0 when caught up).
    pub lag_seconds: f64,
    pub current_iterator: String,
}

/// One message as a poller reads it (Svix's `PollingEndpointMessageOut`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollingMessageOut {
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    pub timestamp: String,
    pub headers: Option<BTreeMap<String, String>>,
}

impl From<StreamMessage> for PollingMessageOut {
    fn from(m: StreamMessage) -> Self {
        let payload = RawValue::from_string(m.payload)
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("valid JSON"));
        PollingMessageOut {
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            payload,
            channels: m.channels,
            timestamp: format_rfc3339(m.created_at),
            headers: (!m.headers.is_empty()).then(|| m.headers.into_iter().collect()),
        }
    }
}

/// Svix's `PollingEndpointOut`.
#[derive(Serialize, ToSchema)]
pub struct PollingEndpointOut {
    pub data: Vec<PollingMessageOut>,
    /// Where this read ended: pass it as `iterator` to read on.
    pub iterator: String,
    /// Nothing more is readable now.
    pub done: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSeekIn {
    /// The consumer's next read starts at the first message at or after this time.
    pub after: String,
}

// ---- config rules ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FifoConfigIn {
    url: String,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FifoConfigPatch {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

fn config_value<T: serde::de::DeserializeOwned>(
    config: Option<Value>,
    empty: Value,
) -> ApiResult<T> {
    let value = config.unwrap_or(empty);
    if !value.is_object() {
        return Err(invalid(&["body", "config"], "config must be an object"));
    }
    serde_json::from_value(value).map_err(|e| invalid(&["body", "config"], e.to_string()))
}

/// The stored config of a new destination of `kind`, checked, with its secrets sealed.
pub(crate) async fn config_for_create(
    state: &ApiState,
    kind: Kind,
    config: Option<Value>,
    app_id: &str,
) -> ApiResult<Value> {
    match kind {
        Kind::Polling => {
            match &config {
                None => {}
                Some(Value::Object(map)) if map.is_empty() => {}
                Some(_) => {
                    return Err(invalid(
                        &["body", "config"],
                        "a pollingEndpoint takes no settings: config must be {}",
                    ))
                }
            }
            Ok(polling_config(
                state,
                &herald_core::token::generate_in(&state.config.environment),
            ))
        }
        Kind::Fifo => {
            let input: FifoConfigIn = config_value(config, Value::Null)?;
            let key = match &input.key {
                Some(k) => crate::routes::endpoints::parse_secret(k, "key").map_err(|_| {
                    invalid(
                        &["body", "config", "key"],
                        "key must be a whsec_ secret (base64 of 24 to 64 bytes)",
                    )
                })?,
                None => Secret::generate_hmac().expose(),
            };
            let mut sink = HttpSinkConfig {
                url: input.url,
                headers: input.headers.unwrap_or_default(),
                secrets: vec![StoredSecret {
                    key: state.config.sealer.seal(&key),
                    expires_at: None,
                }],
            };
            check_http_sink(state, &mut sink, app_id).await?;
            Ok(sink.to_value())
        }
        Kind::Broker(name) => crate::broker_config::create(state, Kind::broker(name)?, config),
    }
}

/// The stored config after a patch of `kind`'s settings.
pub(crate) async fn config_for_patch(
    state: &ApiState,
    d: &Destination,
    patch: Option<Value>,
) -> ApiResult<Value> {
    let Some(patch) = patch else {
        return Ok(d.config.clone());
    };
    match Kind::parse(&d.kind)? {
        Kind::Polling => match &patch {
            Value::Object(map) if map.is_empty() => Ok(d.config.clone()),
            _ => Err(invalid(
                &["body", "config"],
                "a pollingEndpoint takes no settings: config must be {}",
            )),
        },
        Kind::Fifo => {
            let change: FifoConfigPatch = config_value(Some(patch), Value::Null)?;
            let mut sink = HttpSinkConfig::from_value(&d.config).ok_or(ApiError::Internal)?;
            if let Some(url) = change.url {
                sink.url = url;
            }
            if let Some(headers) = change.headers {
                sink.headers = headers;
            }
            check_http_sink(state, &mut sink, &d.app_id).await?;
            Ok(sink.to_value())
        }
        Kind::Broker(name) => {
            crate::broker_config::patch(state, Kind::broker(name)?, &d.config, patch)
        }
    }
}

/// Checks an HTTP destination's URL and headers as an endpoint's, and seals the
/// sensitive header values.
async fn check_http_sink(
    state: &ApiState,
    sink: &mut HttpSinkConfig,
    app_id: &str,
) -> ApiResult<()> {
    let probe = herald_store::Endpoint {
        id: String::new(),
        app_id: app_id.to_string(),
        uid: None,
        url: sink.url.clone(),
        description: String::new(),
        disabled: false,
        event_types: None,
        channels: None,
        throttle_rate: None,
        metadata: BTreeMap::new(),
        headers: sink.headers.clone(),
        secrets: Vec::new(),
        ordered: false,
        payload_filter: None,
        transformation: None,
        created_at: 0,
        updated_at: 0,
    };
    crate::routes::endpoints::check(state, &probe)
        .await
        .map_err(|e| relocate(e, "config"))?;
    crate::routes::endpoints::seal_sensitive_headers(state, &mut sink.headers);
    Ok(())
}

/// A validation error about `body.x` reported as `body.<under>.x`.
pub(crate) fn relocate(e: ApiError, under: &str) -> ApiError {
    match e {
        ApiError::Validation(mut items) => {
            for item in &mut items {
                if item.loc.first().map(String::as_str) == Some("body") {
                    item.loc.insert(1, under.to_string());
                }
            }
            ApiError::Validation(items)
        }
        other => other,
    }
}

/// A pollingEndpoint's stored config: its token, sealed (shown by `GET …/secret`; the
/// token's hash is what authenticates).
pub(crate) fn polling_config(state: &ApiState, token: &str) -> Value {
    serde_json::json!({ "token": state.config.sealer.seal(token) })
}

/// The config as the API shows it: no secrets.
fn shown_config(d: &Destination) -> Value {
    match d.kind.as_str() {
        "fifoEndpoint" => {
            let sink = HttpSinkConfig::from_value(&d.config).unwrap_or_default();
            let (sensitive, shown): (Vec<_>, Vec<_>) = sink
                .headers
                .into_iter()
                .partition(|(k, _)| herald_core::validate::is_sensitive_header(k));
            serde_json::json!({
                "url": sink.url,
                "headers": {
                    "headers": shown.into_iter().collect::<BTreeMap<_, _>>(),
                    "sensitive": sensitive.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
                }
            })
        }
        other => match crate::broker_config::find(other) {
            Some(t) => crate::broker_config::shown(t, &d.config),
            None => serde_json::json!({}),
        },
    }
}

/// Maps a store NotFound to a 404 naming the destination.
pub(crate) fn not_found(e: StoreError) -> ApiError {
    crate::routes::named("destination")(e)
}
