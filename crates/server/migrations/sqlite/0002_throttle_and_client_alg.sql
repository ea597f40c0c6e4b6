-- Failed-login throttling shared by every process on this store, and a per-client
-- signing algorithm.

CREATE TABLE login_failures (
    key             TEXT PRIMARY KEY NOT NULL,   -- "user:<name>" or "ip:<address>"
    count           INTEGER NOT NULL,
    window_start    INTEGER NOT NULL,
    blocked_until   INTEGER NOT NULL DEFAULT 0
);

ALTER TABLE clients ADD COLUMN signing_alg TEXT;
