//! Every route of the API, wired in one place, plus the layers around them: bearer
//! auth, idempotency keys, the body limit, and JSON answers for unknown routes.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, head, patch, post, put, MethodRouter};
use axum::Router;
use utoipa::openapi::path::HttpMethod;

use crate::destination::*;
use crate::dto::*;
use crate::error::ApiError;
use crate::idempotency;
use crate::openapi::{
    self, list_of, object, schema_of, Operation, QueryKind, QueryParam, SchemaFn,
};
use crate::routes::{
    apps, attempts, audit, auth, destinations, endpoints, environments, event_types, health,
    messages, people, pollers, sources, sso, tasks, tokens, transformations,
};
use crate::state::{ApiState, Caller};

/// One route: its documentation and its handler, so the router and the OpenAPI
/// document come from the same table.
struct Route {
    op: Operation,
    handler: MethodRouter<Arc<ApiState>>,
}

fn route(
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    tag: &'static str,
    handler: MethodRouter<Arc<ApiState>>,
) -> Route {
    Route {
        op: Operation {
            method,
            path,
            id,
            summary,
            tag,
            auth: true,
            list: false,
            request: None,
            status: 200,
            response: None,
            media_type: "application/json",
            query: &[],
            also: None,
            body_optional: false,
            refuses: false,
        },
        handler,
    }
}

impl Route {
    fn body(mut self, schema: SchemaFn) -> Self {
        self.op.request = Some(schema);
        self
    }
    fn returns(mut self, status: u16, schema: SchemaFn) -> Self {
        self.op.status = status;
        self.op.response = Some(schema);
        self
    }
    fn empty(mut self, status: u16) -> Self {
        self.op.status = status;
        self.op.response = None;
        self
    }
    fn list(mut self, schema: SchemaFn) -> Self {
        self.op.list = true;
        self.returns(200, schema)
    }
    /// Another success status, with the same body.
    fn or_status(mut self, status: u16) -> Self {
        self.op.also = Some(status);
        self
    }
    /// The body may be left out.
    fn optional_body(mut self) -> Self {
        self.op.body_optional = true;
        self
    }
    fn query(mut self, params: &'static [QueryParam]) -> Self {
        self.op.query = params;
        self
    }
    /// A stream of Server-Sent Events rather than one JSON answer.
    fn event_stream(mut self) -> Self {
        self.op.media_type = "text/event-stream";
        self
    }
    fn public(mut self) -> Self {
        self.op.auth = false;
        self
    }
    /// A public route that refuses credentials or input (signing in).
    fn refusing(mut self) -> Self {
        self.op.refuses = true;
        self
    }
}

/// Query parameters, as the handlers read them (`extract::QueryPairs`).
const fn param(name: &'static str, kind: QueryKind, about: &'static str) -> QueryParam {
    QueryParam { name, kind, about }
}
const INCLUDE_OPERATIONAL: QueryParam = param(
    "include_operational",
    QueryKind::Bool,
    "also Herald's own operational application (or its event types)",
);
const APP_LIST_QUERY: &[QueryParam] = &[INCLUDE_OPERATIONAL];
const APP_CREATE_QUERY: &[QueryParam] = &[param(
    "get_if_exists",
    QueryKind::Bool,
    "answer with the application of this uid when it exists",
)];
const EVENT_TYPE_LIST_QUERY: &[QueryParam] = &[
    param(
        "include_archived",
        QueryKind::Bool,
        "archived event types too",
    ),
    INCLUDE_OPERATIONAL,
];
const EVENT_TYPE_DELETE_QUERY: &[QueryParam] = &[param(
    "expunge",
    QueryKind::Bool,
    "delete it instead of archiving it",
)];
const CHANNEL: QueryParam = param("channel", QueryKind::Text, "only messages on this channel");
const BEFORE: QueryParam = param("before", QueryKind::DateTime, "only before this time");
const AFTER: QueryParam = param("after", QueryKind::DateTime, "only after this time");
const EVENT_TYPES: QueryParam = param(
    "event_types",
    QueryKind::TextList,
    "only these event types (repeat the parameter, or separate with commas)",
);
const WITH_CONTENT: QueryParam = param("with_content", QueryKind::Bool, "include the payloads");
const DELIVERY_STATUS: QueryParam = param(
    "status",
    QueryKind::IntOf(&[0, 1, 2, 3, 4]),
    "0 succeeded, 1 pending, 2 failed, 3 sending, 4 canceled",
);
const MESSAGE_QUERY: &[QueryParam] = &[CHANNEL, BEFORE, AFTER, EVENT_TYPES, WITH_CONTENT];
const ENDPOINT_MESSAGE_QUERY: &[QueryParam] = &[
    CHANNEL,
    BEFORE,
    AFTER,
    EVENT_TYPES,
    WITH_CONTENT,
    param(
        "status",
        QueryKind::IntOf(&[0, 1, 2, 4]),
        "the delivery's status: 0 succeeded, 1 pending, 2 failed, 4 canceled",
    ),
];
const STATUS_CODE_CLASS: QueryParam = param(
    "status_code_class",
    QueryKind::IntOf(&[0, 100, 200, 300, 400, 500]),
    "only answers of this class (0: no answer)",
);
const ATTEMPT_QUERY: &[QueryParam] = &[
    DELIVERY_STATUS,
    STATUS_CODE_CLASS,
    EVENT_TYPES,
    CHANNEL,
    BEFORE,
    AFTER,
];
const ATTEMPT_BY_MESSAGE_QUERY: &[QueryParam] = &[
    DELIVERY_STATUS,
    STATUS_CODE_CLASS,
    EVENT_TYPES,
    CHANNEL,
    BEFORE,
    AFTER,
    param(
        "endpoint_id",
        QueryKind::Text,
        "only attempts to this endpoint",
    ),
];
const STATS_QUERY: &[QueryParam] = &[
    param("since", QueryKind::DateTime, "from (default: 28 days ago)"),
    param("until", QueryKind::DateTime, "to (default: now)"),
];
const TASK_QUERY: &[QueryParam] = &[
    param("status", QueryKind::Text, "running, finished or failed"),
    param(
        "task",
        QueryKind::Text,
        "the kind of task, e.g. endpoint.recover",
    ),
];
const LISTEN_QUERY: &[QueryParam] = &[
    param(
        "app",
        QueryKind::Text,
        "listen to this application's messages",
    ),
    param(
        "source",
        QueryKind::Text,
        "listen to what this inbound source receives",
    ),
    param(
        "name",
        QueryKind::Pattern("^[a-zA-Z0-9_-]{1,60}$"),
        "the session's name (default: default)",
    ),
];

