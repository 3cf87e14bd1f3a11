//! Shared state of the API handlers, and the authenticated caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use herald_store::{Application, DeliveryJob, SharedStore, TokenInfo};
use tokio::sync::Notify;

/// Where deliveries go right after they were committed, for immediate sending (the
/// binary plugs the delivery engine in here; the API does not know it).
pub trait HandOff: Send + Sync {
    /// Until when deliveries committed at `now` may be leased to this process for an
    /// in-memory hand-off, or `None` when it takes no more: its dispatcher is full (new
    /// deliveries are then committed unleased and a scheduler takes them from the store
    /// as it catches up, so memory stays bounded however far ingest runs ahead of
    /// delivery), or this process does not deliver at all (`--role api`).
    fn lease_until(&self, now: i64) -> Option<i64>;
    fn hand_off(&self, jobs: Vec<DeliveryJob>);
    /// Deliveries waiting in this process's memory or in flight, for `/metrics`.
    fn in_memory(&self) -> usize {
        0
    }
    /// The delivery engine's state for the health route: "running", "stopping", or
    /// "off" on a node that does not deliver.
    fn engine_status(&self) -> &'static str {
        "off"
    }
    /// Tries a destination's connection as the engine would, sending nothing: `Err`
    /// says why it would fail.
    fn test_destination(
        &self,
        _destination: herald_store::Destination,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
        Box::pin(async {
            Err("this node does not deliver (--role api): test from a node that does".to_string())
        })
    }
}

/// Says how many bytes are free on the disk the embedded store writes to.
#[derive(Clone)]
pub struct DiskProbe(pub Arc<dyn Fn() -> Option<u64> + Send + Sync>);

impl std::fmt::Debug for DiskProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskProbe")
    }
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Bytes free where the embedded store writes (`None`: not an embedded store, or
    /// unknown). Health reports the node unable to take writes when this is below
    /// `min_free_disk_bytes`.
    pub free_disk_bytes: Option<DiskProbe>,
    /// Below this much free disk, ingest would fail: health says so.
    pub min_free_disk_bytes: u64,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Where deliveries may go: endpoint URLs with a literal address outside it are
    /// refused with 422.
    pub destinations: Arc<herald_core::netguard::DestinationPolicy>,
    /// Endpoint URLs must be https.
    pub https_only: bool,
    /// The longest a request may take, reading its body included; a slower one gets
    /// 408 (so a client trickling a body cannot hold a connection for long).
    pub request_deadline: std::time::Duration,
    /// The longest URL (path and query) accepted; longer ones get 414.
    pub max_uri_bytes: usize,
    /// The server's address as its users reach it, for links it hands out.
    pub public_url: String,
    /// The application operational webhooks are sent from (`None`: they are off).
    pub operational_app_id: Option<String>,
    /// Where ingest spans go (OpenTelemetry), when tracing is on.
    pub spans: Option<Arc<dyn herald_core::trace::SpanSink>>,
    /// Counters shown at `/metrics` (shared with the engine).
    pub metrics: Arc<herald_core::metrics::Metrics>,
    /// Seals endpoint signing keys before they are stored, and opens them to show.
    pub sealer: Arc<herald_core::sealing::Sealer>,
    pub max_endpoints_per_app: usize,
    /// How long an idempotency key's answer is replayed.
    pub idempotency_ttl_ms: i64,
    /// The `herald listen` sessions connected to this node (shared with the engine,
    /// which relays their endpoints' deliveries to them).
    pub listen: crate::listen::ListenHub,
    /// Branding and embedding of the consumer portal.
    pub ui: crate::ui::UiConfig,
    /// Woken after this node commits a message: long polls wait on it, and the binary
    /// shares it with the engine's destinations.
    pub stream_signal: Arc<Notify>,
    /// The longest a long poll waits, whatever its `wait` asks (at most 30 s).
    pub poll_max_wait: Duration,
    /// The threads that run transformations (shared with the engine): the API checks
    /// scripts before saving them and runs the try route on them.
    pub transforms: herald_transform::Pool,
    /// How long a console session lasts.
    pub session_ttl: Duration,
    /// Single sign-on with an OpenID provider, when configured.
    pub oidc: Option<crate::routes::sso::OidcConfig>,
    /// The environment this state serves (`herald_core::environment::DEFAULT` or
    /// another's name): the tokens it makes carry it.
    pub environment: String,
    /// Every environment this Herald serves, the default first.
    pub environments: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            free_disk_bytes: None,
            min_free_disk_bytes: 0,
            max_body_bytes: 1024 * 1024,
            destinations: Arc::default(),
            https_only: false,
            public_url: "http://127.0.0.1:8071".into(),
            request_deadline: std::time::Duration::from_secs(60),
            max_uri_bytes: 8 * 1024,
            sealer: Arc::new(herald_core::sealing::Sealer::ephemeral()),
            metrics: Arc::default(),
            operational_app_id: None,
            spans: None,
            max_endpoints_per_app: 100,
            idempotency_ttl_ms: 12 * 3600 * 1000,
            listen: Default::default(),
            ui: Default::default(),
            stream_signal: Default::default(),
            poll_max_wait: Duration::from_secs(30),
            transforms: Default::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            oidc: None,
            environment: herald_core::environment::DEFAULT.into(),
            environments: vec![herald_core::environment::DEFAULT.into()],
        }
    }
}

