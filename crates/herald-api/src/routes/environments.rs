//! Environments (`/environment`): which one a request is in, its settings, and Svix's
//! export and import, which copy event types, settings and transformation code from
//! one environment to another (staging promoted to production: export with a staging
//! token, import with a production one). An import only adds and updates, never
//! deletes; `?dry_run=true` answers what it would change and changes nothing.
//!
//! Transformations are exported as a Herald extension (`transformations`), addressed by
//! the application's and endpoint's uid (their id when they have none), since ids
//! differ between environments. Svix's `connectors` (transformation templates) do not
//! exist in Herald: the export has none, and an import that brings some is refused
//! rather than dropping them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use herald_core::time::{format_rfc3339, now_ms};
use herald_store::{EventType, ListQuery, StoreError, Transformation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::forbid_scoped;
use crate::dto::{EventTypeIn, EventTypeOut};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

/// The export format's version.
const EXPORT_VERSION: i64 = 1;

/// Largest settings object, serialized.
const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// Event types and transformations one import takes at most.
const MAX_IMPORTED: usize = 10_000;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfoOut {
    /// The environment this request is in.
    pub name: String,
    /// The environments this caller may use: a token's own; for someone signed in,
    /// each one they have a role in.
    pub available: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformationExport {
    /// The application's uid (its id when it has none).
    pub app: String,
    /// The endpoint's uid (its id when it has none).
    pub endpoint: String,
    pub code: String,
    pub enabled: bool,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentOut {
    pub version: i64,
    pub created_at: String,
    /// Every event type but Herald's operational ones, archived ones included.
    pub event_types: Vec<EventTypeOut>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Always empty: Herald has no connectors (transformation templates).
    #[schema(value_type = Vec<Object>)]
    pub connectors: Vec<serde_json::Value>,
    /// Herald extension: the endpoints' transformations.
    pub transformations: Vec<TransformationExport>,
}

/// An event type as an import takes it: the create body, or an exported event type
/// as it is (its timestamps are ignored), so that an export file imports unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportedEventType {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[serde(default)]
    pub feature_flag: Option<String>,
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    #[serde(default)]
    pub group_name: Option<String>,
    /// An export's timestamps, accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub created_at: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub updated_at: Option<String>,
}

impl ImportedEventType {
    fn into_create_body(self) -> EventTypeIn {
        EventTypeIn {
            group_name: self.group_name,
            feature_flags: self.feature_flags,
            name: self.name,
            description: self.description,
            archived: self.archived,
            deprecated: self.deprecated,
            schemas: self.schemas,
            feature_flag: self.feature_flag,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentIn {
    #[serde(default)]
    pub event_types: Option<Vec<ImportedEventType>>,
    /// Replaces the settings when given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Refused when not empty: Herald has no connectors.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub connectors: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub transformations: Option<Vec<TransformationExport>>,
    /// Accepted so that an export imports as it is; ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub version: Option<i64>,
    #[serde(default)]
    #[allow(dead_code)]
    pub created_at: Option<String>,
}

/// What an import changed (or, in a dry run, would change), by name.
#[derive(Serialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImportChanges {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportOut {
    /// True when nothing was changed: the answer says what would have been.
    pub dry_run: bool,
    pub event_types: ImportChanges,
    /// "created", "updated", "unchanged", or "absent" when the import had none.
    pub settings: String,
    /// By `app/endpoint`.
    pub transformations: ImportChanges,
    /// `app/endpoint` of transformations whose endpoint is not in this environment
    /// (nothing is made for them).
    pub missing_endpoints: Vec<String>,
}

pub async fn info(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<EnvironmentInfoOut>> {
    let here = state.config.environment.clone();
    // Someone signed in may use the default environment and each one they have a
    // role in; a token only its own.
    let person = if caller.token_id.starts_with(herald_core::ids::PERSON) {
        state.people.person_get(&caller.token_id).await.ok()
    } else {
        None
    };
    let available = match person {
        Some(person) => {
            let mut envs = vec![herald_core::environment::DEFAULT.to_string()];
            envs.extend(
                person
                    .environment_roles
                    .keys()
                    .filter(|e| state.config.environments.contains(e))
                    .cloned(),
            );
            envs
        }
        None => vec![here.clone()],
    };
    Ok(Json(EnvironmentInfoOut {
        name: here,
        available,
    }))
}

pub async fn get_settings(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<serde_json::Value>> {
    forbid_scoped(&caller)?;
    let settings = state.store.settings_get().await?;
    Ok(Json(settings.unwrap_or_else(|| serde_json::json!({}))))
}

pub async fn put_settings(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    forbid_scoped(&caller)?;
    check_settings(&body, &["body"])?;
    state.store.settings_put(body.clone(), now_ms()).await?;
    Ok(Json(body))
}

fn check_settings(settings: &serde_json::Value, at: &[&str]) -> ApiResult<()> {
    if !settings.is_object() {
        return Err(invalid(at, "settings are a JSON object"));
    }
    if settings.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(invalid(at, "settings are larger than 64 KiB"));
    }
    Ok(())
}

fn is_operational(name: &str) -> bool {
    herald_store::operational::EVENT_TYPES
        .iter()
        .any(|(n, _)| *n == name)
}

pub async fn export(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<EnvironmentOut>> {
    forbid_scoped(&caller)?;
    let mut event_types = Vec::new();
    let mut iterator = None;
    loop {
        let page = state
            .store
            .event_type_list(page_query(iterator), true, Vec::new())
            .await?;
        event_types.extend(
            page.data
                .into_iter()
                .filter(|et| !is_operational(&et.name))
                .map(EventTypeOut::from),
        );
        if page.done || page.iterator.is_none() {
            break;
        }
        iterator = page.iterator;
    }
    let transformations = endpoint_transformations(&state).await?;
    Ok(Json(EnvironmentOut {
        version: EXPORT_VERSION,
        created_at: format_rfc3339(now_ms()),
        event_types,
        settings: state.store.settings_get().await?,
        connectors: Vec::new(),
        transformations,
    }))
}

fn page_query(iterator: Option<String>) -> ListQuery {
    ListQuery {
        limit: 250,
        iterator,
        descending: false,
    }
}

/// Every endpoint's transformation that has code, but the operational application's.
async fn endpoint_transformations(state: &ApiState) -> ApiResult<Vec<TransformationExport>> {
    let mut out = Vec::new();
    let mut apps_from = None;
    loop {
        let apps = state
            .store
            .app_list(
                page_query(apps_from),
                Some(herald_store::operational::APP_UID.to_string()),
            )
            .await?;
        for app in &apps.data {
            let mut eps_from = None;
            loop {
                let eps = state
                    .store
                    .endpoint_list(&app.id, page_query(eps_from))
                    .await?;
                for ep in &eps.data {
                    let Some(t) = ep.transformation.as_deref() else {
                        continue;
                    };
                    let Some(code) = &t.code else { continue };
                    out.push(TransformationExport {
                        app: app.uid.clone().unwrap_or_else(|| app.id.clone()),
                        endpoint: ep.uid.clone().unwrap_or_else(|| ep.id.clone()),
                        code: code.clone(),
                        enabled: t.enabled,
                        variables: t.variables.clone(),
                    });
                }
                if eps.done || eps.iterator.is_none() {
                    break;
                }
                eps_from = eps.iterator;
            }
        }
        if apps.done || apps.iterator.is_none() {
            break;
        }
        apps_from = apps.iterator;
    }
    Ok(out)
}

pub async fn import(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
    JsonBody(body): JsonBody<EnvironmentIn>,
) -> ApiResult<Json<ImportOut>> {
    forbid_scoped(&caller)?;
    let dry_run = q.flag("dry_run")?;
    if body.connectors.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(invalid(
            &["body", "connectors"],
            "Herald has no connectors (transformation templates); export endpoints' transformations instead",
        ));
    }
    let event_types = body.event_types.unwrap_or_default();
    let transformations = body.transformations.unwrap_or_default();
    if event_types.len() > MAX_IMPORTED || transformations.len() > MAX_IMPORTED {
        return Err(invalid(
            &["body"],
            format!("at most {MAX_IMPORTED} event types and {MAX_IMPORTED} transformations"),
        ));
    }
    if let Some(settings) = &body.settings {
        check_settings(settings, &["body", "settings"])?;
    }
    // Everything is checked before anything is written, so a refused import changes
    // nothing.
    let now = now_ms();
    let mut planned_types = Vec::new();
    for (i, imported) in event_types.into_iter().enumerate() {
        let (name, update) = imported.into_create_body().into_parts();
        if is_operational(&name) {
            return Err(invalid(
                &["body", "eventTypes", &i.to_string(), "name"],
                "Herald's operational event types are not imported",
            ));
        }
        let existing = match state.store.event_type_get(&name).await {
            Ok(et) => Some(et),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let created_at = existing.as_ref().map_or(now, |e| e.created_at);
        let et = super::event_types::build(name, update, created_at, now)?;
        planned_types.push((existing, et));
    }
    for t in &transformations {
        super::transformations::check_variables(&t.variables)?;
        super::transformations::check_code(&state, &t.code).await?;
    }

    let mut report = ImportOut {
        dry_run,
        event_types: ImportChanges::default(),
        settings: "absent".into(),
        transformations: ImportChanges::default(),
        missing_endpoints: Vec::new(),
    };
    for (existing, et) in planned_types {
        let list = match &existing {
            None => &mut report.event_types.created,
            Some(old) if same_event_type(old, &et) => &mut report.event_types.unchanged,
            Some(_) => &mut report.event_types.updated,
        };
        list.push(et.name.clone());
        let changes = !report.event_types.unchanged.contains(&et.name);
        if changes && !dry_run {
            state.store.event_type_save(et, true).await?;
        }
    }
    if let Some(settings) = body.settings {
        let old = state.store.settings_get().await?;
        report.settings = match &old {
            None => "created",
            Some(old) if *old == settings => "unchanged",
            Some(_) => "updated",
        }
        .into();
        if report.settings != "unchanged" && !dry_run {
            state.store.settings_put(settings, now).await?;
        }
    }
    for t in transformations {
        let address = format!("{}/{}", t.app, t.endpoint);
        let endpoint = match state.store.app_get(&t.app).await {
            Ok(app) if app.uid.as_deref() != Some(herald_store::operational::APP_UID) => {
                match state.store.endpoint_get(&app.id, &t.endpoint).await {
                    Ok(ep) => Some(ep),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(_) | Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(ep) = endpoint else {
            report.missing_endpoints.push(address);
            continue;
        };
        let old = ep.transformation.as_deref();
        let same = old.is_some_and(|o| {
            o.code.as_deref() == Some(t.code.as_str())
                && o.enabled == t.enabled
                && o.variables == t.variables
        });
        let list = match (old.and_then(|o| o.code.as_ref()), same) {
            (_, true) => &mut report.transformations.unchanged,
            (None, false) => &mut report.transformations.created,
            (Some(_), false) => &mut report.transformations.updated,
        };
        list.push(address);
        if !same && !dry_run {
            let new = Transformation {
                code: Some(t.code),
                enabled: t.enabled,
                variables: t.variables,
                updated_at: now,
            };
            state
                .store
                .endpoint_set_transformation(&ep.id, Some(new))
                .await?;
        }
    }
    Ok(Json(report))
}

fn same_event_type(old: &EventType, new: &EventType) -> bool {
    old.description == new.description
        && old.archived == new.archived
        && old.deprecated == new.deprecated
        && old.schemas == new.schemas
        && old.feature_flag == new.feature_flag
}

/// A clear error for a request that names an environment this Herald does not serve.
pub fn unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!("no environment named '{name}'"))
}
