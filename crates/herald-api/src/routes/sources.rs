//! Inbound sources: `/source`, `/source/{id}`, its destinations and its request log.
//! A source is an application of its own (id = the source id's application) whose
//! endpoints are the destinations, so messages, attempts, retries and replay of
//! forwarded webhooks are the ordinary v1 API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::{ids, inbound, time::format_rfc3339, time::now_ms, validate};
use herald_store::{Application, Endpoint, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apps::forbid_scoped;
use super::endpoints;
use crate::dto::{
    EndpointIn, EndpointOut, HmacSettings, InboundRequestOut, ListResponse, SourceDestinationOut,
    SourceIn, SourceOut,
};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// The metadata key that marks an application as a source's (its value: the source id).
pub(crate) const SOURCE_APP_MARK: &str = "herald.source";
/// Headers never passed along: hop-by-hop ones, the ones Herald sets itself, and the
/// signature headers of the standard it re-signs with.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "user-agent",
    "authorization",
    "cookie",
];

/// What is stored for a source (the store keeps it as opaque JSON).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SourceConfig {
    pub scheme: String,
    /// Sealed with the main key, like endpoint signing keys.
    pub secret: Option<String>,
    pub tolerance_secs: i64,
    pub hmac: Option<HmacSettings>,
    pub public_url: Option<String>,
    pub forward_headers: Vec<String>,
    /// Sealed.
    pub meta_verify_token: Option<String>,
    pub cloud_events_origins: Option<Vec<String>>,
    pub id_header: Option<String>,
    pub event_type_header: Option<String>,
    pub event_type_field: Option<String>,
    /// Body filters by destination endpoint id.
    #[serde(default)]
    pub body_filters: BTreeMap<String, serde_json::Map<String, Value>>,
}

impl SourceConfig {
    pub(crate) fn of(source: &Source) -> ApiResult<SourceConfig> {
        serde_json::from_value(source.config.clone()).map_err(|e| {
            tracing::error!(source = %source.id, error = %e, "unreadable source config");
            ApiError::Internal
        })
    }

    /// The generic scheme's settings with their defaults.
    pub(crate) fn generic(&self) -> inbound::GenericHmac {
        let d = inbound::GenericHmac::default();
        let h = self.hmac.clone().unwrap_or_default();
        inbound::GenericHmac {
            header: h.header.unwrap_or(d.header),
            prefix: h.prefix.unwrap_or(d.prefix),
            encoding: h.encoding.unwrap_or(d.encoding),
            algorithm: h.algorithm.unwrap_or(d.algorithm),
            timestamp_header: h.timestamp_header,
        }
    }
}

/// Checks a source's settings and turns them into what is stored (secrets sealed).
fn config_from(state: &ApiState, body: &SourceIn) -> ApiResult<SourceConfig> {
    if body.name.trim().is_empty() || body.name.len() > validate::MAX_NAME_LEN {
        return Err(invalid(
            &["body", "name"],
            "name must be 1 to 256 characters",
        ));
    }
    let scheme = body.scheme.as_str();
    if !inbound::SCHEMES.contains(&scheme) {
        return Err(invalid(
            &["body", "scheme"],
            format!("unknown scheme; known: {}", inbound::SCHEMES.join(", ")),
        ));
    }
    let secret = body.secret.as_deref().filter(|s| !s.is_empty());
    if scheme != "none" && secret.is_none() {
        return Err(invalid(
            &["body", "secret"],
            format!("the {scheme} scheme needs the provider's secret"),
        ));
    }
    if secret.is_some_and(|s| s.len() > 1024) {
        return Err(invalid(
            &["body", "secret"],
            "secret is at most 1024 characters",
        ));
    }
    if let Some(secret) = secret {
        inbound::check_secret(scheme, secret).map_err(|why| invalid(&["body", "secret"], why))?;
    }
    if body.hmac.is_some() && !scheme.starts_with("hmac") {
        return Err(invalid(
            &["body", "hmac"],
            format!("hmac settings apply to the hmac and hmac-sha256 schemes, not {scheme}"),
        ));
    }
    let tolerance = body.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
    if tolerance < 1 {
        return Err(invalid(
            &["body", "toleranceSecs"],
            "toleranceSecs must be at least 1",
        ));
    }
    if let Some(h) = &body.hmac {
        if h.algorithm
            .as_deref()
            .is_some_and(|a| !["sha1", "sha256", "sha512"].contains(&a))
        {
            return Err(invalid(
                &["body", "hmac", "algorithm"],
                "algorithm is sha1, sha256 or sha512",
            ));
        }
        if h.encoding
            .as_deref()
            .is_some_and(|e| !["hex", "base64"].contains(&e))
        {
            return Err(invalid(
                &["body", "hmac", "encoding"],
                "encoding is hex or base64",
            ));
        }
    }
    if let Some(url) = &body.public_url {
        url::Url::parse(url)
            .map_err(|_| invalid(&["body", "publicUrl"], "publicUrl must be an absolute URL"))?;
    }
    let forward_headers = match &body.forward_headers {
        Some(list) => {
            for name in list {
                let lower = name.to_ascii_lowercase();
                let refused = NOT_FORWARDED.contains(&lower.as_str())
                    || lower.starts_with("webhook-")
                    || lower.starts_with("svix-");
                if name.is_empty() || name.len() > 256 || refused {
                    return Err(invalid(
                        &["body", "forwardHeaders"],
                        format!("'{name}' cannot be forwarded (hop-by-hop, credentials, or set by Herald)"),
                    ));
                }
            }
            list.iter().map(|n| n.to_ascii_lowercase()).collect()
        }
        None => crate::inbound::default_forward_headers(scheme),
    };
    Ok(SourceConfig {
        scheme: scheme.to_string(),
        secret: secret.map(|s| state.config.sealer.seal(s)),
        tolerance_secs: tolerance,
        hmac: body.hmac.clone(),
        public_url: body.public_url.clone(),
        forward_headers,
        meta_verify_token: body
            .meta_verify_token
            .as_deref()
            .map(|t| state.config.sealer.seal(t)),
        cloud_events_origins: body.cloud_events_origins.clone(),
        id_header: body.id_header.clone(),
        event_type_header: body.event_type_header.clone(),
        event_type_field: body.event_type_field.clone(),
        body_filters: BTreeMap::new(),
    })
}

