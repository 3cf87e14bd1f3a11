//! Herald's delivery engine: takes due deliveries, signs and sends them, records every
//! attempt and reschedules failures. It knows nothing of the management API; the binary
//! connects the two by handing freshly committed deliveries to [`Engine::hand_off`].

mod attempt;
mod deferrer;
mod destinations;
mod gate;
pub mod guard;
mod opened;
pub mod otlp;
mod scheduler;
mod transform;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_core::retry::RetryPolicy;
use herald_store::AttemptRecord;
use herald_store::{DeliveryJob, SharedStore};
use tokio::sync::{mpsc, Notify, Semaphore};

pub use attempt::AttemptOutcome;

/// What `Engine::shutdown` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Deliveries in memory (waiting or in flight) when the stop began.
    pub in_flight_at_stop: usize,
    /// Attempts still running when the grace period ended (their leases will expire
    /// and they will be sent again: at least once).
    pub unfinished: usize,
    /// Finished attempts that could not be recorded in time.
    pub unrecorded: usize,
    /// Unstarted deliveries given back to the queue.
    pub given_back: usize,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub retry: RetryPolicy,
    /// Per-attempt timeout (the whole exchange, connect to last body byte).
    pub request_timeout: Duration,
    pub user_agent: String,
    /// Also send the signature headers under `svix-*` names.
    pub svix_headers: bool,
    /// Attempts in flight at once, across all endpoints.
    pub max_in_flight: usize,
    /// Attempts in flight at once to any one endpoint: an endpoint that hangs holds at
    /// most this many of `max_in_flight`.
    pub max_in_flight_per_endpoint: usize,
    /// The longest the scheduler sleeps before looking for due work again.
    pub poll_interval: Duration,
    /// Bytes of each response body kept in the attempt log.
    pub response_capture_bytes: usize,
    /// How long a delivery stays leased to this process once claimed or handed off. If
    /// the process dies, other nodes (or its next start, on a store it owns alone) take
    /// the delivery over when the lease ends. It must exceed `request_timeout` by
    /// enough to record the attempt.
    pub lease: Duration,
    /// Where deliveries may go (the SSRF guard); by default global addresses only.
    pub destinations: Arc<herald_core::netguard::DestinationPolicy>,
    /// Refuse plain-http endpoints.
    pub https_only: bool,
    /// Fixed DNS answers for chosen host names (still checked by `destinations`).
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// An outbound proxy (`http://`, `https://` or `socks5://`) for every delivery. The
    /// proxy resolves host names itself, so it is then in charge of egress filtering;
    /// literal IP addresses are still checked here.
    pub proxy: Option<String>,
    /// Where deliveries to `herald listen` sessions go (`None`: this node serves none).
    pub relay: Option<Arc<dyn herald_core::relay::Relay>>,
    /// Opens the sealed signing keys of deliveries.
    pub sealer: Arc<herald_core::sealing::Sealer>,
    /// An endpoint whose attempts all failed for this long (no success in between) is
    /// disabled; `None`: never (410 Gone still disables at once).
    pub auto_disable_after: Option<Duration>,
    /// The application operational webhooks are sent from (`None`: they are off).
    pub operational_app_id: Option<String>,
    /// Where attempt spans go (OpenTelemetry), when tracing is on.
    pub spans: Option<Arc<dyn herald_core::trace::SpanSink>>,
    /// Where attempts and store latencies are counted.
    pub metrics: Arc<herald_core::metrics::Metrics>,
    /// Woken when this node commits a message (the API holds the other end), so that
    /// destinations waiting at the end of their stream send it at once.
    pub stream_signal: Arc<Notify>,
    /// The threads that run endpoints' transformations (shared with the API, which
    /// checks and tries scripts).
    pub transforms: herald_transform::Pool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(15),
            user_agent: format!("Herald/{}", env!("CARGO_PKG_VERSION")),
            svix_headers: false,
            max_in_flight: 512,
            max_in_flight_per_endpoint: 32,
            poll_interval: Duration::from_millis(500),
            response_capture_bytes: 20 * 1024,
            lease: Duration::from_secs(60),
            destinations: Arc::default(),
            https_only: false,
            resolve: Vec::new(),
            proxy: None,
            relay: None,
            sealer: Arc::new(herald_core::sealing::Sealer::ephemeral()),
            metrics: Arc::default(),
            auto_disable_after: Some(Duration::from_secs(5 * 24 * 3600)),
            operational_app_id: None,
            spans: None,
            stream_signal: Arc::default(),
            transforms: Default::default(),
        }
    }
}

