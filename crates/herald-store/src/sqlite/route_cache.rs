//! The endpoints of each application, cached for fan-out so that ingesting a message
//! does not re-read and re-decode every endpoint row. Only the writer thread fills it,
//! and every write that changes an endpoint (or deletes an application) clears it from
//! inside the same writer job, so a message is never fanned out with stale routes. A
//! failed commit clears it too, since the cache may hold rows of the rolled-back batch.
//! The cache is per process: a multi-node backend must invalidate it across nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::endpoints;
use crate::{Endpoint, Result};

/// Endpoints kept at most, over all applications; past that the cache starts over
/// (simple and bounded: an install with 100,000 endpoints keeps about a tenth of them
/// in memory, and a miss costs one indexed read of one application's endpoints).
const MAX_ENDPOINTS: usize = 10_000;

#[derive(Default)]
pub(crate) struct RouteCache {
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    by_app: HashMap<String, Arc<Vec<Endpoint>>>,
    /// The endpoints in `by_app`, all applications together.
    endpoints: usize,
}

impl RouteCache {
    /// The application's endpoints, read through `conn` on a miss.
    pub(crate) fn endpoints(&self, conn: &Connection, app_id: &str) -> Result<Arc<Vec<Endpoint>>> {
        if let Some(hit) = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_app
            .get(app_id)
        {
            return Ok(hit.clone());
        }
        let loaded = Arc::new(endpoints::all_of_app(conn, app_id)?);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.endpoints + loaded.len() > MAX_ENDPOINTS {
            *cached = Cached::default();
        }
        cached.endpoints += loaded.len();
        cached.by_app.insert(app_id.to_string(), loaded.clone());
        Ok(loaded)
    }

    pub(crate) fn clear(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Cached::default();
    }
}
