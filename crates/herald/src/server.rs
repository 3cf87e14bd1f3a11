//! Starting a server: open the store (the embedded SQLite file, locked for this process,
//! or a PostgreSQL database shared with other nodes), make sure an admin token exists,
//! start the delivery engine and serve the API, as the node's role asks.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use herald_api::{ApiState, HandOff};
use herald_core::{ids, time::now_ms, token};
use herald_engine::Engine;
use herald_store::prelude::*;
use herald_store::{PgStore, SharedStore, SqliteStore};
use tokio::net::TcpListener;
use tower::Layer;

use crate::config::{ensure_dir, Config};

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub store: SharedStore,
    pub engine: Engine,
    /// The admin token generated on this start, if one was (it is shown only once).
    pub new_admin_token: Option<String>,
    pub first_start: bool,
    /// The environments besides the default one.
    pub environments: Vec<RunningEnvironment>,
    /// Where the main key came from (a generated key file is announced at start).
    pub key_source: crate::keys::KeySource,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Tells the accept loop to stop taking connections.
    stop_accepting: Arc<tokio::sync::Notify>,
    shutdown_grace: Duration,
    /// The data directory's lock, held for the embedded store.
    _lock: Option<File>,
}

/// Takes an exclusive lock on `<data_dir>/herald.lock` so that two servers never share one
/// embedded database.
pub fn lock_data_dir(config: &Config) -> anyhow::Result<File> {
    let path = config.data_dir.join("herald.lock");
    let mut options = File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => anyhow::bail!(
            "another herald process is using {} (its lock file is held); stop it or choose another --data-dir",
            config.data_dir.display()
        ),
    }
}

