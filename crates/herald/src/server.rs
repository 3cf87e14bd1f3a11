//! Starting a server: lock the data directory, open the store, make sure an admin token
//! exists, start the delivery engine, and serve the API.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::Request;
use axum::ServiceExt;
use herald_api::{ApiState, HandOff};
use herald_core::{ids, time::now_ms, token};
use herald_engine::Engine;
use herald_store::Store;
use tower::Layer;

use crate::config::{ensure_dir, Config};

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    pub engine: Engine,
    /// The admin token generated on this start, if one was (it is shown only once).
    pub new_admin_token: Option<String>,
    pub first_start: bool,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    _lock: File,
}

/// Takes an exclusive lock on `<data_dir>/herald.lock` so that two servers never share one
/// embedded database.
fn lock_data_dir(config: &Config) -> anyhow::Result<File> {
    let path = config.data_dir.join("herald.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
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

/// Makes sure an admin token exists: the configured one, or a new one on first start.
/// Returns the new token when one was generated.
async fn ensure_admin_token(store: &Store, config: &Config) -> anyhow::Result<Option<String>> {
    let now = now_ms();
    if !config.admin_token.is_empty() {
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
    let new = token::generate();
    store
        .token_insert(
            &ids::generate(ids::TOKEN),
            &token::hash(&new),
            "first-start admin token",
            None,
            now,
            None,
        )
        .await?;
    Ok(Some(new))
}

impl Server {
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        ensure_dir(&config.data_dir)?;
        let lock = lock_data_dir(config)?;
        let db_path = config.database_path();
        let first_start = !db_path.exists();
        let store = Store::open(&db_path)
            .with_context(|| format!("opening the database {}", db_path.display()))?;
        let new_admin_token = ensure_admin_token(&store, config).await?;

        let engine =
            Engine::new(store.clone(), config.engine()).context("building the HTTP client")?;
        engine
            .start()
            .await
            .context("resuming the delivery queue")?;
        let hand_off: Arc<dyn HandOff> = Arc::new(EngineHandOff(engine.clone()));
        let api_config = config.api();
        tokio::spawn(prune_idempotency_records(
            store.clone(),
            api_config.idempotency_ttl_ms,
        ));
        let state = ApiState::new(store.clone(), api_config, hand_off);
        let router = herald_api::router(state);
        // Trailing slashes are ignored: rewrite the path before routing.
        let app = axum::middleware::map_request(strip_trailing_slash).layer(router);

        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let serve = tokio::spawn(async move {
            axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
        });
        Ok(Server {
            addr,
            store,
            engine,
            new_admin_token,
            first_start,
            serve,
            _lock: lock,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until the listener fails (or forever).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.serve
            .await
            .context("server task")?
            .context("serving HTTP")
    }
}

/// Drops idempotency records older than their time to live, now and every 10 minutes,
/// so the table does not grow without bound.
async fn prune_idempotency_records(store: Store, ttl_ms: i64) {
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

/// The engine as the API's hand-off.
struct EngineHandOff(Engine);

impl HandOff for EngineHandOff {
    fn has_room(&self) -> bool {
        self.0.has_room()
    }
    fn hand_off(&self, jobs: Vec<herald_store::DeliveryJob>) {
        self.0.hand_off(jobs)
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
