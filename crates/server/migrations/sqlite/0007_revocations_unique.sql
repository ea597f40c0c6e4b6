-- Issue 14, item 4: a token or grant is in the revocation feed at most once, and lookups
-- by jti or sid (introspection, userinfo) use an index instead of scanning the feed.
-- Older versions added a row each time the same access token was revoked: keep one row per
-- jti and per sid, the newest (highest seq, so no feed reader can miss it: one that read
-- past it saw it, one that did not will), carrying the latest exp of its group.
-- Set-based (one GROUP BY, then lookups by primary key): correlated subqueries over the
-- unindexed feed took minutes for tens of thousands of duplicates.
CREATE TEMP TABLE revocations_keep (seq INTEGER PRIMARY KEY, exp INTEGER NOT NULL);
INSERT INTO revocations_keep (seq, exp)
SELECT MAX(seq), MAX(exp) FROM revocations WHERE jti IS NOT NULL GROUP BY jti
UNION ALL
SELECT MAX(seq), MAX(exp) FROM revocations WHERE sid IS NOT NULL GROUP BY sid;
DELETE FROM revocations WHERE seq NOT IN (SELECT seq FROM revocations_keep);
UPDATE revocations
   SET exp = (SELECT k.exp FROM revocations_keep k WHERE k.seq = revocations.seq)
 WHERE exp <> (SELECT k.exp FROM revocations_keep k WHERE k.seq = revocations.seq);
DROP TABLE revocations_keep;
-- NULLs are distinct in a unique index: the sid rows (jti NULL) do not collide, and back.
CREATE UNIQUE INDEX revocations_jti ON revocations (jti);
CREATE UNIQUE INDEX revocations_sid ON revocations (sid);