/// The source as the API shows it, with its destinations read now.
async fn source_out(state: &ApiState, source: Source) -> ApiResult<SourceOut> {
    let config = SourceConfig::of(&source)?;
    let endpoints = state
        .store
        .endpoint_list(
            &source.app_id,
            herald_store::ListQuery {
                limit: 250,
                iterator: None,
                descending: false,
            },
        )
        .await?;
    let destinations = endpoints
        .data
        .into_iter()
        .map(|ep| SourceDestinationOut {
            // Only a destination added before body filters became payload filters has
            // one here (its gateway channel still applies it).
            body_filter: config
                .body_filters
                .get(&ep.id)
                .map(|f| Value::Object(f.clone())),
            payload_filter: ep.payload_filter.map(|f| f.doc),
            endpoint_id: ep.id,
            url: ep.url,
            filter_types: ep.event_types,
            disabled: ep.disabled,
        })
        .collect();
    Ok(SourceOut {
        ingest_url: format!(
            "{}/in/{}",
            state.config.public_url.trim_end_matches('/'),
            source.id
        ),
        id: source.id,
        name: source.name,
        app_id: source.app_id,
        scheme: config.scheme,
        tolerance_secs: config.tolerance_secs,
        forward_headers: config.forward_headers,
        destinations,
        created_at: format_rfc3339(source.created_at),
        updated_at: format_rfc3339(source.updated_at),
    })
}

/// Creates one destination (an endpoint of the source's application) from endpoint
/// fields plus an optional `bodyFilter`; records the filter in `config`.
async fn add_destination(
    state: &ApiState,
    source: &Source,
    mut spec: Value,
    index: usize,
) -> ApiResult<Endpoint> {
    let loc = index.to_string();
    let obj = spec.as_object_mut().ok_or_else(|| {
        invalid(
            &["body", "destinations", &loc],
            "a destination is an object",
        )
    })?;
    let body_filter =
        match obj.remove("bodyFilter") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if !map.is_empty() => Some(map),
            Some(_) => return Err(invalid(
                &["body", "destinations", &loc, "bodyFilter"],
                "bodyFilter maps dotted JSON paths to the value (or list of values) required there",
            )),
        };
    let endpoint_in: EndpointIn = serde_json::from_value(spec)
        .map_err(|e| invalid(&["body", "destinations", &loc], e.to_string()))?;
    let mut ep = endpoints::from_input(state, &source.app_id, endpoint_in, now_ms())?;
    if let Some(filter) = body_filter {
        let at = ["body", "destinations", &loc, "bodyFilter"];
        if ep.payload_filter.is_some() {
            return Err(invalid(&at, "give bodyFilter or payloadFilter, not both"));
        }
        // The older form, now said in the filter language: fan-out applies it.
        let doc = payload_filter_of(&filter);
        ep.payload_filter =
            Some(herald_store::PayloadFilter::new(doc).map_err(|e| invalid(&at, e.to_string()))?);
    }
    endpoints::check(state, &ep).await?;
    let ep = state
        .store
        .endpoint_insert(ep, state.config.max_endpoints_per_app)
        .await?;
    Ok(ep)
}

