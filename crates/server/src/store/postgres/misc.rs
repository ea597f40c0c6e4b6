//! PostgreSQL: the revocation feed, signing keys and the audit log.

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};
use tessera_token::UnixTime;

use super::{PgStore, backend, feed_insert, lock_feed};
use crate::store::KeyChange;
use crate::store::codec::time;
use crate::store::{
    AuditEvent, AuditQuery, AuditStore, KeyState, KeyStore, RevocationEntry, RevocationStore,
    SigningKeyRecord, StoreError,
};

/// Whether `$1` (jti) or `$2` (sid) is in the feed: two lookups in the unique indexes
/// (a NULL matches nothing).
const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1) \
     OR EXISTS (SELECT 1 FROM revocations WHERE sid = $2)";

/// Whether `jti` is in the feed (its unique index).
async fn jti_known<'c>(conn: impl sqlx::PgExecutor<'c>, jti: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1)")
        .bind(jti)
        .fetch_one(conn)
        .await
        .map_err(backend)
}

#[async_trait]
impl RevocationStore for PgStore {
    async fn revoke_jti(
        &self,
        jti: &str,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A known jti is answered without the feed lock, so repeated revocations do not
        // queue behind (or hold up) the writers. An absent one is checked again under the
        // lock, so two revocations of one token cannot both see it absent; a jti known by
        // then rolls back untouched (no row, no cursor step).
        if jti_known(&self.pool, jti).await? {
            return Ok(false);
        }
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        if jti_known(&mut *tx, jti).await? {
            return Ok(false);
        }
        feed_insert(&mut tx, Some(jti), None, exp.secs(), now.secs()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn revocations_after(
        &self,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        sqlx::query(
            "SELECT seq, jti, sid, exp FROM revocations WHERE seq > $1 AND exp >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(now.secs())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            Ok(RevocationEntry {
                seq: row.try_get("seq").map_err(backend)?,
                jti: row.try_get("jti").map_err(backend)?,
                sid: row.try_get("sid").map_err(backend)?,
                exp: time(row.try_get("exp").map_err(backend)?),
            })
        })
        .collect()
    }

    async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        // The committed counter: every entry up to it is visible (see the migration).
        sqlx::query_scalar("SELECT last_seq FROM revocation_cursor")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError> {
        sqlx::query_scalar(IS_REVOKED)
            .bind(jti)
            .bind(sid)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        insert_key_in(&mut tx, k).await?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        // This lock mode conflicts with itself and with every write to the table, so the
        // check and the insert of two starting replicas cannot interleave; it is released
        // at the end of the transaction.
        let mut tx = self.tx().await?;
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE alg = $1 AND state = 'active')",
        )
        .bind(&k.alg)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if exists {
            return Ok(false);
        }
        insert_key_in(&mut tx, k).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query(
            "SELECT kid, alg, state, public_jwk, sealed_private, created_at, activate_after, retired_at \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            let state: String = row.try_get("state").map_err(backend)?;
            Ok(SigningKeyRecord {
                kid: row.try_get("kid").map_err(backend)?,
                alg: row.try_get("alg").map_err(backend)?,
                state: KeyState::parse(&state)
                    .ok_or_else(|| StoreError::Backend("unknown key state".into()))?,
                public_jwk: row.try_get("public_jwk").map_err(backend)?,
                sealed_private: row.try_get("sealed_private").map_err(backend)?,
                created_at: time(row.try_get("created_at").map_err(backend)?),
                activate_after: time(row.try_get("activate_after").map_err(backend)?),
                retired_at: row
                    .try_get::<Option<i64>, _>("retired_at")
                    .map_err(backend)?
                    .map(time),
            })
        })
        .collect()
    }

    async fn apply_key_changes(
        &self,
        changes: &[KeyChange],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // Conditional updates: two replicas applying the same plan change each key once.
        // The retirements planned with an activation apply only if the new key is active
        // (a key removed by `tessera keys remove` since the plan was made is not): the
        // old key keeps signing rather than leaving the algorithm without an active key.
        let mut tx = self.tx().await?;
        let mut activated = true;
        for change in changes {
            match change {
                KeyChange::Activate(kid) => {
                    let n = sqlx::query(
                        "UPDATE signing_keys SET state = 'active' WHERE kid = $1 AND state IN ('published', 'active')",
                    )
                    .bind(kid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                    activated = n == 1;
                }
                KeyChange::Retire(kid) if activated => {
                    sqlx::query(
                        "UPDATE signing_keys SET state = 'retired', retired_at = $2 WHERE kid = $1 AND state <> 'retired'",
                    )
                    .bind(kid)
                    .bind(now.secs())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                KeyChange::Retire(_) => {}
                KeyChange::Delete(kid) => {
                    sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND state = 'retired'")
                        .bind(kid)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND state = 'published'")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn master_key_check(&self) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let row: Option<(Vec<u8>, i64)> =
            sqlx::query_as("SELECT check_value, created_at FROM master_key_check WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(value, at)| (value, time(at))))
    }

    async fn init_master_key_check(
        &self,
        value: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO master_key_check (id, check_value, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(value)
        .bind(now.secs())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT check_value FROM master_key_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, client_id, user_id, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.at.secs())
        .bind(&e.kind)
        .bind(&e.client_id)
        .bind(&e.user_id)
        .bind(&e.detail)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn query_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query(
            "SELECT at, kind, client_id, user_id, detail FROM audit_events WHERE ($1::text IS NULL OR user_id = $1) AND at >= $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(q.user_id.as_deref())
        .bind(q.since.map_or(i64::MIN, |t| t.secs()))
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                at: time(row.try_get("at").map_err(backend)?),
                kind: row.try_get("kind").map_err(backend)?,
                client_id: row.try_get("client_id").map_err(backend)?,
                user_id: row.try_get("user_id").map_err(backend)?,
                detail: row.try_get("detail").map_err(backend)?,
            })
        })
        .collect()
    }
}

/// Inside `tx`: inserts one key.
async fn insert_key_in(
    tx: &mut Transaction<'static, Postgres>,
    k: &SigningKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, activate_after, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(k.state.as_str())
    .bind(&k.public_jwk)
    .bind(&k.sealed_private)
    .bind(k.created_at.secs())
    .bind(k.activate_after.secs())
    .bind(k.retired_at.map(UnixTime::secs))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}
