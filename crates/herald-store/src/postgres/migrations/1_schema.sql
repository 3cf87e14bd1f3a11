-- Version 1, Herald's PostgreSQL schema: the same tables as the SQLite schema, with
-- BIGINT numbers (Unix milliseconds for times), BOOLEAN flags and JSON kept as text.
-- Keys use the "C" collation so that lists page in byte order, exactly as on SQLite,
-- whatever the database's default collation.
CREATE TABLE IF NOT EXISTS application (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    throttle_rate BIGINT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS endpoint (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid TEXT COLLATE "C",
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    disabled BOOLEAN NOT NULL,
    event_types TEXT,
    channels TEXT,
    throttle_rate BIGINT,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX IF NOT EXISTS endpoint_by_app ON endpoint(app_id, id);

CREATE TABLE IF NOT EXISTS event_type (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    archived BOOLEAN NOT NULL,
    deprecated BOOLEAN NOT NULL,
    schemas TEXT,
    feature_flag TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS message (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    event_id TEXT COLLATE "C",
    event_type TEXT NOT NULL,
    channels TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS message_by_app ON message(app_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS message_event_id ON message(app_id, event_id) WHERE event_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS message_payload (
    msg_id TEXT COLLATE "C" PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,
    payload TEXT NOT NULL
);

-- One row per (message, endpoint): the unit of work of the delivery queue.
-- status: 0 succeeded, 1 pending, 2 failed, 4 canceled. leased is true while a node
-- holds it; next_attempt_at is then the lease's end, after which any node may claim it.
CREATE TABLE IF NOT EXISTS delivery (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id TEXT COLLATE "C" NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    app_id TEXT COLLATE "C" NOT NULL,
    status BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    leased BOOLEAN NOT NULL DEFAULT FALSE,
    trigger_type BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery(next_attempt_at) WHERE status = 1;
CREATE INDEX IF NOT EXISTS delivery_by_endpoint ON delivery(endpoint_id, msg_id);

CREATE TABLE IF NOT EXISTS attempt (
    id TEXT COLLATE "C" PRIMARY KEY,
    msg_id TEXT COLLATE "C" NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    app_id TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    status BIGINT NOT NULL,
    response_status_code BIGINT NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms BIGINT NOT NULL,
    trigger_type BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempt_by_msg ON attempt(msg_id, id);
CREATE INDEX IF NOT EXISTS attempt_by_endpoint ON attempt(endpoint_id, id);

CREATE TABLE IF NOT EXISTS api_token (
    id TEXT COLLATE "C" PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    app_id TEXT COLLATE "C" REFERENCES application(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status_code BIGINT NOT NULL,
    body BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS task (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
