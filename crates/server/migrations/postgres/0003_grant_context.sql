-- The network (/24 or /48) and user agent of a grant's latest token request, to flag a refresh
-- from a new context (audit event refresh.new_context).
ALTER TABLE grants ADD COLUMN last_net TEXT;
ALTER TABLE grants ADD COLUMN last_agent TEXT;
