//! The records the store reads and writes. Times are Unix milliseconds.

use std::collections::BTreeMap;

pub type Metadata = BTreeMap<String, String>;

#[derive(Clone, Debug)]
pub struct Application {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub throttle_rate: Option<u32>,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One signing key of an endpoint; `expires_at` is set on keys replaced by a rotation
/// and still valid for its grace period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredSecret {
    pub key: String,
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    pub app_id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub throttle_rate: Option<u32>,
    pub metadata: Metadata,
    pub headers: BTreeMap<String, String>,
    /// Newest first.
    pub secrets: Vec<StoredSecret>,
    /// Ordered delivery: a message is sent only once every earlier message to this
    /// endpoint succeeded or was given up.
    pub ordered: bool,
    /// Only messages whose payload and headers pass this filter get a delivery.
    pub payload_filter: Option<PayloadFilter>,
    /// The endpoint's JavaScript transformation. Read with the endpoint; written only
    /// by `endpoint_set_transformation`, never by `endpoint_update`.
    pub transformation: Option<std::sync::Arc<Transformation>>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    /// The keys that sign a delivery made at `now`: the current one and any rotated-out
    /// key still inside its grace period.
    pub fn signing_keys(&self, now: i64) -> Vec<String> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| s.key.clone())
            .collect()
    }
}

/// An endpoint's transformation: a script with `function handler(webhook)`
/// (`herald-transform`), switched on and off without losing the code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transformation {
    pub code: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub updated_at: i64,
}

impl Transformation {
    /// The script to run for a delivery, when there is one and it is on.
    pub fn active(
        this: &Option<std::sync::Arc<Transformation>>,
    ) -> Option<std::sync::Arc<Transformation>> {
        this.as_ref()
            .filter(|t| t.enabled && t.code.as_deref().is_some_and(|c| !c.trim().is_empty()))
            .cloned()
    }

    pub(crate) fn from_stored(text: Option<&str>) -> Option<std::sync::Arc<Transformation>> {
        serde_json::from_str(text?).ok().map(std::sync::Arc::new)
    }

    pub(crate) fn stored(this: Option<&Transformation>) -> Option<String> {
        this.map(|t| serde_json::to_string(t).expect("plain data serializes"))
    }
}

/// A payload filter as stored (its JSON) and checked (`herald_core::filter`). Filters
/// are checked before they are saved, so a stored one always reads back.
#[derive(Clone, Debug)]
pub struct PayloadFilter {
    pub doc: serde_json::Value,
    pub filter: std::sync::Arc<herald_core::filter::Filter>,
}

impl PayloadFilter {
    pub fn new(doc: serde_json::Value) -> Result<PayloadFilter, herald_core::filter::FilterError> {
        let filter = herald_core::filter::Filter::parse(&doc)?;
        Ok(PayloadFilter {
            doc,
            filter: std::sync::Arc::new(filter),
        })
    }

    /// Reads a stored filter; one that does not read back (a damaged row) filters
    /// nothing, so that nothing is withheld by accident.
    pub(crate) fn from_stored(text: Option<&str>) -> Option<PayloadFilter> {
        let doc = serde_json::from_str(text?).ok()?;
        PayloadFilter::new(doc).ok()
    }

    pub(crate) fn stored(filter: &Option<PayloadFilter>) -> Option<String> {
        filter.as_ref().map(|f| f.doc.to_string())
    }
}

#[derive(Clone, Debug)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<serde_json::Value>,
    pub feature_flag: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub app_id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    /// The payload exactly as received; `None` once expunged or when not loaded.
    pub payload: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a caller asks to be stored for a new message.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub app_id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    pub payload: String,
    pub retention_hours: u32,
    /// A scheduled message: its deliveries wait until this time instead of going now.
    pub deliver_at: Option<i64>,
    /// Deliver to this endpoint only, whatever its filters (send-example).
    pub only_endpoint: Option<String>,
    /// The application's `throttleRate`, carried to the jobs handed off.
    pub app_throttle_rate: Option<u32>,
    /// For ordered endpoints: messages with the same key are delivered in order; keys
    /// do not wait for each other (no key: one sequence per endpoint).
    pub ordering_key: Option<String>,
    /// Lease the deliveries to the caller until this time for an in-memory hand-off;
    /// when `None` they are stored due now and a scheduler takes them.
    pub lease_until: Option<i64>,
    /// Headers sent with every delivery of this message besides the endpoint's own (the
    /// inbound gateway passes chosen original headers along this way); usually empty.
    pub headers: Vec<(String, String)>,
}

