//! PostgreSQL: grants (token families) and refresh tokens by hash. The reads and inserts
//! are shared; PostgreSQL's own are rotation and the context swap (one statement each,
//! so one winner among replicas) and revocations, which take the feed lock first.

use async_trait::async_trait;
use sqlx::Row;
use tessera_token::{TokenHash, UnixTime};

use super::browser::owner_stands;
use super::{PgStore, Sql, backend, lock_feed, revoke_grant_in};
use crate::store::{
    GrantContext, GrantOwner, GrantRecord, GrantStore, NewRefreshToken, RefreshRecord, Revoked,
    RotateOutcome, StoreError,
};

#[async_trait]
impl GrantStore for PgStore {
    async fn insert_grant(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tx().await?;
        if !owner_stands(&mut tx, g.user_id.as_deref(), g.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        Sql::insert_grant_in(&mut tx, g, first).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn grant_owner(&self, id: &str) -> Result<Option<(GrantRecord, GrantOwner)>, StoreError> {
        Sql::grant_owner(&self.pool, id).await
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        Sql::grant(&self.pool, id).await
    }

    async fn refresh_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        Sql::refresh_token(&self.pool, hash).await
    }

    async fn rotate_refresh_token(
        &self,
        parent: &TokenHash,
        successor: &NewRefreshToken,
        now: UnixTime,
        bind: Option<&str>,
    ) -> Result<RotateOutcome, StoreError> {
        // One statement: the conditional UPDATE and the successor's INSERT commit together
        // or not at all. Under READ COMMITTED a concurrent caller blocks on the row lock,
        // then re-checks `used_at IS NULL` against the winner's committed row and matches
        // nothing: exactly one winner, on any number of replicas. The winner's binding
        // of the family commits with it.
        let mut tx = self.tx().await?;
        let won = sqlx::query(
            "WITH used AS ( \
                 UPDATE refresh_tokens SET used_at = $1 \
                 WHERE hash = $2 AND used_at IS NULL \
                   AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL) \
                 RETURNING hash) \
             INSERT INTO refresh_tokens (hash, grant_id, parent_hash, issued_at, expires_at) \
             SELECT $3, $4, used.hash, $5, $6 FROM used",
        )
        .bind(now.secs())
        .bind(parent.as_bytes().as_slice())
        .bind(successor.hash.as_bytes().as_slice())
        .bind(&successor.grant_id)
        .bind(successor.issued_at.secs())
        .bind(successor.expires_at.secs())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if won {
            if let Some(jkt) = bind {
                Sql::bind_unbound_family(&mut *tx, &successor.grant_id, jkt).await?;
            }
            tx.commit().await.map_err(backend)?;
            return Ok(RotateOutcome::Rotated);
        }
        tx.rollback().await.map_err(backend)?;
        Sql::lost_rotation(&self.pool, parent).await
    }

    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let done = revoke_grant_in(&mut tx, id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(done)
    }

    async fn user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        Sql::user_grants(&self.pool, user_id, now).await
    }

    async fn revoke_user_grants(&self, user_id: &str, revoked: Revoked) -> Result<u64, StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let n = super::users::revoke_all_in(&mut tx, user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError> {
        // One statement (one round trip): the row is locked by the subquery, updated, and
        // its values from before the update returned.
        let row = sqlx::query(
            "UPDATE grants g SET last_net = $1, last_agent = $2 \
             FROM (SELECT id, last_net, last_agent FROM grants WHERE id = $3 FOR UPDATE) old \
             WHERE g.id = old.id RETURNING old.last_net, old.last_agent",
        )
        .bind(context.net.as_deref())
        .bind(context.agent.as_deref())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(GrantContext {
                net: row.try_get("last_net").map_err(backend)?,
                agent: row.try_get("last_agent").map_err(backend)?,
            })
        })
        .transpose()
    }
}
