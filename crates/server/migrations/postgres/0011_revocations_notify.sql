-- Issue 18, push revocation: every statement that adds feed entries notifies channel
-- tessera_revocations. PostgreSQL delivers a NOTIFY at commit (never for a rollback) to
-- every session that LISTENs, on any replica, and folds a transaction's identical
-- notifications into one. The payload is empty: a listener reads the feed from its cursor.
-- A trigger, not a call in each writer: nothing that inserts into the feed can forget it.
CREATE FUNCTION tessera_revocations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tessera_revocations', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER revocations_notify AFTER INSERT ON revocations
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_revocations_notify();
