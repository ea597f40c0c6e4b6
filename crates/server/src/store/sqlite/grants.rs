//! SQLite: grants (token families) and refresh tokens by hash. The reads and inserts are
//! shared; SQLite's own are rotation (a conditional update and the successor's insert in
//! one write transaction) and the grant context (a read first, the write lock only when
//! it changed).

use async_trait::async_trait;
use sqlx::Row;
use tessera_token::{TokenHash, UnixTime};

use super::browser::owner_stands;
use super::{Sql, SqliteStore, backend, revoke_grant_in};
use crate::store::{
    GrantContext, GrantOwner, GrantRecord, GrantStore, NewRefreshToken, RefreshRecord, Revoked,
    RotateOutcome, StoreError,
};

/// The network and user agent of the grant's latest token request.
async fn grant_context<'e, E>(executor: E, id: &str) -> Result<Option<GrantContext>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row = sqlx::query("SELECT last_net, last_agent FROM grants WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
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

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_grant(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
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
    ) -> Result<RotateOutcome, StoreError> {
        // Under the write lock from the conditional update to the commit: one winner.
        // (PostgreSQL, without one writer, does both in one statement.)
        let mut tx = self.write_tx().await?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL \
             AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL)",
        )
        .bind(now.secs())
        .bind(parent.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if won {
            Sql::insert_refresh(&mut *tx, successor).await?;
            tx.commit().await.map_err(backend)?;
            return Ok(RotateOutcome::Rotated);
        }
        let outcome = Sql::lost_rotation(&mut *tx, parent).await?;
        tx.rollback().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = revoke_grant_in(&mut tx, id, revoked).await?;
        self.commit_feed(tx).await?;
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
        let mut tx = self.write_tx().await?;
        let n = super::users::revoke_all_in(&mut tx, user_id, revoked).await?;
        self.commit_feed(tx).await?;
        Ok(n)
    }

    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError> {
        // Most refreshes come from where the previous one did: a read settles those
        // without taking the write lock (one statement instead of four).
        if let Some(current) = grant_context(&self.pool, id).await?
            && current == *context
        {
            return Ok(Some(current));
        }
        let mut tx = self.write_tx().await?;
        let Some(previous) = grant_context(&mut *tx, id).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE grants SET last_net = $1, last_agent = $2 WHERE id = $3")
            .bind(context.net.as_deref())
            .bind(context.agent.as_deref())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(previous))
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Tests only: stores a grant without asking whether its user stands behind it, as a
    /// grant that escaped a revoke-all would be stored (the rule at refresh and
    /// introspection must refuse it on its own).
    pub(crate) async fn insert_grant_unchecked(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        Sql::insert_grant_in(&mut tx, g, first).await?;
        tx.commit().await.map_err(backend)
    }
}
