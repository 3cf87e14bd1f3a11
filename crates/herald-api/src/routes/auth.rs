//! Application-scoped tokens: `app-portal-access` mints one for an application (admin
//! tokens only), `logout` ends the token it is called with.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::{ids, time::now_ms, token};

use super::{apps, visible_app};
use crate::dto::{AppPortalAccessIn, AppPortalAccessOut};
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::OptionalJsonBody;
use crate::state::{ApiState, Caller};

/// Longest and default lifetime of a portal token, in seconds.
const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

pub async fn app_portal_access(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<AppPortalAccessIn>,
) -> ApiResult<Json<AppPortalAccessOut>> {
    // Only admins mint tokens; to an application token this route does not exist.
    if caller.app_id.is_some() {
        return Err(ApiError::NotFound("not found".into()));
    }
    let expiry = body.expiry.unwrap_or(MAX_EXPIRY_SECS);
    if !(1..=MAX_EXPIRY_SECS).contains(&expiry) {
        return Err(invalid(
            &["body", "expiry"],
            "expiry is 1 to 604800 seconds (7 days)",
        ));
    }
    if body.capabilities.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(invalid(
            &["body", "capabilities"],
            "capabilities are not supported: a portal token manages its whole application",
        ));
    }
    if body.read_only == Some(true) {
        return Err(invalid(
            &["body", "readOnly"],
            "read-only portal tokens are not supported by this server",
        ));
    }
    // `application` is checked whenever it is given, used or not.
    if let Some(app_in) = &body.application {
        apps::check_input(app_in)?;
    }
    let app = match visible_app(&state, &caller, &app_id).await {
        Ok(app) => app,
        Err(ApiError::NotFound(_)) if body.application.is_some() => {
            let mut app_in = body.application.expect("checked");
            if app_in.uid.is_none() && !app_id.starts_with(ids::APP) {
                app_in.uid = Some(app_id.clone());
            }
            apps::insert(&state, app_in).await?
        }
        Err(e) => return Err(e),
    };
    let now = now_ms();
    let secret = token::generate_in(&state.config.environment);
    state
        .store
        .token_insert(
            &ids::generate(ids::TOKEN),
            &token::hash(&secret),
            "app portal access",
            Some(&app.id),
            None,
            now,
            Some(now + expiry as i64 * 1000),
        )
        .await?;
    Ok(Json(AppPortalAccessOut {
        url: format!(
            "{}/portal/{}#token={secret}",
            state.config.public_url.trim_end_matches('/'),
            app.id
        ),
        token: secret,
    }))
}

/// Ends the token this request was made with.
pub async fn logout(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<StatusCode> {
    state
        .store
        .token_expire(&caller.token_hash, now_ms())
        .await?;
    state
        .token_cache
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&caller.token_hash);
    Ok(StatusCode::NO_CONTENT)
}
