-- Browser sign-in (authorization code flow with PKCE, OpenID Connect): per-client
-- logout redirects and consent, authorization codes and browser sessions by hash.
-- Same tables and meaning as migrations/sqlite/0003.

ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';  -- space-separated
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;          -- no consent page

CREATE TABLE auth_codes (
    hash            BYTEA PRIMARY KEY,  -- SHA-256 of the code
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,      -- S256
    scope           TEXT NOT NULL,
    nonce           TEXT,
    auth_time       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    grant_id        TEXT                -- the grant issued from it (revoked on reuse)
);

CREATE TABLE browser_sessions (
    hash            BYTEA PRIMARY KEY,  -- SHA-256 of the cookie value
    user_id         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
