//! The audit trail's recording side: a layer around the authenticated routes that
//! writes down every change (any request but a read, a message sent, or a listen
//! session's reply) with who made it (the token, by name and role), what (method, route,
//! the object named, the request body with its secrets redacted), when, from where, and
//! its answer (a 403 is a refusal). The console, the portal and the CLI all go through
//! the API, so this sees their changes too. Requests without a valid token (401) are not
//! recorded: nobody known made them, and anyone can send them.
//!
//! An event is written before the answer leaves, so a client that saw its change
//! succeed can read it in the trail; a failure to write is logged and does not undo the
//! change.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_core::{ids, time::now_ms};
use herald_store::AuditEvent;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::ApiState;

/// Who made a request, as the auth layer found it; put on the response for this layer.
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub token_id: String,
    pub name: String,
    pub role: Option<String>,
    pub app_id: Option<String>,
}

/// The most of a request body the trail keeps.
const MAX_DETAIL_BYTES: usize = 4096;

/// Whether a request changes something the trail keeps.
fn is_change(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // Sending messages is the data plane, not a change of settings; nor is a listen
    // session's answer to a delivery.
    let sends = matches!(parts.as_slice(), [.., "app", _, "msg"]) && *method == Method::POST;
    let listen_reply = parts.ends_with(&["listen", "reply"]);
    // An export only reads (Svix made it a POST); a dry-run import changes nothing
    // either, but it is kept: it shows someone preparing a change.
    let export = parts.ends_with(&["environment", "export"]);
    // Nor does a destination's connection test.
    let test = parts.ends_with(&["destination", "test-connection"]);
    !(sends || listen_reply || export || test)
}

/// What the object a replace, patch or delete names is before the change: the answer
/// of a GET of the same path, made with the same credentials through the whole router
/// (so it sees exactly what the caller may see; a GET is not a change, so it passes this
/// layer untouched), redacted. Creations (POST) and objects without a GET of their own
/// have none.
async fn state_before(
    state: &ApiState,
    path: &str,
    parts: &axum::http::request::Parts,
) -> Option<String> {
    if !matches!(parts.method, Method::PUT | Method::PATCH | Method::DELETE) {
        return None;
    }
    let router = state.reader.get()?.clone();
    let mut read = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .ok()?;
    for name in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::COOKIE,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            read.headers_mut().insert(name, value.clone());
        }
    }
    let answer = match tower::ServiceExt::oneshot(router, read).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    let is_json = answer
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !answer.status().is_success() || !is_json {
        return None;
    }
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .ok()?;
    redacted_detail(&bytes)
}

pub(crate) async fn layer(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    // The path as the client sent it (a nested router sees it without its prefix).
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_string(), |u| u.path().to_string());
    if !is_change(req.method(), &path) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_string());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(format!(
                "the body is larger than {} bytes",
                state.config.max_body_bytes
            ))
            .into_response()
        }
    };
    let detail = redacted_detail(&bytes);
    let before = state_before(&state, &path, &parts).await;
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let Some(actor) = response.extensions().get::<Actor>().cloned() else {
        return response;
    };
    let status = response.status().as_u16();
    // What the object became: the answer's JSON body, redacted like the request's.
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (response, after) = if is_json {
        let (parts, body) = response.into_parts();
        // No bound: the change is made, and its answer must reach the client whole
        // (a change answers with one object).
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                let after = redacted_detail(&bytes);
                (Response::from_parts(parts, Body::from(bytes)), after)
            }
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be read for the audit trail");
                return ApiError::Internal.into_response();
            }
        }
    } else {
        (response, None)
    };
    let event = AuditEvent {
        id: ids::generate(ids::AUDIT),
        at: now_ms(),
        actor_id: actor.token_id,
        actor_name: actor.name,
        role: actor.role,
        actor_app_id: actor.app_id,
        method,
        object_id: object_of(&route, &path),
        route,
        path,
        status: i64::from(status),
        allowed: status != 403,
        source,
        detail,
        after,
        before,
    };
    record(&state, event).await;
    response
}

