//! Destinations (the Svix destinations API): CRUD, the secret (a fifoEndpoint's signing
//! key, a pollingEndpoint's token) and its rotation, and Herald's seek and stats.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::secret::Secret;
use herald_core::time::{now_ms, parse_rfc3339};
use herald_core::{ids, validate};
use herald_store::{Destination, DestinationStatus, HttpSinkConfig, StoreError, StreamPos};

use super::endpoints::{self, DEFAULT_GRACE_SECONDS, MAX_CHANNELS, MAX_GRACE_SECONDS};
use super::visible_app;
use crate::destination::*;
use crate::dto::{ListResponse, Patch, RotateIn};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

/// Destinations per application, at most.
pub(crate) const MAX_PER_APP: usize = 50;

/// A destination of an application the caller may see. A poller's token sees only its
/// own destination (the auth layer lets it reach its poller's routes and no others).
pub(crate) async fn visible_destination(
    state: &ApiState,
    caller: &Caller,
    app_id: &str,
    destination_id: &str,
) -> ApiResult<Destination> {
    let app = visible_app(state, caller, app_id).await?;
    let d = state
        .store
        .destination_get(&app.id, destination_id)
        .await
        .map_err(not_found)?;
    match &caller.destination_id {
        Some(own) if own != &d.id => Err(crate::error::not_found("destination")),
        _ => Ok(d),
    }
}

fn status_in(status: Option<&str>) -> ApiResult<Option<DestinationStatus>> {
    match status {
        None => Ok(None),
        Some("enabled") => Ok(Some(DestinationStatus::Enabled)),
        Some("disabled") => Ok(Some(DestinationStatus::Disabled)),
        Some(_) => Err(invalid(
            &["body", "status"],
            "status must be enabled or disabled",
        )),
    }
}

/// Refuses a filter list longer than `max` as given (before duplicates are dropped).
fn check_list_len(list: Option<&Vec<String>>, max: usize, field: &str) -> ApiResult<()> {
    match list {
        Some(l) if l.len() > max => Err(invalid(
            &["body", field],
            format!("{field} holds at most {max} entries (omit it for all)"),
        )),
        _ => Ok(()),
    }
}

/// An empty filter list filters nothing (as Svix says): it is stored as none.
fn filter_list(list: Option<Vec<String>>) -> Option<Vec<String>> {
    list.filter(|l| !l.is_empty()).map(|mut l| {
        l.sort();
        l.dedup();
        l
    })
}

/// Checks the fields every destination type shares.
fn check(d: &Destination) -> ApiResult<()> {
    if let Some(uid) = &d.uid {
        validate::uid(uid, ids::DESTINATION).map_err(|m| invalid(&["body", "uid"], m))?;
    }
    if !(1..=MAX_BATCH_SIZE).contains(&d.batch_size) {
        return Err(invalid(
            &["body", "batchSize"],
            format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"),
        ));
    }
    if !(0..=MAX_WAIT_SECS).contains(&d.max_wait_secs) {
        return Err(invalid(
            &["body", "maxWaitSecs"],
            format!("maxWaitSecs must be between 0 and {MAX_WAIT_SECS}"),
        ));
    }
    if let Some(channels) = &d.channels {
        if channels.len() > MAX_CHANNELS {
            return Err(invalid(
                &["body", "channels"],
                "channels holds at most 10 channels (omit it for all)",
            ));
        }
        for c in channels {
            validate::channel(c).map_err(|m| invalid(&["body", "channels"], m))?;
        }
    }
    if let Some(types) = &d.event_types {
        if types.len() > validate::MAX_EVENT_TYPES_PER_ENDPOINT {
            return Err(invalid(
                &["body", "eventTypes"],
                "eventTypes holds at most 1000 event types (omit it for all)",
            ));
        }
        for t in types {
            validate::identifier(t, "an event type")
                .map_err(|m| invalid(&["body", "eventTypes"], m))?;
        }
    }
    validate::metadata(&d.metadata).map_err(|m| invalid(&["body", "metadata"], m))
}

