//! Operational webhooks: Herald tells the operator about endpoints and failing
//! deliveries by sending messages into an application of its own (uid
//! `herald-operational`), so they are signed, retried and logged like any other.
//! Operators subscribe by adding endpoints to that application.

use serde_json::{json, Value};

use crate::{Application, EventType, NewMessage, Result, SharedStore, StoreError};

/// The uid of the application operational webhooks are sent from.
pub const APP_UID: &str = "herald-operational";

/// The event types, with what they mean; their payload schemas come from `schema`.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("endpoint.created", "An endpoint was created."),
    ("endpoint.updated", "An endpoint's settings changed."),
    ("endpoint.deleted", "An endpoint was deleted."),
    ("endpoint.disabled", "An endpoint was disabled by Herald: it answered 410 Gone, or every attempt failed for the auto-disable window."),
    ("message.attempt.failing", "A message's delivery to an endpoint failed for the fourth time; it will be retried."),
    ("message.attempt.exhausted", "A message's delivery to an endpoint failed its last retry and was given up."),
    ("message.attempt.recovered", "A message's delivery succeeded after it had been reported failing."),
    ("audit.event", "A change was made through the API (or refused): who, what (secrets redacted), when and from where, as GET /api/v1/audit shows it."),
    ("destination.paused", "A destination was paused by Herald: its retries ran out, or its position expired (retention deleted messages it had not sent). It waits for an operator to enable or seek it."),
];

/// The JSON Schema of an event type's payload: `{"type": <event type>, "data": {...}}`.
pub fn schema(event_type: &str) -> Value {
    let s = json!({"type": "string"});
    let data = if event_type == "audit.event" {
        json!({
            "type": "object",
            "required": ["id", "timestamp", "actorId", "actorName", "role", "method", "route", "path", "status", "allowed"],
            "properties": {
                "id": s, "timestamp": {"type": "string", "format": "date-time"},
                "actorId": s, "actorName": s, "role": s, "actorAppId": {"type": ["string", "null"]},
                "method": s, "route": s, "path": s, "objectId": {"type": ["string", "null"]},
                "status": {"type": "integer"}, "allowed": {"type": "boolean"},
                "source": {"type": ["string", "null"]}, "detail": {"type": ["string", "null"]},
                "after": {"type": ["string", "null"]}
            }
        })
    } else if event_type.starts_with("destination.") {
        json!({
            "type": "object",
            "required": ["appId", "destinationId", "type", "reason"],
            "properties": {
                "appId": s, "destinationId": s, "destinationUid": {"type": ["string", "null"]},
                "type": s, "reason": s
            }
        })
    } else if event_type.starts_with("endpoint.") {
        let mut props = json!({"appId": s, "appUid": {"type": ["string", "null"]}, "endpointId": s, "endpointUid": {"type": ["string", "null"]}});
        if event_type == "endpoint.disabled" {
            props["failSince"] = json!({"type": ["string", "null"], "format": "date-time"});
            props["trigger"] = json!({"enum": ["automatic"]});
        }
        json!({"type": "object", "required": ["appId", "endpointId"], "properties": props})
    } else {
        json!({
            "type": "object",
            "required": ["appId", "msgId", "endpointId", "lastAttempt"],
            "properties": {
                "appId": s, "msgId": s, "endpointId": s,
                "lastAttempt": {
                    "type": "object",
                    "required": ["id", "timestamp", "responseStatusCode"],
                    "properties": {
                        "id": s,
                        "timestamp": {"type": "string", "format": "date-time"},
                        "responseStatusCode": {"type": "integer"},
                        "responseDurationMs": {"type": "integer"}
                    }
                }
            }
        })
    };
    json!({
        "type": "object",
        "required": ["type", "data"],
        "properties": {"type": {"const": event_type}, "data": data}
    })
}

/// The message that announces `event_type` with `data`.
pub fn message(
    app_id: &str,
    event_type: &str,
    data: Value,
    lease_until: Option<i64>,
) -> NewMessage {
    NewMessage {
        app_id: app_id.to_string(),
        event_id: None,
        event_type: event_type.to_string(),
        channels: None,
        payload: json!({"type": event_type, "data": data}).to_string(),
        retention_hours: 90 * 24,
        deliver_at: None,
        only_endpoint: None,
        headers: Vec::new(),
        app_throttle_rate: None,
        ordering_key: None,
        lease_until,
    }
}

/// Makes sure the operational application and its event types exist; returns the
/// application's id. Several nodes starting together may race: the loser reads back
/// what the winner created.
pub async fn ensure(store: &SharedStore, now: i64) -> Result<String> {
    let app = match store.app_get(APP_UID).await {
        Ok(app) => app,
        Err(StoreError::NotFound) => {
            let app = Application {
                id: herald_core::ids::generate(herald_core::ids::APP),
                uid: Some(APP_UID.to_string()),
                name: "Herald operational webhooks".to_string(),
                throttle_rate: None,
                metadata: Default::default(),
                created_at: now,
                updated_at: now,
            };
            match store.app_insert(app).await {
                Ok(app) => app,
                Err(StoreError::Conflict(_)) => store.app_get(APP_UID).await?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    for (name, description) in EVENT_TYPES {
        if store.event_type_get(name).await.is_ok() {
            continue;
        }
        let et = EventType {
            name: name.to_string(),
            description: description.to_string(),
            archived: false,
            deprecated: false,
            schemas: Some(json!({ "1": schema(name) })),
            feature_flag: None,
            created_at: now,
            updated_at: now,
        };
        match store.event_type_save(et, false).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(app.id)
}
