-- Issue 14, item 4: a token or grant is in the revocation feed at most once. Older
-- versions added a row each time the same access token was revoked: keep one row per jti
-- and per sid, the newest (highest seq, so no feed reader can miss it: one that read past
-- it saw it, one that did not will), carrying the latest exp of its group. The lock keeps
-- replicas still running the old version from adding a duplicate meanwhile.
-- Set-based (one GROUP BY joined back): correlated subqueries per row took minutes for
-- tens of thousands of duplicates of one token.
LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE;
CREATE TEMP TABLE revocations_keep ON COMMIT DROP AS
SELECT MAX(seq) AS seq, MAX(exp) AS exp FROM revocations WHERE jti IS NOT NULL GROUP BY jti
UNION ALL
SELECT MAX(seq), MAX(exp) FROM revocations WHERE sid IS NOT NULL GROUP BY sid;
DELETE FROM revocations r
 WHERE NOT EXISTS (SELECT 1 FROM revocations_keep k WHERE k.seq = r.seq);
UPDATE revocations r
   SET exp = k.exp
  FROM revocations_keep k
 WHERE k.seq = r.seq AND r.exp <> k.exp;
DROP TABLE revocations_keep;
-- NULLs are distinct in a unique index: the sid rows (jti NULL) do not collide, and back.
DROP INDEX revocations_jti;
DROP INDEX revocations_sid;
CREATE UNIQUE INDEX revocations_jti ON revocations (jti);
CREATE UNIQUE INDEX revocations_sid ON revocations (sid);