/// Takes what `slot` holds (a background task's receiver, handed over once by `start`).
fn take<T>(slot: &std::sync::Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// A test-only fault run inside deliveries (`Engine::inject_fault_for_tests`).
pub type Fault = Arc<dyn Fn(&DeliveryJob) + Send + Sync>;

/// A delivery's place in `Engine::queued`, given back on drop.
struct QueuedPlace<'a>(&'a Engine);

impl Drop for QueuedPlace<'_> {
    fn drop(&mut self) {
        self.0.inner.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    client: reqwest::Client,
    config: EngineConfig,
    permits: Arc<Semaphore>,
    /// Per-endpoint and per-application admission (in-flight caps, what may wait in
    /// memory, throttleRate, pauses after 429/503).
    gates: gate::Gates,
    /// Deliveries their gates could not take soon, on their way back to the store.
    deferrals: mpsc::UnboundedSender<herald_store::Deferral>,
    /// Deferrals sent to the deferrer and not written yet.
    undeferred: AtomicUsize,
    /// The deferrer's end of `deferrals`, taken by `start`.
    pending_deferrals: std::sync::Mutex<Option<mpsc::UnboundedReceiver<herald_store::Deferral>>>,
    /// A test-only fault, run inside every delivery once it is admitted.
    fault: std::sync::OnceLock<Fault>,
    /// Deliveries handed to this process and not finished yet (waiting or in flight).
    queued: AtomicUsize,
    /// Wakes the scheduler when a retry was scheduled sooner than its current sleep.
    wake: Notify,
    /// Finished attempts on their way to the store, written in batches by the recorder.
    records: mpsc::UnboundedSender<AttemptRecord>,
    /// Attempt records sent to the recorder and not written yet.
    unrecorded: AtomicUsize,
    /// Set by `shutdown`: no more claims, no more hand-offs, no new attempts.
    stopping: std::sync::atomic::AtomicBool,
    /// Deliveries handed to this process that it will not attempt (it is stopping).
    given_back: std::sync::Mutex<Vec<i64>>,
    /// The recorder's end of `records`, taken by `start`.
    pending_records: std::sync::Mutex<Option<mpsc::UnboundedReceiver<AttemptRecord>>>,
    /// Signing keys already opened, by their sealed text.
    opened_keys: opened::Opened<herald_core::secret::Secret>,
    /// Sensitive custom header values already opened, by their sealed text.
    opened_headers: opened::Opened<String>,
    /// Names this process as the holder of destination leases.
    node_id: String,
    /// The destinations this process holds leases on (the supervisor keeps it), given
    /// back by `shutdown` so that another node takes them over at once.
    held_destinations: std::sync::Mutex<Vec<String>>,
}

/// How long an idle connection to a receiver is kept for reuse.
const IDLE_CONNECTION_KEPT: Duration = Duration::from_secs(30);

