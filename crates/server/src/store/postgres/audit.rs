//! PostgreSQL: the audit log (the shared statements on the pool).

use async_trait::async_trait;

use super::{PgStore, Sql};
use crate::store::{AuditEvent, AuditQuery, AuditStore, StoreError};

#[async_trait]
impl AuditStore for PgStore {
    async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        Sql::record(&self.pool, e).await
    }

    async fn query_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        Sql::query_events(&self.pool, q).await
    }
}
