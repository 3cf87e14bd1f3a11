-- The audit trail: every change made through the API, and every refused one.
CREATE TABLE IF NOT EXISTS audit_event (
    id TEXT COLLATE "C" PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    role TEXT,
    actor_app_id TEXT,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    object_id TEXT,
    status BIGINT NOT NULL,
    allowed BOOLEAN NOT NULL,
    source TEXT,
    detail TEXT,
    after TEXT
);
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);
CREATE INDEX IF NOT EXISTS audit_event_actor ON audit_event (actor_id, id);
CREATE INDEX IF NOT EXISTS audit_event_object ON audit_event (object_id, id);
