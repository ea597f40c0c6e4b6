//! The SQL both backends share, written once: one text per statement with `$N`
//! placeholders (sqlx's SQLite driver binds `$N` by number, as PostgreSQL does) and one
//! row mapper per record. Generic over the sqlx database rather than a macro, so the
//! code reads and formats as plain Rust: each file's `impl<DB> Sql<DB>` lists in its
//! `where` clause the column types it binds ([`Bind`]) and reads ([`Column`]), and a
//! backend calls it monomorphized (`Sql::<Sqlite>`), so there is no per-query cost.
//! Statements are `&'static str` constants. Only what truly differs per dialect (locking,
//! the feed's cursor, upserts, pool set-up) stays in [`super::sqlite`] and
//! [`super::postgres`].

mod audit;
mod clients;
mod codec;
mod codes;
mod grants;
mod keys;
mod mfa;
mod passkeys;
mod revocations;
mod sessions;
mod throttle;
mod users;

use std::marker::PhantomData;

use sqlx::{Database, Decode, Encode, Type};

#[cfg(test)]
pub(super) use revocations::IS_REVOKED;

use super::StoreError;

/// The shared statements of database `DB`: `Sql::<Sqlite>` or `Sql::<Postgres>`.
pub(super) struct Sql<DB>(PhantomData<DB>);

/// A Rust type the backend can bind as a parameter, for any lifetime of the query. An
/// `Option` of a borrow cannot be (sqlx requires it to outlive the query), so the
/// `where` clauses spell those out as `for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>`.
pub(super) trait Bind<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> {}
impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB>> Bind<DB> for T {}

/// A Rust type the backend can read from a column.
pub(super) trait Column<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}
impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Column<DB> for T {}

/// How many rows a statement changed (each driver has its own result type).
pub(super) trait Changed {
    /// The number of rows inserted, updated or deleted.
    fn rows(&self) -> u64;
}

impl Changed for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl Changed for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// Maps a driver error to a store error; unique violations become conflicts.
pub(super) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict("record");
    }
    StoreError::Backend(e.to_string())
}

/// Like [`backend`], naming what already exists on a unique violation.
pub(super) fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match backend(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        other => other,
    }
}
