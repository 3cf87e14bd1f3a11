//! The delivery log: attempts by endpoint or message, one attempt, the per-endpoint and
//! per-message delivery views, and manual resend.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::time::{format_rfc3339, now_ms};
use herald_store::{AttemptFilter, AttemptScope};

use super::messages::message_filter;
use super::{named, visible_endpoint, visible_message};
use crate::dto::*;
use crate::error::{invalid, ApiResult};
use crate::extract::QueryPairs;
use crate::state::{ApiState, Caller};

fn attempt_filter(q: &QueryPairs) -> ApiResult<AttemptFilter> {
    let status = q.int("status")?;
    if status.is_some_and(|s| !(0..=4).contains(&s)) {
        return Err(invalid(
            &["query", "status"],
            "status is 0 (success), 1 (pending), 2 (fail), 3 (sending) or 4 (canceled)",
        ));
    }
    let class = q.int("status_code_class")?;
    if class.is_some_and(|c| ![0, 100, 200, 300, 400, 500].contains(&c)) {
        return Err(invalid(
            &["query", "status_code_class"],
            "status_code_class is 0, 100, 200, 300, 400 or 500",
        ));
    }
    Ok(AttemptFilter {
        status,
        status_code_class: class,
        event_types: q.all("event_types"),
        channel: q
            .get("channel")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        before: q.timestamp("before")?,
        after: q.timestamp("after")?,
        endpoint_id: None,
    })
}

pub async fn by_endpoint(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<AttemptOut>>> {
    let (list, filter) = (q.list(true)?, attempt_filter(&q)?);
    let (app, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let page = state
        .store
        .attempt_list(&app.id, AttemptScope::Endpoint(ep.id), filter, list)
        .await?;
    Ok(Json(ListResponse::from_page(page, AttemptOut::from)))
}

pub async fn by_message(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<AttemptOut>>> {
    let (list, mut filter) = (q.list(true)?, attempt_filter(&q)?);
    let (app, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    if let Some(ep) = q.get("endpoint_id").filter(|e| !e.is_empty()) {
        // Svix's per-message list also narrows by endpoint (id or uid).
        let ep = state
            .store
            .endpoint_get(&app.id, ep)
            .await
            .map_err(named("endpoint"))?;
        filter.endpoint_id = Some(ep.id);
    }
    let page = state
        .store
        .attempt_list(&app.id, AttemptScope::Message(msg.id), filter, list)
        .await?;
    Ok(Json(ListResponse::from_page(page, AttemptOut::from)))
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> ApiResult<Json<AttemptOut>> {
    let (app, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    Ok(Json(
        state
            .store
            .attempt_get(&app.id, &msg.id, &attempt_id)
            .await
            .map_err(named("attempt"))?
            .into(),
    ))
}

pub async fn expunge(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (app, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    let attempt = state
        .store
        .attempt_get(&app.id, &msg.id, &attempt_id)
        .await
        .map_err(named("attempt"))?;
    state.store.attempt_expunge(&msg.id, &attempt.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn endpoint_messages(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EndpointMessageOut>>> {
    let (list, mut filter) = (q.list(true)?, message_filter(&q, true)?);
    filter.status = q.int("status")?;
    if filter.status.is_some_and(|s| ![0, 1, 2, 4].contains(&s)) {
        return Err(crate::error::invalid(
            &["query", "status"],
            "status is 0 (succeeded), 1 (pending), 2 (failed) or 4 (canceled)",
        ));
    }
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let page = state.store.delivered_messages(&ep.id, filter, list).await?;
    Ok(Json(ListResponse::from_page(page, |d| {
        let (status, status_text) = status_code(d.status);
        EndpointMessageOut {
            message: d.message.into(),
            status,
            status_text,
            next_attempt: d.next_attempt_at.map(format_rfc3339),
        }
    })))
}

pub async fn message_endpoints(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<MessageEndpointOut>>> {
    let list = q.list(false)?;
    let (_, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    let page = state.store.delivery_targets(&msg.id, list).await?;
    Ok(Json(ListResponse::from_page(page, |d| {
        let (status, status_text) = status_code(d.status);
        MessageEndpointOut {
            endpoint: d.endpoint.into(),
            status,
            status_text,
            next_attempt: d.next_attempt_at.map(format_rfc3339),
        }
    })))
}

pub async fn resend(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (app, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    let ep = state
        .store
        .endpoint_get(&app.id, &endpoint_id)
        .await
        .map_err(named("endpoint"))?;
    let now = now_ms();
    let job = state
        .store
        .resend(
            &app.id,
            &msg.id,
            &ep.id,
            now,
            state.hand_off.lease_until(now),
        )
        .await?;
    state.hand_off.hand_off(job.into_iter().collect());
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}
