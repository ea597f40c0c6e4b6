//! Test support for Tessera: a throwaway PostgreSQL cluster.
//!
//! [`postgres`] gives a test a PostgreSQL server: the one named by
//! `TESSERA_TEST_DATABASE_URL`, or a fresh cluster started with the machine's `initdb` and
//! `pg_ctl` in a temporary directory on a free loopback port, torn down afterwards. When
//! neither is possible the test fails with the reason under CI (`CI=true`) and is skipped
//! with the reason elsewhere: a missing database is never a silent pass in CI.

mod cluster;

pub use cluster::{PgCluster, Postgres, postgres};
