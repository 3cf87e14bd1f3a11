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

/// Applications kept at most; past that the cache starts over (simple and bounded).
const MAX_APPS: usize = 10_000;

#[derive(Default)]
pub(crate) struct RouteCache {
    by_app: Mutex<HashMap<String, Arc<Vec<Endpoint>>>>,
}

impl RouteCache {
    /// The application's endpoints, read through `conn` on a miss.
    pub(crate) fn endpoints(&self, conn: &Connection, app_id: &str) -> Result<Arc<Vec<Endpoint>>> {
        if let Some(hit) = self
            .by_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app_id)
        {
            return Ok(hit.clone());
        }
        let loaded = Arc::new(endpoints::all_of_app(conn, app_id)?);
        let mut map = self.by_app.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_APPS {
            map.clear();
        }
        map.insert(app_id.to_string(), loaded.clone());
        Ok(loaded)
    }

    pub(crate) fn clear(&self) {
        self.by_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