/// A new destination from its input (its config checked and its secrets sealed).
async fn from_input(
    state: &ApiState,
    app_id: &str,
    body: DestinationIn,
    now: i64,
) -> ApiResult<Destination> {
    let kind = Kind::parse(&body.kind)?;
    check_list_len(
        body.event_types.as_ref(),
        validate::MAX_EVENT_TYPES_PER_ENDPOINT,
        "eventTypes",
    )?;
    check_list_len(body.channels.as_ref(), MAX_CHANNELS, "channels")?;
    let d = Destination {
        id: ids::generate(ids::DESTINATION),
        app_id: app_id.to_string(),
        uid: body.uid,
        kind: kind.name().to_string(),
        status: status_in(body.status.as_deref())?.unwrap_or(DestinationStatus::Enabled),
        config: serde_json::Value::Null,
        batch_size: body.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
        max_wait_secs: body.max_wait_secs.unwrap_or(0),
        event_types: filter_list(body.event_types),
        channels: filter_list(body.channels),
        metadata: body.metadata.unwrap_or_default(),
        position: StreamPos::default(),
        failure_reason: None,
        next_retry_at: None,
        failures: 0,
        created_at: now,
        updated_at: now,
        payload_filter: body
            .payload_filter
            .map(crate::routes::endpoints::payload_filter)
            .transpose()?,
        transformation: None,
    };
    check(&d)?;
    let config = config_for_create(state, kind, body.config, app_id).await?;
    Ok(Destination { config, ..d })
}

/// Stores a new destination and, for a poller, its token.
async fn insert(state: &ApiState, d: Destination) -> ApiResult<Destination> {
    let d = state.store.destination_insert(d, MAX_PER_APP).await?;
    if d.kind == Kind::Polling.name() {
        let token = open_token(state, &d)?;
        if let Err(e) = store_token(state, &d, &token, now_ms()).await {
            // Without its token the poller is unusable: take it back.
            let _ = state.store.destination_delete(&d.id).await;
            return Err(e);
        }
    }
    Ok(d)
}

async fn store_token(
    state: &ApiState,
    d: &Destination,
    token: &str,
    old_expires_at: i64,
) -> ApiResult<()> {
    let hash = herald_core::token::hash(token);
    state
        .store
        .destination_token_replace(
            d,
            &ids::generate(ids::TOKEN),
            &hash,
            now_ms(),
            old_expires_at,
        )
        .await?;
    // This node forgets the old token at once; others within their short cache time.
    state
        .token_cache
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|_, (info, _)| info.destination_id.as_deref() != Some(d.id.as_str()));
    Ok(())
}