const POLL_LIMIT: QueryParam = param(
    "limit",
    QueryKind::Int { min: 1, max: 1000 },
    "messages per read, 1 to 1000 (default 100)",
);
const POLL_ITERATOR: QueryParam = param(
    "iterator",
    QueryKind::Pattern(ITERATOR_PATTERN),
    "read what comes after this iterator (from a previous read or a destination)",
);
const POLL_WAIT: QueryParam = param(
    "wait",
    QueryKind::Int { min: 0, max: 30 },
    "Herald extension: when nothing is there, wait up to this many seconds for the next message (long poll)",
);
const POLL_QUERY: &[QueryParam] = &[
    POLL_LIMIT,
    POLL_ITERATOR,
    param(
        "event_type",
        QueryKind::Text,
        "only messages of this event type",
    ),
    CHANNEL,
    param(
        "after",
        QueryKind::DateTime,
        "without an iterator: start at the first message at or after this time",
    ),
    POLL_WAIT,
];
const SSO_CALLBACK_QUERY: &[QueryParam] = &[
    param("code", QueryKind::Text, "the authorization code"),
    param("state", QueryKind::Text, "the sign-in's state"),
    param("error", QueryKind::Text, "what the provider refused"),
    param("iss", QueryKind::Text, "the provider (RFC 9207)"),
];
const AUDIT_QUERY: &[QueryParam] = &[
    param(
        "actor_id",
        QueryKind::Text,
        "only what this token did (its id)",
    ),
    param(
        "object_id",
        QueryKind::Text,
        "only what named this object (an application's, endpoint's, … id)",
    ),
    param("since", QueryKind::DateTime, "only from this time"),
    param("until", QueryKind::DateTime, "only before this time"),
    param(
        "allowed",
        QueryKind::Bool,
        "only allowed (true) or refused (false) requests",
    ),
];
const IMPORT_QUERY: &[QueryParam] = &[param(
    "dry_run",
    QueryKind::Bool,
    "change nothing: answer what the import would change",
)];
const CONSUMER_POLL_QUERY: &[QueryParam] = &[POLL_LIMIT, POLL_ITERATOR, POLL_WAIT];

/// Routes of Svix's ingest API start with this (and are not under `/api/v1`).
pub(crate) const INGEST_PREFIX: &str = "/ingest/api/v1/";

