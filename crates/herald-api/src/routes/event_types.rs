//! Event types: `/event-type`, `/event-type/{name}`. Global to the server; an
//! app-scoped token may read them but not change them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::{time::now_ms, validate};
use herald_store::{EventType, StoreError};

use super::named;
use crate::dto::{EventTypeIn, EventTypeOut, EventTypePatch, EventTypeUpdate, ListResponse, Patch};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

const MAX_SCHEMA_BYTES: usize = 256 * 1024;

fn admin_only(caller: &Caller) -> ApiResult<()> {
    match caller.app_id {
        Some(_) => Err(ApiError::NotFound("not found".into())),
        None => Ok(()),
    }
}

/// `groupName` is accepted (the SDK sends it) but not stored yet; it is still bounded.
fn check_group(group: Option<&String>) -> ApiResult<()> {
    match group {
        Some(g) => {
            validate::identifier(g, "groupName").map_err(|m| invalid(&["body", "groupName"], m))
        }
        None => Ok(()),
    }
}

/// Every feature flag given (`featureFlag`, and each of `featureFlags`, of which only
/// the first is kept) is an identifier, so that none is dropped unchecked.
fn check_flags<'a>(flags: impl IntoIterator<Item = &'a String>) -> ApiResult<()> {
    for flag in flags {
        validate::identifier(flag, "featureFlag")
            .map_err(|m| invalid(&["body", "featureFlags"], m))?;
    }
    Ok(())
}

/// `schemas` maps a version ("1") to a JSON Schema object.
fn check(et: &EventType) -> ApiResult<()> {
    validate::identifier(&et.name, "name").map_err(|m| invalid(&["body", "name"], m))?;
    if et.description.len() > validate::MAX_DESCRIPTION_LEN {
        return Err(invalid(
            &["body", "description"],
            "description is longer than 4096 characters",
        ));
    }
    if let Some(schemas) = &et.schemas {
        let map = schemas.as_object().ok_or_else(|| {
            invalid(
                &["body", "schemas"],
                "schemas maps a version such as \"1\" to a JSON Schema object",
            )
        })?;
        for (version, schema) in map {
            if !schema.is_object() {
                return Err(invalid(
                    &["body", "schemas", version],
                    "a JSON Schema must be an object",
                ));
            }
        }
        if schemas.to_string().len() > MAX_SCHEMA_BYTES {
            return Err(invalid(
                &["body", "schemas"],
                "schemas are larger than 256 KiB",
            ));
        }
    }
    if let Some(flag) = &et.feature_flag {
        validate::identifier(flag, "featureFlag")
            .map_err(|m| invalid(&["body", "featureFlag"], m))?;
    }
    Ok(())
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EventTypeOut>>> {
    let list = q.list(false)?;
    // The operational event types are the catalog of Herald's own application: its
    // portal sees them, tenants and the plain list do not.
    let operational_caller =
        caller.app_id.is_some() && caller.app_id == state.config.operational_app_id;
    let hidden = if operational_caller || q.flag("include_operational")? {
        Vec::new()
    } else {
        herald_store::operational::EVENT_TYPES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let page = state
        .store
        .event_type_list(list, q.flag("include_archived")?, hidden)
        .await?;
    Ok(Json(ListResponse::from_page(page, EventTypeOut::from)))
}

/// A checked event type from a create or replace body.
pub(crate) fn build(
    name: String,
    body: EventTypeUpdate,
    created_at: i64,
    now: i64,
) -> ApiResult<EventType> {
    check_group(body.group_name.as_ref())?;
    check_flags(
        body.feature_flag
            .iter()
            .chain(body.feature_flags.iter().flatten()),
    )?;
    let et = EventType {
        name,
        description: body.description,
        archived: body.archived.unwrap_or(false),
        deprecated: body.deprecated.unwrap_or(false),
        schemas: body.schemas,
        feature_flag: body
            .feature_flag
            .or(body.feature_flags.and_then(|f| f.into_iter().next())),
        created_at,
        updated_at: now,
    };
    check(&et)?;
    Ok(et)
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<EventTypeIn>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    admin_only(&caller)?;
    let (name, body) = body.into_parts();
    let now = now_ms();
    let et = build(name, body, now, now)?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.event_type_save(et, false).await?.into()),
    ))
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<EventTypeOut>> {
    Ok(Json(
        state
            .store
            .event_type_get(&name)
            .await
            .map_err(named("event type"))?
            .into(),
    ))
}

pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EventTypeUpdate>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    admin_only(&caller)?;
    let now = now_ms();
    let (created_at, status) = match state.store.event_type_get(&name).await {
        Ok(old) => (old.created_at, StatusCode::OK),
        Err(StoreError::NotFound) => (now, StatusCode::CREATED),
        Err(e) => return Err(e.into()),
    };
    let et = build(name, body, created_at, now)?;
    Ok((
        status,
        Json(state.store.event_type_save(et, true).await?.into()),
    ))
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EventTypePatch>,
) -> ApiResult<Json<EventTypeOut>> {
    admin_only(&caller)?;
    if let Patch::Set(group) = &body.group_name {
        check_group(Some(group))?;
    }
    let mut et = state
        .store
        .event_type_get(&name)
        .await
        .map_err(named("event type"))?;
    if let Some(d) = body.description {
        et.description = d;
    }
    if let Some(a) = body.archived {
        et.archived = a;
    }
    if let Some(d) = body.deprecated {
        et.deprecated = d;
    }
    body.schemas.apply(&mut et.schemas);
    if let Patch::Set(flag) = &body.feature_flag {
        check_flags([flag])?;
    }
    if let Patch::Set(flags) = &body.feature_flags {
        check_flags(flags)?;
    }
    body.feature_flag.apply(&mut et.feature_flag);
    match body.feature_flags {
        Patch::Keep => {}
        Patch::Clear => et.feature_flag = None,
        Patch::Set(flags) => et.feature_flag = flags.into_iter().next(),
    }
    et.updated_at = now_ms();
    check(&et)?;
    Ok(Json(state.store.event_type_save(et, true).await?.into()))
}

/// Archives the event type; with `?expunge=true` deletes it for good.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: QueryPairs,
) -> ApiResult<StatusCode> {
    admin_only(&caller)?;
    if q.flag("expunge")? {
        state
            .store
            .event_type_delete(&name)
            .await
            .map_err(named("event type"))?;
    } else {
        let mut et = state
            .store
            .event_type_get(&name)
            .await
            .map_err(named("event type"))?;
        et.archived = true;
        et.updated_at = now_ms();
        state.store.event_type_save(et, true).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