/// Writes an event and announces it (operational webhook `audit.event`).
async fn record(state: &ApiState, event: AuditEvent) {
    let announced = crate::routes::audit::out(event.clone());
    if let Err(e) = state.store.audit_append(vec![event]).await {
        tracing::error!(error = %e, "could not write an audit event");
        return;
    }
    let Some(op_app) = &state.config.operational_app_id else {
        return;
    };
    let now = now_ms();
    let data = serde_json::to_value(&announced).expect("plain data serializes");
    let new = herald_store::operational::message(
        op_app,
        "audit.event",
        data,
        state.hand_off.lease_until(now),
    );
    match state.store.message_create(new, now).await {
        Ok((_, jobs)) => state.hand_off.hand_off(jobs),
        Err(e) => tracing::warn!(error = %e, "could not announce an audit event"),
    }
}

/// The path's value for the last parameter of the route (`/app/{app_id}/endpoint/{id}`
/// and `/app/a/endpoint/e` name `e`).
fn object_of(route: &str, path: &str) -> Option<String> {
    let route: Vec<&str> = route.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    if route.len() != path.len() {
        return None;
    }
    route
        .iter()
        .zip(&path)
        .filter(|(r, _)| r.starts_with('{'))
        .map(|(_, p)| p.to_string())
        .next_back()
}

/// The body as the trail keeps it: JSON with every secret replaced, cut at a bound.
fn redacted_detail(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
        return Some(format!("(a body of {} bytes that is not JSON)", body.len()));
    };
    redact(&mut doc);
    let mut text = doc.to_string();
    if text.len() > MAX_DETAIL_BYTES {
        herald_core::text::truncate_utf8(&mut text, MAX_DETAIL_BYTES);
        text.push('…');
    }
    Some(text)
}

/// Names of fields whose values are secrets wherever they appear.
fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "key", "token", "password", "authorization"]
        .iter()
        .any(|s| n == *s || n.ends_with(s))
}

const REDACTED: &str = "[redacted]";

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                if is_secret_field(name) && !value.is_null() {
                    *value = Value::String(REDACTED.into());
                } else if name == "headers" {
                    // Header maps: the values of sensitive headers.
                    if let Value::Object(headers) = value {
                        for (h, hv) in headers.iter_mut() {
                            if herald_core::validate::is_sensitive_header(h) && !hv.is_null() {
                                *hv = Value::String(REDACTED.into());
                            }
                        }
                    }
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_wherever_they_are() {
        let body = serde_json::json!({
            "url": "https://x", "secret": "whsec_abc",
            "headers": {"Authorization": "Bearer s3cr3t", "X-Team": "billing"},
            "config": {"key": "whsec_def", "password": "pw", "apiKey": "k", "url": "https://y"},
            "destinations": [{"secret": "t", "url": "https://z"}],
            "metaVerifyToken": "mv"
        });
        let text = redacted_detail(body.to_string().as_bytes()).unwrap();
        for secret in [
            "whsec_abc",
            "s3cr3t",
            "whsec_def",
            "\"pw\"",
            "\"k\"",
            "\"t\"",
            "\"mv\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in ["https://x", "billing", "https://y", "https://z"] {
            assert!(text.contains(kept), "{kept} not in {text}");
        }
    }

    #[test]
    fn changes_are_what_is_recorded() {
        assert!(is_change(&Method::POST, "/api/v1/app"));
        assert!(is_change(&Method::DELETE, "/api/v1/app/a/endpoint/e"));
        assert!(is_change(
            &Method::PATCH,
            "/ingest/api/v1/source/s/endpoint/e/transformation"
        ));
        assert!(!is_change(&Method::GET, "/api/v1/app"));
        assert!(!is_change(&Method::POST, "/api/v1/app/a/msg"));
        assert!(!is_change(&Method::POST, "/api/v1/listen/reply"));
        assert!(!is_change(&Method::POST, "/api/v1/environment/export"));
        assert!(is_change(&Method::POST, "/api/v1/environment/import"));
        assert!(is_change(
            &Method::POST,
            "/api/v1/app/a/msg/m/endpoint/e/resend"
        ));
    }

    #[test]
    fn the_object_is_the_last_parameter() {
        assert_eq!(
            object_of(
                "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
                "/api/v1/app/a/endpoint/e"
            ),
            Some("e".into())
        );
        assert_eq!(object_of("/api/v1/app", "/api/v1/app"), None);
        assert_eq!(
            object_of("/api/v1/app/{app_id}/endpoint", "/api/v1/app/a/endpoint"),
            Some("a".into())
        );
    }
}
