//! Reading the audit trail (`crate::audit` writes it): newest first, by actor, object,
//! time window and refusal. The API has no route that changes it.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use herald_core::time::format_rfc3339;
use herald_store::{AuditEvent, AuditFilter};
use serde::Serialize;
use utoipa::ToSchema;

use super::apps::forbid_scoped;
use crate::dto::ListResponse;
use crate::error::ApiResult;
use crate::extract::QueryPairs;
use crate::state::{ApiState, Caller};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventOut {
    pub id: String,
    pub timestamp: String,
    /// Who: the token's id and name, its role (`admin` for an admin token,
    /// `application` for an application's), and its application if it has one.
    pub actor_id: String,
    pub actor_name: String,
    pub role: String,
    pub actor_app_id: Option<String>,
    /// What: the method, the route as the API names it, the path, and the object the
    /// path named last.
    pub method: String,
    pub route: String,
    pub path: String,
    pub object_id: Option<String>,
    /// The answer; a 403 was a refusal (`allowed: false`).
    pub status: i64,
    pub allowed: bool,
    /// From where: the client's address.
    pub source: Option<String>,
    /// The request body with its secrets redacted (at most 4 KiB).
    pub detail: Option<String>,
    /// What the object became: the answer's body, secrets redacted (at most 4 KiB).
    pub after: Option<String>,
    /// What the object was before a replace, patch or delete (as a GET of its path
    /// showed it just before), secrets redacted (at most 4 KiB).
    pub before: Option<String>,
}

pub(crate) fn out(e: AuditEvent) -> AuditEventOut {
    AuditEventOut {
        id: e.id,
        timestamp: format_rfc3339(e.at),
        role: match (&e.role, &e.actor_app_id) {
            (Some(role), _) => role.clone(),
            (None, Some(_)) => "application".into(),
            (None, None) => "admin".into(),
        },
        actor_id: e.actor_id,
        actor_name: e.actor_name,
        actor_app_id: e.actor_app_id,
        method: e.method,
        route: e.route,
        path: e.path,
        object_id: e.object_id,
        status: e.status,
        allowed: e.allowed,
        source: e.source,
        detail: e.detail,
        after: e.after,
        before: e.before,
    }
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<AuditEventOut>>> {
    forbid_scoped(&caller)?;
    let filter = AuditFilter {
        actor_id: q.get("actor_id").map(str::to_string),
        object_id: q.get("object_id").map(str::to_string),
        since: q.timestamp("since")?,
        until: q.timestamp("until")?,
        allowed: match q.get("allowed") {
            None => None,
            Some(_) => Some(q.flag("allowed")?),
        },
    };
    let page = state.store.audit_list(filter, q.list(true)?).await?;
    Ok(Json(ListResponse::from_page(page, out)))
}
