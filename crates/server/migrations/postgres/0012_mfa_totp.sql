-- Second factors (issue 17, first increment: TOTP and recovery codes) and the browser's
-- sign-in state between the password and the second factor.

-- One TOTP factor per user. The secret is sealed with a key derived from the master key
-- (AES-256-GCM, the user id as associated data). `confirmed_at` is NULL while enrolment
-- waits for its first code; only a confirmed factor is asked for at sign-in.
-- `last_step` is the last RFC 6238 time step accepted: a code of that step or an earlier
-- one is refused (replay), and the update that raises it is the one atomic decision.
CREATE TABLE mfa_totp (
    user_id       TEXT PRIMARY KEY NOT NULL,
    sealed_secret BYTEA NOT NULL,
    last_step     BIGINT,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT
);

-- Ten per user, SHA-256 of each (the codes carry 80 random bits), each usable once.
CREATE TABLE mfa_recovery_codes (
    user_id    TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, hash)
);

-- A password accepted, the second factor not yet: by the hash of a cookie, short-lived,
-- taken (deleted) by the step that completes the sign-in. Never holds a password or secret.
CREATE TABLE mfa_pending (
    hash        BYTEA PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    auth_time   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX mfa_pending_user ON mfa_pending (user_id);

-- How the user signed in (RFC 8176 `amr` values, space-separated), from the browser
-- session to its codes and grants, so every token of a grant (refreshes too) tells the
-- sign-in it comes from. Rows from before are password sign-ins; a client's own grant
-- has no user and its value is not read.
ALTER TABLE browser_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE auth_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE grants ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
