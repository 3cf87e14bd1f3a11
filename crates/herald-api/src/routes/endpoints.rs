//! Endpoints: CRUD, secret and rotation, custom headers, stats, send-example, recover.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::secret::Secret;
use herald_core::time::{format_rfc3339, now_ms};
use herald_core::{ids, validate};
use herald_store::{Endpoint, NewMessage, StoredSecret, Task};

use super::{visible_app, visible_endpoint};
use crate::dto::*;
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

pub(crate) const MAX_CHANNELS: usize = 10;
pub(crate) const MAX_GRACE_SECONDS: i64 = 604_800;
pub(crate) const DEFAULT_GRACE_SECONDS: i64 = 86_400;
/// Keys kept per endpoint (current plus those in a grace period).
const MAX_KEYS: usize = 5;

pub(crate) fn parse_secret(text: &str, field: &str) -> ApiResult<String> {
    // Svix also accepts a bare base64 HMAC key without the prefix.
    let candidate = if text.starts_with("whsec_") || text.starts_with("whsk_") {
        text.to_string()
    } else {
        format!("whsec_{text}")
    };
    let secret = Secret::parse(&candidate).map_err(|e| invalid(&["body", field], e.to_string()))?;
    Ok(secret.expose())
}

/// Opens a sealed signing key. Failing to is an operator's problem (a missing main
/// key), logged with its cause; the caller sees a 500 that reveals nothing.
fn open_key(state: &ApiState, sealed: &str) -> ApiResult<String> {
    state.config.sealer.open(sealed).map_err(|e| {
        tracing::error!(error = %e, "cannot open an endpoint's signing key");
        ApiError::Internal
    })
}

/// Seals the values of sensitive custom headers (`Authorization`, `Cookie`, tokens,
/// API keys) before they are stored, as signing keys are: the database files never
/// hold them in the clear. The engine opens them to send a delivery.
pub(crate) fn seal_sensitive_headers(state: &ApiState, headers: &mut BTreeMap<String, String>) {
    for (name, value) in headers.iter_mut() {
        if validate::is_sensitive_header(name) && !herald_core::sealing::is_sealed(value) {
            *value = state.config.sealer.seal(value);
        }
    }
}

pub(crate) fn check_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > validate::MAX_HEADERS {
        return Err(invalid(
            &["body", "headers"],
            format!("at most {} custom headers", validate::MAX_HEADERS),
        ));
    }
    for (k, v) in headers {
        validate::custom_header_name(k).map_err(|m| invalid(&["body", "headers", k], m))?;
        validate::custom_header_value(k, v).map_err(|m| invalid(&["body", "headers", k], m))?;
    }
    Ok(())
}

/// Checks every field of an endpoint about to be saved.
pub(crate) async fn check(state: &ApiState, ep: &Endpoint) -> ApiResult<()> {
    let url = validate::endpoint_url(&ep.url).map_err(|m| invalid(&["body", "url"], m))?;
    if state.config.https_only && url.scheme() != "https" {
        return Err(invalid(
            &["body", "url"],
            "url must be https on this server (https_only)",
        ));
    }
    // A literal address that deliveries would refuse is refused now; host names are
    // checked when deliveries resolve them.
    state
        .config
        .destinations
        .check_url(&url)
        .map_err(|m| invalid(&["body", "url"], m))?;
    if ep.description.len() > validate::MAX_DESCRIPTION_LEN {
        return Err(invalid(
            &["body", "description"],
            "description is longer than 4096 characters",
        ));
    }
    if let Some(uid) = &ep.uid {
        validate::uid(uid, ids::ENDPOINT).map_err(|m| invalid(&["body", "uid"], m))?;
    }
    if let Some(channels) = &ep.channels {
        if channels.is_empty() || channels.len() > MAX_CHANNELS {
            return Err(invalid(
                &["body", "channels"],
                "channels holds 1 to 10 channels (omit it for all)",
            ));
        }
        for c in channels {
            validate::channel(c).map_err(|m| invalid(&["body", "channels"], m))?;
        }
    }
    if let Some(types) = &ep.event_types {
        if types.is_empty() || types.len() > validate::MAX_EVENT_TYPES_PER_ENDPOINT {
            return Err(invalid(
                &["body", "filterTypes"],
                "filterTypes holds 1 to 1000 event types (omit it for all)",
            ));
        }
        let missing = state.store.event_types_missing(types.clone()).await?;
        // An inbound source's destinations filter on the provider's own event names,
        // which are not in the catalog.
        if !missing.is_empty() && !is_source_app(state, &ep.app_id).await? {
            return Err(invalid(
                &["body", "filterTypes"],
                format!("unknown event types: {}", missing.join(", ")),
            ));
        }
    }
    if ep.throttle_rate == Some(0) {
        return Err(invalid(
            &["body", "throttleRate"],
            "throttleRate must be at least 1 (omit it for no limit)",
        ));
    }
    validate::metadata(&ep.metadata).map_err(|m| invalid(&["body", "metadata"], m))?;
    check_headers(&ep.headers)
}