/// Makes the configured first admin person (`admin_email`, `admin_password`) when nobody
/// can sign in yet.
async fn ensure_first_admin(store: &SharedStore, config: &Config) -> anyhow::Result<()> {
    if config.admin_email.is_empty() {
        return Ok(());
    }
    let nobody = store
        .person_list(herald_store::ListQuery {
            limit: 1,
            iterator: None,
            descending: false,
        })
        .await?
        .data
        .is_empty();
    if !nobody {
        return Ok(());
    }
    let now = now_ms();
    let person = herald_store::Person {
        id: ids::generate(ids::PERSON),
        email: config.admin_email.trim().to_lowercase(),
        password_hash: herald_core::password::hash(&config.admin_password),
        role: "admin".into(),
        environment_roles: Default::default(),
        totp_secret: None,
        created_at: now,
        updated_at: now,
    };
    match store.person_insert(person).await {
        // Another node made them first.
        Ok(_) | Err(herald_store::StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure an admin token exists: the configured one, or a new one on first start.
/// Returns the new token when one was generated.
async fn ensure_admin_token(
    store: &SharedStore,
    config: &Config,
    environment: &str,
) -> anyhow::Result<Option<String>> {
    let now = now_ms();
    // The configured admin token is the default environment's.
    if !config.admin_token.is_empty() && environment == herald_core::environment::DEFAULT {
        if config.admin_token.len() < 16 {
            anyhow::bail!("HERALD_ADMIN_TOKEN / admin_token must be at least 16 characters");
        }
        let hash = token::hash(&config.admin_token);
        if store.token_find(&hash).await?.is_none() {
            store
                .token_insert(
                    &ids::generate(ids::TOKEN),
                    &hash,
                    "configured admin token",
                    None,
                    None,
                    now,
                    None,
                )
                .await?;
        }
        return Ok(None);
    }
    if store.admin_token_count().await? > 0 {
        return Ok(None);
    }
    let new = token::generate_in(environment);
    store
        .token_insert(
            &ids::generate(ids::TOKEN),
            &token::hash(&new),
            "first-start admin token",
            None,
            None,
            now,
            None,
        )
        .await?;
    Ok(Some(new))
}

/// One running environment: its store, its engine and its API state.
pub struct RunningEnvironment {
    pub name: String,
    pub store: SharedStore,
    pub engine: Engine,
    /// The admin token made for it on this start, if one was (shown only once).
    pub new_admin_token: Option<String>,
    state: Arc<ApiState>,
}

/// What every environment of the process shares.
struct Shared {
    sealer: Arc<herald_core::sealing::Sealer>,
    spans: Option<Arc<dyn herald_core::trace::SpanSink>>,
    transforms: herald_transform::Pool,
    /// The default environment's store, where people and sessions are kept.
    people: SharedStore,
    addr: SocketAddr,
}

/// Starts one environment on its store: its operational application, its delivery
/// engine (when the node delivers), its admin token, its background sweeps and its API
/// state. Each environment has its own `herald listen` sessions, metrics and stream
/// signal, so nothing of one is seen from another.
async fn start_environment(
    config: &Config,
    name: &str,
    store: SharedStore,
    shared: &Shared,
) -> anyhow::Result<RunningEnvironment> {
    let metrics = Arc::new(herald_core::metrics::Metrics::default());
    let operational_app_id = if config.operational_webhooks {
        Some(
            herald_store::operational::ensure(&store, now_ms())
                .await
                .context("creating the operational webhooks application")?,
        )
    } else {
        None
    };
    // `herald listen` sessions connect through the API and are served by the engine.
    let listen = herald_api::listen::ListenHub::default();
    let mut engine_config = config.engine(shared.sealer.clone());
    engine_config.relay = Some(Arc::new(listen.clone()));
    engine_config.spans = shared.spans.clone();
    engine_config.metrics = metrics.clone();
    // Messages the API commits wake destinations waiting at the end of a stream.
    let stream_signal = engine_config.stream_signal.clone();
    engine_config.transforms = shared.transforms.clone();
    engine_config.operational_app_id = operational_app_id.clone();
    let engine = Engine::new(store.clone(), engine_config).context("building the HTTP client")?;
    let hand_off: Arc<dyn HandOff> = if config.role.delivers() {
        engine
            .start()
            .await
            .with_context(|| format!("resuming the delivery queue of the environment {name}"))?;
        Arc::new(EngineHandOff(engine.clone()))
    } else {
        Arc::new(NoHandOff)
    };
    let new_admin_token = ensure_admin_token(&store, config, name).await?;
    let mut api_config = config.api(shared.sealer.clone());
    api_config.metrics = metrics;
    api_config.operational_app_id = operational_app_id;
    api_config.spans = shared.spans.clone();
    api_config.listen = listen;
    api_config.stream_signal = stream_signal;
    api_config.transforms = shared.transforms.clone();
    api_config.environment = name.to_string();
    if config.database_url.is_empty() {
        // Health reports a full disk under the embedded store: below a few request
        // bodies' worth of room, ingest fails.
        let dir = config.data_dir.clone();
        api_config.free_disk_bytes = Some(herald_api::DiskProbe(Arc::new(move || {
            let stat = rustix::fs::statvfs(&dir).ok()?;
            Some(stat.f_bavail.saturating_mul(stat.f_frsize))
        })));
        api_config.min_free_disk_bytes = (4 * config.max_body_bytes as u64).max(4 << 20);
    }
    if api_config.public_url.is_empty() {
        api_config.public_url = format!("http://{}", shared.addr);
    }
    tokio::spawn(prune_idempotency_records(
        store.clone(),
        api_config.idempotency_ttl_ms,
    ));
    tokio::spawn(sweep_retention(
        store.clone(),
        Duration::from_secs_f64(config.retention_sweep_secs),
        (config.message_retention_days * 86_400_000.0) as i64,
        (config.audit_retention_days * 86_400_000.0) as i64,
    ));
    let state = ApiState::with_people(store.clone(), shared.people.clone(), api_config, hand_off);
    tokio::spawn(forget_stale_apps(Arc::downgrade(&state)));
    Ok(RunningEnvironment {
        name: name.to_string(),
        store,
        engine,
        new_admin_token,
        state,
    })
}

impl RunningEnvironment {
    fn router(&self, config: &Config) -> axum::Router {
        if config.role.serves_api() {
            herald_api::router(self.state.clone())
        } else {
            herald_api::health_router(self.state.clone())
        }
    }
}

impl Server {
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        // What can fail without leaving anything behind comes first: a busy port must
        // not cost a first start its data directory, key and admin token.
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let (store, lock, first_start) = open_store(config).await?;
        let (sealer, key_source) = crate::keys::load_sealer(config)?;
        let spans: Option<Arc<dyn herald_core::trace::SpanSink>> =
            if config.otlp_endpoint.is_empty() {
                None
            } else {
                Some(Arc::new(herald_engine::otlp::OtlpExporter::start(
                    &config.otlp_endpoint,
                    "herald",
                )))
            };
        let addr = listener.local_addr()?;
        let shared = Shared {
            sealer: Arc::new(sealer),
            spans,
            transforms: config.transforms(),
            people: store.clone(),
            addr,
        };
        let mut others = Vec::new();
        for name in &config.environments {
            let env_store = open_environment_store(config, name).await?;
            others.push(start_environment(config, name, env_store, &shared).await?);
        }
        let default = start_environment(
            config,
            herald_core::environment::DEFAULT,
            store.clone(),
            &shared,
        )
        .await?;
        ensure_first_admin(&store, config).await?;
        let router = herald_api::by_environment::router(
            default.router(config),
            others
                .iter()
                .map(|env| herald_api::by_environment::Served {
                    name: env.name.clone(),
                    router: env.router(config),
                    store: env.store.clone(),
                })
                .collect(),
        );
        // Trailing slashes are ignored: rewrite the path before routing.
        let app = axum::middleware::map_request(strip_trailing_slash).layer(router);

        let header_timeout = Duration::from_secs_f64(config.header_read_timeout_secs);
        let stop_accepting = Arc::new(tokio::sync::Notify::new());
        let limits = ConnectionLimits {
            header_timeout,
            max_connections: connection_cap(config),
        };
        let serve = tokio::spawn(serve_http(listener, app, limits, stop_accepting.clone()));
        Ok(Server {
            addr,
            store,
            engine: default.engine.clone(),
            new_admin_token: default.new_admin_token.clone(),
            first_start,
            key_source,
            environments: others,
            serve,
            stop_accepting,
            shutdown_grace: Duration::from_secs_f64(config.shutdown_grace_secs),
            _lock: lock,
        })
    }

    /// Stops gracefully: no new connections, then the engine's own graceful stop (see
    /// `Engine::shutdown`), within `shutdown_grace_secs`.
    pub async fn shutdown(&self) -> herald_engine::ShutdownReport {
        self.stop_accepting.notify_one();
        // Every environment's engine stops at the same time, within the one grace period.
        let grace = self.shutdown_grace;
        let others: Vec<_> = self
            .environments
            .iter()
            .map(|env| {
                let engine = env.engine.clone();
                tokio::spawn(async move { engine.shutdown(grace).await })
            })
            .collect();
        let mut report = self.engine.shutdown(grace).await;
        for other in others {
            let Ok(other) = other.await else { continue };
            report.in_flight_at_stop += other.in_flight_at_stop;
            report.unfinished += other.unfinished;
            report.unrecorded += other.unrecorded;
            report.given_back += other.given_back;
        }
        report
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until the listener fails (or forever).
    /// Runs until the HTTP server stops (it only does on a fatal listener error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.serve)
            .await
            .context("server task")?
            .context("serving HTTP")
    }
}

/// Largest request head (request line and headers) read; larger ones get 431.
const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// Connections served past the cap, one request each with a short header timeout, so
/// that health checks answer while the regular connections are all taken.
const OVERFLOW_CONNECTIONS: usize = 64;

/// How long an overflow connection may take to send its request's head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

struct ConnectionLimits {
    header_timeout: Duration,
    max_connections: usize,
}

/// The cap on client connections: `max_connections`, or (0) what the file-descriptor
/// limit allows, raised to its hard limit first, less room for deliveries, the
/// database and the files of the embedded store.
fn connection_cap(config: &Config) -> usize {
    if config.max_connections > 0 {
        return config.max_connections;
    }
    let descriptors = raise_descriptor_limit();
    let reserved = config.max_in_flight + config.database_pool_size + 128 + OVERFLOW_CONNECTIONS;
    let cap = descriptors.saturating_sub(reserved).clamp(16, 100_000);
    tracing::debug!(descriptors, cap, "client connection cap");
    cap
}

/// Raises this process's soft limit on open files to its hard limit (where allowed)
/// and returns the soft limit in force.
fn raise_descriptor_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    let maximum = limit.maximum.unwrap_or(u64::MAX).min(1 << 20);
    let in_force = if current < maximum {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => maximum,
            Err(_) => current,
        }
    } else {
        current
    };
    usize::try_from(in_force).unwrap_or(usize::MAX)
}

