-- Fewer indexes per delivered message (cost per message). A delivery was indexed twice
-- over the same pair, (message, endpoint) for uniqueness and (endpoint, message) for an
-- endpoint's list: one unique (endpoint, message) index now serves both, with a narrow
-- one by message for the message's side. An attempt had a key of its own and an index
-- by (message, attempt); the key is now (message, attempt), which every lookup has.
ALTER TABLE delivery ADD CONSTRAINT delivery_endpoint_msg_key UNIQUE (endpoint_id, msg_id);
ALTER TABLE delivery DROP CONSTRAINT IF EXISTS delivery_msg_id_endpoint_id_key;
DROP INDEX IF EXISTS delivery_by_endpoint;
CREATE INDEX IF NOT EXISTS delivery_by_msg ON delivery(msg_id);
ALTER TABLE attempt DROP CONSTRAINT IF EXISTS attempt_pkey;
ALTER TABLE attempt ADD PRIMARY KEY (msg_id, id);
DROP INDEX IF EXISTS attempt_by_msg;
