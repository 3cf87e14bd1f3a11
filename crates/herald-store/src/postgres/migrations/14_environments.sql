-- Environments: a person's roles in the other environments, and this environment's
-- settings (one JSON object). The audit trail's "before".
ALTER TABLE person ADD COLUMN IF NOT EXISTS environment_roles TEXT;
-- What an object was before a change, in the audit trail.
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS before_change TEXT;
CREATE TABLE IF NOT EXISTS environment_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
