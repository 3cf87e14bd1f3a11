-- Version 9: destinations. Each message gets a place in its application's stream:
-- `xid` is the id of the transaction that inserted it and `seq` a sequence number.
-- Readers take messages in (xid, seq) order and only of transactions older than every
-- transaction still running, so a message never appears behind a position already read
-- (sequence numbers alone are handed out in an order other than the commit order).
CREATE SEQUENCE IF NOT EXISTS message_seq;
ALTER TABLE message ADD COLUMN IF NOT EXISTS seq BIGINT NOT NULL DEFAULT nextval('message_seq');
ALTER TABLE message ADD COLUMN IF NOT EXISTS xid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX IF NOT EXISTS message_stream ON message(app_id, xid, seq);

CREATE TABLE IF NOT EXISTS destination (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid TEXT COLLATE "C",
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    batch_size BIGINT NOT NULL,
    max_wait_secs BIGINT NOT NULL,
    event_types TEXT,
    channels TEXT,
    metadata TEXT NOT NULL,
    pos_xid BIGINT NOT NULL,
    pos_seq BIGINT NOT NULL,
    failure_reason TEXT,
    next_retry_at BIGINT,
    failures BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX IF NOT EXISTS destination_by_app ON destination(app_id, id);

CREATE TABLE IF NOT EXISTS destination_consumer (
    destination_id TEXT COLLATE "C" NOT NULL REFERENCES destination(id) ON DELETE CASCADE,
    consumer_id TEXT COLLATE "C" NOT NULL,
    pos_xid BIGINT NOT NULL,
    pos_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (destination_id, consumer_id)
);

-- The last stream position retention deleted, per application.
CREATE TABLE IF NOT EXISTS stream_horizon (
    app_id TEXT COLLATE "C" PRIMARY KEY REFERENCES application(id) ON DELETE CASCADE,
    pos_xid BIGINT NOT NULL,
    pos_seq BIGINT NOT NULL
);

-- An endpoint's filter on the payload and headers (JSON), or NULL.
ALTER TABLE endpoint ADD COLUMN IF NOT EXISTS payload_filter TEXT;

-- A poller's token reads its destination only.
ALTER TABLE api_token ADD COLUMN IF NOT EXISTS destination_id TEXT COLLATE "C" REFERENCES destination(id) ON DELETE CASCADE;
