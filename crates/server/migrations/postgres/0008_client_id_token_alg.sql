-- A client's id_token_signed_response_alg (OpenID Connect Registration section 2);
-- NULL: RS256, the algorithm every relying party assumes when it does not say.
ALTER TABLE clients ADD COLUMN id_token_alg TEXT;
