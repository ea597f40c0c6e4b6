//! SQLite: clients. Plain reads and writes are the shared statements; removal runs in one
//! write transaction with the revocations it causes.

use async_trait::async_trait;
use tessera_token::{Algorithm, TokenHash};

use super::{Sql, SqliteStore, feed_sid_in, revoke_grant_in};
use crate::store::{ClientRecord, ClientStore, Revoked, StoreError, client_credentials_sid};

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        Sql::insert_client(&self.pool, c).await
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        Sql::client(&self.pool, id).await
    }

    async fn client_by_id_or_name(&self, key: &str) -> Result<Option<ClientRecord>, StoreError> {
        Sql::client_by_id_or_name(&self.pool, key).await
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        Sql::clients(&self.pool).await
    }

    async fn set_client_secret(&self, id: &str, hash: &TokenHash) -> Result<(), StoreError> {
        Sql::set_client_secret(&self.pool, id, hash).await
    }

    async fn set_client_id_token_alg(&self, id: &str, alg: Algorithm) -> Result<(), StoreError> {
        Sql::set_client_id_token_alg(&self.pool, id, alg).await
    }

    async fn set_client_dpop_bound(&self, id: &str, required: bool) -> Result<(), StoreError> {
        Sql::set_client_dpop_bound(&self.pool, id, required).await
    }

    async fn remove_client(&self, id: &str, revoked: Revoked) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let grants = Sql::client_grant_ids(&mut *tx, id).await?;
        for g in &grants {
            revoke_grant_in(&mut tx, g, revoked).await?;
        }
        // Its client-credentials tokens share one sid.
        feed_sid_in(&mut tx, &client_credentials_sid(id), revoked).await?;
        Sql::delete_client(&mut *tx, id).await?;
        self.commit_feed(tx).await
    }
}
