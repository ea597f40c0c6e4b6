//! The PostgreSQL backend, for several server replicas on one database: a connection
//! pool, migrations applied at open (under sqlx's advisory lock, so replicas starting
//! together migrate once). The statements both backends share are in `store::sql`;
//! what is PostgreSQL's own lives under this module: row locks (`FOR SHARE`,
//! `FOR UPDATE`), the feed's counter row, the first-key table lock, one-statement
//! rotation and context swap, the throttle's `GREATEST` upserts, pool set-up and the
//! janitor's `SKIP LOCKED` deletes.
//!
//! Concurrency rests on single conditional statements under READ COMMITTED: refresh
//! rotation is one `UPDATE ... WHERE used_at IS NULL`, so of any number of callers on
//! any number of replicas exactly one wins. Feed writers serialize on one counter row.

mod audit;
mod browser;
mod clients;
mod grants;
mod keys;
mod mfa;
mod revocations;
mod throttle;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};

use super::sql::backend;
use super::{Purge, Revoked, Store, StoreError};

/// The shared statements, on PostgreSQL.
type Sql = super::sql::Sql<Postgres>;

/// Most connections one server process holds.
pub const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a connection (or a new connection to open) before it
/// fails with a backend error: an outage gives quick errors, not hung requests.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest one statement may run, enforced by the server (`statement_timeout`): a query
/// stuck behind a lock held by a hung session, or a runaway plan, fails the request
/// (503) instead of hanging it. Migrations run without it.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// A session that stays idle inside a transaction this long is ended by the server
/// (`idle_in_transaction_session_timeout`), releasing its locks: a replica that stalls
/// mid-transaction cannot block the others.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// The PostgreSQL store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Rung on every `NOTIFY tessera_revocations` (any replica's commit to the feed),
    /// once the listener runs (started by the first
    /// [`feed_changes`](crate::store::RevocationStore::feed_changes)).
    feed: Arc<revocations::FeedListener>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad database URL: {}", redact(e))))?
            .application_name("tessera")
            .options([
                // The store's locking (FOR SHARE / FOR UPDATE, then reads that must see
                // rows committed while waiting) assumes READ COMMITTED, whatever the
                // database's default_transaction_isolation says.
                ("default_transaction_isolation", "read committed".to_owned()),
                ("statement_timeout", millis(STATEMENT_TIMEOUT)),
                (
                    "idle_in_transaction_session_timeout",
                    millis(IDLE_IN_TRANSACTION_TIMEOUT),
                ),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .connect_with(options)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        Ok(PgStore {
            pool,
            feed: Arc::default(),
        })
    }

    /// Starts a transaction (READ COMMITTED, the server's default).
    async fn tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(backend)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn database_time(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        let micros: i64 =
            sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        let since_epoch = std::time::Duration::from_micros(micros.max(0).unsigned_abs());
        Ok(Some(std::time::UNIX_EPOCH + since_epoch))
    }

    async fn purge_expired(&self, purge: &Purge) -> Result<u64, StoreError> {
        let mut n = 0;
        for sql in PURGE {
            n += self.delete_batched(sql, purge).await?;
        }
        Ok(n)
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }
}

/// The janitor's deletes, one per table, each of at most `$4` rows: `$1` is `now`, `$2`
/// `revoked_before`, `$3` `audit_before` (see [`Purge`]). SKIP LOCKED: janitors of several
/// replicas take different rows instead of waiting for each other. Refresh tokens go before
/// grants (whose delete cascades to what is left of their tokens).
// Revocations stay 60 s (crate::feed::GRACE) past their exp: guards accept a token
// up to its exp plus their leeway, so a guard catching up then still needs the entry.
pub(super) const PURGE: [&str; 9] = [
    "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations \
     WHERE exp < $1 - 60 ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens \
     WHERE expires_at < $1 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM grants WHERE id IN (SELECT id FROM grants \
     WHERE expires_at < $1 OR revoked_at < $2 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
     WHERE blocked_until < $1 AND window_start < $2 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM auth_codes WHERE hash IN (SELECT hash FROM auth_codes \
     WHERE expires_at < $2 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM browser_sessions WHERE hash IN (SELECT hash FROM browser_sessions \
     WHERE expires_at < $1 OR revoked_at < $2 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
     WHERE at < $3 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM mfa_pending WHERE hash IN (SELECT hash FROM mfa_pending \
     WHERE expires_at < $1 LIMIT $4 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM mfa_ceremonies WHERE hash IN (SELECT hash FROM mfa_ceremonies \
     WHERE expires_at < $1 LIMIT $4 FOR UPDATE SKIP LOCKED)",
];

impl PgStore {
    /// Runs one of [`PURGE`] until it deletes fewer than a batch, each run its own short
    /// transaction, yielding in between; returns the rows deleted.
    async fn delete_batched(&self, sql: &'static str, p: &Purge) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = sqlx::query(sql)
                .bind(p.now.secs())
                .bind(p.revoked_before.secs())
                .bind(p.audit_before.secs())
                .bind(i64::from(p.batch))
                .execute(&self.pool)
                .await
                .map_err(backend)?
                .rows_affected();
            total += n;
            if n < u64::from(p.batch) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Applies the embedded migrations on a connection of its own, without the statement
/// timeout (an upgrade may rewrite a large table), then closes that connection.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(backend)?.detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await
        .map_err(backend)?;
    let migrated = sqlx::migrate!("migrations/postgres")
        .run(&mut conn)
        .await
        .map_err(|e| StoreError::Backend(format!("migration failed: {e}")));
    let _ = conn.close().await;
    migrated
}

/// A duration as PostgreSQL milliseconds.
fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A URL parse error without the URL (it may hold a password).
fn redact(e: sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
        _ => "unreadable",
    }
}

/// Inside `tx`: takes the feed's counter row lock. Every transaction that revokes grants
/// and writes the feed takes it first, so they queue instead of deadlocking.
async fn lock_feed(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT last_seq FROM revocation_cursor FOR UPDATE")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Inside `tx`: appends one feed entry with the next cursor value. A sid is in the feed at
/// most once (unique index): an older entry for it (a client id registered again after a
/// removal) is replaced, so readers past its cursor see the new entry too; its `exp` is
/// the later of the two (a revocation never ends earlier because it was repeated). A jti
/// is checked by the caller ([`RevocationStore::revoke_jti`](crate::store::RevocationStore)).
async fn feed_insert(
    tx: &mut Transaction<'static, Postgres>,
    jti: Option<&str>,
    sid: Option<&str>,
    exp: i64,
    now: i64,
) -> Result<(), StoreError> {
    let mut exp = exp;
    if let Some(sid) = sid {
        let old = Sql::take_sid_entry(&mut **tx, sid).await?;
        exp = old.map_or(exp, |old| old.max(exp));
    }
    sqlx::query(
        "WITH c AS (UPDATE revocation_cursor SET last_seq = last_seq + 1 RETURNING last_seq) \
         INSERT INTO revocations (seq, jti, sid, exp, revoked_at) \
         SELECT last_seq, $1, $2, $3, $4 FROM c",
    )
    .bind(jti)
    .bind(sid)
    .bind(exp)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Inside `tx` (which holds the feed lock): revokes grant `id` if live and appends its
/// `sid` to the feed.
async fn revoke_grant_in(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
    revoked: Revoked,
) -> Result<bool, StoreError> {
    let done = Sql::revoke_grant_row(&mut **tx, id, revoked.now).await?;
    if done {
        feed_insert(
            tx,
            None,
            Some(id),
            revoked.access_exp.secs(),
            revoked.now.secs(),
        )
        .await?;
    }
    Ok(done)
}
