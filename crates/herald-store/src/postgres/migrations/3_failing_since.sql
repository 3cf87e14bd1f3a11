-- Version 3: since when each endpoint has failed without a success (auto-disable).
ALTER TABLE endpoint ADD COLUMN IF NOT EXISTS failing_since BIGINT;
