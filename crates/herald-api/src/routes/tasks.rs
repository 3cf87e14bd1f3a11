//! Replays run as tracked background tasks, and the task routes that report on them.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::ids;
use herald_core::time::{now_ms, parse_rfc3339};
use herald_store::Task;

use super::visible_endpoint;
use crate::dto::{BackgroundTaskOut, ListResponse, RecoverIn};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

/// Parses a `{since, until?}` window; `until` defaults to now.
pub(crate) fn window(body: &RecoverIn, now: i64) -> ApiResult<(i64, i64)> {
    let since = parse_rfc3339(&body.since)
        .ok_or_else(|| invalid(&["body", "since"], "since must be an RFC 3339 timestamp"))?;
    let until = match &body.until {
        Some(u) => parse_rfc3339(u)
            .ok_or_else(|| invalid(&["body", "until"], "until must be an RFC 3339 timestamp"))?,
        None => now + 1,
    };
    if until <= since {
        return Err(invalid(&["body", "until"], "until must be after since"));
    }
    Ok((since, until))
}

/// Records a `running` task, runs `work` in the background, and records how it ended:
/// `finished` with `{messages: n}` added to `data`, or `failed` with the reason.
async fn start_task<F>(
    state: &Arc<ApiState>,
    kind: &str,
    data: serde_json::Value,
    work: F,
) -> ApiResult<Task>
where
    F: Future<Output = Result<usize, herald_store::StoreError>> + Send + 'static,
{
    let task = Task {
        id: ids::generate(ids::TASK),
        kind: kind.to_string(),
        status: "running".into(),
        data,
        updated_at: now_ms(),
    };
    let task = state.store.task_save(task).await?;
    let (store, mut done) = (state.store.clone(), task.clone());
    tokio::spawn(async move {
        match work.await {
            Ok(n) => {
                done.status = "finished".into();
                done.data["messages"] = n.into();
            }
            Err(e) => {
                tracing::error!(task.id = %done.id, error = %e, "background task failed");
                done.status = "failed".into();
                done.data["error"] = "the store failed; see the server's log".into();
            }
        }
        done.updated_at = now_ms();
        if let Err(e) = store.task_save(done).await {
            tracing::error!(error = %e, "could not record the end of a background task");
        }
    });
    Ok(task)
}

/// Which replay a route asks for.
#[derive(Clone, Copy)]
enum Replay {
    /// Messages of the window the endpoint never got.
    Missing,
    /// Every message of the window, delivered or not.
    Everything,
}

/// Starts a replay of the window in the body as a background task.
async fn start_replay(
    state: Arc<ApiState>,
    caller: Caller,
    (app_id, endpoint_id): (String, String),
    body: RecoverIn,
    replay: Replay,
) -> ApiResult<(StatusCode, Json<BackgroundTaskOut>)> {
    let (since, until) = window(&body, now_ms())?;
    let (app, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let data = serde_json::json!({"appId": app.id, "endpointId": ep.id});
    let store = state.store.clone();
    let kind = match replay {
        Replay::Missing => "endpoint.replay-missing",
        Replay::Everything => "endpoint.bulk-replay",
    };
    let task = start_task(&state, kind, data, async move {
        match replay {
            Replay::Missing => store.replay_missing(ep, since, until, now_ms()).await,
            Replay::Everything => store.recover(&ep.id, since, until, now_ms(), true).await,
        }
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(task.into())))
}

/// Sends the endpoint every message of the window it never got (it was created later,
/// was disabled, or filtered it out then), as a background task.
pub async fn replay_missing(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ids): Path<(String, String)>,
    JsonBody(body): JsonBody<RecoverIn>,
) -> ApiResult<(StatusCode, Json<BackgroundTaskOut>)> {
    start_replay(state, caller, ids, body, Replay::Missing).await
}

/// Sends every message of the window to the endpoint again, delivered or not, as a
/// background task.
pub async fn bulk_replay(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ids): Path<(String, String)>,
    JsonBody(body): JsonBody<RecoverIn>,
) -> ApiResult<(StatusCode, Json<BackgroundTaskOut>)> {
    start_replay(state, caller, ids, body, Replay::Everything).await
}

/// A task; an application token sees only its own application's tasks.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(task_id): Path<String>,
) -> ApiResult<Json<BackgroundTaskOut>> {
    let task = state
        .store
        .task_get(&task_id)
        .await
        .map_err(|_| ApiError::NotFound("background task not found".into()))?;
    if let Some(scope) = &caller.app_id {
        if task.data["appId"].as_str() != Some(scope) {
            return Err(ApiError::NotFound("background task not found".into()));
        }
    }
    Ok(Json(task.into()))
}

/// Tasks, newest first, optionally filtered by `status` and `task` (admin tokens).
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<BackgroundTaskOut>>> {
    if caller.app_id.is_some() {
        return Err(ApiError::NotFound("not found".into()));
    }
    let list = q.list(true)?;
    let page = state
        .store
        .task_list(
            list,
            q.get("status").map(str::to_string),
            q.get("task").map(str::to_string),
        )
        .await?;
    Ok(Json(ListResponse::from_page(page, BackgroundTaskOut::from)))
}
