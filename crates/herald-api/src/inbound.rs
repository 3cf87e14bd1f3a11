//! The inbound gateway: `/in/{source_id}` (any method, any sub-path) receives a third
//! party's webhook, answers the provider handshakes it is configured for, verifies the
//! signature, and commits the request as a message of the source's application before
//! answering 2xx. The delivery engine then forwards it to the source's destinations,
//! re-signed with Standard Webhooks, with retries, logs and replay like any message.
//! Every request that reaches a source, accepted or refused, is logged for the operator.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::inbound::{self, CapturedRequest};
use herald_core::{ids, time::now_ms};
use herald_store::{InboundRequest, NewMessage, Source, StoreError};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorOut};
use crate::routes::sources::SourceConfig;
use crate::state::ApiState;

/// How long forwarded requests are kept (and duplicates recognised): 90 days.
const RETENTION_HOURS: u32 = 90 * 24;
/// Refused requests logged per source and second at most; the rest are only counted.
const REFUSALS_LOGGED_PER_SEC: u32 = 10;
/// Bytes of a refused request's body kept in the log.
const REFUSED_BODY_KEPT: usize = 16 * 1024;
/// Headers whose values are credentials and are not written to the request log.
const REDACTED: &[&str] = &[
    "authorization",
    "cookie",
    "x-gitlab-token",
    "proxy-authorization",
];

/// Where each provider puts the event type and its delivery id.
struct ProviderFacts {
    event_header: Option<&'static str>,
    event_field: Option<&'static str>,
    id_header: Option<&'static str>,
    id_field: Option<&'static str>,
}

fn facts(scheme: &str) -> ProviderFacts {
    let f = |event_header, event_field, id_header, id_field| ProviderFacts {
        event_header,
        event_field,
        id_header,
        id_field,
    };
    match scheme {
        "github" => f(
            Some("x-github-event"),
            None,
            Some("x-github-delivery"),
            None,
        ),
        "stripe" => f(None, Some("type"), None, Some("id")),
        "shopify" => f(
            Some("x-shopify-topic"),
            None,
            Some("x-shopify-webhook-id"),
            None,
        ),
        "slack" => f(None, Some("event.type"), None, Some("event_id")),
        "square" => f(None, Some("type"), None, Some("event_id")),
        "twilio" => f(None, None, Some("i-twilio-idempotency-token"), None),
        "paddle" => f(None, Some("event_type"), None, Some("event_id")),
        "zoom" => f(None, Some("event"), None, None),
        "linear" => f(Some("linear-event"), None, Some("linear-delivery"), None),
        "gitlab" => f(
            Some("x-gitlab-event"),
            None,
            Some("x-gitlab-event-uuid"),
            None,
        ),
        "discord" => f(None, Some("type"), None, Some("id")),
        "standard-webhooks" => f(None, Some("type"), Some("webhook-id"), None),
        _ => f(None, Some("type"), None, None),
    }
}

/// The original headers passed along by default: the content type and the provider's
/// event and delivery-id headers.
pub(crate) fn default_forward_headers(scheme: &str) -> Vec<String> {
    let f = facts(scheme);
    let mut out = vec!["content-type".to_string()];
    out.extend(f.event_header.map(str::to_string));
    out.extend(
        f.id_header
            .filter(|h| !h.starts_with("webhook-"))
            .map(str::to_string),
    );
    out
}

/// The channel that stands for a destination with a body filter.
pub(crate) fn filter_channel(endpoint_id: &str) -> String {
    format!("herald-filter.{endpoint_id}")
}

/// The value at a dotted path of a JSON document (`data.object.id`).
fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A JSON scalar as text (strings without quotes).
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a body satisfies a filter: every path holds the value, or one of the list.
fn filter_matches(doc: Option<&Value>, filter: &serde_json::Map<String, Value>) -> bool {
    let Some(doc) = doc else { return false };
    filter.iter().all(|(path, want)| {
        let got = at_path(doc, path);
        match want {
            Value::Array(options) => got.is_some_and(|g| options.contains(g)),
            other => got == Some(other),
        }
    })
}

