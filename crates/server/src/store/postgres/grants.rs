//! PostgreSQL: grants (token families) and refresh tokens by hash.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tessera_token::{TokenHash, UnixTime};

use super::browser::owner_stands;
use super::{PgStore, backend, lock_feed, revoke_grant_in};
use crate::store::codec::{hash_from_db, join, scope_from_db, split, time};
use crate::store::{
    GrantContext, GrantOwner, GrantRecord, GrantStore, NewRefreshToken, RefreshRecord, Revoked,
    RotateOutcome, StoreError,
};

/// `SELECT` of every grant column, followed by `$tail` (a literal).
macro_rules! select_grants {
    ($tail:literal) => {
        concat!(
            "SELECT id, client_id, user_id, scope, audience, created_at, expires_at, revoked_at, generation \
             FROM grants",
            $tail
        )
    };
}

fn row_to_grant(row: &PgRow) -> Result<GrantRecord, StoreError> {
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
fn owner_from_row(row: &PgRow, user_id: Option<&str>) -> Result<GrantOwner, StoreError> {
    let found: Option<String> = row.try_get("u_id").map_err(backend)?;
    let user = match found {
        None => None,
        Some(_) => Some((
            row.try_get::<bool, _>("u_disabled").map_err(backend)?,
            row.try_get::<i64, _>("u_generation").map_err(backend)?,
        )),
    };
    Ok(GrantOwner::from_row(user_id, user))
}

/// Inside `tx`: stores a grant and, when given, its first refresh token.
pub(super) async fn insert_grant_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    g: &GrantRecord,
    first: Option<&NewRefreshToken>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, expires_at, \
         generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(t.hash.as_bytes().as_slice())
        .bind(&t.grant_id)
        .bind(t.issued_at.secs())
        .bind(t.expires_at.secs())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl GrantStore for PgStore {
    async fn insert_grant(
        &self,
        g: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tx().await?;
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
             FROM grants g LEFT JOIN users u ON u.id = g.user_id WHERE g.id = $1",
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
        sqlx::query(select_grants!(" WHERE id = $1"))
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
             LEFT JOIN users u ON u.id = g.user_id WHERE r.hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
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
        // One statement: the conditional UPDATE and the successor's INSERT commit together
        // or not at all. Under READ COMMITTED a concurrent caller blocks on the row lock,
        // then re-checks `used_at IS NULL` against the winner's committed row and matches
        // nothing: exactly one winner, on any number of replicas.
        let won = sqlx::query(
            "WITH used AS ( \
                 UPDATE refresh_tokens SET used_at = $1 \
                 WHERE hash = $2 AND used_at IS NULL \
                   AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL) \
                 RETURNING hash) \
             INSERT INTO refresh_tokens (hash, grant_id, parent_hash, issued_at, expires_at) \
             SELECT $3, $4, used.hash, $5, $6 FROM used",
        )
        .bind(now.secs())
        .bind(parent.as_bytes().as_slice())
        .bind(successor.hash.as_bytes().as_slice())
        .bind(&successor.grant_id)
        .bind(successor.issued_at.secs())
        .bind(successor.expires_at.secs())
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if won {
            return Ok(RotateOutcome::Rotated);
        }
        let used: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             WHERE r.hash = $1 AND g.revoked_at IS NULL",
        )
        .bind(parent.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(match used {
            Some(Some(at)) => RotateOutcome::AlreadyUsed { used_at: time(at) },
            _ => RotateOutcome::Unknown,
        })
    }

    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let done = revoke_grant_in(&mut tx, id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(done)
    }

    async fn user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        sqlx::query(select_grants!(
            " WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at, id"
        ))
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
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let n = super::users::revoke_all_in(&mut tx, user_id, revoked).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError> {
        // One statement (one round trip): the row is locked by the subquery, updated, and
        // its values from before the update returned.
        let row = sqlx::query(
            "UPDATE grants g SET last_net = $1, last_agent = $2 \
             FROM (SELECT id, last_net, last_agent FROM grants WHERE id = $3 FOR UPDATE) old \
             WHERE g.id = old.id RETURNING old.last_net, old.last_agent",
        )
        .bind(context.net.as_deref())
        .bind(context.agent.as_deref())
        .bind(id)
        .fetch_optional(&self.pool)
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
}
