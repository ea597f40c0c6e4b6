//! SQLite: users.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, backend, revoke_grant_in, time};
use crate::store::{Revoked, StoreError, UserRecord, UserStore};

fn row_to_user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
        created_at: time(row.try_get("created_at").map_err(backend)?),
        generation: row.try_get("generation").map_err(backend)?,
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, disabled, created_at, generation) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(i64::from(u.disabled))
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
            "SELECT id, name, password_hash, disabled, created_at, generation FROM users WHERE name = ?",
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
        sqlx::query("SELECT id, name, password_hash, disabled, created_at, generation FROM users WHERE id = ?")
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
        let mut tx = self.write_tx().await?;
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET password_hash = ? WHERE name = ? RETURNING id")
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
        let mut tx = self.write_tx().await?;
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET disabled = 1 WHERE name = ? RETURNING id")
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
            sqlx::query_scalar("UPDATE users SET disabled = 0 WHERE name = ? RETURNING id")
                .bind(name)
                .fetch_optional(&self.writer)
                .await
                .map_err(backend)?;
        id.ok_or(StoreError::NotFound("user"))
    }

    async fn remove_user(&self, name: &str, revoked: Revoked) -> Result<String, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        revoke_all_in(&mut tx, &id, revoked).await?;
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }
}

/// Inside `tx` (which holds the write lock): the user's "revoke all". Moves them to their
/// next generation, so nothing stamped with an earlier one stands again
/// ([`crate::store::GrantOwner::allows`]), revokes their live grants (each `sid` into the
/// feed), ends their browser sessions and deletes their unredeemed codes; returns how
/// many grants.
pub(super) async fn revoke_all_in(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: &str,
    revoked: Revoked,
) -> Result<u64, StoreError> {
    sqlx::query("UPDATE users SET generation = generation + 1 WHERE id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM grants WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?",
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
    sqlx::query("DELETE FROM auth_codes WHERE user_id = ? AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(n)
}
