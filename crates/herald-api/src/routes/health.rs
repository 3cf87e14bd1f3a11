//! Health checks (no auth).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::ApiState;

pub async fn health(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"database": {"status": "ok"}, "queue": {"status": "ok"}})),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"database": {"status": "error"}, "queue": {"status": "ok"}})),
            )
        }
    }
}

pub async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
