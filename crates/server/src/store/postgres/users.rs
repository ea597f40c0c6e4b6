//! PostgreSQL: users.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::{PgStore, backend, lock_feed, revoke_grant_in};
use crate::store::codec::time;
use crate::store::{Revoked, StoreError, UserRecord, UserStore};

fn row_to_user(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        disabled: row.try_get("disabled").map_err(backend)?,
        created_at: time(row.try_get("created_at").map_err(backend)?),
        generation: row.try_get("generation").map_err(backend)?,
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, disabled, created_at, generation) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(u.created_at.secs())
        .bind(u.generation)
        .execute(&self.pool)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict("a user with this name"),
            other => other,
        })?;
        Ok(())
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(
            "SELECT id, name, password_hash, disabled, created_at, generation FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_to_user)
        .transpose()
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT id, name, password_hash, disabled, created_at, generation FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query("SELECT id, name, password_hash, disabled, created_at, generation FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(row_to_user)
            .collect()
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
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET password_hash = $1 WHERE name = $2 RETURNING id")
                .bind(hash)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        if let Some(revoked) = evict {
            revoke_all_in(&mut tx, &id, revoked).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn disable_user(&self, name: &str, revoked: Revoked) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET disabled = TRUE WHERE name = $1 RETURNING id")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        revoke_all_in(&mut tx, &id, revoked).await?;
        tx.commit().await.map_err(backend)
    }

    async fn enable_user(&self, name: &str) -> Result<String, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET disabled = FALSE WHERE name = $1 RETURNING id")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
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
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
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
    sqlx::query("UPDATE users SET generation = generation + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY id",
    )
    .bind(user_id)
    .bind(revoked.now.secs())
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let mut n = 0;
    for g in &grants {
        if revoke_grant_in(tx, g, revoked).await? {
            n += 1;
        }
    }
    super::browser::end_user_sessions(tx, user_id, revoked.now).await?;
    sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(n)
}
