-- Version 5: ordering keys of messages (ordered delivery per key).
ALTER TABLE message ADD COLUMN IF NOT EXISTS ordering_key TEXT;
