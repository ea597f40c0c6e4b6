//! PostgreSQL: users. The statements are shared ([`Sql`]); what is PostgreSQL's own is
//! the locking: every change that revokes takes the feed lock first, and removal holds
//! the user's row `FOR UPDATE`.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{PgStore, Sql, backend, lock_feed, revoke_grant_in};
use crate::store::{Revoked, StoreError, UserRecord, UserStore};

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        Sql::insert_user(&self.pool, u).await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Sql::user_by_name(&self.pool, name).await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Sql::user_by_id(&self.pool, id).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Sql::users(&self.pool).await
    }

    async fn set_password(
        &self,
        name: &str,
        hash: &str,
        evict: Option<Revoked>,
    ) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        if evict.is_some() {
            lock_feed(&mut tx).await?;
        }
        let id = Sql::set_password_hash(&mut *tx, name, hash).await?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        if let Some(revoked) = evict {
            revoke_all_in(&mut tx, &id, revoked).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn disable_user(&self, name: &str, revoked: Revoked) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let id = Sql::set_disabled(&mut *tx, name, true).await?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        revoke_all_in(&mut tx, &id, revoked).await?;
        tx.commit().await.map_err(backend)
    }

    async fn enable_user(&self, name: &str) -> Result<String, StoreError> {
        let id = Sql::set_disabled(&self.pool, name, false).await?;
        id.ok_or(StoreError::NotFound("user"))
    }

    async fn remove_user(&self, name: &str, revoked: Revoked) -> Result<String, StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        revoke_all_in(&mut tx, &id, revoked).await?;
        Sql::delete_factors(&mut *tx, &id).await?;
        Sql::delete_user(&mut *tx, &id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }
}

/// Inside `tx` (which holds the feed lock): the user's "revoke all". Moves them to their
/// next generation ([`crate::store::GrantOwner::allows`]), which also locks their row, so
/// an insert of a code or grant or a redemption holding it (`FOR SHARE`) finishes first
/// and what it stored is revoked or deleted here, or waits and sees the new generation;
/// then revokes their live grants (each `sid` into the feed), ends their
/// browser sessions and deletes their unredeemed codes; returns how many grants.
pub(super) async fn revoke_all_in(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    revoked: Revoked,
) -> Result<u64, StoreError> {
    Sql::next_generation(&mut **tx, user_id).await?;
    let grants = Sql::live_grant_ids(&mut **tx, user_id, revoked.now.secs()).await?;
    let mut n = 0;
    for g in &grants {
        if revoke_grant_in(tx, g, revoked).await? {
            n += 1;
        }
    }
    Sql::end_user_sessions(&mut **tx, user_id, revoked.now).await?;
    Sql::delete_unredeemed_codes(&mut **tx, user_id).await?;
    Ok(n)
}
