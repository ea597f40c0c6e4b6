//! The store test suite, one set of cases run against every backend: each case in
//! [`cases`] takes an `Arc<dyn Store>`, and [`suite!`] gives it one `#[tokio::test]` on a
//! fresh SQLite file and one on a fresh PostgreSQL database (a cluster shared by the
//! whole test binary, started by `tessera-testkit`; skipped with a reason when no
//! PostgreSQL is installed, a failure under `CI=true`).

mod browser_cases;
mod cases;
mod feed_cases;
pub(crate) mod fixtures;
mod mfa_cases;
mod passkey_cases;
mod throughput;
mod user_cases;

use std::sync::{Arc, OnceLock};

use tessera_testkit::Postgres;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{GrantStore, RevocationStore, Store};

/// A fresh SQLite store in a temporary directory (a file, so the pool has several
/// connections, as in production).
async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (Arc::new(store), dir)
}

/// One PostgreSQL server for the whole test binary; its watchdog removes it at exit.
fn cluster() -> Option<&'static Postgres> {
    static CLUSTER: OnceLock<Option<Postgres>> = OnceLock::new();
    CLUSTER.get_or_init(tessera_testkit::postgres).as_ref()
}

/// A PostgreSQL store on a fresh database, or `None` (skip) when there is no server.
async fn pg_store() -> Option<Arc<dyn Store>> {
    let url = pg_url().await?;
    Some(Arc::new(PgStore::connect(&url).await.unwrap()))
}

/// The URL of a fresh PostgreSQL database, or `None` (skip) when there is no server.
pub(crate) async fn pg_url() -> Option<String> {
    let pg = tokio::task::spawn_blocking(cluster).await.unwrap()?;
    let url = tokio::task::spawn_blocking(|| pg.fresh_database("store"))
        .await
        .unwrap()
        .unwrap();
    Some(url)
}

/// PostgreSQL only: a statement stuck behind a lock held by another session fails after
/// the statement timeout (a 503 for the request) instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_statement_stuck_behind_a_lock_fails_instead_of_hanging() {
    use sqlx::Connection;
    let Some(url) = pg_url().await else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("LOCK TABLE grants IN ACCESS EXCLUSIVE MODE")
        .execute(&mut other)
        .await
        .unwrap();
    let stuck = tokio::time::timeout(std::time::Duration::from_secs(120), store.grant("g1"))
        .await
        .expect("the statement hung");
    assert!(
        matches!(stuck, Err(super::StoreError::Backend(_))),
        "{stuck:?}"
    );
    other.close().await.unwrap();
    assert!(store.grant("g1").await.unwrap().is_none(), "works again");
}

