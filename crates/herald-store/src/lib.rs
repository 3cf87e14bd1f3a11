//! Herald's storage: the [`Store`] trait every backend implements, the records it reads
//! and writes, and two backends: the embedded SQLite store (the default) and PostgreSQL
//! (for several nodes on one database). All SQL lives in this crate.
//!
//! Both backends promise the same things: a write's future resolves only once it is
//! durable; lists page in the same order with the same cursors; ids and uids resolve the
//! same way; errors map to the same [`StoreError`] variants. The conformance suite in
//! `tests/conformance.rs` holds both to that.

mod fair;
mod filters;
pub mod model;
pub mod operational;
pub mod page;
pub mod postgres;
mod sql;
pub mod sqlite;
mod stream;

use std::sync::Arc;

pub use filters::{AttemptFilter, AttemptScope, MessageFilter};
pub use model::*;
pub use page::{ListQuery, Page};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("the store is shut down")]
    Closed,
    /// The database cannot be reached right now; the caller may try again later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// What was asked for existed once and is gone for good (a stream position whose
    /// messages retention has deleted).
    #[error("{0}")]
    Gone(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store shared by the whole process.
pub type SharedStore = Arc<dyn Store>;

/// Everything Herald keeps, one sub-trait per kind of record (their methods are callable
/// on a [`SharedStore`] as they are; on a concrete store, `use herald_store::prelude::*`).
/// Methods that target one row by key answer `NotFound`
/// when there is none; writes resolve after they are durable.
#[async_trait::async_trait]
pub trait Store:
    Apps
    + Endpoints
    + EventTypes
    + Messages
    + DeliveryLog
    + Queue
    + Tokens
    + Idempotency
    + Sources
    + Destinations
    + Audit
    + People
    + Settings
    + Send
    + Sync
    + 'static
{
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    /// Whether other processes may write the same data (several nodes on one database).
    /// When true, callers must not cache rows another node can change.
    fn is_shared(&self) -> bool;

    /// A health check that touches the database.
    async fn ping(&self) -> Result<()>;

    /// The group commit's counters since the store was opened, for backends that group
    /// commits themselves; `None` for the others.
    fn write_stats(&self) -> Option<herald_core::metrics::StoreWrites> {
        None
    }

    /// Notified when another process committed deliveries that are due now, for stores
    /// shared between processes; `None` for a store one process owns.
    fn due_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Notified when another process ended a token or a session (a shared store), so
    /// that what a node cached about them goes; `None` for a store one process owns.
    fn revoked_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// Inbound sources and the log of requests that arrived at them.
#[async_trait::async_trait]
pub trait Sources: Send + Sync {
    /// Inserts the source's application and the source together.
    async fn source_insert(&self, app: Application, src: Source) -> Result<Source>;
    async fn source_get(&self, id: &str) -> Result<Source>;
    async fn source_list(&self, q: ListQuery) -> Result<Page<Source>>;
    /// Replaces the name and config of the source with `src.id`.
    async fn source_update(&self, src: Source) -> Result<Source>;
    /// Deletes the source with its application (destinations, messages and log).
    async fn source_delete(&self, id: &str) -> Result<()>;
    async fn inbound_insert(&self, req: InboundRequest) -> Result<()>;
    async fn inbound_list(&self, source_id: &str, q: ListQuery) -> Result<Page<InboundRequest>>;
    /// Deletes at most `limit` logged requests received before `received_before`;
    /// returns how many (the retention sweep calls it until fewer than `limit`).
    async fn inbound_prune(&self, received_before: i64, limit: usize) -> Result<usize>;
}

/// Destinations: ordered streams of an application's messages read from a durable
/// position (no row per message), their consumers' positions, and the leases under
/// which one node at a time sends a pushing destination.
#[async_trait::async_trait]
pub trait Destinations: Send + Sync {
    /// Inserts a destination positioned at the end of the stream (it receives what is
    /// committed from now on), refusing (`Invalid`) when the application already has
    /// `max_per_app`, and a uid the application uses (`Conflict`).
    async fn destination_insert(&self, d: Destination, max_per_app: usize) -> Result<Destination>;
    async fn destination_get(&self, app_id: &str, id_or_uid: &str) -> Result<Destination>;
    async fn destination_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Destination>>;
    /// Sets a destination's transformation (`None` removes it); `destination_update`
    /// leaves it as it is.
    async fn destination_set_transformation(
        &self,
        destination_id: &str,
        transformation: Option<Transformation>,
    ) -> Result<()>;
    /// Replaces the settings of the destination with `d.id` (uid, status, config, batch
    /// size and wait, filters, metadata, failure state); its position and lease stay.
    async fn destination_update(&self, d: Destination) -> Result<Destination>;
    /// Deletes the destination with its consumers' positions and its poller token.
    async fn destination_delete(&self, id: &str) -> Result<()>;
    /// Moves the destination to `pos` and clears its failures (a paused or retrying one
    /// is enabled; a disabled one stays disabled).
    async fn destination_seek(&self, id: &str, pos: StreamPos, now: i64) -> Result<Destination>;
    /// The end of the stream: every message committed so far is at or before it.
    async fn stream_tail(&self) -> Result<StreamPos>;
    /// The position just before the application's first message created at or after
    /// `at` (the end of the stream when there is none).
    async fn stream_position_at(&self, app_id: &str, at: i64) -> Result<StreamPos>;
    /// Reads the application's messages after `r.after`, in stream order, filtered.
    /// `Gone` when retention has deleted messages after that position.
    async fn stream_read(&self, r: StreamRead) -> Result<StreamBatch>;
    /// How far `after` is behind the application's stream.
    async fn stream_lag(
        &self,
        app_id: &str,
        after: StreamPos,
        event_types: Option<Vec<String>>,
    ) -> Result<StreamLag>;
    /// A consumer group's committed position, if it has one.
    async fn consumer_position(
        &self,
        destination_id: &str,
        consumer_id: &str,
    ) -> Result<Option<StreamPos>>;
    async fn consumer_save(
        &self,
        destination_id: &str,
        consumer_id: &str,
        pos: StreamPos,
        now: i64,
    ) -> Result<()>;
    /// Gives the destination a new poller token (stored as its hash, scoped to the
    /// destination and its application); the previous one ends at `old_expires_at`
    /// (at once when that is not later than `now`).
    async fn destination_token_replace(
        &self,
        d: &Destination,
        token_id: &str,
        hash: &str,
        now: i64,
        old_expires_at: i64,
    ) -> Result<()>;
    /// Leases to `owner` until `lease_until` up to `limit` sending destinations of these
    /// kinds (enabled, or retrying and due) that no other owner holds; a lease of
    /// `owner`'s own is renewed. Another node takes a destination over once its lease
    /// has ended.
    async fn destination_claim(
        &self,
        kinds: Vec<String>,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Destination>>;
    /// Gives up `owner`'s lease of the destination.
    async fn destination_release(&self, id: &str, owner: &str) -> Result<()>;
    /// After a batch was delivered: moves the position from `from` to `to` and clears
    /// the failures, if `owner` still holds the lease and nobody moved the position
    /// meanwhile (a seek wins). Returns whether it moved.
    async fn destination_advance(
        &self,
        id: &str,
        owner: &str,
        from: StreamPos,
        to: StreamPos,
        now: i64,
    ) -> Result<bool>;
    /// After a failed batch: one failure more, the new status (retrying or paused),
    /// the reason and the next try, if `owner` still holds the lease at `at`.
    async fn destination_fail(
        &self,
        id: &str,
        owner: &str,
        at: StreamPos,
        failure: DestinationFailure,
        now: i64,
    ) -> Result<bool>;
}

/// Messages `stream_lag` counts at most.
pub const LAG_COUNT_MAX: i64 = 100_000;

/// Applications.
#[async_trait::async_trait]
pub trait Apps: Send + Sync {
    async fn app_get(&self, id_or_uid: &str) -> Result<Application>;
    /// Lists applications; `hidden_uid` is left out (Herald's own operational
    /// application, which is not a tenant).
    async fn app_list(&self, q: ListQuery, hidden_uid: Option<String>)
        -> Result<Page<Application>>;
    async fn app_insert(&self, app: Application) -> Result<Application>;
    /// Replaces the mutable fields of the application with `app.id`.
    async fn app_update(&self, app: Application) -> Result<Application>;
    /// Deletes the application and, by cascade, its endpoints, messages and log.
    async fn app_delete(&self, id: &str) -> Result<()>;
}

/// Endpoints, their secrets and their delivery statistics.
#[async_trait::async_trait]
pub trait Endpoints: Send + Sync {
    async fn endpoint_get(&self, app_id: &str, id_or_uid: &str) -> Result<Endpoint>;
    async fn endpoint_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Endpoint>>;
    /// Inserts an endpoint, refusing (`Invalid`) when the application already has
    /// `max_per_app`.
    async fn endpoint_insert(&self, ep: Endpoint, max_per_app: usize) -> Result<Endpoint>;
    /// Replaces every mutable field of the endpoint with `ep.id`.
    async fn endpoint_update(&self, ep: Endpoint) -> Result<Endpoint>;
    async fn endpoint_delete(&self, id: &str) -> Result<()>;
    /// Sets an endpoint's transformation (`None` removes it). Only this writes it:
    /// `endpoint_update` leaves it as it is.
    async fn endpoint_set_transformation(
        &self,
        endpoint_id: &str,
        transformation: Option<Transformation>,
    ) -> Result<()>;
    /// Delivery counts by status for deliveries created in [since, until).
    async fn endpoint_stats(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
    ) -> Result<EndpointStats>;
}

/// The event type catalog (global to the server).
#[async_trait::async_trait]
pub trait EventTypes: Send + Sync {
    async fn event_type_get(&self, name: &str) -> Result<EventType>;
    /// Lists event types, leaving out the `hidden` names (the operational event types
    /// belong to Herald's own application, not to the tenants' catalog).
    async fn event_type_list(
        &self,
        q: ListQuery,
        include_archived: bool,
        hidden: Vec<String>,
    ) -> Result<Page<EventType>>;
    /// Inserts, or with `replace` overwrites, an event type.
    async fn event_type_save(&self, et: EventType, replace: bool) -> Result<EventType>;
    async fn event_type_delete(&self, name: &str) -> Result<()>;
    /// Of `names`, those that are not existing, unarchived event types.
    async fn event_types_missing(&self, names: Vec<String>) -> Result<Vec<String>>;
}

/// Messages and their fan-out to deliveries.
#[async_trait::async_trait]
pub trait Messages: Send + Sync {
    /// Stores a message and one delivery per matching endpoint, durably. When
    /// `new.lease_until` is set, the deliveries are leased to the caller until then and
    /// returned as jobs for its dispatcher; otherwise they are left due for the scheduler.
    async fn message_create(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)>;
    async fn message_get(&self, app_id: &str, id_or_event_id: &str) -> Result<Message>;
    async fn message_list(
        &self,
        app_id: &str,
        filter: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<Message>>;
    /// Deletes a message's payload; the message and its log stay.
    async fn message_expunge(&self, msg_id: &str) -> Result<()>;
    /// Retention: deletes the payloads of up to `limit` messages whose retention ended
    /// before `now`. Returns how many; call again while it returns `limit`.
    async fn purge_expired_payloads(&self, now: i64, limit: usize) -> Result<usize>;
    /// Retention: deletes up to `limit` messages created before `created_before`, with
    /// their deliveries and attempts, except messages that still have pending
    /// deliveries. Returns how many.
    async fn prune_messages(&self, created_before: i64, limit: usize) -> Result<usize>;
}

/// The delivery log: attempts, and deliveries seen per endpoint or per message.
#[async_trait::async_trait]
pub trait DeliveryLog: Send + Sync {
    async fn attempt_list(
        &self,
        app_id: &str,
        scope: AttemptScope,
        f: AttemptFilter,
        q: ListQuery,
    ) -> Result<Page<Attempt>>;
    async fn attempt_get(&self, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt>;
    /// Clears the response body kept for one attempt (of the message `msg_id`).
    async fn attempt_expunge(&self, msg_id: &str, attempt_id: &str) -> Result<()>;
    /// Messages delivered (or being delivered) to one endpoint.
    async fn delivered_messages(
        &self,
        endpoint_id: &str,
        f: MessageFilter,
        q: ListQuery,
    ) -> Result<Page<DeliveredMessage>>;
    /// Endpoints one message went to, with the delivery status of each.
    async fn delivery_targets(&self, msg_id: &str, q: ListQuery) -> Result<Page<DeliveryTarget>>;
}

/// The delivery queue: a delivery row is the unit of work, claimed under a lease.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Leases up to `limit` due deliveries until `lease_until` and returns them; due
    /// deliveries of disabled endpoints are canceled instead. Concurrent callers (other
    /// nodes) never get the same delivery while its lease runs.
    async fn claim_due(&self, now: i64, lease_until: i64, limit: usize)
        -> Result<Vec<DeliveryJob>>;
    /// The earliest time any pending delivery becomes due.
    async fn next_due_at(&self) -> Result<Option<i64>>;
    /// For monitoring: (pending deliveries, the earliest due time of those not leased).
    async fn queue_stats(&self) -> Result<(i64, Option<i64>)>;
    /// Appends each attempt and moves its delivery to its next state.
    /// Also tracks since when each endpoint has failed without a success in between,
    /// and disables it once that is `auto_disable_after_ms` or longer (or at once on
    /// a 410). Returns the endpoints this call disabled.
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        auto_disable_after_ms: Option<i64>,
    ) -> Result<Vec<String>>;
    /// At start-up of a process that owns the store alone: deliveries leased by a
    /// process that died are due again now. A shared store leaves leases to expire.
    async fn release_leases(&self, now: i64) -> Result<usize>;
    /// Gives back deliveries this process leased but will not attempt (it is shutting
    /// down): they are due again at `now`, for any node. Returns how many.
    async fn release_deliveries(&self, delivery_ids: Vec<i64>, now: i64) -> Result<usize>;
    /// Hands leased deliveries back unattempted, each due again at its `due_at` (the
    /// engine's fair scheduling: see `Deferral`). No attempt is counted. Returns how
    /// many were still held under the given lease and moved.
    async fn defer_deliveries(&self, deferrals: Vec<Deferral>) -> Result<usize>;
    /// Makes the endpoint's pending deliveries that wait for a later retry due at
    /// `now` (a `herald listen` session came back). Returns how many.
    async fn deliveries_due_now(&self, endpoint_id: &str, now: i64) -> Result<usize>;
    /// A manual resend of one message to one endpoint: the delivery (created if the
    /// endpoint was not subscribed) is leased to the caller until `lease_until` and
    /// returned, or with `None` left due now for a scheduler.
    async fn resend(
        &self,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<Option<DeliveryJob>>;
    /// Makes every delivery to the endpoint that failed (or was canceled) in
    /// [since, until) pending again, due now, as a manual attempt; with
    /// `include_succeeded`, successful ones too (a bulk replay). Returns how many.
    async fn recover(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
        now: i64,
        include_succeeded: bool,
    ) -> Result<usize>;
    /// Creates a delivery, due now as a manual attempt, to `ep` for each message of its
    /// application created in [since, until) that matches its filters and was never
    /// meant for it (it was created later, disabled or filtered otherwise). At most
    /// `REPLAY_MISSING_MAX` per call. Returns how many.
    async fn replay_missing(&self, ep: Endpoint, since: i64, until: i64, now: i64)
        -> Result<usize>;
}

/// API tokens, stored only as hashes (the caller hashes).
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    async fn token_insert(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        app_id: Option<&str>,
        role: Option<&str>,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()>;
    async fn token_find(&self, hash: &str) -> Result<Option<TokenInfo>>;
    /// Tokens, oldest first (pollers' tokens left out: they go with their destination).
    async fn token_list(&self, q: ListQuery) -> Result<Page<TokenRecord>>;
    /// Deletes the token with this id (a poller's token is not deleted here).
    async fn token_revoke(&self, id: &str) -> Result<()>;
    /// Records that the token with this id was used at `at`.
    async fn token_touch(&self, id: &str, at: i64) -> Result<()>;
    /// How many admin (unscoped) tokens exist; zero means this is a first start.
    async fn admin_token_count(&self) -> Result<i64>;
    /// Makes the token with this hash expire at `at` (or keeps an earlier expiry).
    async fn token_expire(&self, hash: &str, at: i64) -> Result<()>;
}

/// People who sign in to the console, and their sessions.
#[async_trait::async_trait]
pub trait People: Send + Sync {
    /// `Conflict` when the email is taken.
    async fn person_insert(&self, p: Person) -> Result<Person>;
    /// By id or email.
    async fn person_get(&self, id_or_email: &str) -> Result<Person>;
    async fn person_list(&self, q: ListQuery) -> Result<Page<Person>>;
    /// Replaces the role, password hash and TOTP secret of the person with `p.id`.
    async fn person_update(&self, p: Person) -> Result<Person>;
    /// Deletes the person and ends their sessions.
    async fn person_delete(&self, id: &str) -> Result<()>;
    async fn session_insert(&self, s: PersonSession) -> Result<()>;
    /// The session with this hash and its person, if it has not expired at `now`.
    async fn session_find(&self, hash: &str, now: i64) -> Result<Option<(PersonSession, Person)>>;
    async fn session_delete(&self, hash: &str) -> Result<()>;
    /// Ends every session of a person; how many there were.
    async fn sessions_end_for(&self, person_id: &str) -> Result<usize>;
}

/// The audit trail: appended to and read, never changed (retention alone deletes).
#[async_trait::async_trait]
pub trait Audit: Send + Sync {
    async fn audit_append(&self, events: Vec<AuditEvent>) -> Result<()>;
    /// Newest first unless the query says otherwise.
    async fn audit_list(&self, filter: AuditFilter, q: ListQuery) -> Result<Page<AuditEvent>>;
    /// Deletes up to `limit` events older than `before`; how many it deleted.
    async fn audit_prune(&self, before: i64, limit: usize) -> Result<usize>;
}

/// Idempotency records (the first answer to a keyed POST) and tasks.
#[async_trait::async_trait]
pub trait Idempotency: Send + Sync {
    /// The stored answer for `key` if it is younger than `max_age_ms`.
    async fn idempotency_get(
        &self,
        key: &str,
        now: i64,
        max_age_ms: i64,
    ) -> Result<Option<(u16, Vec<u8>)>>;
    async fn idempotency_put(&self, key: &str, status: u16, body: Vec<u8>, now: i64) -> Result<()>;
    /// Drops idempotency records older than `max_age_ms`.
    async fn idempotency_prune(&self, now: i64, max_age_ms: i64) -> Result<usize>;
    async fn task_save(&self, task: Task) -> Result<Task>;
    async fn task_get(&self, id: &str) -> Result<Task>;
    /// Tasks, by id, optionally of one status and one kind.
    async fn task_list(
        &self,
        q: ListQuery,
        status: Option<String>,
        kind: Option<String>,
    ) -> Result<Page<Task>>;
}

/// The environment's settings: one JSON object, kept as given (the API decides what it
/// may hold), exported and imported with the environment.
#[async_trait::async_trait]
pub trait Settings: Send + Sync {
    /// The settings, or `None` when none were ever saved.
    async fn settings_get(&self) -> Result<Option<serde_json::Value>>;
    async fn settings_put(&self, settings: serde_json::Value, now: i64) -> Result<()>;
}

/// The store traits, for calling their methods on a concrete store.
pub mod prelude {
    pub use crate::{
        Apps, DeliveryLog, Destinations, Endpoints, EventTypes, Idempotency, Messages, Queue,
        Settings, Sources, Store, Tokens,
    };
}

/// Messages one `replay_missing` call considers at most.
pub const REPLAY_MISSING_MAX: usize = 100_000;

/// Whether a message with this event type and channels goes to `ep` (disabled or not:
/// a replay is asked for explicitly).
pub(crate) fn endpoint_wants(ep: &Endpoint, event_type: &str, channels: Option<&[String]>) -> bool {
    herald_core::fanout::matches(
        &herald_core::fanout::Subscription {
            disabled: false,
            event_types: ep.event_types.as_deref(),
            channels: ep.channels.as_deref(),
        },
        event_type,
        channels,
    )
}

/// The task list statement shared by both backends.
pub(crate) fn task_list_query(
    dialect: sql::Dialect,
    q: &ListQuery,
    status: Option<String>,
    kind: Option<String>,
) -> sql::Query {
    let mut query = sql::Query::new(
        dialect,
        "SELECT id, kind, status, data, updated_at FROM task WHERE 1=1",
    );
    if let Some(s) = status {
        query.and(sql::Arg::Text(s), |p| format!("status = {p}"));
    }
    if let Some(k) = kind {
        query.and(sql::Arg::Text(k), |p| format!("kind = {p}"));
    }
    q.apply(&mut query, "id");
    query
}

/// Encodes a value for a JSON text column.
pub(crate) fn json_encode<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// Decodes a JSON text column written by `json_encode`; a damaged value reads as the
/// type's default rather than failing the whole list it is part of.
pub(crate) fn json_decode<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// Decodes a nullable JSON column.
pub(crate) fn json_decode_opt<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// `NotFound` when a statement that targets one row by key changed none.
pub(crate) fn found(changed: u64) -> Result<()> {
    match changed {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// A claimed delivery turned into a job for the engine.
#[allow(clippy::too_many_arguments)]
pub(crate) fn job_from(
    ep: &Endpoint,
    delivery_id: i64,
    msg_id: String,
    event_type: String,
    payload: Option<String>,
    message_headers: Option<String>,
    attempts: u32,
    trigger: i64,
    now: i64,
    lease_until: i64,
) -> DeliveryJob {
    DeliveryJob {
        delivery_id,
        msg_id,
        app_id: ep.app_id.clone(),
        endpoint_id: ep.id.clone(),
        event_type,
        transformation: crate::Transformation::active(&ep.transformation),
        url: ep.url.clone(),
        // An expunged payload is sent as an empty object rather than not at all.
        payload: Arc::from(payload.as_deref().unwrap_or("{}")),
        headers: delivery_headers(
            ep,
            &json_decode_opt::<Vec<(String, String)>>(message_headers.as_deref())
                .unwrap_or_default(),
        ),
        secrets: ep.signing_keys(now),
        attempts,
        trigger: if trigger == 1 {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        },
        lease_until,
        throttle_rate: ep.throttle_rate,
        // Set by the caller where the application's row was read.
        app_throttle_rate: None,
    }
}

/// The headers a delivery carries besides the signature: the endpoint's, then the
/// message's own (which win on a clash, as they describe this very body).
pub(crate) fn delivery_headers(
    ep: &Endpoint,
    message: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ep
        .headers
        .iter()
        .filter(|(k, _)| !message.iter().any(|(m, _)| m.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(message.iter().cloned());
    out
}

/// The endpoints of an application a new message goes to. The document payload filters
/// look at is built once per message, and only when an endpoint has a filter.
pub(crate) fn message_targets<'a>(
    endpoints: &'a [Endpoint],
    new: &'a NewMessage,
) -> impl Iterator<Item = &'a Endpoint> + 'a {
    let document = std::cell::OnceCell::new();
    endpoints.iter().filter(move |ep| match &new.only_endpoint {
        Some(only) => &ep.id == only,
        None => {
            !ep.disabled
                && endpoint_wants(ep, &new.event_type, new.channels.as_deref())
                && ep.payload_filter.as_ref().is_none_or(|f| {
                    f.filter.matches(
                        document.get_or_init(|| filter_document(&new.payload, &new.headers)),
                    )
                })
        }
    })
}

/// What payload filters are matched against: `{"payload": …, "headers": {…}}`, header
/// names in lower case.
pub fn filter_document(payload: &str, headers: &[(String, String)]) -> serde_json::Value {
    let payload = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({ "payload": payload, "headers": headers })
}

/// Delivery status as the API shows it: a leased pending delivery is being sent.
pub(crate) fn effective_status(status: i64, leased: bool) -> DeliveryStatus {
    match DeliveryStatus::from_i64(status) {
        DeliveryStatus::Pending if leased => DeliveryStatus::Sending,
        s => s,
    }
}

/// The database state a delivery moves to after an attempt: (status, next_attempt_at).
pub(crate) fn next_state(next: NextStep) -> (i64, Option<i64>) {
    match next {
        NextStep::Succeeded => (0, None),
        NextStep::RetryAt(t) => (1, Some(t)),
        NextStep::Failed | NextStep::FailedAndDisableEndpoint => (2, None),
        NextStep::Canceled => (4, None),
    }
}

pub(crate) const APP_UID_TAKEN: &str = "an application with this uid already exists";
pub(crate) const ENDPOINT_UID_TAKEN: &str =
    "an endpoint with this uid already exists in this application";
pub(crate) const EVENT_ID_TAKEN: &str =
    "a message with this eventId already exists in this application";
pub(crate) const DESTINATION_UID_TAKEN: &str =
    "a destination with this uid already exists in this application";
pub(crate) const SOURCE_TAKEN: &str = "a source with this id already exists";
pub(crate) const EVENT_TYPE_TAKEN: &str = "an event type with this name already exists";

pub(crate) fn too_many_endpoints(max_per_app: usize) -> StoreError {
    StoreError::Invalid(format!(
        "an application may have at most {max_per_app} endpoints"
    ))
}
