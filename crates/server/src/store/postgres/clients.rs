//! PostgreSQL: clients.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tessera_token::TokenHash;

use super::{PgStore, backend, feed_insert, lock_feed, revoke_grant_in};
use crate::store::codec::{hash_from_db, join, scope_from_db, split, time};
use crate::store::{
    ClientRecord, ClientStore, GrantType, Revoked, StoreError, client_credentials_sid,
};

/// `SELECT` of every client column, followed by `$tail` (a literal).
macro_rules! select_clients {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, secret_hash, grant_types, scope, audience, redirect_uris, signing_alg, created_at, post_logout_redirect_uris, first_party, id_token_alg FROM clients",
            $tail
        )
    };
}

fn row_to_client(row: &PgRow) -> Result<ClientRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(backend);
    let secret: Option<Vec<u8>> = row.try_get("secret_hash").map_err(backend)?;
    let grant_types = split(&get_s("grant_types")?)
        .iter()
        .map(|g| g.parse::<GrantType>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::Backend)?;
    Ok(ClientRecord {
        id: get_s("id")?,
        name: get_s("name")?,
        secret_hash: secret.map(hash_from_db).transpose()?,
        grant_types,
        scope: scope_from_db(&get_s("scope")?)?,
        audience: split(&get_s("audience")?),
        redirect_uris: split(&get_s("redirect_uris")?),
        signing_alg: row
            .try_get::<Option<String>, _>("signing_alg")
            .map_err(backend)?
            .map(|a| a.parse())
            .transpose()
            .map_err(|_| StoreError::Backend("stored signing_alg is unknown".into()))?,
        created_at: time(row.try_get("created_at").map_err(backend)?),
        post_logout_redirect_uris: split(&get_s("post_logout_redirect_uris")?),
        first_party: row.try_get("first_party").map_err(backend)?,
        id_token_alg: row
            .try_get::<Option<String>, _>("id_token_alg")
            .map_err(backend)?
            .map(|a| a.parse())
            .transpose()
            .map_err(|_| StoreError::Backend("stored id_token_alg is unknown".into()))?,
    })
}

#[async_trait]
impl ClientStore for PgStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scope, audience, redirect_uris, signing_alg, created_at, post_logout_redirect_uris, first_party, id_token_alg) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.secret_hash.map(|h| h.as_bytes().to_vec()))
        .bind(join(&grants))
        .bind(c.scope.to_string())
        .bind(join(&c.audience))
        .bind(join(&c.redirect_uris))
        .bind(c.signing_alg.map(|a| a.name()))
        .bind(c.created_at.secs())
        .bind(join(&c.post_logout_redirect_uris))
        .bind(c.first_party)
        .bind(c.id_token_alg.map(|a| a.name()))
        .execute(&self.pool)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict("a client with this name"),
            other => other,
        })?;
        Ok(())
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(" WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(row_to_client)
            .transpose()
    }

    async fn client_by_id_or_name(&self, key: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(
            " WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_to_client)
        .transpose()
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(" ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(row_to_client)
            .collect()
    }

    async fn set_client_secret(&self, id: &str, hash: &TokenHash) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("confidential client"));
        }
        Ok(())
    }

    async fn set_client_id_token_alg(
        &self,
        id: &str,
        alg: tessera_token::Algorithm,
    ) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE clients SET id_token_alg = $1 WHERE id = $2")
            .bind(alg.name())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("client"));
        }
        Ok(())
    }

    async fn remove_client(&self, id: &str, revoked: Revoked) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        lock_feed(&mut tx).await?;
        let n = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("client"));
        }
        let grants: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE client_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for g in &grants {
            revoke_grant_in(&mut tx, g, revoked).await?;
        }
        // Its client-credentials tokens share one sid.
        let sid = client_credentials_sid(id);
        feed_insert(
            &mut tx,
            None,
            Some(&sid),
            revoked.access_exp.secs(),
            revoked.now.secs(),
        )
        .await?;
        tx.commit().await.map_err(backend)
    }
}
