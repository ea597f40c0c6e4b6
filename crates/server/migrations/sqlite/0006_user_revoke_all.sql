-- A user's last "revoke all" (disable, `sessions revoke --user`, `user passwd`): no grant
-- of theirs created before it stands, and no code issued before it is redeemed. And an
-- index to delete a user's unredeemed codes in the same transaction.
ALTER TABLE users ADD COLUMN sessions_revoked_at INTEGER;
CREATE INDEX auth_codes_user ON auth_codes (user_id);
