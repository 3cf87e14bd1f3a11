-- Version 2: indexes for the retention sweeps (payload expiry, metadata age).
CREATE INDEX IF NOT EXISTS message_expires ON message(expires_at);
CREATE INDEX IF NOT EXISTS message_created ON message(created_at);
