//! SQLite: second factors and pending sign-ins. The statements are shared; SQLite's own is
//! that every write runs on the one writer connection (the reset under its write lock).

use async_trait::async_trait;
use tessera_token::{TokenHash, UnixTime};

use super::users::revoke_all_in;
use super::{Sql, SqliteStore, backend};
use crate::store::{
    CeremonyKind, CeremonyRecord, MfaStore, PasskeyRecord, PendingSignIn, Revoked, StoreError,
    TotpRecord,
};

#[async_trait]
impl MfaStore for SqliteStore {
    async fn begin_totp(&self, t: &TotpRecord) -> Result<bool, StoreError> {
        Sql::begin_totp(&self.writer, t).await
    }

    async fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, StoreError> {
        Sql::totp(&self.pool, user_id).await
    }

    async fn confirm_totp(
        &self,
        user_id: &str,
        sealed_secret: &[u8],
        step: i64,
        codes: &[TokenHash],
        revoked: Revoked,
    ) -> Result<bool, StoreError> {
        let now = revoked.now;
        let mut tx = self.write_tx().await?;
        if !Sql::confirm_totp(&mut *tx, user_id, sealed_secret, step, now).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        Sql::delete_recovery_codes(&mut *tx, user_id).await?;
        for hash in codes {
            Sql::insert_recovery_code(&mut *tx, user_id, hash, now).await?;
        }
        // Sessions and grants from before the factor were had without it: they end here.
        revoke_all_in(&mut tx, user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        Sql::use_totp_step(&self.writer, user_id, step).await
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Sql::use_recovery_code(&self.writer, user_id, hash, now).await
    }

    async fn recovery_codes_left(&self, user_id: &str) -> Result<u32, StoreError> {
        Sql::recovery_codes_left(&self.pool, user_id).await
    }

    async fn reset_mfa(&self, user_id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if found.is_none() {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        Sql::delete_factors(&mut *tx, user_id).await?;
        revoke_all_in(&mut tx, user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn insert_pending(&self, p: &PendingSignIn) -> Result<(), StoreError> {
        Sql::insert_pending(&self.writer, p).await
    }

    async fn pending(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        Sql::pending(&self.pool, hash, now).await
    }

    async fn take_pending(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        Sql::take_pending(&self.writer, hash).await
    }

    async fn add_passkey(&self, p: &PasskeyRecord, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        if !Sql::insert_passkey(&mut *tx, p).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        Sql::delete_unconfirmed_totp(&mut *tx, &p.user_id).await?;
        // Sessions and grants from before the factor were had without it: they end here.
        revoke_all_in(&mut tx, &p.user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        Sql::passkeys(&self.pool, user_id).await
    }

    async fn update_passkey(
        &self,
        credential_id: &[u8],
        old: &str,
        new: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Sql::update_passkey(&self.writer, credential_id, old, new, now).await
    }

    async fn insert_ceremony(&self, c: &CeremonyRecord) -> Result<(), StoreError> {
        Sql::insert_ceremony(&self.writer, c).await
    }

    async fn mark_passkey_suspect(
        &self,
        credential_id: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Sql::mark_passkey_suspect(&self.writer, credential_id, now).await
    }

    async fn trim_ceremonies(
        &self,
        user_id: &str,
        kind: CeremonyKind,
        keep: u32,
    ) -> Result<(), StoreError> {
        Sql::trim_ceremonies(&self.writer, user_id, kind, keep).await
    }

    async fn take_ceremony(
        &self,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: UnixTime,
    ) -> Result<Option<CeremonyRecord>, StoreError> {
        Sql::take_ceremony(&self.writer, hash, kind, now).await
    }
}