async fn is_source_app(state: &ApiState, app_id: &str) -> ApiResult<bool> {
    let app = state.store.app_get(app_id).await?;
    Ok(app
        .metadata
        .contains_key(crate::routes::sources::SOURCE_APP_MARK))
}

fn dedup(v: Option<Vec<String>>) -> Option<Vec<String>> {
    v.map(|mut v| {
        v.sort();
        v.dedup();
        v
    })
}

/// `eventTypes` and `filterTypes` are one field under two names: given both, they must
/// say the same (the one not kept would otherwise go unchecked).
fn one_field_two_names(
    event_types: Option<&Vec<String>>,
    filter_types: Option<&Vec<String>>,
) -> ApiResult<()> {
    match (event_types, filter_types) {
        (Some(a), Some(b)) if a != b => Err(invalid(
            &["body", "filterTypes"],
            "filterTypes and eventTypes are one field under two names: give one of them",
        )),
        _ => Ok(()),
    }
}

/// The list limits hold for the lists as given: dropping duplicates first would let an
/// over-long list through.
fn check_list_lengths(
    event_types: Option<&Vec<String>>,
    channels: Option<&Vec<String>>,
) -> ApiResult<()> {
    if event_types.is_some_and(|t| t.len() > validate::MAX_EVENT_TYPES_PER_ENDPOINT) {
        return Err(invalid(
            &["body", "filterTypes"],
            "filterTypes holds 1 to 1000 event types (omit it for all)",
        ));
    }
    if channels.is_some_and(|c| c.len() > MAX_CHANNELS) {
        return Err(invalid(
            &["body", "channels"],
            "channels holds 1 to 10 channels (omit it for all)",
        ));
    }
    Ok(())
}

/// Checks a payload filter: a 422 names the bad operator and where it is.
pub(crate) fn payload_filter(doc: serde_json::Value) -> ApiResult<herald_store::PayloadFilter> {
    herald_store::PayloadFilter::new(doc).map_err(|e| {
        let mut loc = vec!["body", "payloadFilter"];
        loc.extend(e.path.split('.').filter(|p| !p.is_empty()));
        invalid(&loc, e.to_string())
    })
}

