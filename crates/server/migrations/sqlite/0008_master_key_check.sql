-- The master-key check (issue 14, item 10): an HMAC-SHA-256 of a fixed label under the
-- master key, written by the first process that opens the store. Every later process
-- compares its master key's value with it before writing anything; the key itself is
-- never stored. One row at most.
CREATE TABLE master_key_check (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    check_value     BLOB NOT NULL,
    created_at      INTEGER NOT NULL
);
