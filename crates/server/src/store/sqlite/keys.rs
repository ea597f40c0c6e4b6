//! SQLite: signing keys and the master-key check. The statements are shared; every
//! change runs in a `BEGIN IMMEDIATE` transaction, which is also the first-key lock.

use async_trait::async_trait;
use tessera_token::UnixTime;

use super::{Sql, SqliteStore, backend};
use crate::store::{KeyChange, KeyStore, SigningKeyRecord, StoreError};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        Sql::insert_key(&mut *tx, k).await?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE: the write lock is held from the check to the commit.
        let mut tx = self.write_tx().await?;
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
        let mut tx = self.write_tx().await?;
        Sql::apply_key_changes_in(&mut tx, changes, now).await?;
        tx.commit().await.map_err(backend)
    }

    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let removed = Sql::remove_published_key(&mut *tx, kid).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn master_key_check(&self) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        Sql::master_key_check(&self.pool).await
    }

    async fn init_master_key_check(
        &self,
        value: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.write_tx().await?;
        Sql::insert_master_key_check(&mut *tx, value, now).await?;
        let stored = Sql::stored_master_key_check(&mut *tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }
}