fn open_token(state: &ApiState, d: &Destination) -> ApiResult<String> {
    let sealed = d
        .config
        .get("token")
        .and_then(|t| t.as_str())
        .ok_or(ApiError::Internal)?;
    state.config.sealer.open(sealed).map_err(|e| {
        tracing::error!(error = %e, "cannot open a poller's token");
        ApiError::Internal
    })
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<DestinationOut>>> {
    let list = q.list(false)?;
    let app = visible_app(&state, &caller, &app_id).await?;
    let page = state.store.destination_list(&app.id, list).await?;
    Ok(Json(ListResponse::from_page(page, DestinationOut::from)))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<DestinationIn>,
) -> ApiResult<(StatusCode, Json<DestinationOut>)> {
    let app = visible_app(&state, &caller, &app_id).await?;
    let d = from_input(&state, &app.id, body, now_ms()).await?;
    let d = insert(&state, d).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// What a connection test found.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConnectionTestOut {
    /// The destination could be reached and would take a batch.
    pub ok: bool,
    /// Why not, as a failed batch would say it.
    pub reason: Option<String>,
}

/// Herald extension: checks a destination's settings as a create would, then connects
/// as its first batch would (nothing is saved or sent), so a form can say whether the
/// queue, database or collector is reachable before saving.
pub async fn test_connection(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<DestinationIn>,
) -> ApiResult<Json<ConnectionTestOut>> {
    let app = visible_app(&state, &caller, &app_id).await?;
    let d = from_input(&state, &app.id, body, now_ms()).await?;
    Ok(Json(match state.hand_off.test_destination(d).await {
        Ok(()) => ConnectionTestOut {
            ok: true,
            reason: None,
        },
        Err(reason) => ConnectionTestOut {
            ok: false,
            reason: Some(reason),
        },
    }))
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<DestinationOut>> {
    Ok(Json(
        visible_destination(&state, &caller, &app_id, &destination_id)
            .await?
            .into(),
    ))
}

/// PUT: replace the destination's settings (its type stays; its secret stays unless a
/// key is given), or create it under the path's name.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<DestinationIn>,
) -> ApiResult<(StatusCode, Json<DestinationOut>)> {
    let app = visible_app(&state, &caller, &app_id).await?;
    let now = now_ms();
    match state.store.destination_get(&app.id, &destination_id).await {
        Ok(old) => {
            if body.kind != old.kind {
                return Err(invalid(
                    &["body", "type"],
                    format!(
                        "this destination is a {}; its type cannot change (create another)",
                        old.kind
                    ),
                ));
            }
            let key_given = body.config.as_ref().and_then(|c| c.get("key")).is_some();
            let mut d = from_input(&state, &app.id, body, now).await?;
            d.id = old.id.clone();
            d.uid = d.uid.or(old.uid.clone());
            d.created_at = old.created_at;
            d.failure_reason = old.failure_reason.clone();
            d.next_retry_at = old.next_retry_at;
            d.failures = old.failures;
            d.status = match d.status {
                // A replace that leaves it enabled keeps Herald's own state of it
                // (retrying, or paused until an operator enables it with PATCH).
                DestinationStatus::Enabled if old.status != DestinationStatus::Disabled => {
                    old.status
                }
                s => s,
            };
            keep_secret(&mut d, &old, key_given);
            let d = state.store.destination_update(d).await?;
            Ok((StatusCode::OK, Json(d.into())))
        }
        Err(StoreError::NotFound) => {
            validate::identifier(&destination_id, "destination_id")
                .map_err(|m| invalid(&["path", "destination_id"], m))?;
            let mut d = from_input(&state, &app.id, body, now).await?;
            if d.uid.is_none() && !destination_id.starts_with(ids::DESTINATION) {
                d.uid = Some(destination_id);
            }
            check(&d)?;
            let d = insert(&state, d).await?;
            Ok((StatusCode::CREATED, Json(d.into())))
        }
        Err(e) => Err(e.into()),
    }
}

/// A replaced destination keeps its secret (a poller its token; a fifoEndpoint its keys
/// unless the input gave one).
fn keep_secret(d: &mut Destination, old: &Destination, key_given: bool) {
    match Kind::parse(&d.kind) {
        Ok(Kind::Polling) => d.config = old.config.clone(),
        Ok(Kind::Fifo) if !key_given => {
            if let (Some(mut sink), Some(old_sink)) = (
                HttpSinkConfig::from_value(&d.config),
                HttpSinkConfig::from_value(&old.config),
            ) {
                sink.secrets = old_sink.secrets;
                d.config = sink.to_value();
            }
        }
        _ => {}
    }
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<DestinationPatch>,
) -> ApiResult<Json<DestinationOut>> {
    let mut d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    Kind::parse(&body.kind)?;
    if body.kind != d.kind {
        return Err(invalid(
            &["body", "type"],
            format!("this destination is a {}; its type cannot change", d.kind),
        ));
    }
    body.uid.apply(&mut d.uid);
    match status_in(body.status.as_deref())? {
        // Enabled by an operator: whatever stopped it (failures, an expired position)
        // is forgotten and it starts again from its position.
        Some(DestinationStatus::Enabled) if d.status != DestinationStatus::Enabled => {
            d.status = DestinationStatus::Enabled;
            d.failures = 0;
            d.failure_reason = None;
            d.next_retry_at = None;
        }
        Some(DestinationStatus::Disabled) => d.status = DestinationStatus::Disabled,
        _ => {}
    }
    if let Some(n) = body.batch_size {
        d.batch_size = n;
    }
    if let Some(n) = body.max_wait_secs {
        d.max_wait_secs = n;
    }
    check_list_len(
        body.event_types.as_set(),
        validate::MAX_EVENT_TYPES_PER_ENDPOINT,
        "eventTypes",
    )?;
    check_list_len(body.channels.as_set(), MAX_CHANNELS, "channels")?;
    body.event_types.apply(&mut d.event_types);
    d.event_types = filter_list(d.event_types);
    body.channels.apply(&mut d.channels);
    d.channels = filter_list(d.channels);
    if let Some(md) = body.metadata {
        d.metadata = md;
    }
    match body.payload_filter {
        Patch::Keep => {}
        Patch::Clear => d.payload_filter = None,
        Patch::Set(doc) => d.payload_filter = Some(crate::routes::endpoints::payload_filter(doc)?),
    }
    check(&d)?;
    d.config = config_for_patch(&state, &d, body.config).await?;
    d.updated_at = now_ms();
    Ok(Json(state.store.destination_update(d).await?.into()))
}

pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    state
        .store
        .destination_delete(&d.id)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The secret: a fifoEndpoint's signing secret (`whsec_…`), or a pollingEndpoint's
/// token (what its consumer sends as `Authorization: Bearer`).
pub async fn secret(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<DestinationSecretOut>> {
    let d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    let key = match Kind::parse(&d.kind)? {
        Kind::Polling => open_token(&state, &d)?,
        Kind::Fifo => {
            let sink = HttpSinkConfig::from_value(&d.config).ok_or(ApiError::Internal)?;
            let current = sink.secrets.first().ok_or(ApiError::Internal)?;
            endpoints::verification_key(&state, &current.key)?
        }
        Kind::Broker(name) => {
            return Err(ApiError::NotFound(format!(
                "a {name} destination has no secret of Herald's (its credentials are part of its config, never shown)"
            )))
        }
    };
    Ok(Json(DestinationSecretOut { key }))
}

/// Rotation. A fifoEndpoint gets a new signing key (given as `key`, or generated); the
/// old one signs beside it for `gracePeriodSeconds` (default a day). A pollingEndpoint
/// gets a new token; the old one stops at once unless `gracePeriodSeconds` says
/// otherwise (a leaked token must stop working now).
pub async fn rotate_secret(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<DestinationSecretOut>> {
    let body: RotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let mut d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    let now = now_ms();
    let kind = Kind::parse(&d.kind)?;
    let default_grace = match kind {
        Kind::Polling => 0,
        Kind::Fifo => DEFAULT_GRACE_SECONDS,
        Kind::Broker(name) => {
            return Err(invalid(
                &["body"],
                format!("a {name} destination has no secret of Herald's to rotate: PATCH its config with new credentials"),
            ))
        }
    };
    let grace = body.grace_period_seconds.unwrap_or(default_grace);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(invalid(
            &["body", "gracePeriodSeconds"],
            "gracePeriodSeconds must be between 0 and 604800",
        ));
    }
    match kind {
        Kind::Polling => {
            if body.key.is_some() {
                return Err(invalid(
                    &["body", "key"],
                    "a poller's token is made by Herald: leave key out",
                ));
            }
            let token = herald_core::token::generate_in(&state.config.environment);
            d.config = polling_config(&state, &token);
            d.updated_at = now;
            let d = state.store.destination_update(d).await?;
            store_token(&state, &d, &token, now + grace * 1000).await?;
            Ok(Json(DestinationSecretOut { key: token }))
        }
        Kind::Fifo => {
            let new_key = match &body.key {
                Some(k) => endpoints::parse_secret(k, "key")?,
                None => Secret::generate_hmac().expose(),
            };
            let mut sink = HttpSinkConfig::from_value(&d.config).ok_or(ApiError::Internal)?;
            sink.secrets = endpoints::rotated_keys(
                &state,
                std::mem::take(&mut sink.secrets),
                &new_key,
                grace,
                now,
            )?;
            d.config = sink.to_value();
            d.updated_at = now;
            state.store.destination_update(d).await?;
            let shown = Secret::parse(&new_key)
                .map_err(|_| ApiError::Internal)?
                .expose();
            Ok(Json(DestinationSecretOut { key: shown }))
        }
        Kind::Broker(_) => Err(ApiError::Internal),
    }
}

/// Reads a seek's target: a time (the first message at or after it comes next) or an
/// iterator (what comes after it comes next).
pub(crate) async fn seek_target(
    state: &ApiState,
    app_id: &str,
    after: Option<&str>,
    iterator: Option<&str>,
) -> ApiResult<StreamPos> {
    match (after, iterator) {
        (Some(t), None) => {
            let at = parse_rfc3339(t).ok_or_else(|| {
                invalid(&["body", "after"], "after must be an RFC 3339 timestamp")
            })?;
            Ok(state.store.stream_position_at(app_id, at).await?)
        }
        (None, Some(it)) => parse_iterator(it, &["body", "iterator"]),
        _ => Err(invalid(&["body"], "give either after (a time) or iterator")),
    }
}

pub(crate) fn parse_iterator(text: &str, loc: &[&str]) -> ApiResult<StreamPos> {
    StreamPos::parse(text).ok_or_else(|| {
        invalid(
            loc,
            "not an iterator of this stream (use one a read or a destination returned)",
        )
    })
}

/// Herald extension: moves the destination to a time or an iterator; a paused or
/// retrying destination starts again from there.
pub async fn seek(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<SeekIn>,
) -> ApiResult<Json<DestinationOut>> {
    let d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    let pos = seek_target(
        &state,
        &d.app_id,
        body.after.as_deref(),
        body.iterator.as_deref(),
    )
    .await?;
    let d = state
        .store
        .destination_seek(&d.id, pos, now_ms())
        .await
        .map_err(not_found)?;
    Ok(Json(d.into()))
}

/// Herald extension: how far the destination is behind its application's stream.
pub async fn stats(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<DestinationStatsOut>> {
    let d = visible_destination(&state, &caller, &app_id, &destination_id).await?;
    let lag = state
        .store
        .stream_lag(&d.app_id, d.position, d.event_types.clone())
        .await?;
    let lag_seconds = lag
        .oldest_created_at
        .map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
    Ok(Json(DestinationStatsOut {
        lag_messages: lag.messages,
        lag_seconds,
        current_iterator: d.position.encode(),
    }))
}