/// Review of issue 14 item 4: revoking a token already in the feed does not take the
/// feed lock (on the first version it did, so with the lock held elsewhere it waited for
/// the statement timeout and failed); a new one still waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_repeat_revocation_does_not_wait_for_the_feed_lock() {
    use sqlx::Connection;
    use tessera_token::UnixTime;
    let Some(url) = pg_url().await else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let (exp, now) = (UnixTime::from_secs(5000), UnixTime::from_secs(1000));
    assert!(store.revoke_jti("j1", exp, now).await.unwrap());
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT last_seq FROM revocation_cursor FOR UPDATE")
        .execute(&mut other)
        .await
        .unwrap();
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        store.revoke_jti("j1", exp, now),
    )
    .await
    .expect("the statement hung");
    assert!(!again.unwrap(), "known: nothing written, no lock needed");
    let new = tokio::spawn({
        let store = store.clone();
        async move { store.revoke_jti("j2", exp, now).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    assert!(
        new.await.unwrap().unwrap(),
        "a new one is written once the lock is free"
    );
    other.close().await.unwrap();
}

/// The janitor's purges on the tables that grow with use find their rows through an
/// index, not a scan of the whole table (held under the write lock on SQLite).
const PURGED_BY_INDEX: [&str; 4] = ["refresh_tokens", "grants", "auth_codes", "browser_sessions"];

/// The purge statements, with their plans, that touch `table`.
fn purges_of<'a>(purges: &'a [&'a str], table: &str) -> Vec<&'a str> {
    let from = format!("DELETE FROM {table} ");
    purges
        .iter()
        .copied()
        .filter(|sql| sql.starts_with(&from))
        .collect()
}

#[tokio::test]
async fn sqlite_purges_use_the_expiry_indexes() {
    use sqlx::{Connection, Row};
    let (_store, dir) = sqlite_store().await;
    let path = dir.path().join(super::sqlite::DB_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for table in PURGED_BY_INDEX {
        for sql in purges_of(&super::sqlite::PURGE, table) {
            let plan: Vec<String> = // The statement is one of the store's own constants.
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(1_i64)
                .bind(1_i64)
                .bind(1_i64)
                .bind(1000_i64)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(
                !plan.iter().any(|d| d == &format!("SCAN {table}")),
                "{sql}: {plan:?}"
            );
            assert!(
                plan.iter().any(|d| d.contains(&format!("INDEX {table}_"))),
                "{sql}: {plan:?}"
            );
        }
    }
}

/// PostgreSQL prefers a sequential scan on small tables whatever indexes exist; with
/// sequential scans discouraged, a plan without one shows that an index serves the purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_purges_use_the_expiry_indexes() {
    use sqlx::{Connection, Row};
    let Some(url) = pg_url().await else { return };
    PgStore::connect(&url).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    for table in PURGED_BY_INDEX {
        for sql in purges_of(&super::postgres::PURGE, table) {
            let plan: Vec<String> = // The statement is one of the store's own constants.
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind(1_i64)
                .bind(1_i64)
                .bind(1_i64)
                .bind(1000_i64)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            assert!(
                !plan
                    .iter()
                    .any(|l| l.contains(&format!("Seq Scan on {table}"))),
                "{sql}: {plan:#?}"
            );
        }
    }
}

/// Issue 14, item 4: `is_revoked` (every introspection and userinfo request) finds its
/// answer through the jti and sid indexes, not a scan of the feed (SQLite had no index).
#[tokio::test]
async fn sqlite_is_revoked_uses_the_indexes() {
    use sqlx::{Connection, Row};
    let (_store, dir) = sqlite_store().await;
    let path = dir.path().join(super::sqlite::DB_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let plan: Vec<String> = // The statement is one of the store's own constants.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::sqlite::IS_REVOKED
        )))
        .bind("j")
        .bind("s")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    assert!(
        !plan.iter().any(|d| d.starts_with("SCAN revocations")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|d| d.contains("INDEX revocations_jti")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|d| d.contains("INDEX revocations_sid")),
        "{plan:?}"
    );
}

/// Rows an older version left in the feed: the same jti twice, the same sid twice with
/// different `exp`, and one single entry. `(jti, sid, exp)`.
const OLD_FEED: [(Option<&str>, Option<&str>, i64); 5] = [
    (Some("j1"), None, 5000),
    (Some("j1"), None, 5000),
    (None, Some("g1"), 5000),
    (None, Some("g1"), 6000),
    (Some("j2"), None, 5000),
];

/// After [`OLD_FEED`], this many revocations of one more token ("dup"), cursors 6 onwards,
/// `exp` 5000 + i % 1000: enough that a migration quadratic in a group's size takes
/// minutes (the first version did), while a set-based one takes a fraction of a second.
const DUPLICATES: i64 = 50_000;

/// What the migration must leave of [`OLD_FEED`] and the [`DUPLICATES`]: one entry per
/// jti and sid, the newest cursor with the latest `exp`; revoking j1 again then writes
/// nothing.
async fn check_deduplicated(store: &dyn Store) {
    let now = tessera_token::UnixTime::from_secs(1000);
    let feed = store.revocations_after(0, 100, now).await.unwrap();
    let got: Vec<_> = feed
        .iter()
        .map(|e| (e.seq, e.jti.as_deref(), e.sid.as_deref(), e.exp.secs()))
        .collect();
    assert_eq!(
        got,
        [
            (2, Some("j1"), None, 5000),
            (4, None, Some("g1"), 6000),
            (5, Some("j2"), None, 5000),
            (5 + DUPLICATES, Some("dup"), None, 5999),
        ]
    );
    assert!(!store.revoke_jti("j1", now, now).await.unwrap());
    assert!(store.revoke_jti("j3", now, now).await.unwrap());
}

#[tokio::test]
async fn sqlite_migration_keeps_one_feed_entry_per_jti_and_sid() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::sqlite::DB_FILE);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut old = sqlx::migrate!("migrations/sqlite");
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < 7)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&mut conn).await.unwrap();
    for (jti, sid, exp) in OLD_FEED {
        sqlx::query("INSERT INTO revocations (jti, sid, exp, revoked_at) VALUES (?, ?, ?, 1)")
            .bind(jti)
            .bind(sid)
            .bind(exp)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO revocations (jti, exp, revoked_at) SELECT 'dup', 5000 + i % 1000, 1 FROM n",
    )
    .bind(DUPLICATES)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    check_deduplicated(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_keeps_one_feed_entry_per_jti_and_sid() {
    use sqlx::Connection;
    let Some(url) = pg_url().await else { return };
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut old = sqlx::migrate!("migrations/postgres");
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&mut conn).await.unwrap();
    for (i, (jti, sid, exp)) in (1_i64..).zip(OLD_FEED) {
        sqlx::query(
            "INSERT INTO revocations (seq, jti, sid, exp, revoked_at) VALUES ($1, $2, $3, $4, 1)",
        )
        .bind(i)
        .bind(jti)
        .bind(sid)
        .bind(exp)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO revocations (seq, jti, exp, revoked_at) \
         SELECT 5 + i, 'dup', 5000 + i % 1000, 1 FROM generate_series(1, $1) i",
    )
    .bind(DUPLICATES)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("UPDATE revocation_cursor SET last_seq = $1")
        .bind(5 + DUPLICATES)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let store = PgStore::connect(&url).await.unwrap();
    check_deduplicated(&store).await;
}

