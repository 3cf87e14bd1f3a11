-- Environments: a person's roles in the other environments, and this environment's
-- settings (one JSON object).
ALTER TABLE person ADD COLUMN IF NOT EXISTS environment_roles TEXT;
CREATE TABLE IF NOT EXISTS environment_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
