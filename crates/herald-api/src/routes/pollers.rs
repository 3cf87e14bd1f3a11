//! Pollers: a `pollingEndpoint`'s consumer reads the application's stream itself, with
//! the poller's own token (or an application or admin token). A plain poll is
//! stateless (the caller keeps the iterator); a consumer group's position is kept by
//! Herald, moved by each of its reads and by `seek`.
//!
//! Herald extension: `wait=N` makes a read that finds nothing wait up to N seconds for
//! the next message (a long poll) instead of answering empty at once.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use herald_core::time::now_ms;
use herald_core::validate;
use herald_store::{Destination, DestinationStatus, StreamBatch, StreamPos, StreamRead};

use super::destinations::{parse_iterator, seek_target, visible_destination};
use crate::destination::*;
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

/// The most messages one read returns, and the default.
pub(crate) const MAX_LIMIT: i64 = 1_000;
const DEFAULT_LIMIT: i64 = 100;
/// The longest a long poll waits.
pub(crate) const MAX_WAIT_SECS: i64 = 30;
/// How often a long poll looks again when no wake-up came (another node's messages on a
/// shared store never wake this one).
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// The poller of a path, which must be a pollingEndpoint the caller may read.
async fn poller(
    state: &ApiState,
    caller: &Caller,
    app_id: &str,
    sink_id: &str,
) -> ApiResult<Destination> {
    let d = visible_destination(state, caller, app_id, sink_id).await?;
    if d.kind != Kind::Polling.name() {
        return Err(ApiError::NotFound(format!(
            "destination {} is a {}, not a pollingEndpoint",
            d.id, d.kind
        )));
    }
    if d.status == DestinationStatus::Disabled {
        return Err(ApiError::Conflict(
            "this poller is disabled; enable it to read".into(),
        ));
    }
    Ok(d)
}

fn limit(q: &QueryPairs) -> ApiResult<usize> {
    match q.int("limit")? {
        None => Ok(DEFAULT_LIMIT as usize),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n as usize),
        Some(_) => Err(invalid(
            &["query", "limit"],
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

fn wait(q: &QueryPairs) -> ApiResult<Duration> {
    match q.int("wait")? {
        None => Ok(Duration::ZERO),
        Some(n) if (0..=MAX_WAIT_SECS).contains(&n) => Ok(Duration::from_secs(n as u64)),
        Some(_) => Err(invalid(
            &["query", "wait"],
            format!("wait must be between 0 and {MAX_WAIT_SECS} seconds"),
        )),
    }
}

/// The `iterator` parameter; given empty it is not one (as the document says).
fn iterator(q: &QueryPairs) -> ApiResult<Option<StreamPos>> {
    q.get("iterator")
        .map(|it| parse_iterator(it, &["query", "iterator"]))
        .transpose()
}

/// Reads once, or until something arrives or `wait` ends.
async fn read_waiting(state: &ApiState, r: StreamRead, wait: Duration) -> ApiResult<StreamBatch> {
    let deadline = tokio::time::Instant::now() + wait.min(state.config.poll_max_wait);
    loop {
        // Registered before the read, so a message committed during it still wakes us.
        let woken = state.config.stream_signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let batch = state.store.stream_read(r.clone()).await?;
        let now = tokio::time::Instant::now();
        if !batch.messages.is_empty() || now >= deadline {
            return Ok(batch);
        }
        let _ = tokio::time::timeout(LOOK_AGAIN.min(deadline - now), woken).await;
    }
}

fn answer(state: &ApiState, batch: StreamBatch) -> Json<PollingEndpointOut> {
    if !batch.messages.is_empty() {
        state
            .config
            .metrics
            .destination_batch(Kind::Polling.name(), batch.messages.len());
    }
    Json(PollingEndpointOut {
        iterator: batch.next.encode(),
        done: batch.done,
        data: batch
            .messages
            .into_iter()
            .map(PollingMessageOut::from)
            .collect(),
    })
}

/// `GET /app/{app_id}/poller/{sink_id}`: the messages after `iterator` (or after the
/// first message at or after `after`, or where the poller began), filtered by the
/// poller's event types and channels and by `event_type` and `channel`.
pub async fn poll(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, sink_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<PollingEndpointOut>> {
    let (limit, wait, iterator) = (limit(&q)?, wait(&q)?, iterator(&q)?);
    let after = q.timestamp("after")?;
    let d = poller(&state, &caller, &app_id, &sink_id).await?;
    let from = match (iterator, after) {
        (Some(pos), _) => pos,
        (None, Some(at)) => state.store.stream_position_at(&d.app_id, at).await?,
        (None, None) => d.position,
    };
    let r = StreamRead {
        app_id: d.app_id.clone(),
        after: from,
        limit,
        event_types: d.event_types.clone(),
        channels: d.channels.clone(),
        event_type: q.get("event_type").map(str::to_string),
        channel: q.get("channel").map(str::to_string),
        payload_filter: d.payload_filter.clone(),
    };
    Ok(answer(&state, read_waiting(&state, r, wait).await?))
}

fn consumer_id(id: &str) -> ApiResult<()> {
    validate::identifier(id, "consumer_id").map_err(|m| invalid(&["path", "consumer_id"], m))
}

/// `GET /app/{app_id}/poller/{sink_id}/consumer/{consumer_id}`: reads on from the
/// consumer group's position (a new group starts where the poller began) and moves the
/// position past what it returns, so each read gets the next messages. To read again,
/// `seek` back; to resume from an iterator of your own, pass `iterator`.
pub async fn consumer_poll(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, sink_id, consumer)): Path<(String, String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<PollingEndpointOut>> {
    consumer_id(&consumer)?;
    let (limit, wait, iterator) = (limit(&q)?, wait(&q)?, iterator(&q)?);
    let d = poller(&state, &caller, &app_id, &sink_id).await?;
    let from = match iterator {
        Some(pos) => pos,
        None => state
            .store
            .consumer_position(&d.id, &consumer)
            .await?
            .unwrap_or(d.position),
    };
    let r = StreamRead {
        app_id: d.app_id.clone(),
        after: from,
        limit,
        event_types: d.event_types.clone(),
        channels: d.channels.clone(),
        event_type: None,
        channel: None,
        payload_filter: d.payload_filter.clone(),
    };
    let batch = read_waiting(&state, r, wait).await?;
    state
        .store
        .consumer_save(&d.id, &consumer, batch.next, now_ms())
        .await?;
    Ok(answer(&state, batch))
}

/// `POST /app/{app_id}/poller/{sink_id}/consumer/{consumer_id}/seek`: the consumer
/// group's next read starts at the first message at or after `after`.
pub async fn consumer_seek(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, sink_id, consumer)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<ConsumerSeekIn>,
) -> ApiResult<Json<SeekOut>> {
    consumer_id(&consumer)?;
    let d = poller(&state, &caller, &app_id, &sink_id).await?;
    let pos = seek_target(&state, &d.app_id, Some(&body.after), None).await?;
    state
        .store
        .consumer_save(&d.id, &consumer, pos, now_ms())
        .await?;
    Ok(Json(SeekOut {
        iterator: pos.encode(),
    }))
}
