//! SQLite: the revocation feed, signing keys and the audit log.

use async_trait::async_trait;
use sqlx::{Row, Sqlite, Transaction};
use tessera_token::UnixTime;

use super::{SqliteStore, backend, time};
use crate::store::KeyChange;
use crate::store::{
    AuditEvent, AuditQuery, AuditStore, KeyState, KeyStore, RevocationEntry, RevocationStore,
    SigningKeyRecord, StoreError,
};

/// Whether `?1` (jti) or `?2` (sid) is in the feed: two lookups in the unique indexes
/// (a NULL matches nothing).
pub(in crate::store) const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = ?1) \
     OR EXISTS (SELECT 1 FROM revocations WHERE sid = ?2)";

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke_jti(
        &self,
        jti: &str,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // One statement under SQLite's single writer. Not `ON CONFLICT DO NOTHING`: an
        // ignored upsert still takes an AUTOINCREMENT value (a cursor step with no entry);
        // a SELECT that yields no row takes none. The unique index stays the backstop.
        let n = sqlx::query(
            "INSERT INTO revocations (jti, exp, revoked_at) SELECT ?1, ?2, ?3 \
             WHERE NOT EXISTS (SELECT 1 FROM revocations WHERE jti = ?1)",
        )
        .bind(jti)
        .bind(exp.secs())
        .bind(now.secs())
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn revocations_after(
        &self,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        sqlx::query(
            "SELECT seq, jti, sid, exp FROM revocations WHERE seq > ? AND exp >= ? ORDER BY seq LIMIT ?",
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
        // sqlite_sequence keeps the highest AUTOINCREMENT value even after rows are purged.
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(seq.unwrap_or(0))
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
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_key_in(&mut tx, k).await?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE: the write lock is held from the check to the commit.
        let mut tx = self.write_tx().await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE alg = ? AND state = 'active'",
        )
        .bind(&k.alg)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if active > 0 {
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
        self.apply_changes(changes, now).await
    }

    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM signing_keys WHERE kid = ? AND state = 'published'")
            .bind(kid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
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
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO master_key_check (id, check_value, created_at) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(value)
        .bind(now.secs())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT check_value FROM master_key_check WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }
}

impl SqliteStore {
    async fn apply_changes(&self, changes: &[KeyChange], now: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // The retirements planned with an activation apply only if the new key is active
        // (a key removed by `tessera keys remove` since the plan was made is not): the
        // old key keeps signing rather than leaving the algorithm without an active key.
        let mut activated = true;
        for change in changes {
            match change {
                KeyChange::Activate(kid) => {
                    let n = sqlx::query(
                        "UPDATE signing_keys SET state = 'active' WHERE kid = ? AND state IN ('published', 'active')",
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
                        "UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE kid = ? AND state <> 'retired'",
                    )
                    .bind(now.secs())
                    .bind(kid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                KeyChange::Retire(_) => {}
                KeyChange::Delete(kid) => {
                    sqlx::query("DELETE FROM signing_keys WHERE kid = ? AND state = 'retired'")
                        .bind(kid)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().await.map_err(backend)
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, client_id, user_id, detail) VALUES (?, ?, ?, ?, ?)",
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
            "SELECT at, kind, client_id, user_id, detail FROM audit_events WHERE (?1 IS NULL OR user_id = ?1) AND at >= ?2 ORDER BY id DESC LIMIT ?3",
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
    tx: &mut Transaction<'static, Sqlite>,
    k: &SigningKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, activate_after, retired_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
