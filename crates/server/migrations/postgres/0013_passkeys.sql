-- Passkeys (issue 17: WebAuthn through webauthn-rs) and the state of a WebAuthn ceremony
-- between the page that starts it and the post that finishes it.

-- One row per registered credential. `credential_id` is unique across all users: a
-- credential id registered already (by anyone) is refused. `passkey` is webauthn-rs's
-- serialised Passkey (public key, signature counter, backup flags, as the crate keeps
-- them); it is replaced after each use only if unchanged since read (one winner).
-- `suspect_at`: when its signature counter went back (a cloned authenticator); a suspect
-- credential is refused until `user mfa-reset`.
CREATE TABLE mfa_passkeys (
    credential_id BYTEA PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL,
    label         TEXT NOT NULL,
    passkey       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    suspect_at    BIGINT
);
CREATE INDEX mfa_passkeys_user ON mfa_passkeys (user_id);

-- A ceremony's server-side state (the challenge), by the hash of its random id, bound to
-- a user and (for a second factor or a registration) to the pending sign-in or session
-- it belongs to. Taken (deleted) once by the post that finishes it; dead after
-- `expires_at`. Works across replicas: any node may finish what another started.
CREATE TABLE mfa_ceremonies (
    hash       BYTEA PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    bound_to   BYTEA,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_ceremonies_user ON mfa_ceremonies (user_id);
-- The janitor deletes dead ceremonies by expiry.
CREATE INDEX mfa_ceremonies_expiry ON mfa_ceremonies (expires_at);

-- What a pending sign-in is for: `enrol` (the user had no factor when the password was
-- accepted: the enrolment page) or `verify` (the code page). Only an `enrol` sign-in of a
-- user still without a factor may enrol one.
ALTER TABLE mfa_pending ADD COLUMN purpose TEXT NOT NULL DEFAULT 'verify';
