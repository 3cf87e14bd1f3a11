//! Shared state of the API handlers, and the authenticated caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use herald_store::{DeliveryJob, Store, TokenInfo};
use tokio::sync::Notify;

/// Where deliveries go right after they were committed, for immediate sending (the
/// binary plugs the delivery engine in here; the API does not know it).
pub trait HandOff: Send + Sync {
    /// Whether there is room for more in-memory work. When there is not, new deliveries
    /// are committed unleased and the engine's scheduler takes them from the store as it
    /// catches up: memory stays bounded however far ingest runs ahead of delivery.
    fn has_room(&self) -> bool;
    fn hand_off(&self, jobs: Vec<DeliveryJob>);
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    pub max_endpoints_per_app: usize,
    /// How long an idempotency key's answer is replayed.
    pub idempotency_ttl_ms: i64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            max_endpoints_per_app: 100,
            idempotency_ttl_ms: 12 * 3600 * 1000,
        }
    }
}

pub struct ApiState {
    pub store: Store,
    pub config: ApiConfig,
    pub hand_off: Arc<dyn HandOff>,
    /// Token hash → token, for tokens already seen (they are never deleted).
    pub(crate) token_cache: RwLock<HashMap<String, TokenInfo>>,
    /// Idempotency keys whose first request is still running.
    pub(crate) in_flight_keys: Mutex<HashMap<String, Arc<Notify>>>,
}

impl ApiState {
    pub fn new(store: Store, config: ApiConfig, hand_off: Arc<dyn HandOff>) -> Arc<ApiState> {
        Arc::new(ApiState {
            store,
            config,
            hand_off,
            token_cache: RwLock::new(HashMap::new()),
            in_flight_keys: Mutex::new(HashMap::new()),
        })
    }
}

/// Who made the request: set by the auth layer for every authenticated route.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_hash: String,
    /// Some for an application-scoped token.
    pub app_id: Option<String>,
}
