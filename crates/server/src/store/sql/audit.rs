//! The audit log.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};

use super::codec::time;
use super::{Bind, Column, Sql, backend};
use crate::store::{AuditEvent, AuditQuery, StoreError};

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    String: Column<DB>,
    i64: Bind<DB> + Column<DB>,
{
    pub(in crate::store) async fn record<'c>(
        ex: impl Executor<'c, Database = DB>,
        e: &AuditEvent,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, client_id, user_id, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.at.secs())
        .bind(e.kind.as_str())
        .bind(e.client_id.as_deref())
        .bind(e.user_id.as_deref())
        .bind(e.detail.as_str())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// The latest events matching `q`, newest first.
    pub(in crate::store) async fn query_events<'c>(
        ex: impl Executor<'c, Database = DB>,
        q: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // The CAST gives PostgreSQL the parameter's type when it is NULL.
        sqlx::query(
            "SELECT at, kind, client_id, user_id, detail FROM audit_events \
             WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND at >= $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(q.user_id.as_deref())
        .bind(q.since.map_or(i64::MIN, |t| t.secs()))
        .bind(i64::from(q.limit))
        .fetch_all(ex)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                at: time(row.try_get("at").map_err(backend)?),
                kind: row.try_get("kind").map_err(backend)?,
                client_id: row.try_get("client_id").map_err(backend)?,
                user_id: row.try_get("user_id").map_err(backend)?,
                detail: row.try_get("detail").map_err(backend)?,
            })
        })
        .collect()
    }
}