impl Engine {
    pub fn new(store: SharedStore, config: EngineConfig) -> Result<Engine, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        match &config.proxy {
            Some(proxy) => builder = builder.proxy(reqwest::Proxy::all(proxy)?),
            None => {
                let mut overrides: std::collections::HashMap<String, Vec<std::net::IpAddr>> =
                    std::collections::HashMap::new();
                for (host, ip) in &config.resolve {
                    overrides
                        .entry(host.to_ascii_lowercase())
                        .or_default()
                        .push(*ip);
                }
                builder = builder
                    .no_proxy()
                    .dns_resolver(Arc::new(guard::GuardedResolver {
                        policy: config.destinations.clone(),
                        overrides,
                    }));
            }
        }
        let client = builder
            // Redirects are never followed: a 3xx is the endpoint's answer, and following
            // it would let a receiver point Herald at an address nobody vetted.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            // Idle connections are state per receiving host: each is kept at most 30 s,
            // so a minute after a burst to many hosts they are all gone, and no host
            // keeps more than could be in flight at once.
            .pool_idle_timeout(IDLE_CONNECTION_KEPT)
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .tcp_nodelay(true)
            .build()?;
        let permits = Arc::new(Semaphore::new(config.max_in_flight));
        let room = config.max_in_flight.saturating_mul(8);
        let endpoint_in_flight = config.max_in_flight_per_endpoint.max(1);
        let gates = gate::Gates::new(gate::GateLimits {
            endpoint_in_flight,
            endpoint_held: config.max_in_flight.max(endpoint_in_flight),
            // One application takes at most half the node's attempts in flight and a
            // quarter of the deliveries it keeps in memory.
            app_in_flight: (config.max_in_flight / 2).max(endpoint_in_flight),
            app_held: (room / 4).max(endpoint_in_flight),
        });
        let (records, records_rx) = mpsc::unbounded_channel();
        let (deferrals, deferrals_rx) = mpsc::unbounded_channel();
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                client,
                config,
                permits,
                gates,
                queued: AtomicUsize::new(0),
                unrecorded: AtomicUsize::new(0),
                stopping: std::sync::atomic::AtomicBool::new(false),
                given_back: std::sync::Mutex::new(Vec::new()),
                records,
                pending_records: std::sync::Mutex::new(Some(records_rx)),
                deferrals,
                undeferred: AtomicUsize::new(0),
                pending_deferrals: std::sync::Mutex::new(Some(deferrals_rx)),
                fault: std::sync::OnceLock::new(),
                opened_keys: opened::Opened::new(),
                opened_headers: opened::Opened::new(),
                wake: Notify::new(),
                node_id: format!("node-{}", herald_core::ids::random_base62(16)),
                held_destinations: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// Releases the leases a previous process held (its in-flight deliveries become due
    /// now), then starts the scheduler, which keeps claiming due deliveries (retries,
    /// recovered work) for as long as the runtime runs. Call it before the API accepts
    /// messages: releasing after would also release fresh hand-offs and send them twice.
    pub async fn start(&self) -> Result<tokio::task::JoinHandle<()>, herald_store::StoreError> {
        let released = self
            .inner
            .store
            .release_leases(herald_core::time::now_ms())
            .await?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "resuming deliveries that were in flight when the last run stopped"
            );
        }
        if let Some(rx) = take(&self.inner.pending_records) {
            tokio::spawn(attempt::run_recorder(self.clone(), rx));
        }
        if let Some(rx) = take(&self.inner.pending_deferrals) {
            tokio::spawn(deferrer::run(self.clone(), rx));
        }
        // Deliveries committed by other nodes (an API-only node, say) wake the scheduler
        // at once instead of at its next poll.
        if let Some(due) = self.inner.store.due_signal() {
            let engine = self.clone();
            tokio::spawn(async move {
                loop {
                    due.notified().await;
                    engine.inner.wake.notify_one();
                }
            });
        }
        tokio::spawn(destinations::runner::supervise(self.clone()));
        Ok(tokio::spawn(scheduler::run(self.clone())))
    }

    pub(crate) fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    pub(crate) fn metrics(&self) -> &herald_core::metrics::Metrics {
        &self.inner.config.metrics
    }

    pub(crate) fn stream_signal(&self) -> Arc<Notify> {
        self.inner.config.stream_signal.clone()
    }

    /// This process's name as a holder of destination leases.
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Records which destinations this process holds now (see `shutdown`).
    pub(crate) fn set_held_destinations(&self, ids: Vec<String>) {
        *self
            .inner
            .held_destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = ids;
    }

    /// Sends an operational webhook (in the background: the caller does not wait).
    pub(crate) fn announce(&self, event_type: &'static str, data: serde_json::Value) {
        let Some(op_app) = self.inner.config.operational_app_id.clone() else {
            return;
        };
        let engine = self.clone();
        tokio::spawn(async move {
            let now = herald_core::time::now_ms();
            let new = herald_store::operational::message(
                &op_app,
                event_type,
                data,
                engine.lease_until(now),
            );
            match engine.inner.store.message_create(new, now).await {
                Ok((_, jobs)) => engine.hand_off(jobs),
                Err(e) => {
                    tracing::warn!(error = %e, event_type, "could not send an operational webhook")
                }
            }
        });
    }

    /// Whether `app_id` is the operational application (its own deliveries are never
    /// announced, so that failures cannot feed on themselves).
    pub(crate) fn is_operational(&self, app_id: &str) -> bool {
        self.inner.config.operational_app_id.as_deref() == Some(app_id)
    }

    /// Sends deliveries that were just committed and leased to this process, without
    /// waiting for the scheduler's next look at the queue.
    ///
    /// The deliveries start after one yield. Tokio runs a task spawned by a running
    /// task next (its LIFO slot), so without the yield each message's deliveries would
    /// run ahead of the other 202 answers that the same group commit released; those
    /// answers are what producers wait for, the deliveries are not. The jobs are then
    /// spawned in the order given, as before. Measured in BENCHMARKS.md.
    pub fn hand_off(&self, jobs: Vec<DeliveryJob>) {
        if jobs.is_empty() {
            return;
        }
        self.inner.queued.fetch_add(jobs.len(), Ordering::Relaxed);
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            for job in jobs {
                let engine = engine.clone();
                tokio::spawn(async move {
                    // Gives the place back however the delivery ends, a panic included.
                    let _queued = QueuedPlace(&engine);
                    engine.deliver_guarded(job).await;
                });
            }
        });
    }

    /// Test-only: runs `fault` inside every delivery once it is admitted (holding its
    /// permits), to show that whatever a delivery does, a panic included, the engine's
    /// bookkeeping holds. Set once per engine.
    #[doc(hidden)]
    pub fn inject_fault_for_tests(&self, fault: Fault) {
        let _ = self.inner.fault.set(fault);
    }

    /// Deliveries waiting in memory or in flight in this process.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Whether more hand-offs are welcome: at most eight times `max_in_flight`
    /// deliveries wait in memory; beyond that, new work waits in the store.
    pub fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// How many more deliveries may wait in memory (see `has_room`).
    pub(crate) fn room(&self) -> usize {
        self.inner
            .config
            .max_in_flight
            .saturating_mul(8)
            .saturating_sub(self.inner.queued.load(Ordering::Relaxed))
    }

    /// The lease for deliveries handed off at `now`, or `None` when there is no room
    /// (or the engine is stopping).
    pub fn lease_until(&self, now: i64) -> Option<i64> {
        (self.has_room() && !self.is_stopping()).then(|| now + self.lease_ms())
    }

    /// Whether `shutdown` has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Stops gracefully: no new claims or attempts; attempts in flight get up to
    /// `grace` to finish and are recorded; deliveries handed to this process but not
    /// started are given back to the queue (due now, for this node's next start or any
    /// other node). Returns what happened.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let started = std::time::Instant::now();
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        // Jobs waiting for a permit stop waiting; attempts holding one go on.
        self.inner.permits.close();
        self.inner.gates.close();
        let in_flight_at_stop = self.queued();
        while self.queued() > 0 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let unfinished = self.queued();
        while (self.inner.unrecorded.load(Ordering::SeqCst) > 0
            || self.inner.undeferred.load(Ordering::SeqCst) > 0)
            && started.elapsed() < grace
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let unrecorded = self.inner.unrecorded.load(Ordering::SeqCst);
        // Destinations go back at once, for another node (or the next start) to send.
        let held = std::mem::take(
            &mut *self
                .inner
                .held_destinations
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for id in held {
            if let Err(e) = self
                .inner
                .store
                .destination_release(&id, &self.inner.node_id)
                .await
            {
                tracing::warn!(destination = %id, error = %e, "could not give back a destination; its lease will run out");
            }
        }
        let ids = std::mem::take(
            &mut *self
                .inner
                .given_back
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let given_back = match self
            .inner
            .store
            .release_deliveries(ids.clone(), herald_core::time::now_ms())
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, deliveries = ids.len(), "could not give back unstarted deliveries; their leases will run out");
                0
            }
        };
        ShutdownReport {
            in_flight_at_stop,
            unfinished,
            unrecorded,
            given_back,
        }
    }

    fn lease_ms(&self) -> i64 {
        self.inner.config.lease.as_millis() as i64
    }
}