/// Status of a (message, endpoint) delivery, as the API numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Succeeded = 0,
    Pending = 1,
    Failed = 2,
    Sending = 3,
    Canceled = 4,
}

impl DeliveryStatus {
    pub fn from_i64(v: i64) -> DeliveryStatus {
        match v {
            0 => DeliveryStatus::Succeeded,
            1 => DeliveryStatus::Pending,
            3 => DeliveryStatus::Sending,
            4 => DeliveryStatus::Canceled,
            _ => DeliveryStatus::Failed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Scheduled = 0,
    Manual = 1,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub app_id: String,
    pub url: String,
    /// 0 success, 2 fail, 4 canceled (by the endpoint's transformation).
    pub status: i64,
    /// 0 when no HTTP response arrived.
    pub response_status_code: i64,
    pub response: String,
    pub response_duration_ms: i64,
    pub trigger_type: i64,
    pub created_at: i64,
}

/// A claimed delivery with everything needed to send it, so the engine makes no further
/// reads on the hot path.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    pub delivery_id: i64,
    pub msg_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// The endpoint's transformation, when it has one switched on.
    pub transformation: Option<std::sync::Arc<Transformation>>,
    pub url: String,
    pub payload: std::sync::Arc<str>,
    pub headers: Vec<(String, String)>,
    pub secrets: Vec<String>,
    /// Attempts already made for this delivery.
    pub attempts: u32,
    pub trigger: Trigger,
    /// When this process's lease on the delivery ends (Unix ms); after that another
    /// worker may claim it, so an attempt must not start too close to it.
    pub lease_until: i64,
    /// The endpoint's `throttleRate` (deliveries per second), if it has one.
    pub throttle_rate: Option<u32>,
    /// The application's `throttleRate`, shared by all its endpoints, if it has one.
    pub app_throttle_rate: Option<u32>,
}

/// What happens to a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    RetryAt(i64),
    /// The schedule is exhausted (or a manual attempt failed).
    Failed,
    /// The receiver answered 410 Gone: fail and disable the endpoint.
    FailedAndDisableEndpoint,
    /// The endpoint's transformation cancelled the delivery: nothing was sent.
    Canceled,
}

/// One finished attempt and what happens to its delivery next.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub attempt: Attempt,
    pub next: NextStep,
}

/// A leased delivery handed back to the queue unattempted, due again at `due_at`: its
/// endpoint (or application) cannot take it now, and waiting in the store costs no
/// memory and holds no other tenant's work back. `lease_until` is the lease this
/// process holds; a row whose lease has since passed to another worker is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deferral {
    pub delivery_id: i64,
    pub lease_until: i64,
    pub due_at: i64,
}

/// Counts of an endpoint's deliveries by status.
#[derive(Clone, Debug, Default)]
pub struct EndpointStats {
    pub success: i64,
    pub pending: i64,
    pub sending: i64,
    pub fail: i64,
    pub canceled: i64,
}

/// A (message, endpoint) delivery joined with its message, for the per-endpoint log.
#[derive(Clone, Debug)]
pub struct DeliveredMessage {
    pub message: Message,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
}

/// A (message, endpoint) delivery joined with its endpoint, for the per-message log.
#[derive(Clone, Debug)]
pub struct DeliveryTarget {
    pub endpoint: Endpoint,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub app_id: Option<String>,
    /// `None`: everything (an admin token, or an application's token inside it).
    pub role: Option<String>,
    pub expires_at: Option<i64>,
    /// Set for a poller's token: it reads that destination of `app_id` and nothing else.
    pub destination_id: Option<String>,
}