pub struct ApiState {
    pub store: SharedStore,
    /// Where people and their sessions are kept: the default environment's store,
    /// whichever environment this state serves (people are the whole Herald's).
    pub people: SharedStore,
    pub config: ApiConfig,
    pub hand_off: Arc<dyn HandOff>,
    /// Token hash → token and when it was read. On a shared store another node may end
    /// a token (logout), so entries are trusted for `SHARED_TOKEN_TTL` only there.
    pub(crate) token_cache: RwLock<HashMap<String, (TokenInfo, Instant)>>,
    /// Idempotency keys whose first request is still running.
    pub(crate) in_flight_keys: Mutex<HashMap<String, Arc<Notify>>>,
    /// Applications by id and by uid, so ingest needs no read per message. Every change
    /// to an application goes through this process's handlers, which evict it.
    pub(crate) apps: RwLock<HashMap<String, (Application, Instant)>>,
    /// Refused inbound requests logged per source in the current second (see
    /// `inbound::log_refusal`): anyone can post to `/in/…`, so the log of refusals is
    /// bounded.
    pub(crate) inbound_refusals: Mutex<HashMap<String, (u64, u32)>>,
    /// When this process last recorded each token's use (it records at most once a
    /// minute per token).
    pub(crate) token_touched: Mutex<HashMap<String, i64>>,
    /// Failed sign-ins by email on this node: (failures, when the window started).
    pub(crate) sign_in_failures: Mutex<HashMap<String, (u32, i64)>>,
    /// The whole router, set once it is built: the audit layer reads an object through
    /// it (a GET of its path) before a change to it.
    pub(crate) reader: std::sync::OnceLock<axum::Router>,
}

/// How long a node of a shared store trusts a cached token.
pub(crate) const SHARED_TOKEN_TTL: Duration = Duration::from_secs(5);

/// How long ingest on a shared store trusts a cached application id (see `ingest_app`).
const SHARED_INGEST_APP_TTL: Duration = Duration::from_secs(2);

/// Applications kept in `ApiState::apps` at most; past that it starts over.
const MAX_CACHED_APPS: usize = 10_000;

/// How long an application stays in `ApiState::apps` after it was read; see
/// `forget_stale_apps`.
pub const CACHED_APP_KEPT: Duration = Duration::from_secs(30);

