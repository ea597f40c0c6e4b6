//! The revocation feed's reads. Its writes stay per backend: SQLite's cursor is an
//! AUTOINCREMENT key, PostgreSQL's a counter row every writer locks.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};
use tessera_token::UnixTime;

use super::codec::time;
use super::{Bind, Column, Sql, backend};
use crate::store::{RevocationEntry, StoreError};

/// Whether `$1` (jti) or `$2` (sid) is in the feed: two lookups in the unique indexes
/// (a NULL matches nothing).
pub(in crate::store) const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1) \
     OR EXISTS (SELECT 1 FROM revocations WHERE sid = $2)";

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    String: Column<DB>,
    i64: Bind<DB> + Column<DB>,
    bool: Column<DB>,
{
    /// Entries after cursor `after` whose `exp` is not before `now`, at most `limit`, in
    /// revocation order.
    pub(in crate::store) async fn revocations_after<'c>(
        ex: impl Executor<'c, Database = DB>,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        sqlx::query(
            "SELECT seq, jti, sid, exp FROM revocations WHERE seq > $1 AND exp >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(now.secs())
        .bind(i64::from(limit))
        .fetch_all(ex)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            Ok(RevocationEntry {
                seq: row.try_get("seq").map_err(backend)?,
                jti: row.try_get("jti").map_err(backend)?,
                sid: row.try_get("sid").map_err(backend)?,
                exp: time(row.try_get("exp").map_err(backend)?),
            })
        })
        .collect()
    }

    /// True when `jti` or `sid` is in the feed.
    pub(in crate::store) async fn is_revoked<'c>(
        ex: impl Executor<'c, Database = DB>,
        jti: Option<&str>,
        sid: Option<&str>,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar(IS_REVOKED)
            .bind(jti)
            .bind(sid)
            .fetch_one(ex)
            .await
            .map_err(backend)
    }

    /// Deletes the feed entry of `sid`, if any, returning its `exp`: a sid is in the feed
    /// at most once, and a repeated revocation replaces it as the newest entry.
    pub(in crate::store) async fn take_sid_entry<'c>(
        ex: impl Executor<'c, Database = DB>,
        sid: &str,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("DELETE FROM revocations WHERE sid = $1 RETURNING exp")
            .bind(sid)
            .fetch_optional(ex)
            .await
            .map_err(backend)
    }
}
