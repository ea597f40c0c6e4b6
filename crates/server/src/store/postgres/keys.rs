//! PostgreSQL: signing keys and the master-key check. The statements are shared;
//! PostgreSQL's own is the first-key table lock, as replicas may start together.

use async_trait::async_trait;
use tessera_token::UnixTime;

use super::{PgStore, Sql, backend};
use crate::store::{KeyChange, KeyStore, SigningKeyRecord, StoreError};

#[async_trait]
impl KeyStore for PgStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        Sql::insert_key(&mut *tx, k).await?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        // This lock mode conflicts with itself and with every write to the table, so the
        // check and the insert of two starting replicas cannot interleave; it is released
        // at the end of the transaction.
        let mut tx = self.tx().await?;
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if Sql::active_key_exists(&mut *tx, &k.alg).await? {
            return Ok(false);
        }
        Sql::insert_key(&mut *tx, k).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Sql::keys(&self.pool).await
    }

    async fn apply_key_changes(
        &self,
        changes: &[KeyChange],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        Sql::apply_key_changes_in(&mut tx, changes, now).await?;
        tx.commit().await.map_err(backend)
    }

    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError> {
        Sql::remove_published_key(&self.pool, kid).await
    }

    async fn master_key_check(&self) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        Sql::master_key_check(&self.pool).await
    }

    async fn init_master_key_check(
        &self,
        value: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError> {
        // Two statements without a transaction: the insert either stored `value` or met
        // the earlier row, which the read then returns.
        Sql::insert_master_key_check(&self.pool, value, now).await?;
        Sql::stored_master_key_check(&self.pool).await
    }
}
