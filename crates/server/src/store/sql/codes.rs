//! Authorization codes, by hash: their rows, and redemption once the owner is checked.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};
use tessera_token::{TokenHash, UnixTime};

use super::codec::{hash_from_db, scope_from_db, time};
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{Amr, AuthCodeRecord, GrantRecord, NewRefreshToken, RedeemOutcome, StoreError};

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
    fn code(row: &DB::Row) -> Result<AuthCodeRecord, StoreError> {
        Ok(AuthCodeRecord {
            hash: hash_from_db(row.try_get("hash").map_err(backend)?)?,
            client_id: row.try_get("client_id").map_err(backend)?,
            user_id: row.try_get("user_id").map_err(backend)?,
            redirect_uri: row.try_get("redirect_uri").map_err(backend)?,
            code_challenge: row.try_get("code_challenge").map_err(backend)?,
            scope: scope_from_db(&row.try_get::<String, _>("scope").map_err(backend)?)?,
            nonce: row.try_get("nonce").map_err(backend)?,
            auth_time: time(row.try_get("auth_time").map_err(backend)?),
            created_at: time(row.try_get("created_at").map_err(backend)?),
            expires_at: time(row.try_get("expires_at").map_err(backend)?),
            used_at: row
                .try_get::<Option<i64>, _>("used_at")
                .map_err(backend)?
                .map(time),
            grant_id: row.try_get("grant_id").map_err(backend)?,
            generation: row.try_get("generation").map_err(backend)?,
            amr: Amr::from_db(&row.try_get::<String, _>("amr").map_err(backend)?),
            dpop_jkt: row.try_get("dpop_jkt").map_err(backend)?,
        })
    }

    /// Stores a code (its owner checked by the caller, in the same transaction).
    pub(in crate::store) async fn insert_auth_code<'c>(
        ex: impl Executor<'c, Database = DB>,
        c: &AuthCodeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_codes (hash, client_id, user_id, redirect_uri, code_challenge, \
             scope, nonce, auth_time, created_at, expires_at, generation, amr, dpop_jkt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c.hash.as_bytes().as_slice())
        .bind(c.client_id.as_str())
        .bind(c.user_id.as_str())
        .bind(c.redirect_uri.as_str())
        .bind(c.code_challenge.as_str())
        .bind(c.scope.to_string())
        .bind(c.nonce.as_deref())
        .bind(c.auth_time.secs())
        .bind(c.created_at.secs())
        .bind(c.expires_at.secs())
        .bind(c.generation)
        .bind(c.amr.to_db())
        .bind(c.dpop_jkt.as_deref())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    pub(in crate::store) async fn auth_code<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
    ) -> Result<Option<AuthCodeRecord>, StoreError> {
        sqlx::query(
            "SELECT hash, client_id, user_id, redirect_uri, code_challenge, scope, nonce, \
             auth_time, created_at, expires_at, used_at, grant_id, generation, amr, dpop_jkt \
             FROM auth_codes WHERE hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(ex)
        .await
        .map_err(backend)?
        .as_ref()
        .map(Self::code)
        .transpose()
    }

    /// Inside `conn`'s transaction, the owner of `grant` checked by the caller: marks the
    /// code used at `now` if nobody has and it has not expired, and then stores `grant`
    /// with its first refresh token. The caller commits on [`RedeemOutcome::Redeemed`]
    /// and rolls back otherwise.
    pub(in crate::store) async fn redeem_auth_code_in(
        conn: &mut DB::Connection,
        hash: &TokenHash,
        now: UnixTime,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<RedeemOutcome, StoreError> {
        let won = sqlx::query(
            "UPDATE auth_codes SET used_at = $1, grant_id = $2 \
             WHERE hash = $3 AND used_at IS NULL AND expires_at > $4",
        )
        .bind(now.secs())
        .bind(grant.id.as_str())
        .bind(hash.as_bytes().as_slice())
        .bind(now.secs())
        .execute(&mut *conn)
        .await
        .map_err(backend)?
        .rows()
            == 1;
        if won {
            Self::insert_grant_in(conn, grant, first).await?;
            return Ok(RedeemOutcome::Redeemed);
        }
        let used: Option<(Option<i64>, Option<String>)> =
            sqlx::query_as("SELECT used_at, grant_id FROM auth_codes WHERE hash = $1")
                .bind(hash.as_bytes().as_slice())
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)?;
        Ok(match used {
            Some((Some(_), grant_id)) => RedeemOutcome::AlreadyUsed { grant_id },
            _ => RedeemOutcome::Unknown,
        })
    }
}