/// A new endpoint from its input; its signing key is sealed (see `herald_core::sealing`).
pub(crate) fn from_input(
    state: &ApiState,
    app_id: &str,
    body: EndpointIn,
    now: i64,
) -> ApiResult<Endpoint> {
    one_field_two_names(body.event_types.as_ref(), body.filter_types.as_ref())?;
    check_list_lengths(
        body.event_types.as_ref().or(body.filter_types.as_ref()),
        body.channels.as_ref(),
    )?;
    crate::routes::apps::check_rate_limit(body.rate_limit)?;
    let key = match &body.secret {
        Some(s) => parse_secret(s, "secret")?,
        None => Secret::generate_hmac().expose(),
    };
    Ok(Endpoint {
        id: ids::generate(ids::ENDPOINT),
        app_id: app_id.to_string(),
        uid: body.uid,
        url: body.url,
        description: body.description.unwrap_or_default(),
        disabled: body.disabled.unwrap_or(false),
        event_types: dedup(body.event_types.or(body.filter_types)),
        channels: dedup(body.channels),
        throttle_rate: body.throttle_rate.or(body.rate_limit),
        metadata: body.metadata.unwrap_or_default(),
        headers: body.headers.unwrap_or_default(),
        secrets: vec![StoredSecret {
            key: state.config.sealer.seal(&key),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        ordered: body.ordered.unwrap_or(false),
        payload_filter: body.payload_filter.map(payload_filter).transpose()?,
        transformation: None,
    })
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let list = q.list(false)?;
    let app = visible_app(&state, &caller, &app_id).await?;
    let page = state.store.endpoint_list(&app.id, list).await?;
    Ok(Json(ListResponse::from_page(page, EndpointOut::from)))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = visible_app(&state, &caller, &app_id).await?;
    let mut ep = from_input(&state, &app.id, body, now_ms())?;
    check(&state, &ep).await?;
    seal_sensitive_headers(&state, &mut ep.headers);
    let ep = state
        .store
        .endpoint_insert(ep, state.config.max_endpoints_per_app)
        .await?;
    announce(&state, "endpoint.created", &app, &ep).await;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

/// Sends an operational webhook about an endpoint (not for the operational
/// application's own endpoints). A failure to announce does not fail the request.
async fn announce(
    state: &ApiState,
    event_type: &str,
    app: &herald_store::Application,
    ep: &Endpoint,
) {
    let Some(op_app) = &state.config.operational_app_id else {
        return;
    };
    if &app.id == op_app {
        return;
    }
    let data = serde_json::json!({
        "appId": app.id, "appUid": app.uid, "endpointId": ep.id, "endpointUid": ep.uid,
    });
    let now = now_ms();
    let new = herald_store::operational::message(
        op_app,
        event_type,
        data,
        state.hand_off.lease_until(now),
    );
    match state.store.message_create(new, now).await {
        Ok((_, jobs)) => state.hand_off.hand_off(jobs),
        Err(e) => tracing::warn!(error = %e, event_type, "could not send an operational webhook"),
    }
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    Ok(Json(
        visible_endpoint(&state, &caller, &app_id, &endpoint_id)
            .await?
            .1
            .into(),
    ))
}

/// PUT: replace the endpoint's settings (its secret and headers stay unless given), or
/// create it when it does not exist.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = visible_app(&state, &caller, &app_id).await?;
    let now = now_ms();
    match state.store.endpoint_get(&app.id, &endpoint_id).await {
        Ok(old) => {
            let secret_given = body.secret.is_some();
            let mut ep = from_input(&state, &app.id, body, now)?;
            ep.id = old.id;
            ep.uid = ep.uid.or(old.uid);
            ep.created_at = old.created_at;
            if ep.headers.is_empty() {
                ep.headers = old.headers;
            }
            if !secret_given {
                ep.secrets = old.secrets;
            }
            check(&state, &ep).await?;
            seal_sensitive_headers(&state, &mut ep.headers);
            let ep = state.store.endpoint_update(ep).await?;
            announce(&state, "endpoint.updated", &app, &ep).await;
            Ok((StatusCode::OK, Json(ep.into())))
        }
        Err(herald_store::StoreError::NotFound) => {
            // Created under the path's name: it must be one a uid could be.
            validate::identifier(&endpoint_id, "endpoint_id")
                .map_err(|m| invalid(&["path", "endpoint_id"], m))?;
            let mut ep = from_input(&state, &app.id, body, now)?;
            if ep.uid.is_none() && !endpoint_id.starts_with(ids::ENDPOINT) {
                ep.uid = Some(endpoint_id);
            }
            check(&state, &ep).await?;
            seal_sensitive_headers(&state, &mut ep.headers);
            let ep = state
                .store
                .endpoint_insert(ep, state.config.max_endpoints_per_app)
                .await?;
            announce(&state, "endpoint.created", &app, &ep).await;
            Ok((StatusCode::CREATED, Json(ep.into())))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let (app, mut ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    if let Some(url) = body.url {
        ep.url = url;
    }
    if let Some(d) = body.description {
        ep.description = d;
    }
    body.uid.apply(&mut ep.uid);
    if let Some(d) = body.disabled {
        ep.disabled = d;
    }
    if let Some(o) = body.ordered {
        ep.ordered = o;
    }
    match body.payload_filter {
        Patch::Keep => {}
        Patch::Clear => ep.payload_filter = None,
        Patch::Set(doc) => ep.payload_filter = Some(payload_filter(doc)?),
    }
    check_list_lengths(
        body.event_types.as_set().or(body.filter_types.as_set()),
        body.channels.as_set(),
    )?;
    if let (Patch::Set(a), Patch::Set(b)) = (&body.event_types, &body.filter_types) {
        one_field_two_names(Some(a), Some(b))?;
    }
    if let Patch::Set(rate) = body.rate_limit {
        crate::routes::apps::check_rate_limit(Some(rate))?;
    }
    body.event_types
        .or(body.filter_types)
        .apply(&mut ep.event_types);
    ep.event_types = dedup(ep.event_types);
    body.channels.apply(&mut ep.channels);
    ep.channels = dedup(ep.channels);
    body.throttle_rate
        .or(body.rate_limit)
        .apply(&mut ep.throttle_rate);
    if let Some(md) = body.metadata {
        ep.metadata = md;
    }
    if let Some(secret) = body.secret {
        ep.secrets = vec![StoredSecret {
            key: state.config.sealer.seal(&parse_secret(&secret, "secret")?),
            expires_at: None,
        }];
    }
    ep.updated_at = now_ms();
    check(&state, &ep).await?;
    seal_sensitive_headers(&state, &mut ep.headers);
    let ep = state.store.endpoint_update(ep).await?;
    announce(&state, "endpoint.updated", &app, &ep).await;
    Ok(Json(ep.into()))
}

pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (app, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    state.store.endpoint_delete(&ep.id).await?;
    announce(&state, "endpoint.deleted", &app, &ep).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn secret(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<SecretOut>> {
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let current = ep.secrets.first().ok_or(ApiError::Internal)?;
    Ok(Json(SecretOut {
        key: verification_key(&state, &current.key)?,
    }))
}

/// Replaces the signing key; the old one keeps signing (beside the new) for the grace period.
/// The signing keys after a rotation to `new_key` (in the clear), newest first: the key
/// being replaced signs beside it for `grace_secs`, keys already in a grace period keep
/// theirs, and at most `MAX_KEYS` are kept. Endpoints and HTTP destinations share it.
pub(crate) fn rotated_keys(
    state: &ApiState,
    old_keys: Vec<StoredSecret>,
    new_key: &str,
    grace_secs: i64,
    now: i64,
) -> ApiResult<Vec<StoredSecret>> {
    let mut keys = vec![StoredSecret {
        key: state.config.sealer.seal(new_key),
        expires_at: None,
    }];
    for old in old_keys {
        let expires_at = old.expires_at.unwrap_or(now + grace_secs * 1000);
        if expires_at > now && open_key(state, &old.key)? != new_key {
            keys.push(StoredSecret {
                key: old.key,
                expires_at: Some(expires_at),
            });
        }
    }
    keys.truncate(MAX_KEYS);
    Ok(keys)
}

/// What a receiver verifies with, for the current key sealed as `sealed`: the secret
/// itself for HMAC, the public key for ed25519.
pub(crate) fn verification_key(state: &ApiState, sealed: &str) -> ApiResult<String> {
    let plain = open_key(state, sealed)?;
    let secret = Secret::parse(&plain).map_err(|_| ApiError::Internal)?;
    Ok(secret.verification_key())
}

pub async fn rotate_secret(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SecretOut>> {
    let body: RotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let grace = body.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(invalid(
            &["body", "gracePeriodSeconds"],
            "gracePeriodSeconds must be between 0 and 604800",
        ));
    }
    let new_key = match &body.key {
        Some(k) => parse_secret(k, "key")?,
        None => Secret::generate_hmac().expose(),
    };
    let (_, mut ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let now = now_ms();
    ep.secrets = rotated_keys(
        &state,
        std::mem::take(&mut ep.secrets),
        &new_key,
        grace,
        now,
    )?;
    ep.updated_at = now;
    state.store.endpoint_update(ep).await?;
    let shown = Secret::parse(&new_key)
        .map_err(|_| ApiError::Internal)?
        .expose();
    Ok(Json(SecretOut { key: shown }))
}

pub async fn headers(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<HeadersOut>> {
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let (sensitive, shown): (Vec<_>, Vec<_>) = ep
        .headers
        .into_iter()
        .partition(|(k, _)| validate::is_sensitive_header(k));
    Ok(Json(HeadersOut {
        headers: shown.into_iter().collect(),
        sensitive: sensitive.into_iter().map(|(k, _)| k).collect(),
    }))
}

pub async fn put_headers(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<HeadersIn>,
) -> ApiResult<StatusCode> {
    check_headers(&body.headers)?;
    let (_, mut ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    ep.headers = body.headers;
    seal_sensitive_headers(&state, &mut ep.headers);
    ep.updated_at = now_ms();
    state.store.endpoint_update(ep).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn patch_headers(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<HeadersPatchIn>,
) -> ApiResult<StatusCode> {
    // Every name given must be one a header could have, removals included.
    if body.headers.len() > validate::MAX_HEADERS {
        return Err(invalid(
            &["body", "headers"],
            format!("at most {} custom headers", validate::MAX_HEADERS),
        ));
    }
    for k in body.headers.keys() {
        validate::custom_header_name(k).map_err(|m| invalid(&["body", "headers", k], m))?;
    }
    let (_, mut ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    for k in body.delete_headers {
        ep.headers.remove(&k);
    }
    for (k, v) in body.headers {
        match v {
            Some(v) => {
                ep.headers.insert(k, v);
            }
            None => {
                ep.headers.remove(&k);
            }
        }
    }
    check_headers(&ep.headers)?;
    seal_sensitive_headers(&state, &mut ep.headers);
    ep.updated_at = now_ms();
    state.store.endpoint_update(ep).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<StatsOut>> {
    let now = now_ms();
    let since = q.timestamp("since")?.unwrap_or(now - 28 * 86_400_000);
    let until = q.timestamp("until")?.unwrap_or(now + 1);
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let s = state.store.endpoint_stats(&ep.id, since, until).await?;
    Ok(Json(StatsOut {
        success: s.success,
        pending: s.pending,
        sending: s.sending,
        fail: s.fail,
        canceled: s.canceled,
    }))
}

/// An example payload for an event type: example number `index` of its schema, or, for
/// a schema without examples, a small object naming the type (index 0 only).
pub(crate) fn example_payload(et: &herald_store::EventType, index: usize) -> Option<String> {
    let examples: Vec<serde_json::Value> = et
        .schemas
        .as_ref()
        .and_then(|s| {
            s.as_object()?
                .values()
                .find_map(|schema| schema.get("examples")?.as_array().cloned())
        })
        .unwrap_or_default();
    match examples.get(index) {
        Some(v) if v.is_object() => Some(v.to_string()),
        Some(_) => None,
        None if examples.is_empty() && index == 0 => {
            Some(serde_json::json!({ "eventType": et.name, "example": true }).to_string())
        }
        None => None,
    }
}

pub async fn send_example(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<SendExampleIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let (app, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let et = state
        .store
        .event_type_get(&body.event_type)
        .await
        .map_err(|_| {
            invalid(
                &["body", "eventType"],
                format!("unknown event type '{}'", body.event_type),
            )
        })?;
    let payload = match body.payload {
        Some(p) if p.get().trim_start().starts_with('{') => p.get().to_string(),
        Some(_) => {
            return Err(invalid(
                &["body", "payload"],
                "payload must be a JSON object",
            ))
        }
        None => example_payload(&et, body.example_index.unwrap_or(0)).ok_or_else(|| {
            invalid(
                &["body", "exampleIndex"],
                "the event type has no example with that index",
            )
        })?,
    };
    let now = now_ms();
    let new = NewMessage {
        app_id: app.id,
        event_id: None,
        event_type: et.name.clone(),
        channels: None,
        payload,
        retention_hours: 90 * 24,
        deliver_at: None,
        only_endpoint: Some(ep.id),
        headers: Vec::new(),
        app_throttle_rate: app.throttle_rate,
        ordering_key: None,
        lease_until: state.hand_off.lease_until(now),
    };
    let (message, jobs) = state.store.message_create(new, now).await?;
    state.hand_off.hand_off(jobs);
    Ok((StatusCode::ACCEPTED, Json(message.into())))
}

/// Re-sends every delivery to this endpoint that failed in the window.
pub async fn recover(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RecoverIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let now = now_ms();
    let (since, until) = super::tasks::window(&body, now)?;
    let (app, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let count = state
        .store
        .recover(&ep.id, since, until, now, false)
        .await?;
    let task = Task {
        id: ids::generate(ids::TASK),
        kind: "endpoint.recover".into(),
        status: "finished".into(),
        data: serde_json::json!({ "appId": app.id, "endpointId": ep.id, "messages": count }),
        updated_at: now,
    };
    let task = state.store.task_save(task).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TaskOut {
            id: task.id,
            status: task.status,
            task: task.kind,
            updated_at: format_rfc3339(task.updated_at),
        }),
    ))
}
