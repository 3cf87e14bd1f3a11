-- Named API tokens with a role (NULL: an admin token, or, with app_id, an application's
-- token with everything inside it) and when each was last used.
ALTER TABLE api_token ADD COLUMN IF NOT EXISTS role TEXT;
ALTER TABLE api_token ADD COLUMN IF NOT EXISTS last_used_at BIGINT;
