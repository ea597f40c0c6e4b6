//! Grants (token families) and their refresh tokens, by hash: rows, reads with the
//! standing of the grant's user, and the inserts both backends run alike.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};
use tessera_token::{TokenHash, UnixTime};

use super::codec::{hash_from_db, join, scope_from_db, split, time};
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{
    Amr, GrantOwner, GrantRecord, NewRefreshToken, RefreshRecord, RotateOutcome, StoreError,
};

/// `SELECT` of every grant column, followed by `$tail` (a literal).
macro_rules! select_grants {
    ($tail:literal) => {
        concat!(
            "SELECT id, client_id, user_id, scope, audience, created_at, expires_at, revoked_at, \
             generation, amr, dpop_jkt FROM grants",
            $tail
        )
    };
}

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Bind<DB>,
    String: Bind<DB> + Column<DB>,
    i64: Bind<DB> + Column<DB>,
    bool: Column<DB>,
    Vec<u8>: Column<DB>,
{
    fn grant_row(row: &DB::Row) -> Result<GrantRecord, StoreError> {
        Ok(GrantRecord {
            id: row.try_get("id").map_err(backend)?,
            client_id: row.try_get("client_id").map_err(backend)?,
            user_id: row.try_get("user_id").map_err(backend)?,
            scope: scope_from_db(&row.try_get::<String, _>("scope").map_err(backend)?)?,
            audience: split(&row.try_get::<String, _>("audience").map_err(backend)?),
            created_at: time(row.try_get("created_at").map_err(backend)?),
            expires_at: time(row.try_get("expires_at").map_err(backend)?),
            revoked_at: row
                .try_get::<Option<i64>, _>("revoked_at")
                .map_err(backend)?
                .map(time),
            generation: row.try_get("generation").map_err(backend)?,
            amr: Amr::from_db(&row.try_get::<String, _>("amr").map_err(backend)?),
            dpop_jkt: row.try_get("dpop_jkt").map_err(backend)?,
        })
    }

    /// The standing of the grant's user, from the `u_*` columns of a `LEFT JOIN users u`.
    fn owner_row(row: &DB::Row, user_id: Option<&str>) -> Result<GrantOwner, StoreError> {
        let found: Option<String> = row.try_get("u_id").map_err(backend)?;
        let user = match found {
            None => None,
            Some(_) => Some((
                row.try_get::<bool, _>("u_disabled").map_err(backend)?,
                row.try_get::<i64, _>("u_generation").map_err(backend)?,
            )),
        };
        Ok(GrantOwner::from_row(user_id, user))
    }

    /// Stores a refresh token.
    pub(in crate::store) async fn insert_refresh<'c>(
        ex: impl Executor<'c, Database = DB>,
        t: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(t.hash.as_bytes().as_slice())
        .bind(t.grant_id.as_str())
        .bind(t.issued_at.secs())
        .bind(t.expires_at.secs())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// Inside `conn`'s transaction: stores a grant and, when given, its first refresh
    /// token (the owner checked by the caller).
    pub(in crate::store) async fn insert_grant_in(
        conn: &mut DB::Connection,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, expires_at, \
             generation, amr, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(g.id.as_str())
        .bind(g.client_id.as_str())
        .bind(g.user_id.as_deref())
        .bind(g.scope.to_string())
        .bind(join(&g.audience))
        .bind(g.created_at.secs())
        .bind(g.expires_at.secs())
        .bind(g.generation)
        .bind(g.amr.to_db())
        .bind(g.dpop_jkt.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
        if let Some(t) = first {
            Self::insert_refresh(conn, t).await?;
        }
        Ok(())
    }

    pub(in crate::store) async fn grant<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        sqlx::query(select_grants!(" WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await
            .map_err(backend)?
            .as_ref()
            .map(Self::grant_row)
            .transpose()
    }

    pub(in crate::store) async fn grant_owner<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<Option<(GrantRecord, GrantOwner)>, StoreError> {
        let row = sqlx::query(
            "SELECT g.id, g.client_id, g.user_id, g.scope, g.audience, g.created_at, g.expires_at, \
                    g.revoked_at, g.generation, g.amr, g.dpop_jkt, u.id AS u_id, \
                    u.disabled AS u_disabled, \
                    u.generation AS u_generation \
             FROM grants g LEFT JOIN users u ON u.id = g.user_id WHERE g.id = $1",
        )
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let grant = Self::grant_row(&row)?;
        let owner = Self::owner_row(&row, grant.user_id.as_deref())?;
        Ok(Some((grant, owner)))
    }

    pub(in crate::store) async fn refresh_token<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT r.hash, r.issued_at AS r_issued, r.expires_at AS r_expires, r.used_at, \
                    g.id, g.client_id, g.user_id, g.scope, g.audience, g.created_at, g.expires_at, \
                    g.revoked_at, g.generation, g.amr, g.dpop_jkt, u.id AS u_id, \
                    u.disabled AS u_disabled, \
                    u.generation AS u_generation \
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             LEFT JOIN users u ON u.id = g.user_id WHERE r.hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let grant = Self::grant_row(&row)?;
        let record = RefreshRecord {
            hash: hash_from_db(row.try_get("hash").map_err(backend)?)?,
            grant_id: grant.id.clone(),
            issued_at: time(row.try_get("r_issued").map_err(backend)?),
            expires_at: time(row.try_get("r_expires").map_err(backend)?),
            used_at: row
                .try_get::<Option<i64>, _>("used_at")
                .map_err(backend)?
                .map(time),
            owner: Self::owner_row(&row, grant.user_id.as_deref())?,
        };
        Ok(Some((record, grant)))
    }

    /// Binds grant `id` to the DPoP key thumbprint `jkt` unless it is bound already (a
    /// rotation's winner, in its transaction).
    pub(in crate::store) async fn bind_unbound_family<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        jkt: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET dpop_jkt = $1 WHERE id = $2 AND dpop_jkt IS NULL")
            .bind(jkt)
            .bind(id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The outcome for a caller who lost a rotation of `parent`: when it was used (its
    /// grant live), or unknown.
    pub(in crate::store) async fn lost_rotation<'c>(
        ex: impl Executor<'c, Database = DB>,
        parent: &TokenHash,
    ) -> Result<RotateOutcome, StoreError> {
        let used: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             WHERE r.hash = $1 AND g.revoked_at IS NULL",
        )
        .bind(parent.as_bytes().as_slice())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        Ok(match used {
            Some(Some(at)) => RotateOutcome::AlreadyUsed { used_at: time(at) },
            _ => RotateOutcome::Unknown,
        })
    }

    /// Live (unrevoked, unexpired) grants of a user, oldest first.
    pub(in crate::store) async fn user_grants<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        sqlx::query(select_grants!(
            " WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .bind(now.secs())
        .fetch_all(ex)
        .await
        .map_err(backend)?
        .iter()
        .map(Self::grant_row)
        .collect()
    }

    /// Revokes grant `id` at `now` if live; true if it was. The caller writes its `sid`
    /// to the feed (each backend keeps its feed cursor its own way).
    pub(in crate::store) async fn revoke_grant_row<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.secs())
                .bind(id)
                .execute(ex)
                .await
                .map_err(backend)?
                .rows()
                == 1,
        )
    }
}
