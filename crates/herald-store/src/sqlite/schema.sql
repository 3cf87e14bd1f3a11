-- Herald's SQLite schema. Times are Unix milliseconds. JSON columns hold arrays/objects
-- as text. Version 11; every statement is IF NOT EXISTS, so opening a database of an
-- older version brings it up to date.
CREATE TABLE IF NOT EXISTS application (
    id TEXT PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    throttle_rate INTEGER,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Version 11: `ekey` is the key deliveries and attempts refer to the endpoint by.
CREATE TABLE IF NOT EXISTS endpoint (
    ekey INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    event_types TEXT,
    channels TEXT,
    throttle_rate INTEGER,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- Since when every attempt failed (NULL after a success); version 3.
    failing_since INTEGER,
    -- 1 for ordered delivery; version 4.
    ordered INTEGER NOT NULL DEFAULT 0,
    -- Version 8: a filter on the payload and headers (JSON), or NULL.
    payload_filter TEXT,
    transformation TEXT,
    UNIQUE (app_id, uid)
);
CREATE INDEX IF NOT EXISTS endpoint_by_app ON endpoint(app_id, id);

CREATE TABLE IF NOT EXISTS event_type (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    archived INTEGER NOT NULL,
    deprecated INTEGER NOT NULL,
    schemas TEXT,
    feature_flag TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Version 11: a message's `seq` is its row's key, and the payload, deliveries and
-- attempts refer to the message by it (an integer of a few bytes) rather than by its
-- 31-character id, which is stored once, in the row and its unique index.
CREATE TABLE IF NOT EXISTS message (
    -- The message's place in its application's stream, given by the writer in commit
    -- order (destinations read by it); unique across applications.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    event_id TEXT,
    event_type TEXT NOT NULL,
    channels TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- The ordering key of ordered delivery (version 5).
    ordering_key TEXT
);
-- An application's messages in stream order, which is also the order of their ids
-- (lists go by it): the index's entries end with the row's key, which is seq.
CREATE INDEX IF NOT EXISTS message_stream ON message(app_id);
-- For the retention sweeps (version 2).
CREATE INDEX IF NOT EXISTS message_expires ON message(expires_at);
CREATE INDEX IF NOT EXISTS message_created ON message(created_at);
-- Partial: most messages carry no eventId, and they need no entry here.
CREATE UNIQUE INDEX IF NOT EXISTS message_event_id ON message(app_id, event_id) WHERE event_id IS NOT NULL;

-- Payloads live apart from metadata so retention can drop them and keep the log.
CREATE TABLE IF NOT EXISTS message_payload (
    msg_seq INTEGER PRIMARY KEY REFERENCES message(seq) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    -- Version 6: extra headers sent with the payload (JSON list of pairs), or NULL.
    headers TEXT
);

-- One row per (message, endpoint): the unit of work of the delivery queue.
-- status: 0 succeeded, 1 pending, 2 failed, 4 canceled. leased = 1 while a worker holds
-- it; next_attempt_at is then the lease's end.
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY,
    msg_seq INTEGER NOT NULL REFERENCES message(seq) ON DELETE CASCADE,
    -- The endpoint (its ekey); its application is the endpoint's.
    ep INTEGER NOT NULL REFERENCES endpoint(ekey) ON DELETE CASCADE,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    leased INTEGER NOT NULL DEFAULT 0,
    trigger_type INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- Also an endpoint's deliveries in message order (its message list).
    UNIQUE (ep, msg_seq)
);
-- Pending deliveries by endpoint, oldest due first: claims find each endpoint's due
-- work through it, so that they can share a batch fairly (fair.rs). It replaced
-- delivery_due (by time alone) in schema version 7.
CREATE INDEX IF NOT EXISTS delivery_ready ON delivery(ep, next_attempt_at) WHERE status = 1;
DROP INDEX IF EXISTS delivery_due;
CREATE INDEX IF NOT EXISTS delivery_by_msg ON delivery(msg_seq);

-- Attempts are append-only. Clustered by message (a message's attempts are one range
-- of the table, found without a second index); an endpoint's through attempt_by_endpoint.
CREATE TABLE IF NOT EXISTS attempt (
    msg_seq INTEGER NOT NULL REFERENCES message(seq) ON DELETE CASCADE,
    id TEXT NOT NULL,
    -- The endpoint (its ekey); the application is the message's.
    ep INTEGER NOT NULL REFERENCES endpoint(ekey) ON DELETE CASCADE,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    trigger_type INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (msg_seq, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempt_by_endpoint ON attempt(ep, id);

CREATE TABLE IF NOT EXISTS api_token (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    app_id TEXT REFERENCES application(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    -- Version 8: set for a poller's token, which reads that destination only (deleted
    -- with it by destination_delete).
    destination_id TEXT,
    -- NULL: an admin token (or an application's, with app_id); else admin, developer,
    -- support or viewer.
    role TEXT,
    last_used_at INTEGER
);

CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status_code INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS task (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Version 6: inbound sources and the requests that arrived at them.
CREATE TABLE IF NOT EXISTS source (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL UNIQUE REFERENCES application(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS inbound_request (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE,
    msg_id TEXT,
    received_at INTEGER NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    verified INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS inbound_by_source ON inbound_request(source_id, id);
CREATE INDEX IF NOT EXISTS inbound_received ON inbound_request(received_at);

-- Version 8: destinations, ordered streams of an application's messages read from a
-- position (pos_xid is always 0 here; see StreamPos), and their consumers' positions.
CREATE TABLE IF NOT EXISTS destination (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid TEXT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    max_wait_secs INTEGER NOT NULL,
    event_types TEXT,
    channels TEXT,
    metadata TEXT NOT NULL,
    pos_xid INTEGER NOT NULL,
    pos_seq INTEGER NOT NULL,
    failure_reason TEXT,
    next_retry_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    payload_filter TEXT,
    transformation TEXT,
    UNIQUE (app_id, uid)
);
CREATE INDEX IF NOT EXISTS destination_by_app ON destination(app_id, id);

CREATE TABLE IF NOT EXISTS destination_consumer (
    destination_id TEXT NOT NULL REFERENCES destination(id) ON DELETE CASCADE,
    consumer_id TEXT NOT NULL,
    pos_xid INTEGER NOT NULL,
    pos_seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (destination_id, consumer_id)
);

-- The last stream position retention deleted, per application: a reader behind it is
-- told that its position expired instead of silently skipping.
CREATE TABLE IF NOT EXISTS stream_horizon (
    app_id TEXT PRIMARY KEY REFERENCES application(id) ON DELETE CASCADE,
    pos_xid INTEGER NOT NULL,
    pos_seq INTEGER NOT NULL
);

-- The audit trail: every change made through the API, and every refused one
-- (appended, never changed; retention deletes by age).
CREATE TABLE IF NOT EXISTS audit_event (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    role TEXT,
    actor_app_id TEXT,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    object_id TEXT,
    status INTEGER NOT NULL,
    allowed INTEGER NOT NULL,
    source TEXT,
    detail TEXT,
    after TEXT,
    before_change TEXT
);
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event(at);
CREATE INDEX IF NOT EXISTS audit_event_actor ON audit_event(actor_id, id);
CREATE INDEX IF NOT EXISTS audit_event_object ON audit_event(object_id, id);

-- People who sign in to the console, and their sessions (by the hash of the cookie).
CREATE TABLE IF NOT EXISTS person (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    totp_secret TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    environment_roles TEXT
);
CREATE TABLE IF NOT EXISTS person_session (
    hash TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS person_session_person ON person_session(person_id);

-- The environment's settings (version 10): one JSON object.
CREATE TABLE IF NOT EXISTS environment_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
