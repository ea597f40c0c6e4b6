//! Second factors: TOTP factors, recovery codes (by hash) and pending browser sign-ins.
//! Every "use once" decision is one conditional `UPDATE` or `DELETE` whose row count says
//! who won, so both backends decide it alike without a lock of their own.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tessera_token::{TokenHash, UnixTime};

use super::codec::time;
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{PendingPurpose, PendingSignIn, StoreError, TotpRecord};

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> &'a [u8]: Bind<DB>,
    String: Column<DB>,
    i64: Bind<DB> + Column<DB>,
    Option<i64>: Column<DB>,
    usize: ColumnIndex<DB::Row>,
    Vec<u8>: Column<DB>,
{
    /// Inserts an unconfirmed factor, or replaces the user's unconfirmed one; 0 rows when
    /// a confirmed one is in place.
    pub(in crate::store) async fn begin_totp<'c>(
        ex: impl Executor<'c, Database = DB>,
        t: &TotpRecord,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO mfa_totp (user_id, sealed_secret, last_step, created_at, confirmed_at) \
             VALUES ($1, $2, NULL, $3, NULL) \
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             created_at = excluded.created_at, last_step = NULL \
             WHERE mfa_totp.confirmed_at IS NULL",
        )
        .bind(t.user_id.as_str())
        .bind(t.sealed_secret.as_slice())
        .bind(t.created_at.secs())
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    pub(in crate::store) async fn totp<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed_secret, last_step, created_at, confirmed_at FROM mfa_totp \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TotpRecord {
            user_id: user_id.to_owned(),
            sealed_secret: row.try_get("sealed_secret").map_err(backend)?,
            last_step: row.try_get("last_step").map_err(backend)?,
            created_at: time(row.try_get("created_at").map_err(backend)?),
            confirmed_at: row
                .try_get::<Option<i64>, _>("confirmed_at")
                .map_err(backend)?
                .map(time),
        }))
    }

    /// Confirms the user's unconfirmed factor with its first step, if its secret is still
    /// `sealed_secret` (the one the code was checked against, not one a concurrent begin put
    /// in its place); true when it did.
    pub(in crate::store) async fn confirm_totp<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        sealed_secret: &[u8],
        step: i64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 \
             WHERE user_id = $3 AND confirmed_at IS NULL AND sealed_secret = $4",
        )
        .bind(now.secs())
        .bind(step)
        .bind(user_id)
        .bind(sealed_secret)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    /// Raises the last used step of the user's confirmed factor to `step` if it is below.
    pub(in crate::store) async fn use_totp_step<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        step: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mfa_totp SET last_step = $1 WHERE user_id = $2 \
             AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    pub(in crate::store) async fn delete_recovery_codes<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(in crate::store) async fn insert_recovery_code<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(hash.as_bytes().as_slice())
        .bind(now.secs())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    pub(in crate::store) async fn use_recovery_code<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND hash = $3 AND used_at IS NULL",
        )
        .bind(now.secs())
        .bind(user_id)
        .bind(hash.as_bytes().as_slice())
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    pub(in crate::store) async fn recovery_codes_left<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(ex)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Deletes the user's TOTP factor, recovery codes, pending sign-ins, ceremonies and
    /// passkeys (one statement each, so they run in the caller's transaction); true when
    /// there was a factor (TOTP or passkey).
    pub(in crate::store) async fn delete_factors(
        conn: &mut DB::Connection,
        user_id: &str,
    ) -> Result<bool, StoreError>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let had = sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(backend)?
            .rows()
            == 1;
        Self::delete_recovery_codes(&mut *conn, user_id).await?;
        for sql in [
            "DELETE FROM mfa_pending WHERE user_id = $1",
            "DELETE FROM mfa_ceremonies WHERE user_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        let passkeys = sqlx::query("DELETE FROM mfa_passkeys WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(backend)?
            .rows();
        Ok(had || passkeys > 0)
    }

    pub(in crate::store) async fn insert_pending<'c>(
        ex: impl Executor<'c, Database = DB>,
        p: &PendingSignIn,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_pending (hash, user_id, generation, auth_time, expires_at, purpose) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(p.hash.as_bytes().as_slice())
        .bind(p.user_id.as_str())
        .bind(p.generation)
        .bind(p.auth_time.secs())
        .bind(p.expires_at.secs())
        .bind(p.purpose.as_str())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// The pending sign-in if live at `now`: unexpired, its user enabled and at its
    /// generation.
    pub(in crate::store) async fn pending<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let row = sqlx::query(
            "SELECT p.user_id, p.generation, p.auth_time, p.expires_at, p.purpose \
             FROM mfa_pending p \
             JOIN users u ON u.id = p.user_id \
             WHERE p.hash = $1 AND p.expires_at > $2 AND NOT u.disabled \
             AND p.generation = u.generation",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(now.secs())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PendingSignIn {
            hash: *hash,
            user_id: row.try_get("user_id").map_err(backend)?,
            generation: row.try_get("generation").map_err(backend)?,
            auth_time: time(row.try_get("auth_time").map_err(backend)?),
            expires_at: time(row.try_get("expires_at").map_err(backend)?),
            purpose: PendingPurpose::parse(&row.try_get::<String, _>("purpose").map_err(backend)?),
        }))
    }

    pub(in crate::store) async fn take_pending<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM mfa_pending WHERE hash = $1")
            .bind(hash.as_bytes().as_slice())
            .execute(ex)
            .await
            .map_err(backend)?
            .rows()
            == 1)
    }
}