impl ApiState {
    pub(crate) fn cached_app(&self, key: &str) -> Option<Application> {
        // Another node may change an application of a shared store at any time.
        if self.store.is_shared() {
            return None;
        }
        self.apps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|(app, _)| app.clone())
    }

    /// For ingest on a shared store: the application cached under its own id (never a
    /// uid, which another node may move) if cached within `SHARED_INGEST_APP_TTL`.
    /// Ingest needs only the id, which never changes, and a message for an application
    /// deleted meanwhile fails on its foreign key all the same.
    pub(crate) fn cached_app_id_for_ingest(&self, key: &str) -> Option<Application> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        let (app, at) = apps.get(key)?;
        (app.id == key && at.elapsed() < SHARED_INGEST_APP_TTL).then(|| app.clone())
    }

    pub(crate) fn cache_app(&self, app: &Application) {
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        if apps.len() >= MAX_CACHED_APPS {
            apps.clear();
        }
        let now = Instant::now();
        apps.insert(app.id.clone(), (app.clone(), now));
        if let Some(uid) = &app.uid {
            apps.insert(uid.clone(), (app.clone(), now));
        }
    }

    /// Forgets the applications read more than `CACHED_APP_KEPT` ago, so that a burst
    /// to many applications leaves no cache behind once it is over. An application
    /// still in use is read again, once every `CACHED_APP_KEPT` at most.
    pub fn forget_stale_apps(&self) {
        if let Some(cutoff) = Instant::now().checked_sub(CACHED_APP_KEPT) {
            self.forget_apps_read_before(cutoff);
        }
    }

    fn forget_apps_read_before(&self, cutoff: Instant) {
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        apps.retain(|_, (_, read_at)| *read_at >= cutoff);
        // The table keeps its size after a burst unless asked to give it back.
        if apps.capacity() > 4 * apps.len().max(64) {
            apps.shrink_to_fit();
        }
    }

    /// Forgets an application under every key (its uid may have just changed).
    pub(crate) fn evict_app(&self, id: &str) {
        self.apps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (a, _)| a.id != id);
    }
}

impl ApiState {
    pub fn new(store: SharedStore, config: ApiConfig, hand_off: Arc<dyn HandOff>) -> Arc<ApiState> {
        Self::with_people(store.clone(), store, config, hand_off)
    }

    /// The state of an environment whose people are kept in `people` (the default
    /// environment's store).
    pub fn with_people(
        store: SharedStore,
        people: SharedStore,
        config: ApiConfig,
        hand_off: Arc<dyn HandOff>,
    ) -> Arc<ApiState> {
        Arc::new(ApiState {
            store,
            people,
            config,
            hand_off,
            token_cache: RwLock::new(HashMap::new()),
            token_touched: Mutex::default(),
            sign_in_failures: Mutex::default(),
            in_flight_keys: Mutex::new(HashMap::new()),
            apps: RwLock::new(HashMap::new()),
            inbound_refusals: Mutex::new(HashMap::new()),
            reader: std::sync::OnceLock::new(),
        })
    }
}

/// Who made the request: set by the auth layer for every authenticated route.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_hash: String,
    /// Some for an application-scoped token.
    pub app_id: Option<String>,
    /// Some for a poller's token: it reads that destination (of `app_id`) only.
    pub destination_id: Option<String>,
    /// The token's id, and its role when it has one (`roles.rs`).
    pub token_id: String,
    pub role: Option<crate::roles::Role>,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHandOff;

    impl HandOff for NoHandOff {
        fn lease_until(&self, _now: i64) -> Option<i64> {
            None
        }
        fn hand_off(&self, _jobs: Vec<DeliveryJob>) {}
    }

    fn app(id: &str, uid: &str) -> Application {
        Application {
            id: id.into(),
            uid: Some(uid.into()),
            name: id.into(),
            throttle_rate: None,
            metadata: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test]
    async fn applications_read_before_the_cutoff_are_forgotten_under_every_key() {
        let dir = std::env::temp_dir().join(format!(
            "herald-api-apps-{}-{}",
            std::process::id(),
            herald_core::ids::random_base62(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store: SharedStore =
            Arc::new(herald_store::SqliteStore::open(&dir.join("herald.db")).unwrap());
        let state = ApiState::new(store, ApiConfig::default(), Arc::new(NoHandOff));
        state.cache_app(&app("app_old", "old"));
        let cutoff = Instant::now();
        // Read earlier than the cutoff: moved back in time rather than waited for.
        for (_, read_at) in state.apps.write().unwrap().values_mut() {
            *read_at = cutoff - Duration::from_secs(1);
        }
        state.cache_app(&app("app_new", "new"));

        state.forget_apps_read_before(cutoff);
        for gone in ["app_old", "old"] {
            assert!(state.cached_app(gone).is_none(), "{gone} is still cached");
        }
        for kept in ["app_new", "new"] {
            assert_eq!(state.cached_app(kept).unwrap().id, "app_new");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