/// Someone who signs in to the console (issue 19's "people").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    /// How they sign in (unique, kept in lower case).
    pub email: String,
    /// An Argon2id PHC string (`herald_core::password`).
    pub password_hash: String,
    /// admin, developer, support or viewer: their role in the default environment.
    pub role: String,
    /// Their role in each other environment they may use (environment → role); an
    /// environment not named here is closed to them.
    pub environment_roles: std::collections::BTreeMap<String, String>,
    /// The TOTP secret, sealed with the main key; `None`: no second factor.
    pub totp_secret: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A signed-in session: found by the hash of its cookie, ended by deleting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonSession {
    pub hash: String,
    pub person_id: String,
    /// What a write must send in `X-CSRF-Token`.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One change made through the API (or refused), as the audit trail keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Time-ordered (`aud_…`).
    pub id: String,
    pub at: i64,
    /// The token's id, and its name as people know it.
    pub actor_id: String,
    pub actor_name: String,
    /// The token's role (`None`: an admin token, or an application's).
    pub role: Option<String>,
    /// Set for an application's token (the portal's).
    pub actor_app_id: Option<String>,
    pub method: String,
    /// The route, as the route table names it (`/api/v1/app/{app_id}/endpoint`).
    pub route: String,
    /// The path as requested.
    pub path: String,
    /// The object the request named last (the last path parameter), if any.
    pub object_id: Option<String>,
    pub status: i64,
    /// False when the request was refused for its token (403).
    pub allowed: bool,
    /// The client's address.
    pub source: Option<String>,
    /// The request body, secrets redacted, cut at a bound.
    pub detail: Option<String>,
    /// What the object became: the answer's body, secrets redacted, cut at a bound.
    pub after: Option<String>,
    /// What the object was before a change to it (replace, patch, delete), read the way
    /// a GET of its path shows it, secrets redacted, cut at a bound.
    pub before: Option<String>,
}

/// Filters for the audit trail.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub object_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only refused requests (`false`) or allowed ones (`true`).
    pub allowed: Option<bool>,
}

/// An API token as listed (its secret is never stored, only its hash).
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub app_id: Option<String>,
    pub destination_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub data: serde_json::Value,
    pub updated_at: i64,
}

/// An inbound source: where a third party's webhooks arrive (`/in/{id}`). Its
/// destinations are the endpoints of its own application (`app_id`); `config` (scheme,
/// sealed secret, handshakes, forwarding rules) is owned by the API layer and opaque here.
#[derive(Clone, Debug)]
pub struct Source {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub config: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One request that arrived at a source, as received, whether it was accepted (then
/// `msg_id` names the message that forwards it) or refused (`reason` says why).
#[derive(Clone, Debug)]
pub struct InboundRequest {
    pub id: String,
    pub source_id: String,
    pub msg_id: Option<String>,
    pub received_at: i64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub verified: bool,
    pub reason: Option<String>,
}

/// A position in an application's message stream, which destinations read in order.
/// Messages are ordered by `(xid, seq)`: on SQLite `xid` is always 0 and `seq` is given
/// by the single writer in commit order; on PostgreSQL `xid` is the inserting
/// transaction's id, and readers only read rows of transactions older than every one
/// still running, so that no message can later appear before a position already read.
/// A position names the last message read (or a point between two messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamPos {
    pub xid: i64,
    pub seq: i64,
}

impl StreamPos {
    /// The largest `seq` an iterator may hold: 18 digits, so that every iterator's two
    /// numbers fit an `i64` whatever their digits (no store comes near it).
    pub const MAX_SEQ: i64 = 999_999_999_999_999_999;

    /// The iterator string the API hands out: opaque to clients, stable across
    /// versions ("<xid>-<seq>" in base 10, at most 18 digits each).
    pub fn encode(self) -> String {
        format!("{}-{}", self.xid, self.seq)
    }

    /// Reads an iterator made by `encode`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<StreamPos> {
        let (xid, seq) = text.split_once('-')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(xid) || !digits(seq) {
            return None;
        }
        Some(StreamPos {
            xid: xid.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// A destination's state as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationStatus {
    /// Sending (or readable).
    Enabled,
    /// Stopped by an operator.
    Disabled,
    /// Stopped by Herald: its retries ran out or its position expired; an operator
    /// enables it again (after a seek, for an expired one).
    Paused,
    /// The last batch failed; the next try is at `next_retry_at`.
    Retrying,
}

impl DestinationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationStatus::Enabled => "enabled",
            DestinationStatus::Disabled => "disabled",
            DestinationStatus::Paused => "paused",
            DestinationStatus::Retrying => "retrying",
        }
    }

    pub fn parse(text: &str) -> DestinationStatus {
        match text {
            "disabled" => DestinationStatus::Disabled,
            "paused" => DestinationStatus::Paused,
            "retrying" => DestinationStatus::Retrying,
            _ => DestinationStatus::Enabled,
        }
    }
}

