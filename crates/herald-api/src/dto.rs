//! Wire types: the JSON the API reads and writes (camelCase), converted by hand from
//! and to the store's records so the domain never depends on the wire format.

use std::collections::BTreeMap;

use herald_core::time::format_rfc3339;
use herald_store::{Application, Attempt, DeliveryStatus, Endpoint, EventType, Message, Page};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// For a nested object field: an object or `null`. (Left to itself, serde would also
/// read the struct from an array of its fields in order, which no client means.)
pub(crate) fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNull<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOrNull<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(ObjectOrNull(std::marker::PhantomData))
}

/// A PATCH field: absent (keep), `null` (clear) or a value (set).
#[derive(Debug, Clone, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Clear,
            Some(v) => Patch::Set(v),
        })
    }
}

impl<T> Patch<T> {
    /// This patch, or `other` when this one keeps the field (a field given under two
    /// names: the first name wins).
    pub fn or(self, other: Patch<T>) -> Patch<T> {
        match self {
            Patch::Keep => other,
            given => given,
        }
    }

    /// The value a patch sets, if it sets one.
    pub fn as_set(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }

    /// Applies the patch to an optional field.
    pub fn apply(self, field: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => *field = None,
            Patch::Set(v) => *field = Some(v),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

impl<T> ListResponse<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let page = page.map(f);
        ListResponse {
            data: page.data,
            iterator: page.iterator,
            prev_iterator: page.prev_iterator,
            done: page.done,
        }
    }
}

// ---- applications ----

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationIn {
    pub name: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub throttle_rate: Option<u32>,
    /// The same as `throttleRate` (Svix's newer name); `throttleRate` wins when both
    /// are given.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl ApplicationIn {
    /// `throttleRate`, or `rateLimit`.
    pub fn rate(&self) -> Option<u32> {
        self.throttle_rate.or(self.rate_limit)
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub throttle_rate: Patch<u32>,
    /// The same as `throttleRate`, which wins when both are given.
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Patch<u32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        ApplicationOut {
            id: a.id,
            uid: a.uid,
            name: a.name,
            throttle_rate: a.throttle_rate,
            rate_limit: a.throttle_rate,
            metadata: a.metadata,
            created_at: format_rfc3339(a.created_at),
            updated_at: format_rfc3339(a.updated_at),
        }
    }
}

