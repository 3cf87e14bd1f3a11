//! Every route of the API, wired in one place, plus the layers around them: bearer
//! auth, idempotency keys, the body limit, and JSON answers for unknown routes.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::error::ApiError;
use crate::idempotency;
use crate::routes::{apps, attempts, endpoints, event_types, health, messages};
use crate::state::{ApiState, Caller};

/// The whole API under `/api/v1`.
pub fn router(state: Arc<ApiState>) -> Router {
    let authed = Router::new()
        .route("/app", get(apps::list).post(apps::create))
        .route(
            "/app/{app_id}",
            get(apps::get)
                .put(apps::put)
                .patch(apps::patch)
                .delete(apps::delete),
        )
        .route(
            "/app/{app_id}/endpoint",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}",
            get(endpoints::get)
                .put(endpoints::put)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/secret",
            get(endpoints::secret),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
            post(endpoints::rotate_secret),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/headers",
            get(endpoints::headers)
                .put(endpoints::put_headers)
                .patch(endpoints::patch_headers),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/stats",
            get(endpoints::stats),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/send-example",
            post(endpoints::send_example),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/recover",
            post(endpoints::recover),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/msg",
            get(attempts::endpoint_messages),
        )
        .route(
            "/event-type",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/event-type/{name}",
            get(event_types::get)
                .put(event_types::put)
                .patch(event_types::patch)
                .delete(event_types::delete),
        )
        .route(
            "/app/{app_id}/msg",
            get(messages::list).post(messages::create),
        )
        .route("/app/{app_id}/msg/{msg_id}", get(messages::get))
        .route(
            "/app/{app_id}/msg/{msg_id}/content",
            delete(messages::expunge),
        )
        .route(
            "/app/{app_id}/msg/{msg_id}/endpoint",
            get(attempts::message_endpoints),
        )
        .route(
            "/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
            get(attempts::get),
        )
        .route(
            "/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
            post(attempts::resend),
        )
        .route(
            "/app/{app_id}/attempt/endpoint/{endpoint_id}",
            get(attempts::by_endpoint),
        )
        .route(
            "/app/{app_id}/attempt/msg/{msg_id}",
            get(attempts::by_message),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));

    let v1 = Router::new()
        .route("/health", get(health::health).head(health::health))
        .route("/health/ping", get(health::ping).head(health::ping))
        .merge(authed)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });

    Router::new()
        .nest("/api/v1", v1)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Bearer-token auth: the token's hash must be a stored, unexpired token.
async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 512) else {
        return ApiError::Unauthorized("missing or malformed Authorization: Bearer header".into())
            .into_response();
    };
    let hash = herald_core::token::hash(token);
    let cached = state
        .token_cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&hash)
        .cloned();
    let info = match cached {
        Some(info) => info,
        None => match state.store.token_find(&hash).await {
            Ok(Some(info)) => {
                state
                    .token_cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hash.clone(), info.clone());
                info
            }
            Ok(None) => return ApiError::Unauthorized("invalid token".into()).into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if info
        .expires_at
        .is_some_and(|t| t <= herald_core::time::now_ms())
    {
        return ApiError::Unauthorized("the token has expired".into()).into_response();
    }
    req.extensions_mut().insert(Caller {
        token_hash: hash,
        app_id: info.app_id,
    });
    next.run(req).await
}