/// A destination: an ordered stream of one application's messages (filtered by event
/// types and channels) read from a durable position. `kind` is the Svix type name
/// ("pollingEndpoint", "fifoEndpoint", …); `config` is the type's settings as JSON,
/// owned by the API layer (secrets in it are sealed there) and opaque here.
#[derive(Clone, Debug)]
pub struct Destination {
    pub id: String,
    pub app_id: String,
    pub uid: Option<String>,
    pub kind: String,
    pub status: DestinationStatus,
    pub config: serde_json::Value,
    pub batch_size: i64,
    pub max_wait_secs: i64,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: Metadata,
    /// Where the destination stands: the last message sent (pushing types), or where a
    /// reader without an iterator of its own starts (polling).
    pub position: StreamPos,
    pub failure_reason: Option<String>,
    pub next_retry_at: Option<i64>,
    /// Batches failed in a row.
    pub failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Only messages whose payload and headers pass this filter are sent or read.
    pub payload_filter: Option<PayloadFilter>,
    /// The batch transformation (fifoEndpoint); written only by
    /// `destination_set_transformation`.
    pub transformation: Option<std::sync::Arc<Transformation>>,
}

/// A failed batch, as its destination records it.
#[derive(Clone, Debug)]
pub struct DestinationFailure {
    /// Retrying, or paused when it gives up.
    pub status: DestinationStatus,
    pub reason: String,
    pub next_retry_at: Option<i64>,
}

/// A message as a destination reads it.
#[derive(Clone, Debug)]
pub struct StreamMessage {
    pub pos: StreamPos,
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    /// `{}` when the payload was expunged or its retention ended.
    pub payload: String,
    /// Extra headers the message carries (the inbound gateway's), usually empty.
    pub headers: Vec<(String, String)>,
    pub created_at: i64,
}

/// What to read from a stream.
#[derive(Clone, Debug, Default)]
pub struct StreamRead {
    pub app_id: String,
    /// Read what comes after this position.
    pub after: StreamPos,
    /// At most this many messages.
    pub limit: usize,
    /// Only these event types (the destination's filter; `None`: all).
    pub event_types: Option<Vec<String>>,
    /// Only messages on one of these channels (`None`: all).
    pub channels: Option<Vec<String>>,
    /// A further filter by the reader: one event type.
    pub event_type: Option<String>,
    /// A further filter by the reader: one channel.
    pub channel: Option<String>,
    /// The destination's payload filter.
    pub payload_filter: Option<PayloadFilter>,
}

/// Messages read from a stream, and where the reader stands after them.
#[derive(Clone, Debug)]
pub struct StreamBatch {
    pub messages: Vec<StreamMessage>,
    /// The position after the last message read, or after the last one looked at when
    /// filters left some out (so the next read does not look at them again).
    pub next: StreamPos,
    /// Nothing more is readable now.
    pub done: bool,
}

/// How far a destination is behind its application's stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamLag {
    /// Messages after the position that pass the event-type filter (counted up to
    /// `LAG_COUNT_MAX`).
    pub messages: i64,
    /// When the oldest of them was created.
    pub oldest_created_at: Option<i64>,
}

/// A destination the caller leased for sending, with the lease's end.
#[derive(Clone, Debug)]
pub struct LeasedDestination {
    pub destination: Destination,
    pub lease_until: i64,
}

/// The stored config of an HTTP destination (`fifoEndpoint`): the API writes it (with
/// sensitive header values and the signing keys sealed) and the engine reads it to
/// send. Kept here, beside `Destination`, as the one contract between the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpSinkConfig {
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Newest first; a rotated-out key signs beside the new one until it expires.
    #[serde(default)]
    pub secrets: Vec<StoredSecret>,
}

impl HttpSinkConfig {
    pub fn from_value(config: &serde_json::Value) -> Option<HttpSinkConfig> {
        serde_json::from_value(config.clone()).ok()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data serializes")
    }

    /// The keys that sign a batch sent at `now`.
    pub fn signing_keys(&self, now: i64) -> Vec<String> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| s.key.clone())
            .collect()
    }
}

/// A person's roles in environments other than the default, as stored (a JSON object).
pub(crate) fn encode_roles(roles: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "{}".into())
}

/// The stored roles back; an unreadable or missing value grants nothing.
pub(crate) fn decode_roles(stored: Option<String>) -> std::collections::BTreeMap<String, String> {
    stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}