// ---- endpoints ----

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// The same as `eventTypes` (Svix's newer name), which wins when both are given.
    #[serde(default)]
    pub filter_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub throttle_rate: Option<u32>,
    /// The same as `throttleRate`, which wins when both are given.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub version: Option<i64>,
    /// Herald extension: deliver in order (each message only after every earlier one
    /// succeeded or was given up). Default false.
    #[serde(default)]
    pub ordered: Option<bool>,
    /// Herald extension: only messages whose `{"payload", "headers"}` pass this filter
    /// get a delivery (`$eq`, `$neq`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`,
    /// `$exists`, `$startsWith`, `$endsWith`, `$and`, `$or`, `$not`; docs/filters.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Patch<Vec<String>>,
    /// The same as `eventTypes`, which wins when both are given.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub filter_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Patch<Vec<String>>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub throttle_rate: Patch<u32>,
    /// The same as `throttleRate`, which wins when both are given.
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Patch<u32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub version: Option<i64>,
    /// Herald extension: ordered delivery.
    #[serde(default)]
    pub ordered: Option<bool>,
    /// Herald extension: the payload filter (`null` removes it).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Patch<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    /// Svix's name for the event-type filter.
    pub filter_types: Option<Vec<String>>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    /// Herald extension: ordered delivery.
    pub ordered: bool,
    /// Herald extension: the payload filter, if any.
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<serde_json::Value>,
    pub version: i64,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        EndpointOut {
            id: e.id,
            uid: e.uid,
            url: e.url,
            description: e.description,
            disabled: e.disabled,
            filter_types: e.event_types.clone(),
            event_types: e.event_types,
            channels: e.channels,
            throttle_rate: e.throttle_rate,
            rate_limit: e.throttle_rate,
            ordered: e.ordered,
            payload_filter: e.payload_filter.map(|f| f.doc),
            version: 1,
            metadata: e.metadata,
            created_at: format_rfc3339(e.created_at),
            updated_at: format_rfc3339(e.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    pub key: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateIn {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersIn {
    pub headers: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeadersPatchIn {
    /// Headers to set; a `null` value removes that header.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Header names to remove.
    #[serde(default)]
    pub delete_headers: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HeadersOut {
    pub headers: BTreeMap<String, String>,
    pub sensitive: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatsOut {
    pub success: i64,
    pub pending: i64,
    pub sending: i64,
    pub fail: i64,
    pub canceled: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendExampleIn {
    pub event_type: String,
    /// Which of the schema's `examples` to send (default the first).
    #[serde(default)]
    pub example_index: Option<usize>,
    /// An explicit example payload, instead of the schema's.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    pub since: String,
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOut {
    pub id: String,
    pub status: String,
    pub task: String,
    pub updated_at: String,
}

/// A background task with what it did (`data`: counts and the targets it worked on).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    pub id: String,
    /// `running`, `finished` or `failed`.
    pub status: String,
    /// `endpoint.replay-missing`, `endpoint.bulk-replay` or `endpoint.recover`.
    pub task: String,
    pub data: serde_json::Value,
    pub updated_at: String,
}

impl From<herald_store::Task> for BackgroundTaskOut {
    fn from(t: herald_store::Task) -> Self {
        BackgroundTaskOut {
            id: t.id,
            status: t.status,
            task: t.kind,
            data: t.data,
            updated_at: format_rfc3339(t.updated_at),
        }
    }
}

// ---- event types ----

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeIn {
    /// Accepted for SDK compatibility; Herald does not group event types yet.
    #[serde(default)]
    pub group_name: Option<String>,
    /// The SDK's list form of `featureFlag`; its first entry is kept.
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[serde(default)]
    pub feature_flag: Option<String>,
}

impl EventTypeIn {
    /// The name, and the rest as a replace body.
    pub fn into_parts(self) -> (String, EventTypeUpdate) {
        let rest = EventTypeUpdate {
            group_name: self.group_name,
            feature_flags: self.feature_flags,
            description: self.description,
            archived: self.archived,
            deprecated: self.deprecated,
            schemas: self.schemas,
            feature_flag: self.feature_flag,
        };
        (self.name, rest)
    }
}

/// PUT body: like `EventTypeIn` but the name comes from the path.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeUpdate {
    /// Accepted for SDK compatibility; Herald does not group event types yet.
    #[serde(default)]
    pub group_name: Option<String>,
    /// The SDK's list form of `featureFlag`; its first entry is kept.
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    pub description: String,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[serde(default)]
    pub feature_flag: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypePatch {
    /// Accepted for SDK compatibility; Herald does not group event types yet.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub group_name: Patch<String>,
    /// The SDK's list form of `featureFlag`; its first entry is kept.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub feature_flags: Patch<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schemas: Patch<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub feature_flag: Patch<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    pub feature_flag: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<EventType> for EventTypeOut {
    fn from(e: EventType) -> Self {
        EventTypeOut {
            name: e.name,
            description: e.description,
            archived: e.archived,
            deprecated: e.deprecated,
            schemas: e.schemas,
            feature_flag: e.feature_flag,
            created_at: format_rfc3339(e.created_at),
            updated_at: format_rfc3339(e.updated_at),
        }
    }
}

// ---- messages ----

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageIn {
    pub event_type: String,
    /// Kept as the exact bytes received, so the receiver gets what the sender sent.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub payload_retention_period: Option<i64>,
    /// Retention in hours (wins over `payloadRetentionPeriod` when both are given).
    #[serde(default)]
    pub payload_retention_hours: Option<i64>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub application: Option<ApplicationIn>,
    /// Tags are accepted for SDK compatibility and not stored.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Send no earlier than this time (RFC 3339): a scheduled message.
    #[serde(default)]
    pub deliver_at: Option<String>,
    /// Transformations are not supported; a message asking for them is refused.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub transformations_params: Option<serde_json::Value>,
    /// Herald extension: for endpoints with ordered delivery, messages with the same
    /// key are delivered in order, and different keys do not wait for each other.
    #[serde(default)]
    pub ordering_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    pub timestamp: String,
}

/// A stored payload as JSON: as it is, or as a JSON string when it is not JSON (a
/// forwarded form post, say), or `{}` once expunged.
fn raw(payload: Option<String>) -> Box<RawValue> {
    match payload {
        None => RawValue::from_string("{}".into()).expect("valid JSON"),
        Some(p) => RawValue::from_string(p.clone())
            .unwrap_or_else(|_| serde_json::value::to_raw_value(&p).expect("a string serializes")),
    }
}

impl MessageOut {
    /// The answer to an ingest: the message with the payload exactly as it arrived,
    /// reusing the already-checked raw JSON instead of parsing the stored text again.
    pub fn accepted(m: Message, payload: Box<RawValue>) -> Self {
        MessageOut {
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            payload,
            channels: m.channels,
            timestamp: format_rfc3339(m.created_at),
        }
    }
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            payload: raw(m.payload),
            channels: m.channels,
            timestamp: format_rfc3339(m.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut {
    #[serde(flatten)]
    pub message: MessageOut,
    pub status: i64,
    pub status_text: &'static str,
    pub next_attempt: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    pub status: i64,
    pub status_text: &'static str,
    pub next_attempt: Option<String>,
}

/// The API's number for a delivery status (Svix's `MessageStatus`).
pub fn status_code(s: DeliveryStatus) -> (i64, &'static str) {
    match s {
        DeliveryStatus::Succeeded => (0, "success"),
        DeliveryStatus::Pending => (1, "pending"),
        DeliveryStatus::Failed => (2, "fail"),
        DeliveryStatus::Sending => (3, "sending"),
        DeliveryStatus::Canceled => (4, "canceled"),
    }
}

// ---- attempts ----

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptOut {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub response: String,
    pub response_status_code: i64,
    pub response_duration_ms: i64,
    pub status: i64,
    pub status_text: &'static str,
    pub trigger_type: i64,
    pub timestamp: String,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        AttemptOut {
            id: a.id,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            url: a.url,
            response: a.response,
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status: a.status,
            status_text: if a.status == 0 { "success" } else { "fail" },
            trigger_type: a.trigger_type,
            timestamp: format_rfc3339(a.created_at),
        }
    }
}

// ---- authentication ----

/// `POST /auth/app-portal-access/{app_id}`: a token for one application.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPortalAccessIn {
    /// Creates the application when the path's id or uid does not exist yet.
    #[serde(default, deserialize_with = "object_or_null")]
    pub application: Option<ApplicationIn>,
    /// Seconds the token is valid for: 1 to 604800 (7 days, the default).
    #[serde(default)]
    pub expiry: Option<u64>,
    /// Finer-grained capabilities are not supported: a token manages its whole
    /// application. Only an empty list is accepted.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    /// Read-only tokens are not supported yet; only `false` is accepted.
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessOut {
    /// Where the application's consumer portal opens with this token (in the URL's
    /// fragment, which browsers do not send to servers).
    pub url: String,
    /// An API token scoped to the one application.
    pub token: String,
}

// ---- inbound sources ----

/// Settings of the generic `hmac` scheme.
#[derive(Deserialize, Serialize, Clone, Debug, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HmacSettings {
    /// The header that carries the signature (default X-Signature).
    #[serde(default)]
    pub header: Option<String>,
    /// Text before the signature in that header, such as "sha256=".
    #[serde(default)]
    pub prefix: Option<String>,
    /// hex (default) or base64.
    #[serde(default)]
    pub encoding: Option<String>,
    /// sha256 (default), sha1 or sha512.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// A header with the Unix timestamp; the signed text is then "{timestamp}.{body}".
    #[serde(default)]
    pub timestamp_header: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceIn {
    pub name: String,
    /// standard-webhooks, github, stripe, shopify, slack, square, twilio, paddle, zoom,
    /// linear, gitlab, discord, hmac or none.
    pub scheme: String,
    /// The provider's signing secret (for discord, the application's public key in
    /// hex; for gitlab, the token). Required except for `none`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Largest accepted clock difference for schemes with timestamps (default 300 s).
    #[serde(default)]
    pub tolerance_secs: Option<i64>,
    #[serde(default, deserialize_with = "crate::dto::object_or_null")]
    pub hmac: Option<HmacSettings>,
    /// The exact URL the provider is configured to call, for the schemes that sign it
    /// (square, twilio); by default the server's public URL and `/in/{id}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Original headers passed along to destinations (default: the content type and
    /// the provider's event and delivery-id headers).
    #[serde(default)]
    pub forward_headers: Option<Vec<String>>,
    /// Answer Meta-style `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
    /// when the token matches this.
    #[serde(default)]
    pub meta_verify_token: Option<String>,
    /// Answer the CloudEvents webhook `OPTIONS` handshake for these origins ("*": any).
    #[serde(default)]
    pub cloud_events_origins: Option<Vec<String>>,
    /// Where the provider's delivery id is, to drop duplicates: a header name.
    #[serde(default)]
    pub id_header: Option<String>,
    /// Where the event type is: a header name, or a dotted path into a JSON body.
    #[serde(default)]
    pub event_type_header: Option<String>,
    #[serde(default)]
    pub event_type_field: Option<String>,
    /// Destinations created with the source: endpoint fields (url, filterTypes,
    /// description, headers, payloadFilter…), or `bodyFilter`, a map of dotted JSON
    /// paths to the value (or list of values) the body must hold there, which becomes
    /// the destination's payload filter.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub destinations: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceDestinationOut {
    pub endpoint_id: String,
    pub url: String,
    pub filter_types: Option<Vec<String>>,
    /// The older body filter, kept only for destinations made before it became a
    /// payload filter.
    #[schema(value_type = Option<Object>)]
    pub body_filter: Option<serde_json::Value>,
    /// The destination's payload filter (a `bodyFilter` given at creation is turned
    /// into one).
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<serde_json::Value>,
    pub disabled: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceOut {
    pub id: String,
    pub name: String,
    /// The application that holds the destinations (its endpoints), messages and log:
    /// the whole v1 API works on it.
    pub app_id: String,
    /// Where the provider sends: `{public URL}/in/{id}`.
    pub ingest_url: String,
    pub scheme: String,
    pub tolerance_secs: i64,
    pub forward_headers: Vec<String>,
    pub destinations: Vec<SourceDestinationOut>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundRequestOut {
    pub id: String,
    pub received_at: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub verified: bool,
    /// Why it was refused, or what became of it.
    pub reason: Option<String>,
    /// The message that forwards it.
    pub msg_id: Option<String>,
}

impl From<herald_store::InboundRequest> for InboundRequestOut {
    fn from(r: herald_store::InboundRequest) -> Self {
        InboundRequestOut {
            id: r.id,
            received_at: format_rfc3339(r.received_at),
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            verified: r.verified,
            reason: r.reason,
            msg_id: r.msg_id,
        }
    }
}