/// PostgreSQL only: two store instances on one database are two replicas; a feed commit
/// through either wakes the readers of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_feed_commit_on_one_replica_wakes_the_other() {
    let Some(url) = pg_url().await else { return };
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    feed_cases::a_commit_on_one_replica_wakes_the_other(a, b).await;
}

/// One test per backend for each named case in [`cases`].
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::cases::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(store) = super::pg_store().await else { return };
                    super::cases::$case(store).await;
                }
            )*
        }
    };
}

suite!(
    clients_round_trip_and_names_are_unique,
    client_secrets_and_removal,
    a_clients_id_token_alg_changes_in_place,
    dpop_bindings_round_trip,
    users_round_trip_and_names_are_unique,
    rotation_marks_the_parent_and_stores_the_successor,
    rotation_has_exactly_one_winner,
    a_rotation_binds_an_unbound_family_once,
    a_failed_rotation_leaves_the_parent_unused,
    a_failed_insert_grant_leaves_nothing_behind,
    a_failed_client_removal_leaves_nothing_behind,
    revoking_a_family_feeds_its_sid_and_stops_rotation,
    revoking_a_users_grants,
    disabling_a_user_revokes_their_grants,
    concurrent_revocations_get_distinct_ordered_cursors,
    signing_key_lifecycle,
    audit_events_newest_first,
    audit_events_filter_by_user_and_time,
    grant_context_is_swapped,
    login_failures_count_block_and_clear,
    login_attempts_are_reserved_atomically,
    the_janitor_purges_only_what_cannot_matter,
    the_janitor_deletes_in_batches_and_keeps_live_rows,
    simultaneous_starts_create_one_first_key,
    only_a_published_key_is_removed_and_the_first_key_check_wins,
    an_activation_that_finds_no_key_retires_nothing,
    ping_answers,
    auth_codes_round_trip_and_redeem_once,
    an_auth_code_has_exactly_one_winner,
    a_failed_redemption_leaves_the_code_unused,
    browser_sessions_live_end_and_follow_the_user,
    revoking_a_jti_again_writes_nothing,
    the_janitor_purges_old_codes_and_sessions,
    a_refresh_lookup_reads_the_users_standing,
    every_revoke_all_deletes_unredeemed_codes,
    a_redemption_refuses_a_user_who_no_longer_stands,
    passwd_evicts_unless_asked_to_keep,
    enable_restores_the_user_not_their_grants,
    remove_revokes_everything_and_frees_the_name,
    a_redemption_racing_a_disable_never_leaves_a_live_grant,
    what_a_sign_in_read_before_a_revoke_all_is_refused,
    a_sign_in_racing_a_revoke_all_never_leaves_a_live_grant,
    a_totp_factor_is_confirmed_once_and_each_step_used_once,
    a_totp_step_has_exactly_one_winner,
    recovery_codes_are_used_once_and_replaced_on_confirmation,
    pending_sign_ins_follow_the_user_and_are_taken_once,
    an_mfa_reset_removes_factors_and_ends_sessions,
    confirming_a_factor_ends_what_was_had_without_it,
    a_credential_id_is_registered_once_across_users,
    a_passkey_ends_an_unconfirmed_totp_enrolment_only,
    a_passkey_use_has_exactly_one_winner,
    a_ceremony_is_taken_once_live_and_as_its_kind,
    trimming_keeps_the_latest_ceremonies_of_one_user_and_kind,
    an_mfa_reset_removes_passkeys_and_ceremonies,
    the_janitor_purges_dead_ceremonies_only,
    every_feed_writer_wakes_the_readers,
);
