-- Version 8: pending deliveries are indexed by endpoint, oldest due first, so that a
-- claim finds each endpoint's due work and shares its batch fairly between
-- applications and endpoints (fair.rs) instead of taking the oldest rows of whichever
-- tenant has a backlog. The index by time alone is no longer read, and dropping it
-- keeps the writes per delivery as they were.
CREATE INDEX IF NOT EXISTS delivery_ready ON delivery(endpoint_id, next_attempt_at) WHERE status = 1;
DROP INDEX IF EXISTS delivery_due;