/// An event type name the API accepts, from whatever the provider calls it
/// (`orders/create` → `orders.create`, `Push Hook` → `push_hook`).
fn event_type_name(raw: &str) -> String {
    let name: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' => {
                c.to_ascii_lowercase()
            }
            _ => '_',
        })
        .take(256)
        .collect();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorOut {
            code: code.to_string(),
            detail: detail.into(),
        }),
    )
        .into_response()
}

/// Everything about one arrived request the steps below need.
struct Arrival {
    source: Source,
    config: SourceConfig,
    secret: String,
    method: Method,
    uri: Uri,
    headers: Vec<(String, String)>,
    body: Bytes,
    received_at: i64,
}

impl Arrival {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The log record of this request with `outcome`; credentials are withheld.
    fn record(
        &self,
        verified: bool,
        reason: Option<String>,
        msg_id: Option<String>,
    ) -> InboundRequest {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| {
                let value = if REDACTED.contains(&n.as_str()) {
                    "[withheld]".to_string()
                } else {
                    v.clone()
                };
                (n.clone(), value)
            })
            .collect();
        let query = self.uri.query().map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| {
                    let v = if k == "hub.verify_token" {
                        "[withheld]".into()
                    } else {
                        v
                    };
                    (k, v)
                })
                .fold(
                    url::form_urlencoded::Serializer::new(String::new()),
                    |mut s, (k, v)| {
                        s.append_pair(&k, &v);
                        s
                    },
                )
                .finish()
        });
        InboundRequest {
            id: ids::generate(ids::INBOUND),
            source_id: self.source.id.clone(),
            msg_id,
            received_at: self.received_at,
            method: self.method.to_string(),
            path: self.uri.path().to_string(),
            query,
            headers,
            body: String::from_utf8_lossy(&self.body).into_owned(),
            verified,
            reason,
        }
    }
}

/// Logs a request; a failure to log is reported, not answered (the answer is decided).
async fn log(state: &ApiState, record: InboundRequest) {
    if let Err(e) = state.store.inbound_insert(record).await {
        tracing::warn!(error = %e, "could not log an inbound request");
    }
}

/// Whether one more refusal of this source may be logged this second. Anyone can post
/// to a source's URL, so refusals must not become a way to fill the disk.
fn may_log_refusal(state: &ApiState, source_id: &str) -> bool {
    let second = (now_ms() / 1000) as u64;
    let mut seen = state
        .inbound_refusals
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.len() > 10_000 {
        seen.clear();
    }
    let entry = seen.entry(source_id.to_string()).or_insert((second, 0));
    if entry.0 != second {
        *entry = (second, 0);
    }
    entry.1 += 1;
    entry.1 <= REFUSALS_LOGGED_PER_SEC
}

