//! SQLite: users.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, backend, revoke_grant_in, time};
use crate::store::{Revoked, StoreError, UserRecord, UserStore};

fn row_to_user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
        created_at: time(row.try_get("created_at").map_err(backend)?),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, disabled, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(i64::from(u.disabled))
        .bind(u.created_at.secs())
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
            "SELECT id, name, password_hash, disabled, created_at FROM users WHERE name = ?",
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
        sqlx::query("SELECT id, name, password_hash, disabled, created_at FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query("SELECT id, name, password_hash, disabled, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(row_to_user)
            .collect()
    }

    async fn set_password(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(hash)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }

    async fn disable_user(&self, name: &str, revoked: Revoked) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let id = id.ok_or(StoreError::NotFound("user"))?;
        sqlx::query("UPDATE users SET disabled = 1 WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let grants: Vec<String> =
            sqlx::query_scalar("SELECT id FROM grants WHERE user_id = ? AND revoked_at IS NULL")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        for g in &grants {
            revoke_grant_in(&mut tx, g, revoked).await?;
        }
        super::browser::end_user_sessions(&mut tx, &id, revoked.now).await?;
        tx.commit().await.map_err(backend)
    }
}
