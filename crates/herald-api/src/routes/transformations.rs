//! An endpoint's JavaScript transformation: read it, set it (checked before it is
//! saved), and try code on a payload without saving it. The script itself runs in
//! `herald-transform`'s sandbox, on the pool the engine shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::time::{format_rfc3339, now_ms};
use herald_store::Transformation;
use herald_transform::{Method, Outcome, Request, ScriptError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::visible_endpoint;
use crate::dto::Patch;
use crate::error::{invalid, ApiResult};
use crate::extract::JsonBody;
use crate::state::{ApiState, Caller};

/// Limits, in characters as JSON Schema counts them (`contract.rs` states them).
pub(crate) const MAX_CODE_CHARS: usize = 65_536;
pub(crate) const MAX_VARIABLES: usize = 32;
pub(crate) const MAX_VARIABLE_NAME: usize = 64;
pub(crate) const MAX_VARIABLE_VALUE: usize = 4096;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformationOut {
    /// The script (`function handler(webhook) { … }`), if one was set.
    pub code: Option<String>,
    pub enabled: bool,
    /// Values the script gets as `handler`'s second argument.
    pub variables: BTreeMap<String, String>,
    pub updated_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformationPatch {
    /// The script; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code: Patch<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformationTryIn {
    pub code: String,
    /// The event type the script sees; its first example is the payload when none is
    /// given.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Any JSON value.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformationTryOut {
    /// `send`, `cancel` or `error`.
    pub outcome: &'static str,
    pub method: Option<&'static str>,
    pub url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    pub headers: Option<BTreeMap<String, String>>,
    pub error: Option<TransformationErrorOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformationErrorOut {
    /// A stable name: compile_error, thrown, timeout, out_of_memory, stack_overflow,
    /// bad_return, output_too_large, internal.
    pub code: &'static str,
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl From<ScriptError> for TransformationErrorOut {
    fn from(e: ScriptError) -> Self {
        TransformationErrorOut {
            code: e.kind.code(),
            message: e.message,
            line: e.line,
            column: e.column,
        }
    }
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<TransformationOut>> {
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    Ok(Json(match ep.transformation.as_deref() {
        Some(t) => TransformationOut {
            code: t.code.clone(),
            enabled: t.enabled,
            variables: t.variables.clone(),
            updated_at: Some(format_rfc3339(t.updated_at)),
        },
        None => TransformationOut {
            code: None,
            enabled: false,
            variables: BTreeMap::new(),
            updated_at: None,
        },
    }))
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<TransformationPatch>,
) -> ApiResult<StatusCode> {
    if let Some(vars) = &body.variables {
        check_variables(vars)?;
    }
    if let Patch::Set(code) = &body.code {
        check_code(&state, code).await?;
    }
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let t = apply(ep.transformation.as_deref(), body);
    state
        .store
        .endpoint_set_transformation(&ep.id, Some(t))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationTransformationOut {
    /// The batch script (`function handler(input)`), if one was set.
    pub code: Option<String>,
    pub enabled: bool,
    pub variables: BTreeMap<String, String>,
    pub updated_at: Option<String>,
}

/// A destination's batch transformation. Only a fifoEndpoint has one: a poller's
/// consumers read messages as they are.
pub async fn destination_get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<DestinationTransformationOut>> {
    let d =
        super::destinations::visible_destination(&state, &caller, &app_id, &destination_id).await?;
    let t = d.transformation.as_deref();
    Ok(Json(DestinationTransformationOut {
        code: t.and_then(|t| t.code.clone()),
        enabled: t.is_some_and(|t| t.enabled),
        variables: t.map(|t| t.variables.clone()).unwrap_or_default(),
        updated_at: t.map(|t| format_rfc3339(t.updated_at)),
    }))
}

/// Sets it (Svix's `DestinationTransformIn` is `{code}`; Herald also takes `enabled`
/// and `variables`); answers `{}`.
pub async fn destination_patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, destination_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<TransformationPatch>,
) -> ApiResult<Json<serde_json::Value>> {
    if let Some(vars) = &body.variables {
        check_variables(vars)?;
    }
    if let Patch::Set(code) = &body.code {
        check_code(&state, code).await?;
    }
    let d =
        super::destinations::visible_destination(&state, &caller, &app_id, &destination_id).await?;
    if d.kind != "fifoEndpoint" && d.kind != "amazonS3" {
        return Err(invalid(
            &["body", "code"],
            format!(
                "a {} has no transformation: its consumers read the messages as they are",
                d.kind
            ),
        ));
    }
    let t = apply(d.transformation.as_deref(), body);
    state
        .store
        .destination_set_transformation(&d.id, Some(t))
        .await?;
    Ok(Json(serde_json::json!({})))
}

/// A transformation after a patch: setting code switches it on unless the patch says
/// otherwise; `enabled: false` keeps the code.
fn apply(old: Option<&Transformation>, body: TransformationPatch) -> Transformation {
    let mut t = old.cloned().unwrap_or(Transformation {
        code: None,
        enabled: false,
        variables: BTreeMap::new(),
        updated_at: 0,
    });
    match body.code {
        Patch::Keep => {}
        Patch::Clear => {
            t.code = None;
            t.enabled = false;
        }
        Patch::Set(code) => {
            t.enabled = true;
            t.code = Some(code);
        }
    }
    if let Some(enabled) = body.enabled {
        t.enabled = enabled;
    }
    if let Some(vars) = body.variables {
        t.variables = vars;
    }
    t.updated_at = now_ms();
    t
}

/// Svix's ingest route for a source's destination: the endpoint of the source's
/// application.
pub async fn ingest_get(
    state: State<Arc<ApiState>>,
    caller: Extension<Caller>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<TransformationOut>> {
    super::apps::forbid_scoped(&caller)?;
    let app_id = state.store.source_get(&source_id).await?.app_id;
    get(state, caller, Path((app_id, endpoint_id))).await
}

pub async fn ingest_patch(
    state: State<Arc<ApiState>>,
    caller: Extension<Caller>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    body: JsonBody<TransformationPatch>,
) -> ApiResult<StatusCode> {
    super::apps::forbid_scoped(&caller)?;
    let app_id = state.store.source_get(&source_id).await?.app_id;
    patch(state, caller, Path((app_id, endpoint_id)), body).await
}

/// Runs code on a payload, as a delivery to this endpoint would, without saving it.
/// The answer is 200 whatever the script did; `outcome` says.
pub async fn try_code(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<TransformationTryIn>,
) -> ApiResult<Json<TransformationTryOut>> {
    check_code_length(&body.code)?;
    if let Some(vars) = &body.variables {
        check_variables(vars)?;
    }
    let (_, ep) = visible_endpoint(&state, &caller, &app_id, &endpoint_id).await?;
    let event_type = body
        .event_type
        .unwrap_or_else(|| "example.event".to_string());
    let payload = match body.payload {
        Some(p) => p.to_string(),
        None => match state.store.event_type_get(&event_type).await {
            Ok(et) => super::endpoints::example_payload(&et, 0)
                .unwrap_or_else(|| serde_json::json!({ "eventType": event_type }).to_string()),
            Err(_) => serde_json::json!({ "eventType": event_type }).to_string(),
        },
    };
    let variables = body
        .variables
        .or_else(|| ep.transformation.as_ref().map(|t| t.variables.clone()))
        .unwrap_or_default();
    let request = Request {
        code: Arc::from(body.code),
        method: Method::Post,
        url: ep.url.clone(),
        event_type,
        payload: Arc::from(payload),
        variables: Arc::new(variables),
    };
    // Tries of one endpoint go one at a time, as its deliveries do.
    let lane = format!("try:{}", ep.id);
    let out = match state.config.transforms.try_run(&lane, request).await {
        Ok(Outcome::Send(w)) => TransformationTryOut {
            outcome: "send",
            method: Some(w.method.as_str()),
            url: Some(w.url),
            payload: serde_json::from_str(&w.payload).ok(),
            headers: Some(w.headers.into_iter().collect()),
            error: None,
        },
        Ok(Outcome::Cancel) => TransformationTryOut {
            outcome: "cancel",
            method: None,
            url: None,
            payload: None,
            headers: None,
            error: None,
        },
        Err(e) => TransformationTryOut {
            outcome: "error",
            method: None,
            url: None,
            payload: None,
            headers: None,
            error: Some(e.into()),
        },
    };
    Ok(Json(out))
}

/// Code is checked before it is saved: it parses, its top level runs within the
/// limits, and it declares `handler`.
pub(crate) async fn check_code(state: &ApiState, code: &str) -> ApiResult<()> {
    check_code_length(code)?;
    state
        .config
        .transforms
        .check(Arc::from(code))
        .await
        .map_err(|e| {
            let at = match (e.line, e.column) {
                (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                _ => String::new(),
            };
            invalid(&["body", "code"], format!("{}{at}", e.message))
        })
}

fn check_code_length(code: &str) -> ApiResult<()> {
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(invalid(
            &["body", "code"],
            format!("the code may be at most {MAX_CODE_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_variables(vars: &BTreeMap<String, String>) -> ApiResult<()> {
    if vars.len() > MAX_VARIABLES {
        return Err(invalid(
            &["body", "variables"],
            format!("at most {MAX_VARIABLES} variables"),
        ));
    }
    for (name, value) in vars {
        if name.is_empty() || name.chars().count() > MAX_VARIABLE_NAME {
            return Err(invalid(
                &["body", "variables", name],
                format!("a variable's name is 1 to {MAX_VARIABLE_NAME} characters"),
            ));
        }
        if value.chars().count() > MAX_VARIABLE_VALUE {
            return Err(invalid(
                &["body", "variables", name],
                format!("a variable's value is at most {MAX_VARIABLE_VALUE} characters"),
            ));
        }
    }
    Ok(())
}
