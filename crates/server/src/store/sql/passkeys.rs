//! Passkeys (WebAuthn credentials) and ceremony states. A credential id is a primary key,
//! so registering one twice is refused by the insert itself; a ceremony is taken by one
//! `DELETE ... RETURNING`, so exactly one caller gets it, on both backends alike.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tessera_token::{TokenHash, UnixTime};

use super::codec::time;
use super::{Bind, Changed, Column, Sql, backend};
use crate::store::{CeremonyKind, CeremonyRecord, PasskeyRecord, StoreError};

impl<DB> Sql<DB>
where
    DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>,
    for<'a> &'a str: Bind<DB> + ColumnIndex<DB::Row>,
    for<'a> &'a [u8]: Bind<DB>,
    String: Column<DB>,
    i64: Bind<DB> + Column<DB>,
    Option<i64>: Column<DB>,
    Option<Vec<u8>>: Bind<DB> + Column<DB>,
    Vec<u8>: Column<DB>,
{
    /// Inserts the passkey; false when its credential id is taken (by anyone).
    pub(in crate::store) async fn insert_passkey<'c>(
        ex: impl Executor<'c, Database = DB>,
        p: &PasskeyRecord,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO mfa_passkeys (credential_id, user_id, label, passkey, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(p.credential_id.as_slice())
        .bind(p.user_id.as_str())
        .bind(p.label.as_str())
        .bind(p.passkey.as_str())
        .bind(p.created_at.secs())
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    /// Deletes the user's unconfirmed TOTP enrolment (in the transaction that registers a
    /// passkey: the enrolment page's secret must not stay confirmable by a password alone).
    pub(in crate::store) async fn delete_unconfirmed_totp<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL")
            .bind(user_id)
            .execute(ex)
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(in crate::store) async fn passkeys<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> Result<Vec<PasskeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_id, label, passkey, created_at, last_used_at, suspect_at \
             FROM mfa_passkeys \
             WHERE user_id = $1 ORDER BY created_at, credential_id",
        )
        .bind(user_id)
        .fetch_all(ex)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(PasskeyRecord {
                    credential_id: row.try_get("credential_id").map_err(backend)?,
                    user_id: user_id.to_owned(),
                    label: row.try_get("label").map_err(backend)?,
                    passkey: row.try_get("passkey").map_err(backend)?,
                    created_at: time(row.try_get("created_at").map_err(backend)?),
                    last_used_at: row
                        .try_get::<Option<i64>, _>("last_used_at")
                        .map_err(backend)?
                        .map(time),
                    suspect_at: row
                        .try_get::<Option<i64>, _>("suspect_at")
                        .map_err(backend)?
                        .map(time),
                })
            })
            .collect()
    }

    /// Marks the credential suspect (first time only); true when this call marked it.
    pub(in crate::store) async fn mark_passkey_suspect<'c>(
        ex: impl Executor<'c, Database = DB>,
        credential_id: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mfa_passkeys SET suspect_at = $1 \
             WHERE credential_id = $2 AND suspect_at IS NULL",
        )
        .bind(now.secs())
        .bind(credential_id)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    /// Replaces the stored passkey if it is still `old`.
    pub(in crate::store) async fn update_passkey<'c>(
        ex: impl Executor<'c, Database = DB>,
        credential_id: &[u8],
        old: &str,
        new: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mfa_passkeys SET passkey = $1, last_used_at = $2 \
             WHERE credential_id = $3 AND passkey = $4",
        )
        .bind(new)
        .bind(now.secs())
        .bind(credential_id)
        .bind(old)
        .execute(ex)
        .await
        .map_err(backend)?
        .rows()
            == 1)
    }

    pub(in crate::store) async fn insert_ceremony<'c>(
        ex: impl Executor<'c, Database = DB>,
        c: &CeremonyRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_ceremonies (hash, kind, user_id, bound_to, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.hash.as_bytes().as_slice())
        .bind(c.kind.as_str())
        .bind(c.user_id.as_str())
        .bind(c.bound_to.map(|h| h.as_bytes().to_vec()))
        .bind(c.state.as_str())
        .bind(c.expires_at.secs())
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// Deletes the ceremony (whatever its kind or age: a wrong or late take ends it too)
    /// and returns it if it is of `kind` and live at `now`.
    pub(in crate::store) async fn trim_ceremonies<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        kind: CeremonyKind,
        keep: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM mfa_ceremonies WHERE user_id = $1 AND kind = $2 AND hash NOT IN \
             (SELECT hash FROM mfa_ceremonies WHERE user_id = $1 AND kind = $2 \
              ORDER BY expires_at DESC, hash DESC LIMIT $3)",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(i64::from(keep))
        .execute(ex)
        .await
        .map_err(backend)?;
        Ok(())
    }

    pub(in crate::store) async fn take_ceremony<'c>(
        ex: impl Executor<'c, Database = DB>,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: UnixTime,
    ) -> Result<Option<CeremonyRecord>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM mfa_ceremonies WHERE hash = $1 \
             RETURNING kind, user_id, bound_to, state, expires_at",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("kind").map_err(backend)?;
        let expires_at = time(row.try_get("expires_at").map_err(backend)?);
        if stored != kind.as_str() || expires_at <= now {
            return Ok(None);
        }
        let bound_to: Option<Vec<u8>> = row.try_get("bound_to").map_err(backend)?;
        let bound_to = match bound_to {
            None => None,
            Some(b) => Some(TokenHash::from_bytes(
                <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                    StoreError::Backend("a ceremony's binding is not a hash".into())
                })?,
            )),
        };
        Ok(Some(CeremonyRecord {
            hash: *hash,
            kind,
            user_id: row.try_get("user_id").map_err(backend)?,
            bound_to,
            state: row.try_get("state").map_err(backend)?,
            expires_at,
        }))
    }
}