/// Serves HTTP/1.1 on `listener`. Our own accept loop rather than `axum::serve`, for
/// the limits a server on the internet needs: a client has `header_timeout` to send a
/// request's head (slowloris), the head's size is bounded (its field count is too,
/// by hyper's default of 100: more get 431), and connections are capped below the
/// file-descriptor limit (past it, accepting would fail and every client, health checks
/// included, would wait).
async fn serve_http<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<()>
where
    S: tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let regular = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let overflow = Arc::new(tokio::sync::Semaphore::new(OVERFLOW_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.notified() => return Ok(()),
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait a moment rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (permit, header_timeout, keep_alive) = match regular.clone().try_acquire_owned() {
            Ok(permit) => (permit, limits.header_timeout, true),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(permit) => (permit, OVERFLOW_HEADER_TIMEOUT, false),
                // Everything is taken: close it now rather than let it wait unseen.
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let peer = stream.peer_addr().ok();
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    // Where the request came from, for the audit trail.
                    if let Some(peer) = peer {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                    }
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive)
                .max_header_size(MAX_REQUEST_HEAD_BYTES);
            let io = TokioIo::new(crate::http_errors::JsonErrorIo::new(stream));
            if let Err(e) = http.serve_connection(io, service).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Rows deleted per statement by the retention sweep: small enough that a sweep never
/// holds the store for long.
const RETENTION_BATCH: usize = 250;

/// After each batch the sweep waits this many times as long as the batch took (and at
/// least `SWEEP_MIN_PAUSE`), so that it keeps the store busy at most a tenth of the
/// time: deleting millions of rows must not take the writer from ingest and delivery.
/// A batch's time includes its wait behind other writes, so the sweep slows down under
/// load and runs faster on an idle store.
const SWEEP_PAUSE_FACTOR: u32 = 9;
const SWEEP_MIN_PAUSE: Duration = Duration::from_millis(10);

/// Runs `batch` until it deletes fewer than `RETENTION_BATCH` rows, paced (above), and
/// returns how many it deleted in all.
async fn in_paced_batches<F>(
    mut batch: impl FnMut() -> F,
) -> Result<usize, herald_store::StoreError>
where
    F: std::future::Future<Output = Result<usize, herald_store::StoreError>>,
{
    let mut total = 0;
    loop {
        let started = tokio::time::Instant::now();
        let n = batch().await?;
        total += n;
        if n < RETENTION_BATCH {
            return Ok(total);
        }
        tokio::time::sleep((started.elapsed() * SWEEP_PAUSE_FACTOR).max(SWEEP_MIN_PAUSE)).await;
    }
}

/// Deletes expired payloads, then messages older than `keep_ms` (with their log),
/// audit records older than `audit_keep_ms` and logged inbound requests as old as
/// messages, every `every`, in paced batches, so the store does not grow without bound.
async fn sweep_retention(store: SharedStore, every: Duration, keep_ms: i64, audit_keep_ms: i64) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = now_ms();
        let (mut payloads, mut messages) = (0, 0);
        let store = &store;
        let swept = async {
            payloads =
                in_paced_batches(|| store.purge_expired_payloads(now, RETENTION_BATCH)).await?;
            messages =
                in_paced_batches(|| store.prune_messages(now - keep_ms, RETENTION_BATCH)).await?;
            in_paced_batches(|| store.audit_prune(now - audit_keep_ms, RETENTION_BATCH)).await?;
            // The inbound request log is kept as long as message metadata.
            messages +=
                in_paced_batches(|| store.inbound_prune(now - keep_ms, RETENTION_BATCH)).await?;
            Ok::<_, herald_store::StoreError>(())
        }
        .await;
        match swept {
            Ok(()) if payloads + messages > 0 => {
                tracing::info!(payloads, messages, "retention sweep")
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, payloads, messages, "retention sweep stopped early")
            }
        }
    }
}

