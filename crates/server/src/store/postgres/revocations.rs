//! PostgreSQL: the revocation feed. Its reads are shared; its writes are PostgreSQL's
//! own: the cursor is a counter row every writer locks, so entries become visible in
//! cursor order.

use async_trait::async_trait;
use tessera_token::UnixTime;

use super::{PgStore, Sql, backend, feed_insert, lock_feed};
use crate::store::{RevocationEntry, RevocationStore, StoreError};

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
        Sql::revocations_after(&self.pool, after, limit, now).await
    }

    async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        // The committed counter: every entry up to it is visible (see the migration).
        sqlx::query_scalar("SELECT last_seq FROM revocation_cursor")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError> {
        Sql::is_revoked(&self.pool, jti, sid).await
    }
}
