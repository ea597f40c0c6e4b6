//! PostgreSQL: authorization codes and browser sessions, both by hash. The statements are
//! shared; PostgreSQL's own is the owner check, which holds the user's row `FOR SHARE`.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};
use tessera_token::{TokenHash, UnixTime};

use super::{PgStore, Sql, backend};
use crate::store::{
    AuthCodeRecord, AuthCodeStore, GrantOwner, GrantRecord, NewRefreshToken, RedeemOutcome,
    SessionRecord, SessionStore, StoreError,
};

#[async_trait]
impl AuthCodeStore for PgStore {
    async fn insert_auth_code(&self, c: &AuthCodeRecord) -> Result<bool, StoreError> {
        let mut tx = self.tx().await?;
        if !owner_stands(&mut tx, Some(&c.user_id), c.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        Sql::insert_auth_code(&mut *tx, c).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCodeRecord>, StoreError> {
        Sql::auth_code(&self.pool, hash).await
    }

    async fn redeem_auth_code(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<RedeemOutcome, StoreError> {
        let mut tx = self.tx().await?;
        if !owner_stands(&mut tx, grant.user_id.as_deref(), grant.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(RedeemOutcome::Unknown);
        }
        let outcome = Sql::redeem_auth_code_in(&mut tx, hash, now, grant, first).await?;
        if outcome == RedeemOutcome::Redeemed {
            tx.commit().await.map_err(backend)?;
        } else {
            tx.rollback().await.map_err(backend)?;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        Sql::insert_session(&self.pool, s).await
    }

    async fn live_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Sql::live_session(&self.pool, hash, now).await
    }

    async fn end_session(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError> {
        Sql::end_session(&self.pool, hash, now).await
    }
}

/// Inside `tx`: true when the user `user_id` (none: a client's own grant) stands behind
/// something stamped with `generation` ([`GrantOwner::allows`]). Holds the user's row
/// `FOR SHARE` until `tx` ends, so a concurrent disable, remove or revoke-all (which update
/// or delete that row) either commits first and is seen here, or waits for this
/// transaction and then revokes or deletes what it stored.
pub(super) async fn owner_stands(
    tx: &mut Transaction<'static, Postgres>,
    user_id: Option<&str>,
    generation: i64,
) -> Result<bool, StoreError> {
    let user: Option<(bool, i64)> = match user_id {
        None => None,
        Some(id) => {
            sqlx::query_as("SELECT disabled, generation FROM users WHERE id = $1 FOR SHARE")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend)?
        }
    };
    Ok(GrantOwner::from_row(user_id, user).allows(generation))
}
