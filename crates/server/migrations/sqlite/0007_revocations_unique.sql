-- Issue 14, item 4: a token or grant is in the revocation feed at most once, and lookups
-- by jti or sid (introspection, userinfo) use an index instead of scanning the feed.
-- Older versions added a row each time the same access token was revoked: keep one row per
-- jti and per sid, the newest (highest seq, so no feed reader can miss it: one that read
-- past it saw it, one that did not will), carrying the latest exp of its group.
UPDATE revocations
   SET exp = (SELECT MAX(r.exp) FROM revocations r WHERE r.jti = revocations.jti)
 WHERE jti IS NOT NULL;
UPDATE revocations
   SET exp = (SELECT MAX(r.exp) FROM revocations r WHERE r.sid = revocations.sid)
 WHERE sid IS NOT NULL;
DELETE FROM revocations
 WHERE jti IS NOT NULL
   AND seq NOT IN (SELECT MAX(seq) FROM revocations WHERE jti IS NOT NULL GROUP BY jti);
DELETE FROM revocations
 WHERE sid IS NOT NULL
   AND seq NOT IN (SELECT MAX(seq) FROM revocations WHERE sid IS NOT NULL GROUP BY sid);
-- NULLs are distinct in a unique index: the sid rows (jti NULL) do not collide, and back.
CREATE UNIQUE INDEX revocations_jti ON revocations (jti);
CREATE UNIQUE INDEX revocations_sid ON revocations (sid);
