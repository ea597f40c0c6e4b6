//! Failed-login counters: the reads, plain writes and the failure count. The upserts that
//! keep the later of two block ends stay per backend (SQLite's `MAX(a, b)` is
//! PostgreSQL's `GREATEST(a, b)`).

use std::time::Duration;

use sqlx::{Database, Executor, IntoArguments};
use tessera_token::UnixTime;

use super::codec::time;
use super::{Bind, Column, Sql, backend};
use crate::store::StoreError;

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB>,
    i64: Bind<DB> + Column<DB>,
{
    /// Counts one failed login for `key`; the count in the current window of `window`.
    pub(in crate::store) async fn record_login_failure<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
        now: UnixTime,
        window: Duration,
    ) -> Result<u32, StoreError> {
        let window_start = now.saturating_sub(window).secs();
        // One statement (the upsert holds the row): a stale window restarts at 1, a live
        // one counts up, and concurrent failures (on several replicas too) all count.
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures AS f (key, count, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN f.window_start <= $3 THEN 1 ELSE f.count + 1 END, \
               window_start = CASE WHEN f.window_start <= $3 THEN $2 ELSE f.window_start END \
             RETURNING count",
        )
        .bind(key)
        .bind(now.secs())
        .bind(window_start)
        .fetch_one(ex)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Until when `key` is blocked, if it is at `now`.
    pub(in crate::store) async fn login_blocked_until<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        let until: Option<i64> = sqlx::query_scalar(
            "SELECT blocked_until FROM login_failures WHERE key = $1 AND blocked_until > $2",
        )
        .bind(key)
        .bind(now.secs())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        Ok(until.map(time))
    }

    pub(in crate::store) async fn clear_login_failures<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Gives back one reservation of `key`.
    pub(in crate::store) async fn release_login_attempt<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE login_failures SET count = count - 1 WHERE key = $1 AND count > 0")
            .bind(key)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Sets the block of `key` to end at `until`.
    pub(in crate::store) async fn replace_login_block<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE login_failures SET blocked_until = $1 WHERE key = $2")
            .bind(until.secs())
            .bind(key)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
