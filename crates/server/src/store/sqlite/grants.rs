//! SQLite: grants (token families) and refresh tokens by hash.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tessera_token::{TokenHash, UnixTime};

use super::browser::owner_stands;
use super::{
    SqliteStore, backend, hash_from_db, join, revoke_grant_in, scope_from_db, split, time,
};
use crate::store::{
    GrantContext, GrantOwner, GrantRecord, GrantStore, NewRefreshToken, RefreshRecord, Revoked,
    RotateOutcome, StoreError,
};

fn row_to_grant(row: &SqliteRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get("id").map_err(backend)?,
        client_id: row.try_get("client_id").map_err(backend)?,
        user_id: row.try_get("user_id").map_err(backend)?,
        scope: scope_from_db(&row.try_get::<String, _>("scope").map_err(backend)?)?,
        audience: split(&row.try_get::<String, _>("audience").map_err(backend)?),
        created_at: time(row.try_get("created_at").map_err(backend)?),
        expires_at: time(row.try_get("expires_at").map_err(backend)?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(backend)?
            .map(time),
        generation: row.try_get("generation").map_err(backend)?,
    })
}

/// The standing of the grant's user, from the `u_*` columns of a `LEFT JOIN users u`.
fn owner_from_row(row: &SqliteRow, user_id: Option<&str>) -> Result<GrantOwner, StoreError> {
    let found: Option<String> = row.try_get("u_id").map_err(backend)?;
    let user = match found {
        None => None,
        Some(_) => Some((
            row.try_get::<i64, _>("u_disabled").map_err(backend)? != 0,
            row.try_get::<i64, _>("u_generation").map_err(backend)?,
        )),
    };
    Ok(GrantOwner::from_row(user_id, user))
}

/// The network and user agent of the grant's latest token request.
async fn grant_context<'e, E>(executor: E, id: &str) -> Result<Option<GrantContext>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row = sqlx::query("SELECT last_net, last_agent FROM grants WHERE id = ?")
        .bind(id)
        .fetch_optional(executor)
        .await
        .map_err(backend)?;
    row.map(|row| {
        Ok(GrantContext {
            net: row.try_get("last_net").map_err(backend)?,
            agent: row.try_get("last_agent").map_err(backend)?,
        })
    })
    .transpose()
}

async fn insert_refresh<'e, E>(executor: E, t: &NewRefreshToken) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(t.hash.as_bytes().to_vec())
    .bind(&t.grant_id)
    .bind(t.issued_at.secs())
    .bind(t.expires_at.secs())
    .execute(executor)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Inside `tx`: stores a grant and, when given, its first refresh token.
pub(super) async fn insert_grant_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    g: &GrantRecord,
    first: Option<&NewRefreshToken>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, expires_at, \
         generation) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&g.id)
    .bind(&g.client_id)
    .bind(&g.user_id)
    .bind(g.scope.to_string())
    .bind(join(&g.audience))
    .bind(g.created_at.secs())
    .bind(g.expires_at.secs())
    .bind(g.generation)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    if let Some(t) = first {
        insert_refresh(&mut **tx, t).await?;
    }
    Ok(())
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_grant(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        if !owner_stands(&mut tx, g.user_id.as_deref(), g.generation).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        insert_grant_in(&mut tx, g, first).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn grant_owner(&self, id: &str) -> Result<Option<(GrantRecord, GrantOwner)>, StoreError> {
        let row = sqlx::query(
            "SELECT g.id, g.client_id, g.user_id, g.scope, g.audience, g.created_at, g.expires_at, \
                    g.revoked_at, g.generation, u.id AS u_id, u.disabled AS u_disabled, \
                    u.generation AS u_generation \
             FROM grants g LEFT JOIN users u ON u.id = g.user_id WHERE g.id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let grant = row_to_grant(&row)?;
        let owner = owner_from_row(&row, grant.user_id.as_deref())?;
        Ok(Some((grant, owner)))
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        sqlx::query(
            "SELECT id, client_id, user_id, scope, audience, created_at, expires_at, revoked_at, \
             generation FROM grants WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_to_grant)
        .transpose()
    }

    async fn refresh_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT r.hash, r.issued_at AS r_issued, r.expires_at AS r_expires, r.used_at, \
                    g.id, g.client_id, g.user_id, g.scope, g.audience, g.created_at, g.expires_at, g.revoked_at, \
                    g.generation, u.id AS u_id, u.disabled AS u_disabled, \
                    u.generation AS u_generation \
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             LEFT JOIN users u ON u.id = g.user_id WHERE r.hash = ?",
        )
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let grant = row_to_grant(&row)?;
        let record = RefreshRecord {
            hash: hash_from_db(row.try_get("hash").map_err(backend)?)?,
            grant_id: grant.id.clone(),
            issued_at: time(row.try_get("r_issued").map_err(backend)?),
            expires_at: time(row.try_get("r_expires").map_err(backend)?),
            used_at: row
                .try_get::<Option<i64>, _>("used_at")
                .map_err(backend)?
                .map(time),
            owner: owner_from_row(&row, grant.user_id.as_deref())?,
        };
        Ok(Some((record, grant)))
    }

    async fn rotate_refresh_token(
        &self,
        parent: &TokenHash,
        successor: &NewRefreshToken,
        now: UnixTime,
    ) -> Result<RotateOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL \
             AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL)",
        )
        .bind(now.secs())
        .bind(parent.as_bytes().to_vec())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if won {
            insert_refresh(&mut *tx, successor).await?;
            tx.commit().await.map_err(backend)?;
            return Ok(RotateOutcome::Rotated);
        }
        let used: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             WHERE r.hash = ? AND g.revoked_at IS NULL",
        )
        .bind(parent.as_bytes().to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        tx.rollback().await.map_err(backend)?;
        Ok(match used {
            Some(Some(at)) => RotateOutcome::AlreadyUsed { used_at: time(at) },
            _ => RotateOutcome::Unknown,
        })
    }

    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = revoke_grant_in(&mut tx, id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(done)
    }

    async fn user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        sqlx::query(
            "SELECT id, client_id, user_id, scope, audience, created_at, expires_at, revoked_at, \
             generation FROM grants WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at",
        )
        .bind(user_id)
        .bind(now.secs())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_to_grant)
        .collect()
    }

    async fn revoke_user_grants(&self, user_id: &str, revoked: Revoked) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = super::users::revoke_all_in(&mut tx, user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError> {
        // Most refreshes come from where the previous one did: a read settles those
        // without taking the write lock (one statement instead of four).
        if let Some(current) = grant_context(&self.pool, id).await?
            && current == *context
        {
            return Ok(Some(current));
        }
        let mut tx = self.write_tx().await?;
        let Some(previous) = grant_context(&mut *tx, id).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE grants SET last_net = ?, last_agent = ? WHERE id = ?")
            .bind(context.net.as_deref())
            .bind(context.agent.as_deref())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(previous))
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Tests only: stores a grant without asking whether its user stands behind it, as a
    /// grant that escaped a revoke-all would be stored (the rule at refresh and
    /// introspection must refuse it on its own).
    pub(crate) async fn insert_grant_unchecked(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_grant_in(&mut tx, g, first).await?;
        tx.commit().await.map_err(backend)
    }
}
