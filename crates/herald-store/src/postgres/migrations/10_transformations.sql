-- An endpoint's JavaScript transformation: {code, enabled, variables, updated_at} as
-- JSON, written only by its own statement (endpoint_set_transformation).
ALTER TABLE endpoint ADD COLUMN IF NOT EXISTS transformation TEXT;
-- A destination's payload filter (like an endpoint's) and its transformation.
ALTER TABLE destination ADD COLUMN IF NOT EXISTS payload_filter TEXT;
ALTER TABLE destination ADD COLUMN IF NOT EXISTS transformation TEXT;
