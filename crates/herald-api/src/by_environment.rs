//! One Herald, several environments: each environment has its own store and its own
//! router (`router::router` on its own `ApiState`), and this front router sends each
//! request to one of them before anything else reads it. The environment comes from:
//!
//! 1. the bearer token's prefix (`hrld_staging_…`; plain `hrld_…` is the default's);
//! 2. else the `Herald-Environment` header (the console sends it with a session);
//! 3. else, for `/in/{source}`, the environment that has that source;
//! 4. else the default environment (health, pages, the OpenAPI document, sign-in).
//!
//! So a token can only ever reach its own environment's store: isolation does not
//! depend on each handler checking anything.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use herald_core::environment;
use herald_store::SharedStore;
use tower::ServiceExt;

use crate::error::ApiError;

/// The header that names the environment of a request made without a token.
pub const ENVIRONMENT_HEADER: &str = "herald-environment";

/// One environment's router and store.
pub struct Served {
    pub name: String,
    pub router: Router,
    pub store: SharedStore,
}

struct Environments {
    default: Router,
    others: HashMap<String, Served>,
    /// Which environment each inbound source seen so far belongs to.
    sources: RwLock<HashMap<String, String>>,
}

/// The front router over `default` (the default environment's router) and the others.
pub fn router(default: Router, others: Vec<Served>) -> Router {
    if others.is_empty() {
        return default;
    }
    let envs = Arc::new(Environments {
        default,
        others: others.into_iter().map(|s| (s.name.clone(), s)).collect(),
        sources: RwLock::default(),
    });
    Router::new().fallback(move |req: Request| {
        let envs = envs.clone();
        async move { envs.dispatch(req).await }
    })
}

impl Environments {
    async fn dispatch(&self, req: Request) -> Response {
        let source = req
            .uri()
            .path()
            .strip_prefix("/in/")
            .map(|rest| rest.split('/').next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty());
        let chosen = match self.choose_by_headers(req.headers()) {
            Ok(None) => match source {
                Some(source) => Ok(self.source_environment(&source).await),
                None => Ok(None),
            },
            other => other.map(|named| named.flatten()),
        };
        let target = match chosen {
            Ok(Some(name)) => &self.others[&name].router,
            Ok(None) => &self.default,
            Err(refusal) => return refusal.into_response(),
        };
        match target.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The environment a request's token or header names: `Some(None)` for the
    /// default, `None` when it names none.
    fn choose_by_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<Option<String>>, ApiError> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(token) = bearer {
            return self
                .known(environment::of_token(token))
                .map(Some)
                .map_err(|_| ApiError::Unauthorized("invalid token".into()));
        }
        if let Some(name) = headers.get(ENVIRONMENT_HEADER) {
            let name = name.to_str().unwrap_or("").trim();
            return self
                .known(name)
                .map(Some)
                .map_err(|_| crate::routes::environments::unknown(name));
        }
        Ok(None)
    }

    fn known(&self, name: &str) -> Result<Option<String>, ()> {
        if name == environment::DEFAULT {
            Ok(None)
        } else if self.others.contains_key(name) {
            Ok(Some(name.to_string()))
        } else {
            Err(())
        }
    }

    /// The environment that has the inbound source `id` (ids are unique across
    /// environments: random and time-ordered); the default when none has it, which then
    /// answers as it does for an unknown source.
    async fn source_environment(&self, id: &str) -> Option<String> {
        if let Some(name) = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Some(name.clone());
        }
        for served in self.others.values() {
            if served.store.source_get(id).await.is_ok() {
                let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
                if sources.len() >= 10_000 {
                    sources.clear();
                }
                sources.insert(id.to_string(), served.name.clone());
                return Some(served.name.clone());
            }
        }
        None
    }
}
