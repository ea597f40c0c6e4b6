-- DPoP (RFC 9449). A client registered with dpop_bound_access_tokens (section 5.2) must
-- send a proof with every token request; 1: required.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
-- The RFC 7638 thumbprint of the key a public client's refresh tokens are bound to
-- (section 5); NULL: unbound. Every refresh of the family needs a proof by that key.
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT;
-- The thumbprint an authorization code is bound to by the request's dpop_jkt
-- (section 10); NULL: unbound. Redeeming it needs a proof by that key.
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
