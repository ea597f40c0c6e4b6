//! Users: their rows, and the statements of "revoke all" both backends run alike.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};

use super::codec::time;
use super::{Bind, Column, Sql, backend, conflict};
use crate::store::{StoreError, UserRecord};

/// `SELECT` of every user column, followed by `$tail` (a literal).
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, password_hash, disabled, created_at, generation FROM users",
            $tail
        )
    };
}

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    String: Bind<DB> + Column<DB>,
    i64: Bind<DB> + Column<DB>,
    bool: Bind<DB> + Column<DB>,
{
    fn user(row: &DB::Row) -> Result<UserRecord, StoreError> {
        Ok(UserRecord {
            id: row.try_get("id").map_err(backend)?,
            name: row.try_get("name").map_err(backend)?,
            password_hash: row.try_get("password_hash").map_err(backend)?,
            disabled: row.try_get("disabled").map_err(backend)?,
            created_at: time(row.try_get("created_at").map_err(backend)?),
            generation: row.try_get("generation").map_err(backend)?,
        })
    }

    pub(in crate::store) async fn insert_user<'c>(
        ex: impl Executor<'c, Database = DB>,
        u: &UserRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, disabled, created_at, generation) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.id.as_str())
        .bind(u.name.as_str())
        .bind(u.password_hash.as_str())
        .bind(u.disabled)
        .bind(u.created_at.secs())
        .bind(u.generation)
        .execute(ex)
        .await
        .map_err(conflict("a user with this name"))?;
        Ok(())
    }

    pub(in crate::store) async fn user_by_name<'c>(
        ex: impl Executor<'c, Database = DB>,
        name: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        Self::one_user(ex, select_users!(" WHERE name = $1"), name).await
    }

    pub(in crate::store) async fn user_by_id<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        Self::one_user(ex, select_users!(" WHERE id = $1"), id).await
    }

    /// The user `sql` (one `$1` text parameter) finds, if any.
    async fn one_user<'c>(
        ex: impl Executor<'c, Database = DB>,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(sql)
            .bind(key)
            .fetch_optional(ex)
            .await
            .map_err(backend)?
            .as_ref()
            .map(Self::user)
            .transpose()
    }

    pub(in crate::store) async fn users<'c>(
        ex: impl Executor<'c, Database = DB>,
    ) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query(select_users!(" ORDER BY name"))
            .fetch_all(ex)
            .await
            .map_err(backend)?
            .iter()
            .map(Self::user)
            .collect()
    }

    /// Sets the password hash of user `name`; their id, `None` when there is no such user.
    pub(in crate::store) async fn set_password_hash<'c>(
        ex: impl Executor<'c, Database = DB>,
        name: &str,
        hash: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("UPDATE users SET password_hash = $1 WHERE name = $2 RETURNING id")
            .bind(hash)
            .bind(name)
            .fetch_optional(ex)
            .await
            .map_err(backend)
    }

    /// Disables or enables user `name`; their id, `None` when there is no such user.
    pub(in crate::store) async fn set_disabled<'c>(
        ex: impl Executor<'c, Database = DB>,
        name: &str,
        disabled: bool,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("UPDATE users SET disabled = $1 WHERE name = $2 RETURNING id")
            .bind(disabled)
            .bind(name)
            .fetch_optional(ex)
            .await
            .map_err(backend)
    }

    pub(in crate::store) async fn delete_user<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Moves the user to their next generation, so nothing stamped with an earlier one
    /// stands again ([`crate::store::GrantOwner::allows`]).
    pub(in crate::store) async fn next_generation<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET generation = generation + 1 WHERE id = $1")
            .bind(user_id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The ids of the user's live grants at `now`, in id order (the order PostgreSQL locks
    /// them in, so two revocations cannot deadlock).
    pub(in crate::store) async fn live_grant_ids<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(ex)
        .await
        .map_err(backend)
    }

    /// Deletes the user's unredeemed authorization codes.
    pub(in crate::store) async fn delete_unredeemed_codes<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
