//! Clients: their rows and plain CRUD; removal (which revokes) stays per backend.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};
use tessera_token::{Algorithm, TokenHash};

use super::codec::{hash_from_db, join, scope_from_db, split, time};
use super::{Bind, Changed, Column, Sql, backend, conflict};
use crate::store::{ClientRecord, GrantType, StoreError};

/// `SELECT` of every client column, followed by `$tail` (a literal).
macro_rules! select_clients {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, secret_hash, grant_types, scope, audience, redirect_uris, \
             signing_alg, created_at, post_logout_redirect_uris, first_party, id_token_alg, \
             dpop_bound_access_tokens FROM clients",
            $tail
        )
    };
}

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Bind<DB>,
    for<'a> Option<&'a [u8]>: Encode<'a, DB> + Type<DB>,
    String: Bind<DB> + Column<DB>,
    i64: Bind<DB> + Column<DB>,
    bool: Bind<DB> + Column<DB>,
    Vec<u8>: Column<DB>,
{
    fn client_row(row: &DB::Row) -> Result<ClientRecord, StoreError> {
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
            dpop_bound_access_tokens: row.try_get("dpop_bound_access_tokens").map_err(backend)?,
        })
    }

    pub(in crate::store) async fn insert_client<'c>(
        ex: impl Executor<'c, Database = DB>,
        c: &ClientRecord,
    ) -> Result<(), StoreError> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scope, audience, \
             redirect_uris, signing_alg, created_at, post_logout_redirect_uris, first_party, \
             id_token_alg, dpop_bound_access_tokens) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c.id.as_str())
        .bind(c.name.as_str())
        .bind(c.secret_hash.as_ref().map(|h| h.as_bytes().as_slice()))
        .bind(join(&grants))
        .bind(c.scope.to_string())
        .bind(join(&c.audience))
        .bind(join(&c.redirect_uris))
        .bind(c.signing_alg.map(|a| a.name()))
        .bind(c.created_at.secs())
        .bind(join(&c.post_logout_redirect_uris))
        .bind(c.first_party)
        .bind(c.id_token_alg.map(|a| a.name()))
        .bind(c.dpop_bound_access_tokens)
        .execute(ex)
        .await
        .map_err(conflict("a client with this name"))?;
        Ok(())
    }

    pub(in crate::store) async fn client<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(" WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await
            .map_err(backend)?
            .as_ref()
            .map(Self::client_row)
            .transpose()
    }

    /// The client with this id or, failing that, this name.
    pub(in crate::store) async fn client_by_id_or_name<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(
            " WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(ex)
        .await
        .map_err(backend)?
        .as_ref()
        .map(Self::client_row)
        .transpose()
    }

    pub(in crate::store) async fn clients<'c>(
        ex: impl Executor<'c, Database = DB>,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query(select_clients!(" ORDER BY name"))
            .fetch_all(ex)
            .await
            .map_err(backend)?
            .iter()
            .map(Self::client_row)
            .collect()
    }

    /// Replaces a confidential client's secret hash.
    pub(in crate::store) async fn set_client_secret<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        hash: &TokenHash,
    ) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(id)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows();
        if n == 0 {
            return Err(StoreError::NotFound("confidential client"));
        }
        Ok(())
    }

    pub(in crate::store) async fn set_client_id_token_alg<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        alg: Algorithm,
    ) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE clients SET id_token_alg = $1 WHERE id = $2")
            .bind(alg.name())
            .bind(id)
            .execute(ex)
            .await
            .map_err(backend)?
            .rows();
        if n == 0 {
            return Err(StoreError::NotFound("client"));
        }
        Ok(())
    }

    /// Sets whether the client must bind its access tokens with DPoP.
    pub(in crate::store) async fn set_client_dpop_bound<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        required: bool,
    ) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE clients SET dpop_bound_access_tokens = $1 WHERE id = $2")
            .bind(required)
            .bind(id)
            .execute(ex)
            .await
            .map_err(backend)?
            .rows();
        if n == 0 {
            return Err(StoreError::NotFound("client"));
        }
        Ok(())
    }

    /// The ids of the client's unrevoked grants, in id order (the order PostgreSQL locks
    /// them in, so two revocations cannot deadlock).
    pub(in crate::store) async fn client_grant_ids<'c>(
        ex: impl Executor<'c, Database = DB>,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM grants WHERE client_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(client_id)
        .fetch_all(ex)
        .await
        .map_err(backend)
    }

    /// Deletes the client; `NotFound` when there is none.
    pub(in crate::store) async fn delete_client<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
    ) -> Result<(), StoreError> {
        let n = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(ex)
            .await
            .map_err(backend)?
            .rows();
        if n == 0 {
            return Err(StoreError::NotFound("client"));
        }
        Ok(())
    }
}
