-- Indexes for the janitor: each purge batch finds its expired or revoked rows through an
-- index instead of scanning the whole table while it holds its locks (the revocation
-- feed and the audit log are purged in primary-key order, which needs none).
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX grants_expires ON grants (expires_at);
CREATE INDEX grants_revoked ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_revoked ON browser_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