/// Every route of the v1 API.
fn routes() -> Vec<Route> {
    use HttpMethod::{
        Delete as DEL, Get as GET, Head as HEAD, Patch as PATCH, Post as POST, Put as PUT,
    };
    const APP: &str = "Application";
    const EP: &str = "Endpoint";
    const ET: &str = "Event Type";
    const MSG: &str = "Message";
    const ATT: &str = "Message Attempt";
    const HEALTH: &str = "Health";
    const AUTH: &str = "Authentication";
    const TASK: &str = "Background Task";
    const SRC: &str = "Inbound Source";
    const LISTEN: &str = "Listen";
    const DST: &str = "Destination";
    const POLLER: &str = "Message Poller";
    const TOKEN: &str = "API Token";
    const AUDIT: &str = "Audit";
    const SESSION: &str = "Session";
    const PEOPLE: &str = "People";
    const ENV: &str = "Environment";
    vec![
        route(GET, "/environment", "v1.environment.get", "Herald extension: the environment this request is in (its token's, or the session's Herald-Environment header), and the ones the caller may use", ENV, get(environments::info))
            .returns(200, schema_of::<environments::EnvironmentInfoOut>),
        route(GET, "/environment/settings", "v1.environment.get-settings", "Herald extension: the environment's settings (a JSON object, exported and imported with it)", ENV, get(environments::get_settings)).returns(200, object),
        route(PUT, "/environment/settings", "v1.environment.update-settings", "Herald extension: replace the environment's settings (a JSON object of at most 64 KiB)", ENV, put(environments::put_settings))
            .body(object).returns(200, object),
        route(POST, "/environment/export", "v1.environment.export", "Export the environment's event types, settings and (Herald extension) endpoints' transformations, to import into another environment", ENV, post(environments::export))
            .returns(200, schema_of::<environments::EnvironmentOut>),
        route(POST, "/environment/import", "v1.environment.import", "Import event types, settings and endpoints' transformations (an export as it is): adds and updates, never deletes; ?dry_run=true answers what would change and changes nothing", ENV, post(environments::import))
            .query(IMPORT_QUERY).body(schema_of::<environments::EnvironmentIn>).returns(200, schema_of::<environments::ImportOut>),
        route(GET, "/app/{app_id}/destination", "v1.destination.list", "List destinations", DST, get(destinations::list)).list(list_of::<DestinationOut>),
        route(POST, "/app/{app_id}/destination", "v1.destination.create", "Create a destination: an ordered stream of the application's messages (pollingEndpoint, fifoEndpoint)", DST, post(destinations::create))
            .body(schema_of::<DestinationIn>).returns(201, schema_of::<DestinationOut>),
        route(POST, "/app/{app_id}/destination/test-connection", "v1.destination.test-connection", "Herald extension: check a destination's settings and connect as its first batch would, saving and sending nothing ({ok, reason})", DST, post(destinations::test_connection))
            .body(schema_of::<DestinationIn>).returns(200, schema_of::<destinations::ConnectionTestOut>),
        route(GET, "/app/{app_id}/destination/{destination_id}", "v1.destination.get", "Get a destination", DST, get(destinations::get)).returns(200, schema_of::<DestinationOut>),
        route(PUT, "/app/{app_id}/destination/{destination_id}", "v1.destination.upsert", "Replace a destination's settings, or create it", DST, put(destinations::put))
            .body(schema_of::<DestinationIn>).returns(200, schema_of::<DestinationOut>).or_status(201),
        route(PATCH, "/app/{app_id}/destination/{destination_id}", "v1.destination.patch", "Change some settings of a destination (enable, disable, filters, batching, config)", DST, patch(destinations::patch))
            .body(schema_of::<DestinationPatch>).returns(200, schema_of::<DestinationOut>),
        route(DEL, "/app/{app_id}/destination/{destination_id}", "v1.destination.delete", "Delete a destination", DST, delete(destinations::delete)).empty(204),
        route(GET, "/app/{app_id}/destination/{destination_id}/secret", "v1.destination.get-secret", "Herald extension: a fifoEndpoint's signing secret, or a pollingEndpoint's token", DST, get(destinations::secret))
            .returns(200, schema_of::<DestinationSecretOut>),
        route(POST, "/app/{app_id}/destination/{destination_id}/secret/rotate", "v1.destination.rotate-secret", "Rotate the signing secret (fifoEndpoint) or the poller's token (pollingEndpoint)", DST, post(destinations::rotate_secret))
            .body(schema_of::<RotateIn>).optional_body().returns(200, schema_of::<DestinationSecretOut>),
        route(POST, "/app/{app_id}/destination/{destination_id}/seek", "v1.destination.seek", "Herald extension: move the destination to a time or an iterator (a paused one starts again from there)", DST, post(destinations::seek))
            .body(schema_of::<SeekIn>).returns(200, schema_of::<DestinationOut>),
        route(GET, "/app/{app_id}/destination/{destination_id}/transformation", "v1.destination.get-transformation", "A fifoEndpoint's or amazonS3's batch transformation", DST, get(transformations::destination_get))
            .returns(200, schema_of::<transformations::DestinationTransformationOut>),
        route(PATCH, "/app/{app_id}/destination/{destination_id}/transformation", "v1.destination.patch-transformation", "Set a fifoEndpoint's or amazonS3's batch transformation (code checked before it is saved; code switches it on unless enabled says otherwise; for amazonS3, config.key chooses the object's key)", DST, patch(transformations::destination_patch))
            .body(schema_of::<transformations::TransformationPatch>).returns(200, object),
        route(GET, "/app/{app_id}/destination/{destination_id}/stats", "v1.destination.get-stats", "Herald extension: how far the destination is behind (messages, seconds)", DST, get(destinations::stats))
            .returns(200, schema_of::<DestinationStatsOut>),
        route(GET, "/app/{app_id}/poller/{sink_id}", "v1.message.poller.poll", "Read a pollingEndpoint's messages after an iterator (filters: event_type, channel; after: a time; wait: long poll)", POLLER, get(pollers::poll))
            .query(POLL_QUERY).returns(200, schema_of::<PollingEndpointOut>),
        route(GET, "/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}", "v1.message.poller.consumer-poll", "Read on from a consumer group's position, which moves past what is returned", POLLER, get(pollers::consumer_poll))
            .query(CONSUMER_POLL_QUERY).returns(200, schema_of::<PollingEndpointOut>),
        route(POST, "/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}/seek", "v1.message.poller.consumer-seek", "Move a consumer group to the first message at or after a time", POLLER, post(pollers::consumer_seek))
            .body(schema_of::<ConsumerSeekIn>).returns(200, schema_of::<SeekOut>),
        route(GET, "/listen", "v1.listen.stream", "A herald listen session: Server-Sent Events, `ready` then one `delivery` per attempt (?app=, ?source=, ?name=)", LISTEN, get(crate::listen::stream)).query(LISTEN_QUERY).event_stream().returns(200, object),
        route(POST, "/listen/reply", "v1.listen.reply", "What the local app answered to one delivery of a listen session", LISTEN, post(crate::listen::reply))
            .body(schema_of::<crate::listen::ListenReplyIn>).empty(204),
        route(GET, "/source", "v1.source.list", "List inbound sources (Herald extension)", SRC, get(sources::list)).list(list_of::<SourceOut>),
        route(POST, "/source", "v1.source.create", "Create an inbound source: third-party webhooks arrive at /in/{id}, are verified, stored and forwarded", SRC, post(sources::create))
            .body(schema_of::<SourceIn>).returns(201, schema_of::<SourceOut>),
        route(GET, "/source/{source_id}", "v1.source.get", "Get an inbound source", SRC, get(sources::get)).returns(200, schema_of::<SourceOut>),
        route(PUT, "/source/{source_id}", "v1.source.update", "Replace an inbound source's settings", SRC, put(sources::put))
            .body(schema_of::<SourceIn>).returns(200, schema_of::<SourceOut>),
        route(DEL, "/source/{source_id}", "v1.source.delete", "Delete an inbound source, its destinations and its log", SRC, delete(sources::delete)).empty(204),
        route(POST, "/source/{source_id}/destination", "v1.source.add-destination", "Add a destination (endpoint fields plus an optional bodyFilter)", SRC, post(sources::add))
            .body(object).returns(201, schema_of::<EndpointOut>),
        route(GET, "/source/{source_id}/request", "v1.source.list-requests", "Requests that arrived at the source, accepted and refused", SRC, get(sources::requests))
            .list(list_of::<InboundRequestOut>),
        route(GET, "/background-task", "v1.background-task.list", "List background tasks (?status=, ?task=)", TASK, get(tasks::list)).query(TASK_QUERY).list(list_of::<BackgroundTaskOut>),
        route(GET, "/background-task/{task_id}", "v1.background-task.get", "Get a background task", TASK, get(tasks::get)).returns(200, schema_of::<BackgroundTaskOut>),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/replay-missing", "v1.endpoint.replay-missing", "Send the endpoint the messages of a window it never got", EP, post(tasks::replay_missing))
            .body(schema_of::<RecoverIn>).returns(202, schema_of::<BackgroundTaskOut>),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/bulk-replay", "v1.endpoint.bulk-replay", "Send every message of a window to the endpoint again", EP, post(tasks::bulk_replay))
            .body(schema_of::<RecoverIn>).returns(202, schema_of::<BackgroundTaskOut>),
        route(POST, "/auth/app-portal-access/{app_id}", "v1.authentication.app-portal-access", "A token (and portal link) for one application", AUTH, post(auth::app_portal_access))
            .body(schema_of::<AppPortalAccessIn>).optional_body().returns(200, schema_of::<AppPortalAccessOut>),
        route(GET, "/audit", "v1.audit.list", "Herald extension: the audit trail, newest first: every change made through the API and every refused one, with who, what (secrets redacted), when and from where (?actor_id, ?object_id, ?since, ?until, ?allowed)", AUDIT, get(audit::list))
            .query(AUDIT_QUERY).list(list_of::<audit::AuditEventOut>),
        route(POST, "/session", "v1.session.create", "Herald extension: sign in with an email, a password and (when set) a TOTP code: an HttpOnly session cookie, and a CSRF token every write made with it must send as X-CSRF-Token", SESSION, post(people::sign_in))
            .public().refusing().body(schema_of::<people::SessionIn>).returns(201, schema_of::<people::SessionOut>),
        route(GET, "/session", "v1.session.get", "Herald extension: the signed-in person (by the session cookie)", SESSION, get(people::current))
            .public().refusing().returns(200, schema_of::<people::SessionOut>),
        route(DEL, "/session", "v1.session.delete", "Herald extension: sign out (the session ends at once)", SESSION, delete(people::sign_out))
            .public().empty(204),
        route(GET, "/sso", "v1.sso.get", "Herald extension: whether single sign-on (OpenID Connect) is on, and with which provider", SESSION, get(sso::info))
            .public().returns(200, schema_of::<sso::SsoOut>),
        route(GET, "/sso/start", "v1.sso.start", "Herald extension: start signing in with the OpenID provider (a redirect to it, with PKCE)", SESSION, get(sso::start))
            .public().refusing().empty(302),
        route(GET, "/sso/callback", "v1.sso.callback", "Herald extension: where the OpenID provider sends the person back; signs in the person of that email and redirects to the console", SESSION, get(sso::callback))
            .public().refusing().query(SSO_CALLBACK_QUERY).empty(302),
        route(GET, "/person", "v1.person.list", "Herald extension: people who sign in to the console; an admin only", PEOPLE, get(people::list)).list(list_of::<people::PersonOut>),
        route(POST, "/person", "v1.person.create", "Herald extension: add someone (email, password, role, optional TOTP: its secret is shown this once)", PEOPLE, post(people::create))
            .body(schema_of::<people::PersonIn>).returns(201, schema_of::<people::PersonOut>),
        route(PATCH, "/person/{person_id}", "v1.person.patch", "Herald extension: change someone's role or password, or give or take their TOTP", PEOPLE, patch(people::patch))
            .body(schema_of::<people::PersonPatch>).returns(200, schema_of::<people::PersonOut>),
        route(DEL, "/person/{person_id}/sessions", "v1.person.end-sessions", "Herald extension: end every session of someone, at once (they sign in again)", PEOPLE, delete(people::end_sessions)).empty(204),
        route(DEL, "/person/{person_id}", "v1.person.delete", "Herald extension: remove someone (their sessions end)", PEOPLE, delete(people::delete)).empty(204),
        route(GET, "/token", "v1.token.list", "Herald extension: API tokens (never their secrets), with their role or application and when each was last used; an admin token only", TOKEN, get(tokens::list)).list(list_of::<tokens::TokenOut>),
        route(POST, "/token", "v1.token.create", "Herald extension: make a named token with a role (admin, developer, support, viewer) or for one application, optionally expiring; its key is shown this once", TOKEN, post(tokens::create))
            .body(schema_of::<tokens::TokenIn>).returns(201, schema_of::<tokens::TokenCreatedOut>),
        route(DEL, "/token/{token_id}", "v1.token.revoke", "Herald extension: revoke a token", TOKEN, delete(tokens::revoke)).empty(204),
        route(POST, "/auth/logout", "v1.authentication.logout", "End the token this request is made with", AUTH, post(auth::logout)).empty(204),
        route(GET, "/health", "v1.health.get", "Health of the server and its store", HEALTH, get(health::health)).public().returns(200, object),
        route(HEAD, "/health", "v1.health.head", "Health, without a body", HEALTH, head(health::health)).public(),
        route(GET, "/health/ping", "v1.health.ping", "Liveness", HEALTH, get(health::ping)).public().empty(204),
        route(HEAD, "/health/ping", "v1.health.ping-head", "Liveness, without a body", HEALTH, head(health::ping)).public().empty(204),
        route(GET, "/app", "v1.application.list", "List applications (Herald's operational application is left out unless ?include_operational=true)", APP, get(apps::list)).query(APP_LIST_QUERY).list(list_of::<ApplicationOut>),
        route(POST, "/app", "v1.application.create", "Create an application (?get_if_exists=true returns an existing uid)", APP, post(apps::create))
            .query(APP_CREATE_QUERY).body(schema_of::<ApplicationIn>).returns(201, schema_of::<ApplicationOut>).or_status(200),
        route(GET, "/app/{app_id}", "v1.application.get", "Get an application", APP, get(apps::get)).returns(200, schema_of::<ApplicationOut>),
        route(PUT, "/app/{app_id}", "v1.application.update", "Replace an application, or create it", APP, put(apps::put))
            .body(schema_of::<ApplicationIn>).returns(200, schema_of::<ApplicationOut>).or_status(201),
        route(PATCH, "/app/{app_id}", "v1.application.patch", "Change some fields of an application", APP, patch(apps::patch))
            .body(schema_of::<ApplicationPatch>).returns(200, schema_of::<ApplicationOut>),
        route(DEL, "/app/{app_id}", "v1.application.delete", "Delete an application and everything in it", APP, delete(apps::delete)).empty(204),
        route(GET, "/app/{app_id}/endpoint", "v1.endpoint.list", "List endpoints", EP, get(endpoints::list)).list(list_of::<EndpointOut>),
        route(POST, "/app/{app_id}/endpoint", "v1.endpoint.create", "Create an endpoint", EP, post(endpoints::create))
            .body(schema_of::<EndpointIn>).returns(201, schema_of::<EndpointOut>),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}", "v1.endpoint.get", "Get an endpoint", EP, get(endpoints::get)).returns(200, schema_of::<EndpointOut>),
        route(PUT, "/app/{app_id}/endpoint/{endpoint_id}", "v1.endpoint.update", "Replace an endpoint, or create it", EP, put(endpoints::put))
            .body(schema_of::<EndpointIn>).returns(200, schema_of::<EndpointOut>).or_status(201),
        route(PATCH, "/app/{app_id}/endpoint/{endpoint_id}", "v1.endpoint.patch", "Change some fields of an endpoint", EP, patch(endpoints::patch))
            .body(schema_of::<EndpointPatch>).returns(200, schema_of::<EndpointOut>),
        route(DEL, "/app/{app_id}/endpoint/{endpoint_id}", "v1.endpoint.delete", "Delete an endpoint", EP, delete(endpoints::delete)).empty(204),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}/secret", "v1.endpoint.get-secret", "The signing secret (the public key for ed25519)", EP, get(endpoints::secret))
            .returns(200, schema_of::<SecretOut>),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", "v1.endpoint.rotate-secret", "Rotate the signing secret; the old one signs too during the grace period", EP, post(endpoints::rotate_secret))
            .body(schema_of::<RotateIn>).optional_body().returns(200, schema_of::<SecretOut>),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}/headers", "v1.endpoint.get-headers", "Custom headers (sensitive values withheld)", EP, get(endpoints::headers))
            .returns(200, schema_of::<HeadersOut>),
        route(PUT, "/app/{app_id}/endpoint/{endpoint_id}/headers", "v1.endpoint.update-headers", "Replace the custom headers", EP, put(endpoints::put_headers))
            .body(schema_of::<HeadersIn>).empty(204),
        route(PATCH, "/app/{app_id}/endpoint/{endpoint_id}/headers", "v1.endpoint.patch-headers", "Set or (with null) remove custom headers", EP, patch(endpoints::patch_headers))
            .body(schema_of::<HeadersPatchIn>).empty(204),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}/transformation", "v1.endpoint.get-transformation", "The endpoint's JavaScript transformation", EP, get(transformations::get))
            .returns(200, schema_of::<transformations::TransformationOut>),
        route(PATCH, "/app/{app_id}/endpoint/{endpoint_id}/transformation", "v1.endpoint.patch-transformation", "Set the endpoint's transformation (code, enabled, variables); code is checked before it is saved, and setting it switches the transformation on unless enabled says otherwise", EP, patch(transformations::patch))
            .body(schema_of::<transformations::TransformationPatch>).empty(204),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/transformation/try", "v1.endpoint.try-transformation", "Herald extension: run code on a payload (or the event type's example) as a delivery to this endpoint would, without saving it", EP, post(transformations::try_code))
            .body(schema_of::<transformations::TransformationTryIn>).returns(200, schema_of::<transformations::TransformationTryOut>),
        route(GET, "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", "v1.ingest.endpoint.get-transformation", "Svix's ingest route: the transformation of a source's destination (an endpoint of the source's application)", SRC, get(transformations::ingest_get))
            .returns(200, schema_of::<transformations::TransformationOut>),
        route(PATCH, "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", "v1.ingest.endpoint.patch-transformation", "Svix's ingest route: set the transformation of a source's destination", SRC, patch(transformations::ingest_patch))
            .body(schema_of::<transformations::TransformationPatch>).empty(204),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}/stats", "v1.endpoint.get-stats", "Delivery counts by status (?since&until)", EP, get(endpoints::stats)).query(STATS_QUERY)
            .returns(200, schema_of::<StatsOut>),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/send-example", "v1.endpoint.send-example", "Send an example event to this endpoint only", EP, post(endpoints::send_example))
            .body(schema_of::<SendExampleIn>).returns(202, schema_of::<MessageOut>),
        route(POST, "/app/{app_id}/endpoint/{endpoint_id}/recover", "v1.endpoint.recover", "Re-send every delivery to this endpoint that failed in a window", EP, post(endpoints::recover))
            .body(schema_of::<RecoverIn>).returns(202, schema_of::<TaskOut>),
        route(GET, "/app/{app_id}/endpoint/{endpoint_id}/msg", "v1.message-attempt.list-attempted-messages", "Messages sent to an endpoint, with their status", ATT, get(attempts::endpoint_messages))
            .query(ENDPOINT_MESSAGE_QUERY).list(list_of::<EndpointMessageOut>),
        route(GET, "/event-type", "v1.event-type.list", "List event types (?include_archived=true; Herald's operational event types only with ?include_operational=true or an operational-application token)", ET, get(event_types::list)).query(EVENT_TYPE_LIST_QUERY).list(list_of::<EventTypeOut>),
        route(POST, "/event-type", "v1.event-type.create", "Create an event type", ET, post(event_types::create))
            .body(schema_of::<EventTypeIn>).returns(201, schema_of::<EventTypeOut>),
        route(GET, "/event-type/{name}", "v1.event-type.get", "Get an event type", ET, get(event_types::get)).returns(200, schema_of::<EventTypeOut>),
        route(PUT, "/event-type/{name}", "v1.event-type.update", "Replace an event type, or create it", ET, put(event_types::put))
            .body(schema_of::<EventTypeUpdate>).returns(200, schema_of::<EventTypeOut>).or_status(201),
        route(PATCH, "/event-type/{name}", "v1.event-type.patch", "Change some fields of an event type", ET, patch(event_types::patch))
            .body(schema_of::<EventTypePatch>).returns(200, schema_of::<EventTypeOut>),
        route(DEL, "/event-type/{name}", "v1.event-type.delete", "Archive an event type (?expunge=true deletes it)", ET, delete(event_types::delete)).query(EVENT_TYPE_DELETE_QUERY).empty(204),
        route(GET, "/app/{app_id}/msg", "v1.message.list", "List messages (filters: channel, before, after, event_types, with_content)", MSG, get(messages::list))
            .query(MESSAGE_QUERY).list(list_of::<MessageOut>),
        route(POST, "/app/{app_id}/msg", "v1.message.create", "Send a message: 202 once it and its deliveries are on disk", MSG, post(messages::create))
            .body(schema_of::<MessageIn>).returns(202, schema_of::<MessageOut>),
        route(GET, "/app/{app_id}/msg/{msg_id}", "v1.message.get", "Get a message", MSG, get(messages::get)).returns(200, schema_of::<MessageOut>),
        route(DEL, "/app/{app_id}/msg/{msg_id}/content", "v1.message.expunge-content", "Delete a message's payload", MSG, delete(messages::expunge)).empty(204),
        route(GET, "/app/{app_id}/msg/{msg_id}/endpoint", "v1.message-attempt.list-attempted-destinations", "Endpoints a message went to, with their status", ATT, get(attempts::message_endpoints))
            .list(list_of::<MessageEndpointOut>),
        route(GET, "/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", "v1.message-attempt.get", "Get one attempt", ATT, get(attempts::get))
            .returns(200, schema_of::<AttemptOut>),
        route(DEL, "/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content", "v1.message-attempt.expunge-content", "Delete the response body kept for one attempt", ATT, delete(attempts::expunge)).empty(204),
        route(POST, "/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", "v1.message-attempt.resend", "Send a message to an endpoint again, now", ATT, post(attempts::resend))
            .returns(202, object),
        route(GET, "/app/{app_id}/attempt/endpoint/{endpoint_id}", "v1.message-attempt.list-by-endpoint", "Attempts to an endpoint (filters: status, status_code_class, event_types, channel, before, after)", ATT, get(attempts::by_endpoint))
            .query(ATTEMPT_QUERY).list(list_of::<AttemptOut>),
        route(GET, "/app/{app_id}/attempt/msg/{msg_id}", "v1.message-attempt.list-by-msg", "Attempts of a message (same filters, and endpoint_id)", ATT, get(attempts::by_message))
            .query(ATTEMPT_BY_MESSAGE_QUERY).list(list_of::<AttemptOut>),
    ]
}

