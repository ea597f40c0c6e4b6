-- Tessera's PostgreSQL schema, version 1: the same tables and meaning as the SQLite
-- schema (migrations/sqlite, versions 1 and 2). Secrets are stored only as SHA-256
-- hashes; private signing keys only encrypted with the key-encryption key. Times are
-- Unix seconds (BIGINT).

CREATE TABLE clients (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    secret_hash     BYTEA,              -- NULL for public clients
    grant_types     TEXT NOT NULL,      -- space-separated
    scope           TEXT NOT NULL,      -- space-separated, may be empty
    audience        TEXT NOT NULL,      -- space-separated
    redirect_uris   TEXT NOT NULL,      -- space-separated
    signing_alg     TEXT,               -- NULL: the server's default
    created_at      BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,      -- PHC string (Argon2id)
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL
);

-- A grant is one login: the family of refresh tokens and the `sid` of its access tokens.
CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT,
    scope           TEXT NOT NULL,
    audience        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,    -- absolute lifetime of the family
    revoked_at      BIGINT
);
CREATE INDEX grants_user ON grants (user_id);
CREATE INDEX grants_client ON grants (client_id);

CREATE TABLE refresh_tokens (
    hash            BYTEA PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    parent_hash     BYTEA,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,    -- idle lifetime
    used_at         BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- The revocation feed: seq is the cursor. It is taken from the one-row counter below,
-- not from a sequence: the UPDATE of the counter row locks it until the revoking
-- transaction commits, so feed entries become visible in cursor order and the committed
-- counter (last_revocation_seq) never names an entry a reader cannot see yet. With a
-- sequence, a slow transaction could commit seq 5 after a reader already moved past 6.
-- The counter never goes back, even after rows are purged.
CREATE TABLE revocation_cursor (
    one             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last_seq        BIGINT NOT NULL
);
INSERT INTO revocation_cursor (one, last_seq) VALUES (TRUE, 0);

CREATE TABLE revocations (
    seq             BIGINT PRIMARY KEY,
    jti             TEXT,
    sid             TEXT,
    exp             BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL,
    CHECK ((jti IS NULL) <> (sid IS NULL))
);
CREATE INDEX revocations_jti ON revocations (jti) WHERE jti IS NOT NULL;
CREATE INDEX revocations_sid ON revocations (sid) WHERE sid IS NOT NULL;

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    state           TEXT NOT NULL,      -- published | active | retired
    public_jwk      TEXT NOT NULL,
    sealed_private  BYTEA NOT NULL,     -- nonce || AES-256-GCM(PKCS#8 DER), AAD = kid
    created_at      BIGINT NOT NULL,
    activate_after  BIGINT NOT NULL,
    retired_at      BIGINT
);

CREATE TABLE audit_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    client_id       TEXT,
    user_id         TEXT,
    detail          TEXT NOT NULL
);

-- Failed-login throttling shared by every replica on this database.
CREATE TABLE login_failures (
    key             TEXT PRIMARY KEY,   -- "user:<name>" or "ip:<address>"
    count           BIGINT NOT NULL,
    window_start    BIGINT NOT NULL,
    blocked_until   BIGINT NOT NULL DEFAULT 0
);
