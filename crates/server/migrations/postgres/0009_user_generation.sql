-- A user's revision, in place of the wall-clock cut of 0005: every "revoke all" (disable,
-- `sessions revoke --user`, `user passwd` without --keep-sessions, remove) adds one. The
-- value read with the user at sign-in is stamped on the browser session, the
-- authorization code and the grant, and each stands only while it equals the user's
-- current one. No clock is involved, so nothing begun in the second of a revoke-all, or
-- cut on a host whose clock is off, survives it. Existing rows start at 0: whatever a
-- past revoke-all cut was revoked, ended or deleted by it. `users.sessions_revoked_at`
-- stays (replicas still on the old binary read it during an upgrade) but is no longer read.
ALTER TABLE users ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE browser_sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_codes ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