/// The OpenAPI document of every route, as JSON.
pub fn openapi_json() -> String {
    let ops: Vec<Operation> = routes().into_iter().map(|r| r.op).collect();
    let mut doc = openapi::document(&ops);
    let mut spec_route = Operation {
        method: HttpMethod::Get,
        path: "/openapi.json",
        id: "v1.openapi",
        summary: "This document",
        tag: "Health",
        auth: false,
        list: false,
        request: None,
        status: 200,
        response: Some(object),
        media_type: "application/json",
        query: &[],
        also: None,
        body_optional: false,
        refuses: false,
    };
    spec_route.auth = false;
    doc.paths
        .paths
        .extend(openapi::document(&[spec_route]).paths.paths);
    let mut doc = serde_json::to_value(&doc).expect("the document serializes");
    crate::contract::constrain(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the document serializes")
}

/// On a shared store, forgets every cached token when another node ends one (a
/// revocation or a logout), so it stops working on this node at once too.
fn forget_tokens_when_revoked(state: &Arc<ApiState>) {
    let Some(revoked) = state.store.revoked_signal() else {
        return;
    };
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            revoked.notified().await;
            let Some(state) = state.upgrade() else { return };
            state
                .token_cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    });
}

/// The whole API under `/api/v1`.
pub fn router(state: Arc<ApiState>) -> Router {
    forget_tokens_when_revoked(&state);
    let spec: Arc<str> = Arc::from(openapi_json());
    let mut public = Router::new().route(
        "/openapi.json",
        get(move || {
            let spec = spec.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    spec.to_string(),
                )
            }
        }),
    );
    let mut authed = Router::new();
    // Svix's ingest API lives beside /api/v1, under its own prefix.
    let mut ingest = Router::new();
    for r in routes() {
        if r.op.path.starts_with(INGEST_PREFIX) {
            ingest = ingest.route(r.op.path, r.handler);
        } else if r.op.auth {
            authed = authed.route(r.op.path, r.handler);
        } else {
            public = public.route(r.op.path, r.handler);
        }
    }
    let authed = authed
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::layer,
        ));
    let v1 = public
        .merge(authed)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let ingest = ingest
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::layer,
        ))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });

    let router = Router::new()
        .nest("/api/v1", v1)
        .merge(ingest)
        .merge(metrics_route(&state))
        .merge(crate::ui::routes())
        .route("/in/{source_id}", any(crate::inbound::receive))
        .route("/in/{source_id}/{*rest}", any(crate::inbound::receive))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_limits,
        ))
        .with_state(state.clone());
    // The state holds its router from now on (for the audit trail's reads before a
    // change); they live as long as the server.
    let _ = state.reader.set(router.clone());
    router
}

