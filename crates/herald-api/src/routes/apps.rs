//! Applications: `/app`, `/app/{app_id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::{ids, time::now_ms, validate};
use herald_store::{Application, StoreError};

use super::visible_app;
use crate::dto::{ApplicationIn, ApplicationOut, ApplicationPatch, ListResponse, Patch};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::state::{ApiState, Caller};

fn check(
    name: &str,
    uid: Option<&str>,
    throttle_rate: Option<u32>,
    metadata: Option<&std::collections::BTreeMap<String, String>>,
) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > validate::MAX_NAME_LEN {
        return Err(invalid(
            &["body", "name"],
            "name must be 1 to 256 characters",
        ));
    }
    if let Some(uid) = uid {
        validate::uid(uid, ids::APP).map_err(|m| invalid(&["body", "uid"], m))?;
    }
    // A rate of 0 would let no delivery through, ever; "no limit" is said by omitting it.
    if throttle_rate == Some(0) {
        return Err(invalid(
            &["body", "throttleRate"],
            "throttleRate must be at least 1 (omit it for no limit)",
        ));
    }
    if let Some(md) = metadata {
        validate::metadata(md).map_err(|m| invalid(&["body", "metadata"], m))?;
    }
    Ok(())
}

/// Every field of an application's input, as creation checks them.
pub(crate) fn check_input(body: &ApplicationIn) -> ApiResult<()> {
    check(
        &body.name,
        body.uid.as_deref(),
        body.throttle_rate,
        body.metadata.as_ref(),
    )?;
    check_rate_limit(body.rate_limit)
}

/// `rateLimit`, the other name of `throttleRate`: checked even when `throttleRate`,
/// given too, wins.
pub(crate) fn check_rate_limit(rate_limit: Option<u32>) -> ApiResult<()> {
    if rate_limit == Some(0) {
        return Err(invalid(
            &["body", "rateLimit"],
            "rateLimit must be at least 1 (omit it for no limit)",
        ));
    }
    Ok(())
}

pub(crate) fn forbid_scoped(caller: &Caller) -> ApiResult<()> {
    match caller.app_id {
        Some(_) => Err(ApiError::NotFound("not found".into())),
        None => Ok(()),
    }
}

/// Validates and inserts a new application (shared with message creation's `application`).
pub(crate) async fn insert(state: &ApiState, body: ApplicationIn) -> ApiResult<Application> {
    check_input(&body)?;
    let now = now_ms();
    let app = Application {
        id: ids::generate(ids::APP),
        uid: body.uid,
        name: body.name,
        throttle_rate: body.throttle_rate.or(body.rate_limit),
        metadata: body.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    Ok(state.store.app_insert(app).await?)
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ApplicationOut>>> {
    let list = q.list(false)?;
    if let Some(scope) = &caller.app_id {
        let app = state.store.app_get(scope).await?;
        return Ok(Json(ListResponse {
            data: vec![app.into()],
            iterator: None,
            prev_iterator: None,
            done: true,
        }));
    }
    // Herald's operational application is not a tenant: listed only when asked for.
    let hidden =
        (!q.flag("include_operational")?).then(|| herald_store::operational::APP_UID.to_string());
    let page = state.store.app_list(list, hidden).await?;
    Ok(Json(ListResponse::from_page(page, ApplicationOut::from)))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
    JsonBody(body): JsonBody<ApplicationIn>,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    forbid_scoped(&caller)?;
    check_input(&body)?;
    if q.flag("get_if_exists")? {
        if let Some(uid) = &body.uid {
            match state.store.app_get(uid).await {
                Ok(existing) => return Ok((StatusCode::OK, Json(existing.into()))),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let app = insert(&state, body).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
) -> ApiResult<Json<ApplicationOut>> {
    Ok(Json(visible_app(&state, &caller, &app_id).await?.into()))
}

/// PUT: replace, or create when the id/uid does not exist yet.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<ApplicationIn>,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    match visible_app(&state, &caller, &app_id).await {
        Ok(mut app) => {
            check_input(&body)?;
            app.name = body.name;
            app.uid = body.uid.or(app.uid);
            app.throttle_rate = body.throttle_rate.or(body.rate_limit);
            app.metadata = body.metadata.unwrap_or_default();
            app.updated_at = now_ms();
            let app = state.store.app_update(app).await?;
            state.evict_app(&app.id);
            Ok((StatusCode::OK, Json(app.into())))
        }
        Err(ApiError::NotFound(_)) if caller.app_id.is_none() => {
            // Created under the path's name: it must be one a uid could be.
            validate::identifier(&app_id, "app_id").map_err(|m| invalid(&["path", "app_id"], m))?;
            let mut body = body;
            if body.uid.is_none() && !app_id.starts_with(ids::APP) {
                body.uid = Some(app_id);
            }
            let app = insert(&state, body).await?;
            Ok((StatusCode::CREATED, Json(app.into())))
        }
        Err(e) => Err(e),
    }
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<ApplicationPatch>,
) -> ApiResult<Json<ApplicationOut>> {
    let mut app = visible_app(&state, &caller, &app_id).await?;
    if let Some(name) = body.name {
        app.name = name;
    }
    body.uid.apply(&mut app.uid);
    if let Patch::Set(rate) = body.rate_limit {
        check_rate_limit(Some(rate))?;
    }
    body.throttle_rate
        .or(body.rate_limit)
        .apply(&mut app.throttle_rate);
    if let Some(md) = body.metadata {
        app.metadata = md;
    }
    check(
        &app.name,
        app.uid.as_deref(),
        app.throttle_rate,
        Some(&app.metadata),
    )?;
    app.updated_at = now_ms();
    let app = state.store.app_update(app).await?;
    state.evict_app(&app.id);
    Ok(Json(app.into()))
}

pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
) -> ApiResult<StatusCode> {
    forbid_scoped(&caller)?;
    let app = visible_app(&state, &caller, &app_id).await?;
    state.store.app_delete(&app.id).await?;
    state.evict_app(&app.id);
    Ok(StatusCode::NO_CONTENT)
}
