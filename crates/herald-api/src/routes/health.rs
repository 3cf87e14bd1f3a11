//! Health checks (no auth).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::json;

use crate::error::ApiError;
use crate::state::{ApiState, Caller};

/// 200 when the store answers, 500 when it does not; the body says what the store,
/// the queue and this node's delivery engine are doing.
pub async fn health(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let engine = json!({
        "status": state.hand_off.engine_status(),
        "inMemory": state.hand_off.in_memory(),
    });
    let now = herald_core::time::now_ms();
    // A full disk: the store answers reads, but no write (no ingest) can succeed.
    let free = state
        .config
        .free_disk_bytes
        .as_ref()
        .and_then(|probe| (probe.0)());
    if let Some(free) = free.filter(|f| *f < state.config.min_free_disk_bytes) {
        tracing::warn!(
            free_bytes = free,
            "health: the data directory's disk is full"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "database": {
                    "status": "error",
                    "reason": "the disk is full: writes (and so ingest) fail",
                    "freeDiskBytes": free,
                },
                "queue": {"status": "unknown"},
                "engine": engine,
            })),
        );
    }
    match state.store.queue_stats().await {
        Ok((pending, oldest_due)) => (
            StatusCode::OK,
            Json(json!({
                "database": {"status": "ok", "freeDiskBytes": free},
                "queue": {
                    "status": "ok",
                    "pending": pending,
                    "oldestDueAgeSeconds": oldest_due.map_or(0.0, |t| ((now - t).max(0) as f64) / 1000.0),
                },
                "engine": engine,
            })),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({
                    "database": {"status": "error"},
                    "queue": {"status": "unknown"},
                    "engine": engine,
                })),
            )
        }
    }
}

/// Prometheus metrics (text format), for admin tokens: it holds endpoint ids and
/// volumes, which an application's own token must not see across tenants.
pub async fn metrics(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    if caller.app_id.is_some() {
        return Err(ApiError::Forbidden("/metrics needs an admin token".into()));
    }
    let now = herald_core::time::now_ms();
    let (pending, oldest_due, up) = match state.store.queue_stats().await {
        Ok((pending, oldest)) => (pending, oldest, true),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store did not answer");
            (0, None, false)
        }
    };
    let gauges = herald_core::metrics::Gauges {
        in_memory: state.hand_off.in_memory(),
        queue_pending: pending,
        oldest_due_age_secs: oldest_due.map_or(0.0, |t| ((now - t).max(0) as f64) / 1000.0),
        store_up: up,
        store_writes: state.store.write_stats(),
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.config.metrics.render(gauges),
    ))
}

pub async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
