//! SQLite: authorization codes and browser sessions, both by hash.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use tessera_token::{TokenHash, UnixTime};

use super::grants::insert_grant_in;
use super::{SqliteStore, backend, hash_from_db, scope_from_db, time};
use crate::store::{
    AuthCodeRecord, AuthCodeStore, GrantOwner, GrantRecord, NewRefreshToken, RedeemOutcome,
    SessionRecord, SessionStore, StoreError,
};

fn row_to_code(row: &SqliteRow) -> Result<AuthCodeRecord, StoreError> {
    Ok(AuthCodeRecord {
        hash: hash_from_db(row.try_get("hash").map_err(backend)?)?,
        client_id: row.try_get("client_id").map_err(backend)?,
        user_id: row.try_get("user_id").map_err(backend)?,
        redirect_uri: row.try_get("redirect_uri").map_err(backend)?,
        code_challenge: row.try_get("code_challenge").map_err(backend)?,
        scope: scope_from_db(&row.try_get::<String, _>("scope").map_err(backend)?)?,
        nonce: row.try_get("nonce").map_err(backend)?,
        auth_time: time(row.try_get("auth_time").map_err(backend)?),
        created_at: time(row.try_get("created_at").map_err(backend)?),
        expires_at: time(row.try_get("expires_at").map_err(backend)?),
        used_at: row
            .try_get::<Option<i64>, _>("used_at")
            .map_err(backend)?
            .map(time),
        grant_id: row.try_get("grant_id").map_err(backend)?,
        generation: row.try_get("generation").map_err(backend)?,
    })
}

#[async_trait]
impl AuthCodeStore for SqliteStore {
    async fn insert_auth_code(&self, c: &AuthCodeRecord) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        if !owner_stands(&mut tx, Some(&c.user_id), c.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO auth_codes (hash, client_id, user_id, redirect_uri, code_challenge, scope, \
             nonce, auth_time, created_at, expires_at, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.hash.as_bytes().to_vec())
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(c.scope.to_string())
        .bind(&c.nonce)
        .bind(c.auth_time.secs())
        .bind(c.created_at.secs())
        .bind(c.expires_at.secs())
        .bind(c.generation)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCodeRecord>, StoreError> {
        sqlx::query("SELECT * FROM auth_codes WHERE hash = ?")
            .bind(hash.as_bytes().to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(row_to_code)
            .transpose()
    }

    async fn redeem_auth_code(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<RedeemOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        if !owner_stands(&mut tx, grant.user_id.as_deref(), grant.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(RedeemOutcome::Unknown);
        }
        let won = sqlx::query(
            "UPDATE auth_codes SET used_at = ?, grant_id = ? \
             WHERE hash = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now.secs())
        .bind(&grant.id)
        .bind(hash.as_bytes().to_vec())
        .bind(now.secs())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if won {
            insert_grant_in(&mut tx, grant, first).await?;
            tx.commit().await.map_err(backend)?;
            return Ok(RedeemOutcome::Redeemed);
        }
        let used: Option<(Option<i64>, Option<String>)> =
            sqlx::query_as("SELECT used_at, grant_id FROM auth_codes WHERE hash = ?")
                .bind(hash.as_bytes().to_vec())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        tx.rollback().await.map_err(backend)?;
        Ok(match used {
            Some((Some(_), grant_id)) => RedeemOutcome::AlreadyUsed { grant_id },
            _ => RedeemOutcome::Unknown,
        })
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO browser_sessions (hash, user_id, created_at, expires_at, generation) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(s.hash.as_bytes().to_vec())
        .bind(&s.user_id)
        .bind(s.created_at.secs())
        .bind(s.expires_at.secs())
        .bind(s.generation)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn live_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_id, s.created_at, s.expires_at, s.generation FROM browser_sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled = 0 \
             AND s.generation = u.generation",
        )
        .bind(hash.as_bytes().to_vec())
        .bind(now.secs())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            hash: *hash,
            user_id: row.try_get("user_id").map_err(backend)?,
            created_at: time(row.try_get("created_at").map_err(backend)?),
            expires_at: time(row.try_get("expires_at").map_err(backend)?),
            revoked_at: None,
            generation: row.try_get("generation").map_err(backend)?,
        }))
    }

    async fn end_session(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE browser_sessions SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
        )
        .bind(now.secs())
        .bind(hash.as_bytes().to_vec())
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1)
    }
}

/// Inside `tx` (which holds the write lock, so no disable or revoke-all can slip in before
/// it commits): true when the user `user_id` (none: a client's own grant) stands behind
/// something stamped with `generation` ([`GrantOwner::allows`]).
pub(super) async fn owner_stands(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Option<&str>,
    generation: i64,
) -> Result<bool, StoreError> {
    let user: Option<(i64, i64)> = match user_id {
        None => None,
        Some(id) => sqlx::query_as("SELECT disabled, generation FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?,
    };
    let user = user.map(|(disabled, current)| (disabled != 0, current));
    Ok(GrantOwner::from_row(user_id, user).allows(generation))
}

/// Inside `tx`: ends every live browser session of `user_id`.
pub(super) async fn end_user_sessions(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: &str,
    now: UnixTime,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE browser_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
    )
    .bind(now.secs())
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?
    .rows_affected())
}