/// Bounds every request: its URL's length (414) and the time it may take, reading a
/// slow body included (408). Body size is bounded by `DefaultBodyLimit` (413); the
/// header section by the HTTP server (431).
async fn request_limits(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > state.config.max_uri_bytes {
        return ApiError::UriTooLong(format!(
            "the URL is {uri_len} bytes long; the server reads at most {}",
            state.config.max_uri_bytes
        ))
        .into_response();
    }
    // NUL never reaches the store (PostgreSQL refuses it in text): not in a path id,
    // not in a query value.
    if crate::extract::has_encoded_nul(req.uri().path()) {
        return crate::error::invalid(&["path"], "NUL characters (%00) are not allowed")
            .into_response();
    }
    if req
        .uri()
        .query()
        .is_some_and(crate::extract::has_encoded_nul)
    {
        return crate::error::invalid(&["query"], "NUL characters (%00) are not allowed")
            .into_response();
    }
    let deadline = state.config.request_deadline;
    let response = match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(format!(
            "the request was not complete within {} s",
            deadline.as_secs_f64()
        ))
        .into_response(),
    };
    json_errors(response).await
}

/// Every error the server writes is JSON in the documented shape: a rejection that a
/// framework layer wrote as plain text (a path that is not UTF-8, say) is rewritten,
/// its text kept as the detail.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_string();
    let code = match status.as_u16() {
        401 => "authentication_failed",
        403 => "insufficient_access",
        404 => "not_found",
        409 => "conflict",
        413 => "payload_too_large",
        500..=599 => "server_error",
        _ => "generic_error",
    };
    let detail = if detail.is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        detail
    };
    let mut rewritten = (
        status,
        axum::Json(serde_json::json!({ "code": code, "detail": detail })),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// The router of a node that serves no API (`--role worker`): only the health routes,
/// so that load balancers and orchestrators can still watch it.
pub fn health_router(state: Arc<ApiState>) -> Router {
    let mut v1 = Router::new();
    for r in routes()
        .into_iter()
        .filter(|r| r.op.path.starts_with("/health"))
    {
        v1 = v1.route(r.op.path, r.handler);
    }
    Router::new()
        .nest("/api/v1", v1)
        .merge(metrics_route(&state))
        .fallback(|| async { ApiError::NotFound("this node serves no API (role worker)".into()) })
        .with_state(state)
}

/// `/metrics`, for an admin token only: it names endpoints and their volumes, which
/// are one tenant's business and not another's (Prometheus sends the token with
/// `authorization: {credentials: …}`).
fn metrics_route(state: &Arc<ApiState>) -> Router<Arc<ApiState>> {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// Bearer-token auth: the token's hash must be a stored, unexpired token.
async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 512) else {
        // Someone signed in to the console: their session cookie.
        return match crate::routes::people::session_of(&state, req.headers()).await {
            Ok(Some((session, person))) => with_session(&state, req, next, session, person).await,
            Ok(None) => {
                ApiError::Unauthorized("missing or malformed Authorization: Bearer header".into())
                    .into_response()
            }
            Err(e) => e.into_response(),
        };
    };
    let hash = herald_core::token::hash(token);
    let cached = state
        .token_cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&hash)
        .filter(|(_, read_at)| {
            !state.store.is_shared() || read_at.elapsed() < crate::state::SHARED_TOKEN_TTL
        })
        .map(|(info, _)| info.clone());
    let info = match cached {
        Some(info) => info,
        None => match state.store.token_find(&hash).await {
            Ok(Some(info)) => {
                state
                    .token_cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hash.clone(), (info.clone(), std::time::Instant::now()));
                info
            }
            Ok(None) => return ApiError::Unauthorized("invalid token".into()).into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if info
        .expires_at
        .is_some_and(|t| t <= herald_core::time::now_ms())
    {
        return ApiError::Unauthorized("the token has expired".into()).into_response();
    }
    // A poller's token reads its poller's routes and nothing else (the handlers check
    // that it is this destination).
    if info.destination_id.is_some() && !is_poller_path(req.uri().path()) {
        return ApiError::Forbidden("a poller's token only reads its poller".into())
            .into_response();
    }
    let role = info.role.as_deref().map(|r| {
        // A role this Herald does not know allows nothing more than reading.
        crate::roles::Role::parse(r).unwrap_or(crate::roles::Role::Viewer)
    });
    // Who this is, for the audit trail (`audit.rs` reads it off the response).
    let actor = crate::audit::Actor {
        token_id: info.id.clone(),
        name: info.name.clone(),
        role: info.role.clone(),
        app_id: info.app_id.clone(),
    };
    if let Some(role) = role {
        if !role.allows(req.method(), req.uri().path()) {
            let mut refused = ApiError::Forbidden(format!(
                "a {} token may not {} {}",
                role.as_str(),
                req.method(),
                req.uri().path()
            ))
            .into_response();
            refused.extensions_mut().insert(actor);
            return refused;
        }
    }
    touch_token(&state, &info.id);
    req.extensions_mut().insert(Caller {
        token_hash: hash,
        app_id: info.app_id,
        destination_id: info.destination_id,
        token_id: info.id,
        role,
    });
    let mut response = next.run(req).await;
    response.extensions_mut().insert(actor);
    response
}

