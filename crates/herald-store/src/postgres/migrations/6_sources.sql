-- Version 6: extra headers of a message's deliveries, inbound sources and their log.
ALTER TABLE message_payload ADD COLUMN IF NOT EXISTS headers TEXT;

CREATE TABLE IF NOT EXISTS source (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL UNIQUE REFERENCES application(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS inbound_request (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE,
    msg_id TEXT,
    received_at BIGINT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS inbound_by_source ON inbound_request(source_id, id);
CREATE INDEX IF NOT EXISTS inbound_received ON inbound_request(received_at);