/// `/in/{source_id}` and `/in/{source_id}/{*rest}`.
pub async fn receive(
    State(state): State<Arc<ApiState>>,
    Path(params): Path<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = now_ms();
    let source_id = params.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    let source = match state.store.source_get(source_id).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => {
            return error(StatusCode::NOT_FOUND, "not_found", "no such source")
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let config = match SourceConfig::of(&source) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let open = |sealed: &Option<String>| -> Result<String, ApiError> {
        match sealed {
            None => Ok(String::new()),
            Some(v) => state.config.sealer.open(v).map_err(|e| {
                tracing::error!(source = %source.id, error = %e, "cannot open the source's secret");
                ApiError::Internal
            }),
        }
    };
    let (secret, meta_token) = match (open(&config.secret), open(&config.meta_verify_token)) {
        (Ok(secret), Ok(token)) => (secret, token),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let arrival = Arrival {
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        source,
        config,
        secret,
        method,
        uri,
        body,
        received_at,
    };
    if let Some(answer) = unsigned_handshake(&arrival, &meta_token) {
        return answer;
    }
    // The URL the provider signed (square, twilio): as configured, else this server's.
    let url = arrival.config.public_url.clone().unwrap_or_else(|| {
        let pq = arrival.uri.path_and_query().map_or("", |pq| pq.as_str());
        format!("{}{pq}", state.config.public_url.trim_end_matches('/'))
    });
    let captured = CapturedRequest {
        headers: arrival.headers.clone(),
        body: arrival.body.to_vec(),
        url: Some(url),
    };
    let verdict = inbound::verify(
        &arrival.config.scheme,
        &arrival.secret,
        &captured,
        received_at / 1000,
        arrival.config.tolerance_secs,
        &arrival.config.generic(),
    );
    let metrics = &state.config.metrics;
    if let Err(reason) = verdict {
        metrics.inbound_refused.fetch_add(1, Ordering::Relaxed);
        if may_log_refusal(&state, &arrival.source.id) {
            let mut record = arrival.record(false, Some(reason.clone()), None);
            herald_core::text::truncate_utf8(&mut record.body, REFUSED_BODY_KEPT);
            log(&state, record).await;
        }
        return error(StatusCode::UNAUTHORIZED, "signature_invalid", reason);
    }
    let Ok(text) = std::str::from_utf8(&arrival.body) else {
        log(
            &state,
            arrival.record(true, Some("the body is not UTF-8 text".into()), None),
        )
        .await;
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_body_encoding",
            "the body is not UTF-8 text",
        );
    };
    let doc: Option<Value> = serde_json::from_str(text).ok();
    if let Some(answer) = signed_handshake(&arrival, doc.as_ref()) {
        log(
            &state,
            arrival.record(true, Some("handshake answered".into()), None),
        )
        .await;
        return answer;
    }
    let new = message_for(&state, &arrival, text, doc.as_ref());
    let now = now_ms();
    match state.store.message_create(new, now).await {
        Ok((message, jobs)) => {
            metrics.inbound_accepted.fetch_add(1, Ordering::Relaxed);
            state.hand_off.hand_off(jobs);
            state.config.stream_signal.notify_waiters();
            let record = arrival.record(true, None, Some(message.id.clone()));
            let request_id = record.id.clone();
            log(&state, record).await;
            (
                StatusCode::OK,
                Json(json!({"id": request_id, "messageId": message.id})),
            )
                .into_response()
        }
        // The provider sent this delivery before: acknowledge it again, send it once.
        Err(StoreError::Conflict(_)) => {
            log(
                &state,
                arrival.record(true, Some("duplicate delivery id".into()), None),
            )
            .await;
            (StatusCode::OK, Json(json!({"duplicate": true}))).into_response()
        }
        // Not stored: the provider must try again (a 5xx makes it).
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Handshakes that carry no signature: Meta's `GET hub.challenge` and the CloudEvents
/// `OPTIONS` abuse protection, each answered only when configured.
fn unsigned_handshake(a: &Arrival, meta_token: &str) -> Option<Response> {
    if a.method == Method::GET && !meta_token.is_empty() {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(a.uri.query()?.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("hub.mode") == Some("subscribe") {
            let given = get("hub.verify_token").unwrap_or_default();
            if !inbound::same_secret(given, meta_token) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    "verify_token_mismatch",
                    "hub.verify_token does not match this source's token",
                ));
            }
            let challenge = get("hub.challenge").unwrap_or_default().to_string();
            return Some(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response());
        }
    }
    if a.method == Method::OPTIONS {
        let origins = a.config.cloud_events_origins.as_ref()?;
        let origin = a.header("webhook-request-origin")?;
        if !origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return Some(error(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this source does not accept webhooks from that origin",
            ));
        }
        return Some(
            (
                StatusCode::OK,
                [
                    ("webhook-allowed-origin", origin.to_string()),
                    ("webhook-allowed-rate", "*".to_string()),
                    ("allow", "POST".to_string()),
                ],
            )
                .into_response(),
        );
    }
    None
}