/// Empties the application cache of what a past burst left in it, twice per
/// `CACHED_APP_KEPT`, for as long as the environment's state lives.
async fn forget_stale_apps(state: std::sync::Weak<ApiState>) {
    let mut every = tokio::time::interval(herald_api::CACHED_APP_KEPT / 2);
    loop {
        every.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        state.forget_stale_apps();
    }
}

/// Drops idempotency records older than their time to live, now and every 10 minutes,
/// so the table does not grow without bound.
async fn prune_idempotency_records(store: SharedStore, ttl_ms: i64) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        match store.idempotency_prune(now_ms(), ttl_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(records = n, "pruned idempotency records"),
            Err(e) => tracing::warn!(error = %e, "could not prune idempotency records"),
        }
    }
}

/// Opens the configured store: PostgreSQL when `database_url` is set, else the embedded
/// SQLite file in the data directory, locked so that no second process opens it.
/// Returns the store, the lock, and whether this is the store's first start.
async fn open_store(config: &Config) -> anyhow::Result<(SharedStore, Option<File>, bool)> {
    if !config.database_url.is_empty() {
        let store = connect_postgres(config, config.database_pool_size).await?;
        let first_start = store.admin_token_count().await? == 0;
        return Ok((Arc::new(store), None, first_start));
    }
    ensure_dir(&config.data_dir)?;
    let lock = lock_data_dir(config)?;
    let db_path = config.database_path();
    // An empty file (created private by `open_sqlite`) is a first start too.
    let first_start = std::fs::metadata(&db_path).map_or(true, |m| m.len() == 0);
    let store = open_sqlite(&db_path)?;
    Ok((Arc::new(store), Some(lock), first_start))
}