/// A request made with a person's session cookie: their role decides, and a write must
/// carry the session's CSRF token (a cookie goes with any request the browser makes; the
/// token only with the console's own).
async fn with_session(
    state: &ApiState,
    mut req: Request,
    next: Next,
    session: herald_store::PersonSession,
    person: herald_store::Person,
) -> Response {
    // Their role in this environment: the person's own role in the default one, the
    // one given for this environment elsewhere; none closes it to them.
    let here = &state.config.environment;
    let role_text = if here == herald_core::environment::DEFAULT {
        Some(&person.role)
    } else {
        person.environment_roles.get(here)
    };
    let Some(role_text) = role_text else {
        return ApiError::Forbidden(format!(
            "{} has no role in the environment {here}",
            person.email
        ))
        .into_response();
    };
    let role = crate::roles::Role::parse(role_text).unwrap_or(crate::roles::Role::Viewer);
    let actor = crate::audit::Actor {
        token_id: person.id.clone(),
        name: person.email.clone(),
        role: Some(role.as_str().to_string()),
        app_id: None,
    };
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let csrf_ok = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == session.csrf);
    let refusal = if !reads && !csrf_ok {
        Some("a write made with the session cookie needs its X-CSRF-Token".to_string())
    } else if !role.allows(req.method(), req.uri().path()) {
        Some(format!(
            "a {} may not {} {}",
            role.as_str(),
            req.method(),
            req.uri().path()
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        let mut refused = ApiError::Forbidden(why).into_response();
        refused.extensions_mut().insert(actor);
        return refused;
    }
    req.extensions_mut().insert(Caller {
        token_hash: session.hash,
        app_id: None,
        destination_id: None,
        token_id: person.id,
        role: Some(role),
    });
    let mut response = next.run(req).await;
    response.extensions_mut().insert(actor);
    response
}

/// Records a token's use, at most once a minute per token and process, off the
/// request's path.
fn touch_token(state: &Arc<ApiState>, id: &str) {
    let now = herald_core::time::now_ms();
    {
        let mut touched = state
            .token_touched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if touched.get(id).is_some_and(|at| now - at < 60_000) {
            return;
        }
        if touched.len() >= 10_000 {
            touched.clear();
        }
        touched.insert(id.to_string(), now);
    }
    let (store, id) = (state.store.clone(), id.to_string());
    tokio::spawn(async move {
        if let Err(e) = store.token_touch(&id, now).await {
            tracing::debug!(error = %e, "could not record a token's use");
        }
    });
}

/// `/app/{app}/poller/{sink}` and below (as the v1 router sees paths, without the
/// `/api/v1` it is nested under): where a poller's token may go.
fn is_poller_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "app", app, "poller", sink, ..] | ["", "api", "v1", "app", app, "poller", sink, ..]
            if !app.is_empty() && !sink.is_empty()
    )
}
