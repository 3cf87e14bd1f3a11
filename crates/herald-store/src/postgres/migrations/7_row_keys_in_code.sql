-- Version 7: the foreign keys of the tables written for every message and every attempt
-- are dropped, and Herald keeps their promises itself (postgres/mod.rs, "Parent rows").
-- Each key checked every inserted row with a query of its own that also locked the
-- parent row, a WAL record each: six per message with one endpoint, about a third of
-- PostgreSQL's CPU per message (BENCHMARKS.md, PostgreSQL). The keys of the other
-- tables stay.
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_app_id_fkey;
ALTER TABLE message_payload DROP CONSTRAINT IF EXISTS message_payload_msg_id_fkey;
ALTER TABLE delivery DROP CONSTRAINT IF EXISTS delivery_msg_id_fkey;
ALTER TABLE delivery DROP CONSTRAINT IF EXISTS delivery_endpoint_id_fkey;
ALTER TABLE attempt DROP CONSTRAINT IF EXISTS attempt_msg_id_fkey;
ALTER TABLE attempt DROP CONSTRAINT IF EXISTS attempt_endpoint_id_fkey;
