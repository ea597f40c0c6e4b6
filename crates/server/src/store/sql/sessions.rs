//! Browser sessions at the authorization server, by the hash of the cookie.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tessera_token::{TokenHash, UnixTime};

use super::codec::time;
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{Amr, SessionRecord, StoreError};

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> &'a [u8]: Bind<DB>,
    String: Bind<DB> + Column<DB>,
    i64: Bind<DB> + Column<DB>,
{
    pub(in crate::store) async fn insert_session<'c>(
        ex: impl Executor<'c, Database = DB>,
        s: &SessionRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO browser_sessions (hash, user_id, created_at, expires_at, generation, amr) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.hash.as_bytes().as_slice())
        .bind(s.user_id.as_str())
        .bind(s.created_at.secs())
        .bind(s.expires_at.secs())
        .bind(s.generation)
        .bind(s.amr.to_db())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// The session if it is live at `now`: unrevoked, unexpired, its user enabled and
    /// still at the session's generation.
    pub(in crate::store) async fn live_session<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_id, s.created_at, s.expires_at, s.generation, s.amr FROM browser_sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND NOT u.disabled \
             AND s.generation = u.generation",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(now.secs())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            hash: *hash,
            user_id: row.try_get("user_id").map_err(backend)?,
            created_at: time(row.try_get("created_at").map_err(backend)?),
            expires_at: time(row.try_get("expires_at").map_err(backend)?),
            revoked_at: None,
            generation: row.try_get("generation").map_err(backend)?,
            amr: Amr::from_db(&row.try_get::<String, _>("amr").map_err(backend)?),
        }))
    }

    /// Ends one session (logout); true if it was live.
    pub(in crate::store) async fn end_session<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE browser_sessions SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL",
        )
        .bind(now.secs())
        .bind(hash.as_bytes().as_slice())
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    /// Ends every live browser session of `user_id`.
    pub(in crate::store) async fn end_user_sessions<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE browser_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.secs())
        .bind(user_id)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows())
    }
}
