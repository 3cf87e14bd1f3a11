-- Version 4: ordered delivery per endpoint.
ALTER TABLE endpoint ADD COLUMN IF NOT EXISTS ordered BOOLEAN NOT NULL DEFAULT FALSE;