/// Handshakes that come signed: Slack's `url_verification`, Zoom's
/// `endpoint.url_validation` and Discord's PING. Answered only after verification:
/// Zoom's answer is an HMAC under the secret, which must not be offered to anyone.
fn signed_handshake(a: &Arrival, doc: Option<&Value>) -> Option<Response> {
    let doc = doc?;
    match a.config.scheme.as_str() {
        "slack" if doc["type"] == "url_verification" => {
            Some(Json(json!({"challenge": doc["challenge"]})).into_response())
        }
        "zoom" if doc["event"] == "endpoint.url_validation" => {
            let plain = doc["payload"]["plainToken"].as_str()?;
            Some(
                Json(json!({
                    "plainToken": plain,
                    "encryptedToken": inbound::zoom_encrypted_token(&a.secret, plain),
                }))
                .into_response(),
            )
        }
        "discord" if doc["type"] == 1 => Some(Json(json!({"type": 1})).into_response()),
        _ => None,
    }
}

/// The message that forwards a verified request.
fn message_for(state: &ApiState, a: &Arrival, text: &str, doc: Option<&Value>) -> NewMessage {
    let f = facts(&a.config.scheme);
    let from_header = |h: Option<&str>| h.and_then(|h| a.header(h)).map(str::to_string);
    let from_field = |p: Option<&str>| {
        p.and_then(|p| doc.and_then(|d| at_path(d, p)))
            .and_then(as_text)
    };
    let event_type = from_header(a.config.event_type_header.as_deref())
        .or_else(|| from_field(a.config.event_type_field.as_deref()))
        .or_else(|| from_header(f.event_header))
        .or_else(|| from_field(f.event_field))
        .or_else(|| {
            (a.config.scheme == "slack")
                .then(|| from_field(Some("type")))
                .flatten()
        })
        .map(|raw| event_type_name(&raw))
        .unwrap_or_else(|| format!("{}.request", event_type_name(&a.config.scheme)));
    let delivery_id = from_header(a.config.id_header.as_deref())
        .or_else(|| from_header(f.id_header))
        .or_else(|| from_field(f.id_field))
        .filter(|id| !id.is_empty() && id.len() <= 256);
    let channels = (!a.config.body_filters.is_empty()).then(|| {
        a.config
            .body_filters
            .iter()
            .filter(|(_, filter)| filter_matches(doc, filter))
            .map(|(endpoint_id, _)| filter_channel(endpoint_id))
            .collect()
    });
    let mut headers: Vec<(String, String)> = a
        .config
        .forward_headers
        .iter()
        .filter_map(|name| a.header(name).map(|v| (name.clone(), v.to_string())))
        .collect();
    headers.push(("x-herald-source".into(), a.source.id.clone()));
    NewMessage {
        app_id: a.source.app_id.clone(),
        event_id: delivery_id,
        event_type,
        channels,
        payload: text.to_string(),
        retention_hours: RETENTION_HOURS,
        deliver_at: None,
        only_endpoint: None,
        app_throttle_rate: None,
        ordering_key: None,
        lease_until: state.hand_off.lease_until(now_ms()),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_are_made_acceptable() {
        assert_eq!(event_type_name("orders/create"), "orders.create");
        assert_eq!(event_type_name("Push Hook"), "push_hook");
        assert_eq!(
            event_type_name("customer.subscription.created"),
            "customer.subscription.created"
        );
        assert_eq!(event_type_name("  "), "unknown");
    }

    #[test]
    fn body_filters_match_paths_values_and_lists() {
        let doc =
            json!({"data": {"object": {"currency": "usd", "amount": 5}}, "items": [{"k": "a"}]});
        let f = |v: Value| v.as_object().unwrap().clone();
        assert!(filter_matches(
            Some(&doc),
            &f(json!({"data.object.currency": "usd"}))
        ));
        assert!(filter_matches(
            Some(&doc),
            &f(json!({"data.object.currency": ["eur", "usd"], "data.object.amount": 5}))
        ));
        assert!(filter_matches(Some(&doc), &f(json!({"items.0.k": "a"}))));
        assert!(!filter_matches(
            Some(&doc),
            &f(json!({"data.object.currency": "eur"}))
        ));
        assert!(!filter_matches(
            Some(&doc),
            &f(json!({"data.missing": "usd"}))
        ));
        assert!(!filter_matches(None, &f(json!({"a": 1}))));
    }
}
