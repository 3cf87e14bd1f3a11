//! Idempotency keys: a POST carrying `idempotency-key` runs once per (token, path, key);
//! repeats get the first 2xx answer back, and a repeat that arrives while the first is
//! still running waits for it. The SDKs send a key on every POST and retry 5xx, so this
//! is what makes their retries safe.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_core::time::now_ms;
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::state::{ApiState, Caller};

const MAX_KEY_LEN: usize = 256;
const MAX_STORED_BODY: usize = 1024 * 1024;

pub(crate) async fn layer(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return crate::error::invalid(
            &["header", "idempotency-key"],
            "must be 1 to 256 characters",
        )
        .into_response();
    }
    let token = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.token_hash.clone())
        .unwrap_or_default();
    let full_key = format!("{token}:{}:{key}", req.uri().path().trim_end_matches('/'));

    loop {
        match state
            .store
            .idempotency_get(&full_key, now_ms(), state.config.idempotency_ttl_ms)
            .await
        {
            Ok(Some((status, body))) => return stored_response(status, body),
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
        // Become the one request that runs, or wait for the one that does.
        let waiter = {
            let mut running = state
                .in_flight_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match running.get(&full_key) {
                Some(n) => Some(n.clone()),
                None => {
                    running.insert(full_key.clone(), Arc::new(Notify::new()));
                    None
                }
            }
        };
        match waiter {
            Some(notify) => {
                let notified = notify.notified();
                // Re-check: the first may have finished between the lookup and now.
                let still_running = state
                    .in_flight_keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(&full_key);
                if still_running {
                    notified.await;
                }
                continue;
            }
            None => break,
        }
    }

    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_STORED_BODY)
        .await
        .unwrap_or_default();
    if parts.status.is_success() {
        if let Err(e) = state
            .store
            .idempotency_put(&full_key, parts.status.as_u16(), bytes.to_vec(), now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not store an idempotency record");
        }
    }
    if let Some(n) = state
        .in_flight_keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&full_key)
    {
        n.notify_waiters();
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn stored_response(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
