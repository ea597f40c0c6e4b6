//! Signing keys and the master-key check value; the first-key lock stays per backend.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tessera_token::UnixTime;

use super::codec::time;
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{KeyChange, KeyState, SigningKeyRecord, StoreError};

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> &'a [u8]: Bind<DB>,
    Option<i64>: Bind<DB>,
    String: Column<DB>,
    i64: Bind<DB> + Column<DB>,
    bool: Column<DB>,
    Vec<u8>: Column<DB>,
{
    pub(in crate::store) async fn insert_key<'c>(
        ex: impl Executor<'c, Database = DB>,
        k: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, \
             activate_after, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(k.kid.as_str())
        .bind(k.alg.as_str())
        .bind(k.state.as_str())
        .bind(k.public_jwk.as_str())
        .bind(k.sealed_private.as_slice())
        .bind(k.created_at.secs())
        .bind(k.activate_after.secs())
        .bind(k.retired_at.map(UnixTime::secs))
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// True when a key of `alg` is active.
    pub(in crate::store) async fn active_key_exists<'c>(
        ex: impl Executor<'c, Database = DB>,
        alg: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE alg = $1 AND state = 'active')",
        )
        .bind(alg)
        .fetch_one(ex)
        .await
        .map_err(backend)
    }

    /// All keys, oldest first.
    pub(in crate::store) async fn keys<'c>(
        ex: impl Executor<'c, Database = DB>,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query(
            "SELECT kid, alg, state, public_jwk, sealed_private, created_at, activate_after, \
             retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(ex)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            let state: String = row.try_get("state").map_err(backend)?;
            Ok(SigningKeyRecord {
                kid: row.try_get("kid").map_err(backend)?,
                alg: row.try_get("alg").map_err(backend)?,
                state: KeyState::parse(&state)
                    .ok_or_else(|| StoreError::Backend("unknown key state".into()))?,
                public_jwk: row.try_get("public_jwk").map_err(backend)?,
                sealed_private: row.try_get("sealed_private").map_err(backend)?,
                created_at: time(row.try_get("created_at").map_err(backend)?),
                activate_after: time(row.try_get("activate_after").map_err(backend)?),
                retired_at: row
                    .try_get::<Option<i64>, _>("retired_at")
                    .map_err(backend)?
                    .map(time),
            })
        })
        .collect()
    }

    /// Inside `conn`'s transaction: applies lifecycle changes at `now`. Conditional
    /// updates, so two replicas applying the same plan change each key once.
    pub(in crate::store) async fn apply_key_changes_in(
        conn: &mut DB::Connection,
        changes: &[KeyChange],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // The retirements planned with an activation apply only if the new key is active
        // (a key removed by `tessera keys remove` since the plan was made is not): the
        // old key keeps signing rather than leaving the algorithm without an active key.
        let mut activated = true;
        for change in changes {
            match change {
                KeyChange::Activate(kid) => {
                    let n = sqlx::query(
                        "UPDATE signing_keys SET state = 'active' \
                         WHERE kid = $1 AND state IN ('published', 'active')",
                    )
                    .bind(kid.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?
                    .rows();
                    activated = n == 1;
                }
                KeyChange::Retire(kid) if activated => {
                    sqlx::query(
                        "UPDATE signing_keys SET state = 'retired', retired_at = $2 \
                         WHERE kid = $1 AND state <> 'retired'",
                    )
                    .bind(kid.as_str())
                    .bind(now.secs())
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                }
                KeyChange::Retire(_) => {}
                KeyChange::Delete(kid) => {
                    sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND state = 'retired'")
                        .bind(kid.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(backend)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes key `kid` if it is still published; true if it was.
    pub(in crate::store) async fn remove_published_key<'c>(
        ex: impl Executor<'c, Database = DB>,
        kid: &str,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND state = 'published'")
            .bind(kid)
            .execute(ex)
            .await
            .map_err(backend)?
            .rows();
        Ok(n == 1)
    }

    pub(in crate::store) async fn master_key_check<'c>(
        ex: impl Executor<'c, Database = DB>,
    ) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let row: Option<(Vec<u8>, i64)> =
            sqlx::query_as("SELECT check_value, created_at FROM master_key_check WHERE id = 1")
                .fetch_optional(ex)
                .await
                .map_err(backend)?;
        Ok(row.map(|(value, at)| (value, time(at))))
    }

    /// Stores `value` as the check unless one is stored already (no upsert: the earlier
    /// row stays).
    pub(in crate::store) async fn insert_master_key_check<'c>(
        ex: impl Executor<'c, Database = DB>,
        value: &[u8],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO master_key_check (id, check_value, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(value)
        .bind(now.secs())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// The stored check value (there is one: read after [`Self::insert_master_key_check`]).
    pub(in crate::store) async fn stored_master_key_check<'c>(
        ex: impl Executor<'c, Database = DB>,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query_scalar("SELECT check_value FROM master_key_check WHERE id = 1")
            .fetch_one(ex)
            .await
            .map_err(backend)
    }
}