/// A `bodyFilter` (dotted paths to the value, or one of a list of values, required
/// there) as a payload filter: `{"$and": [{"payload": {"a": {"b": {"$eq": v}}}}, …]}`,
/// a list becoming `$in`. Numeric path segments index arrays in both.
fn payload_filter_of(body_filter: &serde_json::Map<String, Value>) -> Value {
    let conditions: Vec<Value> = body_filter
        .iter()
        .map(|(path, want)| {
            let mut cond = match want {
                Value::Array(options) => serde_json::json!({ "$in": options }),
                other => serde_json::json!({ "$eq": other }),
            };
            for key in path.rsplit('.') {
                cond = Value::Object(serde_json::Map::from_iter([(key.to_string(), cond)]));
            }
            serde_json::json!({ "payload": cond })
        })
        .collect();
    serde_json::json!({ "$and": conditions })
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<SourceIn>,
) -> ApiResult<(StatusCode, Json<SourceOut>)> {
    forbid_scoped(&caller)?;
    let config = config_from(&state, &body)?;
    let now = now_ms();
    let id = ids::generate(ids::SOURCE);
    let app = Application {
        id: ids::generate(ids::APP),
        uid: Some(id.clone()),
        name: format!("source: {}", body.name),
        throttle_rate: None,
        metadata: BTreeMap::from([(SOURCE_APP_MARK.to_string(), id.clone())]),
        created_at: now,
        updated_at: now,
    };
    let source = Source {
        id,
        app_id: app.id.clone(),
        name: body.name.clone(),
        config: serde_json::to_value(&config).expect("the config serializes"),
        created_at: now,
        updated_at: now,
    };
    let source_row = state.store.source_insert(app, source.clone()).await?;
    for (i, spec) in body
        .destinations
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if let Err(e) = add_destination(&state, &source_row, spec, i).await {
            // No half-made source: a bad destination undoes the whole creation.
            let _ = state.store.source_delete(&source_row.id).await;
            return Err(e);
        }
    }
    Ok((StatusCode::CREATED, Json(source_out(&state, source).await?)))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<SourceOut>>> {
    forbid_scoped(&caller)?;
    let page = state.store.source_list(q.list(false)?).await?;
    let mut data = Vec::with_capacity(page.data.len());
    for source in page.data {
        data.push(source_out(&state, source).await?);
    }
    Ok(Json(ListResponse {
        data,
        iterator: page.iterator,
        prev_iterator: page.prev_iterator,
        done: page.done,
    }))
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(source_id): Path<String>,
) -> ApiResult<Json<SourceOut>> {
    forbid_scoped(&caller)?;
    let source = state.store.source_get(&source_id).await?;
    Ok(Json(source_out(&state, source).await?))
}

/// PUT: replace the source's settings; its destinations stay (add more with
/// `POST /source/{id}/destination`, change them with the endpoint API).
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(source_id): Path<String>,
    JsonBody(body): JsonBody<SourceIn>,
) -> ApiResult<Json<SourceOut>> {
    forbid_scoped(&caller)?;
    if body.destinations.is_some() {
        return Err(invalid(
            &["body", "destinations"],
            "destinations are added with POST /api/v1/source/{id}/destination",
        ));
    }
    let mut source = state.store.source_get(&source_id).await?;
    let old = SourceConfig::of(&source)?;
    let mut config = config_from(&state, &body)?;
    config.body_filters = old.body_filters;
    source.name = body.name;
    source.config = serde_json::to_value(&config).expect("the config serializes");
    source.updated_at = now_ms();
    let source = state.store.source_update(source).await?;
    Ok(Json(source_out(&state, source).await?))
}

pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(source_id): Path<String>,
) -> ApiResult<StatusCode> {
    forbid_scoped(&caller)?;
    let source = state.store.source_get(&source_id).await?;
    state.store.source_delete(&source.id).await?;
    state.evict_app(&source.app_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a destination: endpoint fields plus an optional `bodyFilter`.
pub async fn add(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(source_id): Path<String>,
    JsonBody(spec): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    forbid_scoped(&caller)?;
    let source = state.store.source_get(&source_id).await?;
    let ep = add_destination(&state, &source, spec, 0).await?;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

/// The requests that arrived at the source, accepted and refused, newest first.
pub async fn requests(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(source_id): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<InboundRequestOut>>> {
    forbid_scoped(&caller)?;
    let source = state.store.source_get(&source_id).await?;
    let page = state.store.inbound_list(&source.id, q.list(true)?).await?;
    Ok(Json(ListResponse::from_page(page, InboundRequestOut::from)))
}
