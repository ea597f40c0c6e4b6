//! SQLite: the revocation feed. Its reads are shared; its writes are SQLite's own, as the
//! cursor is the table's AUTOINCREMENT key under the single writer.

use async_trait::async_trait;
use tessera_token::UnixTime;
use tokio::sync::watch;

use super::{Sql, SqliteStore, backend};
use crate::store::{RevocationEntry, RevocationStore, StoreError};

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke_jti(
        &self,
        jti: &str,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // One statement under SQLite's single writer. Not `ON CONFLICT DO NOTHING`: an
        // ignored upsert still takes an AUTOINCREMENT value (a cursor step with no entry);
        // a SELECT that yields no row takes none. The unique index stays the backstop.
        let n = sqlx::query(
            "INSERT INTO revocations (jti, exp, revoked_at) SELECT ?1, ?2, ?3 \
             WHERE NOT EXISTS (SELECT 1 FROM revocations WHERE jti = ?1)",
        )
        .bind(jti)
        .bind(exp.secs())
        .bind(now.secs())
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 1 {
            self.feed.ring();
        }
        Ok(n == 1)
    }

    async fn revocations_after(
        &self,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        Sql::revocations_after(&self.pool, after, limit, now).await
    }

    async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        // sqlite_sequence keeps the highest AUTOINCREMENT value even after rows are purged.
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(seq.unwrap_or(0))
    }

    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError> {
        Sql::is_revoked(&self.pool, jti, sid).await
    }

    fn feed_changes(&self) -> watch::Receiver<()> {
        // One process writes this database's feed (the CLI beside the server is the
        // exception; the push hub's periodic check covers it).
        self.feed.subscribe()
    }
}
