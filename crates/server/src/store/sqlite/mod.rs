//! The embedded SQLite backend: one database file in the data directory, WAL mode,
//! migrations applied at open. The statements both backends share are in
//! `store::sql`; what is SQLite's own lives under this module: the single writer
//! connection and `BEGIN IMMEDIATE` transactions, the feed's AUTOINCREMENT cursor, the
//! throttle's `MAX` upserts, pool set-up and the janitor's batched deletes by `rowid`.

mod audit;
mod browser;
mod clients;
mod grants;
mod keys;
mod mfa;
mod revocations;
mod throttle;
mod users;

#[cfg(test)]
pub(super) use super::sql::IS_REVOKED;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::feed_signal::FeedSignal;
use super::sql::backend;
use super::{Purge, Revoked, Store, StoreError};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

/// The shared statements, on SQLite.
type Sql = super::sql::Sql<Sqlite>;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tessera.db";

/// The SQLite store. Cheap to clone (connection pools).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for write transactions. SQLite has one writer at a time; queueing
    /// writers here, in order, instead of letting several connections race for the lock
    /// avoids SQLite's busy handler, which sleeps (1 ms, 2 ms, 5 ms, ... 100 ms) between
    /// retries and so capped refresh rotation at a fraction of what one writer does.
    /// Other processes (the CLI) still meet the busy timeout.
    writer: SqlitePool,
    /// Rung after each commit that wrote feed entries: everything that writes this
    /// database's feed from this process goes through [`SqliteStore::commit_feed`] (or,
    /// for a single-statement jti, rings it itself).
    feed: Arc<FeedSignal>,
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/tessera.db` in WAL mode and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        create_private(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(backend)?
            .foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let memory = options.get_filename().as_os_str() == ":memory:";
        let writer_options = options.clone();
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection: keep exactly one.
            .max_connections(if memory { 1 } else { 8 })
            // A SQLite connection is a file handle in this process: nothing outside can
            // break it while it idles, so the ping sqlx sends before every acquire (a
            // round trip to the connection's worker thread) buys nothing here.
            .test_before_acquire(false)
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await
            .map_err(backend)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let writer = if memory {
            // An in-memory database lives in its one connection: write there too.
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .min_connections(0)
                .idle_timeout(Some(Duration::from_secs(600)))
                .max_lifetime(Some(Duration::from_secs(3600)))
                .connect_lazy_with(writer_options)
        };
        Ok(SqliteStore {
            pool,
            writer,
            feed: Arc::new(FeedSignal::new()),
        })
    }

    /// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so concurrent writers queue on the busy timeout instead of failing on upgrade.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// Commits `tx`, which may have written feed entries, and wakes the feed's readers.
    async fn commit_feed(&self, tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        tx.commit().await.map_err(backend)?;
        self.feed.ring();
        Ok(())
    }

    /// Closes the writer, checkpoints the write-ahead log into the database file, then
    /// closes the pool.
    pub async fn close(&self) {
        self.writer.close().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint at close failed");
        }
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn purge_expired(&self, purge: &Purge) -> Result<u64, StoreError> {
        let mut n = 0;
        for sql in PURGE {
            n += self.delete_batched(sql, purge).await?;
        }
        Ok(n)
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}

/// The janitor's deletes, one per table, each of at most `?4` rows: `?1` is `now`, `?2`
/// `revoked_before`, `?3` `audit_before` (see [`Purge`]). Each is one statement, so it holds
/// the write lock only while it deletes its batch. Refresh tokens go before grants (whose
/// delete cascades to what is left of their tokens).
// Revocations stay 60 s (crate::feed::GRACE) past their exp: guards accept a token
// up to its exp plus their leeway, so a guard catching up then still needs the entry.
pub(super) const PURGE: [&str; 9] = [
    "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations \
     WHERE exp < ?1 - 60 ORDER BY seq LIMIT ?4)",
    "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens \
     WHERE expires_at < ?1 LIMIT ?4)",
    "DELETE FROM grants WHERE rowid IN (SELECT rowid FROM grants \
     WHERE expires_at < ?1 OR revoked_at < ?2 LIMIT ?4)",
    "DELETE FROM login_failures WHERE rowid IN (SELECT rowid FROM login_failures \
     WHERE blocked_until < ?1 AND window_start < ?2 LIMIT ?4)",
    "DELETE FROM auth_codes WHERE rowid IN (SELECT rowid FROM auth_codes \
     WHERE expires_at < ?2 LIMIT ?4)",
    "DELETE FROM browser_sessions WHERE rowid IN (SELECT rowid FROM browser_sessions \
     WHERE expires_at < ?1 OR revoked_at < ?2 LIMIT ?4)",
    "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
     WHERE at < ?3 ORDER BY id LIMIT ?4)",
    "DELETE FROM mfa_pending WHERE rowid IN (SELECT rowid FROM mfa_pending \
     WHERE expires_at < ?1 LIMIT ?4)",
    "DELETE FROM mfa_ceremonies WHERE rowid IN (SELECT rowid FROM mfa_ceremonies \
     WHERE expires_at < ?1 LIMIT ?4)",
];

impl SqliteStore {
    /// Runs one of [`PURGE`] on the writer connection until it deletes fewer than a batch,
    /// yielding in between so queued writers go first; returns the rows deleted.
    async fn delete_batched(&self, sql: &'static str, p: &Purge) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = sqlx::query(sql)
                .bind(p.now.secs())
                .bind(p.revoked_before.secs())
                .bind(p.audit_before.secs())
                .bind(i64::from(p.batch))
                .execute(&self.writer)
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

/// Creates the database file with mode 0600 if it does not exist: it holds password and
/// secret hashes. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Inside `tx`: revokes grant `id` if live and appends its `sid` to the feed.
async fn revoke_grant_in(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    revoked: Revoked,
) -> Result<bool, StoreError> {
    let done = Sql::revoke_grant_row(&mut **tx, id, revoked.now).await?;
    if done {
        feed_sid_in(tx, id, revoked).await?;
    }
    Ok(done)
}

/// Inside `tx`: puts `sid` into the feed as its newest entry (SQLite's own: the cursor is
/// the table's AUTOINCREMENT key, where PostgreSQL steps a counter row). A sid is in the
/// feed at most once (unique index): an older entry for it (a client id registered again
/// after a removal) is replaced, so readers past its cursor see the new entry too. Its
/// `exp` is the later of the two: a revocation never ends earlier because it was repeated.
async fn feed_sid_in(
    tx: &mut Transaction<'static, Sqlite>,
    sid: &str,
    revoked: Revoked,
) -> Result<(), StoreError> {
    let old = Sql::take_sid_entry(&mut **tx, sid).await?;
    let exp = old.map_or(revoked.access_exp.secs(), |old| {
        old.max(revoked.access_exp.secs())
    });
    sqlx::query("INSERT INTO revocations (sid, exp, revoked_at) VALUES ($1, $2, $3)")
        .bind(sid)
        .bind(exp)
        .bind(revoked.now.secs())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod file_mode_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn the_database_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.ping().await.unwrap();
        let mode = std::fs::metadata(dir.path().join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.close().await;
        // Reopening an existing database works and keeps the mode.
        SqliteStore::open(dir.path())
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    }
}
