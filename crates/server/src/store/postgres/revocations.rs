//! PostgreSQL: the revocation feed. Its reads are shared; its writes are PostgreSQL's
//! own: the cursor is a counter row every writer locks, so entries become visible in
//! cursor order.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};
use tessera_token::UnixTime;
use tokio::sync::watch;

use super::{PgStore, Sql, backend, feed_insert, lock_feed};
use crate::store::feed_signal::FeedSignal;
use crate::store::{RevocationEntry, RevocationStore, StoreError};

/// The channel the feed's trigger notifies (migration 0011).
const CHANNEL: &str = "tessera_revocations";
/// Longest pause between attempts to listen again after the database went away.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// This process's one `LISTEN` on the feed's channel, ringing a [`FeedSignal`].
#[derive(Debug)]
pub(super) struct FeedListener {
    signal: FeedSignal,
    started: OnceLock<()>,
}

impl Default for FeedListener {
    fn default() -> Self {
        FeedListener {
            signal: FeedSignal::new(),
            started: OnceLock::new(),
        }
    }
}

/// Holds one pooled connection that `LISTEN`s on [`CHANNEL`] and rings `feed` for each
/// notification, and also whenever one may have been missed: when the listening
/// connection is (re)established, since commits made while it was down notified nobody.
/// Ends when the pool closes.
async fn listen(pool: PgPool, feed: std::sync::Arc<FeedListener>) {
    let mut retry = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for revocation feed notifications; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "LISTEN on the revocation feed failed; retrying");
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_RETRY);
            continue;
        }
        retry = Duration::from_millis(100);
        feed.signal.ring();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => feed.signal.ring(),
                // The connection was lost. Listen again on a fresh one first, then ring
                // (above): ringing now, before LISTEN, could read the feed before a
                // commit whose notification then reaches nobody.
                Ok(None) => break,
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed notifications interrupted; listening again");
                    break;
                }
            }
        }
    }
}

/// Whether `jti` is in the feed (its unique index).
async fn jti_known<'c>(conn: impl sqlx::PgExecutor<'c>, jti: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1)")
        .bind(jti)
        .fetch_one(conn)
        .await
        .map_err(backend)
}

#[async_trait]
impl RevocationStore for PgStore {
    async fn revoke_jti(
        &self,
        jti: &str,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A known jti is answered without the feed lock, so repeated revocations do not
        // queue behind (or hold up) the writers. An absent one is checked again under the
        // lock, so two revocations of one token cannot both see it absent; a jti known by
        // then rolls back untouched (no row, no cursor step).
        if jti_known(&self.pool, jti).await? {
            return Ok(false);
        }
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        if jti_known(&mut *tx, jti).await? {
            return Ok(false);
        }
        feed_insert(&mut tx, Some(jti), None, exp.secs(), now.secs()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
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
        // The committed counter: every entry up to it is visible (see the migration).
        sqlx::query_scalar("SELECT last_seq FROM revocation_cursor")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError> {
        Sql::is_revoked(&self.pool, jti, sid).await
    }

    fn feed_changes(&self) -> watch::Receiver<()> {
        let receiver = self.feed.signal.subscribe();
        self.feed.started.get_or_init(|| {
            tokio::spawn(listen(self.pool.clone(), std::sync::Arc::clone(&self.feed)));
        });
        receiver
    }
}
