//! SQLite: failed-login counters. Its own are the statements that keep the later of two
//! block ends (`MAX(a, b)`, where PostgreSQL says `GREATEST`); the rest is shared.

use std::time::Duration;

use async_trait::async_trait;
use tessera_token::UnixTime;

use super::{Sql, SqliteStore, backend};
use crate::store::{StoreError, ThrottleStore};

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window: Duration,
    ) -> Result<u32, StoreError> {
        Sql::record_login_failure(&self.pool, key, now, window).await
    }

    async fn block_login(&self, key: &str, until: UnixTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE login_failures SET blocked_until = MAX(blocked_until, ?) WHERE key = ?",
        )
        .bind(until.secs())
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn login_blocked_until(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        Sql::login_blocked_until(&self.pool, key, now).await
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        Sql::clear_login_failures(&self.pool, key).await
    }

    async fn reserve_login_attempt(
        &self,
        key: &str,
        now: UnixTime,
        window: Duration,
        threshold: u32,
        block_until: UnixTime,
    ) -> Result<Option<u32>, StoreError> {
        let window_start = now.saturating_sub(window).secs();
        // One statement (the upsert holds the row): a blocked key is left as it is and
        // returns no row; otherwise the attempt counts, and reaching the threshold blocks.
        let count: Option<i64> = sqlx::query_scalar(
            "INSERT INTO login_failures (key, count, window_start, blocked_until) \
             VALUES (?1, 1, ?2, CASE WHEN 1 >= ?4 THEN ?5 ELSE 0 END) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN login_failures.window_start <= ?3 THEN 1 ELSE login_failures.count + 1 END, \
               window_start = CASE WHEN login_failures.window_start <= ?3 THEN ?2 ELSE login_failures.window_start END, \
               blocked_until = CASE WHEN (CASE WHEN login_failures.window_start <= ?3 THEN 1 ELSE login_failures.count + 1 END) >= ?4 \
                 THEN MAX(login_failures.blocked_until, ?5) ELSE login_failures.blocked_until END \
             WHERE login_failures.blocked_until <= ?2 \
             RETURNING count",
        )
        .bind(key)
        .bind(now.secs())
        .bind(window_start)
        .bind(i64::from(threshold))
        .bind(block_until.secs())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(count.map(|c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn release_login_attempt(&self, key: &str) -> Result<(), StoreError> {
        Sql::release_login_attempt(&self.pool, key).await
    }

    async fn replace_login_block(&self, key: &str, until: UnixTime) -> Result<(), StoreError> {
        Sql::replace_login_block(&self.pool, key, until).await
    }
}