/// Opens (creating if needed) the store of an environment other than the default: on
/// PostgreSQL a schema of its own in the same database, else its own SQLite file.
pub async fn open_environment_store(config: &Config, name: &str) -> anyhow::Result<SharedStore> {
    herald_core::environment::check_name(name).map_err(|e| anyhow::anyhow!(e))?;
    if !config.database_url.is_empty() {
        let schema = environment_schema(name);
        let store = PgStore::connect_in_schema(
            &config.database_url,
            Some(&schema),
            config.database_pool_size,
            Duration::from_secs(config.wait_for_db_secs),
        )
        .await
        .with_context(|| {
            format!("opening the PostgreSQL schema {schema} of the environment {name}")
        })?;
        return Ok(Arc::new(store));
    }
    let path = config.environment_database_path(name);
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    Ok(Arc::new(open_sqlite(&path)?))
}

/// The PostgreSQL schema of an environment (names hold no `_`, so this is one-to-one).
pub fn environment_schema(name: &str) -> String {
    format!("herald_env_{}", name.replace('-', "_"))
}

/// Opens (creating if needed) the embedded database, its files private to this user.
fn open_sqlite(path: &std::path::Path) -> anyhow::Result<SqliteStore> {
    crate::config::make_database_private(path)?;
    SqliteStore::open(path).with_context(|| format!("opening the database {}", path.display()))
}

