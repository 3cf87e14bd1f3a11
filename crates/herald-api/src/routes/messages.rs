//! Messages: ingest (202 only after commit), reads, lists, expunge.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::metrics::StoreOp;
use herald_core::time::{now_ms, parse_rfc3339};
use herald_core::{ids, validate};
use herald_store::MessageFilter;
use herald_store::{NewMessage, StoreError};
use std::sync::atomic::Ordering;

use super::{apps, ingest_app, visible_app, visible_message};
use crate::dto::{ListResponse, MessageIn, MessageOut};
use crate::error::{invalid, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

const MAX_MESSAGE_CHANNELS: usize = 5;
const MAX_RETENTION_DAYS: i64 = 90;

/// The span that starts a message's trace (see `herald_core::trace`).
fn ingest_span(
    message: &herald_store::Message,
    received_at: i64,
    took: std::time::Duration,
) -> herald_core::trace::Span {
    use herald_core::trace;
    let start_ns = trace::ns_from_ms(received_at);
    trace::Span {
        trace_id: trace::trace_id(&message.id),
        span_id: trace::ingest_span_id(&message.id),
        parent_span_id: None,
        name: "herald.ingest",
        start_ns,
        end_ns: start_ns + took.as_nanos() as u64,
        attributes: vec![
            ("msg.id", message.id.clone()),
            ("app.id", message.app_id.clone()),
            ("herald.event_type", message.event_type.clone()),
        ],
        error: false,
    }
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<MessageIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let received_at = now_ms();
    validate::identifier(&body.event_type, "eventType")
        .map_err(|m| invalid(&["body", "eventType"], m))?;
    if !body.payload.get().trim_start().starts_with('{') {
        return Err(invalid(
            &["body", "payload"],
            "payload must be a JSON object",
        ));
    }
    if validate::json_depth(body.payload.get()) > validate::MAX_JSON_DEPTH {
        return Err(invalid(
            &["body", "payload"],
            format!(
                "payload nests objects and arrays deeper than {} levels",
                validate::MAX_JSON_DEPTH
            ),
        ));
    }
    if let Some(key) = &body.ordering_key {
        validate::identifier(key, "orderingKey")
            .map_err(|m| invalid(&["body", "orderingKey"], m))?;
    }
    if let Some(event_id) = &body.event_id {
        validate::identifier(event_id, "eventId").map_err(|m| invalid(&["body", "eventId"], m))?;
    }
    if let Some(channels) = &body.channels {
        if channels.is_empty() || channels.len() > MAX_MESSAGE_CHANNELS {
            return Err(invalid(
                &["body", "channels"],
                "channels holds 1 to 5 channels",
            ));
        }
        for c in channels {
            validate::channel(c).map_err(|m| invalid(&["body", "channels"], m))?;
        }
    }
    // Both given: the hours win, but the period must still be one.
    if body
        .payload_retention_period
        .is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d))
    {
        return Err(invalid(
            &["body", "payloadRetentionPeriod"],
            "payloadRetentionPeriod is 1 to 90 days",
        ));
    }
    let retention_hours = match (body.payload_retention_hours, body.payload_retention_period) {
        (Some(h), _) if (1..=MAX_RETENTION_DAYS * 24).contains(&h) => h,
        (Some(_), _) => {
            return Err(invalid(
                &["body", "payloadRetentionHours"],
                "payloadRetentionHours is 1 to 2160 hours",
            ))
        }
        (None, Some(d)) if (1..=MAX_RETENTION_DAYS).contains(&d) => d * 24,
        (None, Some(_)) => {
            return Err(invalid(
                &["body", "payloadRetentionPeriod"],
                "payloadRetentionPeriod is 1 to 90 days",
            ))
        }
        (None, None) => MAX_RETENTION_DAYS * 24,
    };
    if body.transformations_params.is_some() {
        return Err(invalid(
            &["body", "transformationsParams"],
            "transformations are not supported by this server",
        ));
    }
    let deliver_at = match &body.deliver_at {
        None => None,
        Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
            invalid(
                &["body", "deliverAt"],
                "deliverAt must be an RFC 3339 timestamp",
            )
        })?),
    };
    if deliver_at.is_some_and(|t| t > now_ms() + MAX_RETENTION_DAYS * 86_400_000) {
        return Err(invalid(
            &["body", "deliverAt"],
            "deliverAt may be at most 90 days ahead",
        ));
    }
    // `application` is checked whenever it is given, used or not.
    if let Some(app_in) = &body.application {
        apps::check_input(app_in)?;
    }
    let app = match ingest_app(&state, &caller, &app_id).await {
        Ok(app) => app,
        // `application` in the body creates the app on the fly.
        Err(crate::error::ApiError::NotFound(_))
            if body.application.is_some() && caller.app_id.is_none() =>
        {
            let mut app_in = body.application.expect("checked");
            if app_in.uid.is_none() && !app_id.starts_with(ids::APP) {
                app_in.uid = Some(app_id.clone());
            }
            match apps::insert(&state, app_in).await {
                Ok(app) => app,
                // Two first messages raced to create it: use the one that won.
                Err(crate::error::ApiError::Conflict(_)) => {
                    visible_app(&state, &caller, &app_id).await?
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let now = now_ms();
    let new = NewMessage {
        app_id: app.id,
        event_id: body.event_id,
        event_type: body.event_type,
        channels: body.channels,
        payload: body.payload.get().to_string(),
        retention_hours: retention_hours as u32,
        deliver_at,
        only_endpoint: None,
        headers: Vec::new(),
        app_throttle_rate: app.throttle_rate,
        ordering_key: body.ordering_key,
        lease_until: state.hand_off.lease_until(now),
    };
    let started = std::time::Instant::now();
    let stored = state.store.message_create(new, now).await;
    let metrics = &state.config.metrics;
    metrics.store(StoreOp::MessageCreate, started.elapsed());
    let (message, jobs) = stored?;
    metrics.messages_ingested.fetch_add(1, Ordering::Relaxed);
    if let Some(sink) = &state.config.spans {
        sink.record(ingest_span(&message, received_at, started.elapsed()));
    }
    state.hand_off.hand_off(jobs);
    state.config.stream_signal.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut::accepted(message, body.payload)),
    ))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<MessageOut>>> {
    let list = q.list(true)?;
    let filter = message_filter(&q, true)?;
    let app = visible_app(&state, &caller, &app_id).await?;
    let page = state.store.message_list(&app.id, filter, list).await?;
    Ok(Json(ListResponse::from_page(page, MessageOut::from)))
}

/// The message filters of list routes; `with_content` defaults to true like Svix.
pub(crate) fn message_filter(
    q: &QueryPairs,
    default_with_content: bool,
) -> ApiResult<MessageFilter> {
    Ok(MessageFilter {
        channel: q
            .get("channel")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        before: q.timestamp("before")?,
        after: q.timestamp("after")?,
        event_types: q.all("event_types"),
        with_content: match q.get("with_content") {
            None => default_with_content,
            Some(_) => q.flag("with_content")?,
        },
        status: None,
    })
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> ApiResult<Json<MessageOut>> {
    Ok(Json(
        visible_message(&state, &caller, &app_id, &msg_id)
            .await?
            .1
            .into(),
    ))
}

pub async fn expunge(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, msg) = visible_message(&state, &caller, &app_id, &msg_id).await?;
    state
        .store
        .message_expunge(&msg.id)
        .await
        .map_err(|e: StoreError| e)?;
    Ok(StatusCode::NO_CONTENT)
}
