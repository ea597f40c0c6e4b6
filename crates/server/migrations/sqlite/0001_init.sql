-- Tessera's SQLite schema, version 1. Secrets are stored only as SHA-256 hashes;
-- private signing keys only encrypted with the key-encryption key.

CREATE TABLE clients (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL UNIQUE,
    secret_hash     BLOB,               -- NULL for public clients
    grant_types     TEXT NOT NULL,      -- space-separated
    scope           TEXT NOT NULL,      -- space-separated, may be empty
    audience        TEXT NOT NULL,      -- space-separated
    redirect_uris   TEXT NOT NULL,      -- space-separated
    created_at      INTEGER NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,      -- PHC string (Argon2id)
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

-- A grant is one login: the family of refresh tokens and the `sid` of its access tokens.
CREATE TABLE grants (
    id              TEXT PRIMARY KEY NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT,
    scope           TEXT NOT NULL,
    audience        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,   -- absolute lifetime of the family
    revoked_at      INTEGER
);
CREATE INDEX grants_user ON grants (user_id);

CREATE TABLE refresh_tokens (
    hash            BLOB PRIMARY KEY NOT NULL,
    grant_id        TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    parent_hash     BLOB,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,   -- idle lifetime
    used_at         INTEGER
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- The revocation feed: seq is the cursor.
CREATE TABLE revocations (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    jti             TEXT,
    sid             TEXT,
    exp             INTEGER NOT NULL,
    revoked_at      INTEGER NOT NULL,
    CHECK ((jti IS NULL) <> (sid IS NULL))
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    alg             TEXT NOT NULL,
    state           TEXT NOT NULL,      -- published | active | retired
    public_jwk      TEXT NOT NULL,
    sealed_private  BLOB NOT NULL,      -- nonce || AES-256-GCM(PKCS#8 DER), AAD = kid
    created_at      INTEGER NOT NULL,
    activate_after  INTEGER NOT NULL,
    retired_at      INTEGER
);

CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    client_id       TEXT,
    user_id         TEXT,
    detail          TEXT NOT NULL
);
