//! Named API tokens (Herald extension): made with a role or for one application, listed
//! without their secret (shown once, when made), revoked by id. Only an admin token
//! manages tokens (`roles.rs`; an application's token is refused here too).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::time::{format_rfc3339, now_ms, parse_rfc3339};
use herald_core::{ids, token};
use herald_store::TokenRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::forbid_scoped;
use crate::dto::ListResponse;
use crate::error::{invalid, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::roles::Role;
use crate::state::{ApiState, Caller};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenIn {
    /// What the token is for, as people will recognise it in the list.
    pub name: String,
    /// admin, developer, support or viewer (`roles.rs` in ARCHITECTURE.md's terms);
    /// leave it out for an application's token.
    #[serde(default)]
    pub role: Option<String>,
    /// Make a token for this application only (like the portal's), instead of a role.
    #[serde(default)]
    pub app_id: Option<String>,
    /// When the token stops working (none: it works until revoked).
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenOut {
    pub id: String,
    pub name: String,
    /// admin, developer, support, viewer; `application` for an application's token.
    pub role: String,
    pub app_id: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreatedOut {
    #[serde(flatten)]
    pub token: TokenOut,
    /// The secret: shown this once, never again.
    pub key: String,
}

fn out(t: TokenRecord) -> TokenOut {
    TokenOut {
        id: t.id,
        name: t.name,
        role: match (t.role, &t.app_id) {
            (Some(role), _) => role,
            (None, Some(_)) => "application".into(),
            (None, None) => "admin".into(),
        },
        app_id: t.app_id,
        created_at: format_rfc3339(t.created_at),
        expires_at: t.expires_at.map(format_rfc3339),
        last_used_at: t.last_used_at.map(format_rfc3339),
    }
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<TokenIn>,
) -> ApiResult<(StatusCode, Json<TokenCreatedOut>)> {
    forbid_scoped(&caller)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(invalid(&["body", "name"], "a name of 1 to 256 characters"));
    }
    let now = now_ms();
    let expires_at = match &body.expires_at {
        None => None,
        Some(at) => {
            let at = parse_rfc3339(at)
                .ok_or_else(|| invalid(&["body", "expiresAt"], "an RFC 3339 time"))?;
            if at <= now {
                return Err(invalid(&["body", "expiresAt"], "a time to come"));
            }
            Some(at)
        }
    };
    let (role, app_id) = match (body.role.as_deref(), body.app_id) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &["body", "role"],
                "a token has a role or an application, not both",
            ))
        }
        (Some(r), None) => {
            let role = Role::parse(r)
                .ok_or_else(|| invalid(&["body", "role"], "admin, developer, support or viewer"))?;
            (Some(role.as_str()), None)
        }
        (None, Some(app)) => {
            let app = super::visible_app(&state, &caller, &app).await?;
            (None, Some(app.id))
        }
        (None, None) => {
            return Err(invalid(
                &["body", "role"],
                "give the token a role (admin, developer, support, viewer) or an appId",
            ))
        }
    };
    let key = token::generate_in(&state.config.environment);
    let id = ids::generate(ids::TOKEN);
    state
        .store
        .token_insert(
            &id,
            &token::hash(&key),
            name,
            app_id.as_deref(),
            role,
            now,
            expires_at,
        )
        .await?;
    let record = TokenRecord {
        id,
        name: name.to_string(),
        role: role.map(str::to_string),
        app_id,
        destination_id: None,
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(TokenCreatedOut {
            token: out(record),
            key,
        }),
    ))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<TokenOut>>> {
    forbid_scoped(&caller)?;
    let page = state.store.token_list(q.list(false)?).await?;
    Ok(Json(ListResponse::from_page(page, out)))
}

/// Revokes a token: it stops working at once on this node (on other nodes of a shared
/// store, once their cached copy is older than a few seconds).
pub async fn revoke(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    forbid_scoped(&caller)?;
    state.store.token_revoke(&token_id).await?;
    state
        .token_cache
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|_, (info, _)| info.id != token_id);
    Ok(StatusCode::NO_CONTENT)
}