/// Connects to the configured PostgreSQL database (waiting up to `wait_for_db_secs`)
/// with at most `pool_size` connections, migrating it if needed.
async fn connect_postgres(config: &Config, pool_size: usize) -> anyhow::Result<PgStore> {
    let wait = Duration::from_secs(config.wait_for_db_secs);
    PgStore::connect(&config.database_url, pool_size, wait)
        .await
        .context("opening the PostgreSQL store")
}

/// Opens the configured store for `herald token create`, creating the embedded database
/// (private, like `serve` makes it) when there is none yet: a token may be made before
/// the first start, which then makes none of its own. No lock is taken, so it runs
/// beside a running server.
pub async fn open_or_create_store(config: &Config) -> anyhow::Result<SharedStore> {
    if !config.database_url.is_empty() {
        return Ok(Arc::new(connect_postgres(config, 2).await?));
    }
    ensure_dir(&config.data_dir)?;
    Ok(Arc::new(open_sqlite(&config.database_path())?))
}

/// Opens the configured store for a one-off command (`herald migrate`,
/// `rotate-main-key`), without taking the data directory's lock: the embedded database
/// must already exist.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<SharedStore> {
    if !config.database_url.is_empty() {
        return Ok(Arc::new(connect_postgres(config, 2).await?));
    }
    let path = config.database_path();
    if !path.exists() {
        anyhow::bail!(
            "no database at {}; run `herald serve` once first",
            path.display()
        );
    }
    Ok(Arc::new(SqliteStore::open(&path)?))
}

/// The hand-off of a node that does not deliver (`--role api`): deliveries stay in the
/// database, due now, for the workers (who hear of them through the store).
struct NoHandOff;

impl HandOff for NoHandOff {
    fn lease_until(&self, _now: i64) -> Option<i64> {
        None
    }

    fn hand_off(&self, jobs: Vec<herald_store::DeliveryJob>) {
        debug_assert!(
            jobs.is_empty(),
            "nothing is leased to a node without an engine"
        );
    }
}

/// The engine as the API's hand-off.
struct EngineHandOff(Engine);

impl HandOff for EngineHandOff {
    fn lease_until(&self, now: i64) -> Option<i64> {
        self.0.lease_until(now)
    }
    fn hand_off(&self, jobs: Vec<herald_store::DeliveryJob>) {
        self.0.hand_off(jobs)
    }
    fn in_memory(&self) -> usize {
        self.0.queued()
    }
    fn test_destination(
        &self,
        destination: herald_store::Destination,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
        let engine = self.0.clone();
        Box::pin(async move { engine.test_destination(&destination).await })
    }
    fn engine_status(&self) -> &'static str {
        if self.0.is_stopping() {
            "stopping"
        } else {
            "running"
        }
    }
}

async fn strip_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = new.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_sweep_keeps_the_store_busy_at_most_a_tenth_of_the_time() {
        let started = tokio::time::Instant::now();
        let (mut calls, mut busy) = (0, Duration::ZERO);
        let deleted = in_paced_batches(|| {
            calls += 1;
            // Batches of 4 ms then 1 ms of work, full but for the last one.
            let took = Duration::from_millis(if calls <= 5 { 4 } else { 1 });
            busy += took;
            let n = if calls < 10 { RETENTION_BATCH } else { 7 };
            async move {
                tokio::time::sleep(took).await;
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(
            calls, 10,
            "it stops after the first batch that was not full"
        );
        assert_eq!(deleted, 9 * RETENTION_BATCH + 7);
        // 5 x (4 + 36) ms, then 4 x (1 + 10) ms (the shortest pause), then 1 ms.
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(5 * 40 + 4 * 11 + 1)
        );
        assert!(
            busy * 5 < started.elapsed(),
            "busy {busy:?} of {:?}",
            started.elapsed()
        );
    }
}
