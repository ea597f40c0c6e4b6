//! Operator user management: add, list, disable, enable, remove, set a password. Every
//! change that revokes does so in the store's one transaction, and is audited.

use serde_json::json;
use tessera_token::SecretString;

use super::{Admin, check_name, not_found};
use crate::Error;
use crate::ids::random_id;
use crate::password;
use crate::store::UserRecord;

impl Admin {
    /// Adds a user with an Argon2id hash of `password`.
    pub async fn add_user(&self, name: &str, password: SecretString) -> Result<UserRecord, Error> {
        check_name("user", name)?;
        let user = UserRecord {
            id: random_id("u_")?,
            name: name.to_owned(),
            password_hash: password::hash_one(password).await?,
            disabled: false,
            created_at: self.clock.now(),
            generation: 0,
        };
        self.store
            .insert_user(&user)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!("user {name} already exists")),
                other => other,
            })?;
        self.audit("user.add", None, Some(&user.id), json!({ "name": name }))
            .await;
        Ok(user)
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self.store.users().await?)
    }

    /// Disables a user and, in one transaction, revokes everything they hold: grants
    /// (into the feed), browser sessions and unredeemed authorization codes.
    pub async fn disable_user(&self, name: &str) -> Result<(), Error> {
        self.store
            .disable_user(name, self.revoked())
            .await
            .map_err(|e| not_found(e, "user", name))?;
        let user_id = self
            .store
            .user_by_name(name)
            .await
            .ok()
            .flatten()
            .map(|u| u.id);
        self.audit(
            "user.disable",
            None,
            user_id.as_deref(),
            json!({ "name": name }),
        )
        .await;
        Ok(())
    }

    /// Enables a disabled user: they may sign in again; what was revoked stays revoked.
    pub async fn enable_user(&self, name: &str) -> Result<(), Error> {
        let id = self
            .store
            .enable_user(name)
            .await
            .map_err(|e| not_found(e, "user", name))?;
        self.audit("user.enable", None, Some(&id), json!({ "name": name }))
            .await;
        Ok(())
    }

    /// Removes a user: revokes everything they hold (as [`Admin::disable_user`] does) and
    /// deletes them, in one transaction; returns their former id (`sub`). A new user of
    /// the same name gets a new random id, so nothing issued to this one ever names them.
    pub async fn remove_user(&self, name: &str) -> Result<String, Error> {
        let id = self
            .store
            .remove_user(name, self.revoked())
            .await
            .map_err(|e| not_found(e, "user", name))?;
        self.audit("user.remove", None, Some(&id), json!({ "name": name }))
            .await;
        Ok(id)
    }

    /// Sets a new password. Unless `keep_sessions`, the same transaction revokes
    /// everything the user holds (as [`Admin::disable_user`] does, without disabling), so
    /// a password changed after a compromise also evicts whoever had signed in with it.
    pub async fn set_password(
        &self,
        name: &str,
        password: SecretString,
        keep_sessions: bool,
    ) -> Result<(), Error> {
        let hash = password::hash_one(password).await?;
        let evict = (!keep_sessions).then(|| self.revoked());
        self.store
            .set_password(name, &hash, evict)
            .await
            .map_err(|e| not_found(e, "user", name))?;
        let user_id = self
            .store
            .user_by_name(name)
            .await
            .ok()
            .flatten()
            .map(|u| u.id);
        self.audit(
            "user.passwd",
            None,
            user_id.as_deref(),
            json!({ "name": name, "sessions_revoked": !keep_sessions }),
        )
        .await;
        Ok(())
    }

    /// The user named `name`, or `NotFound` naming the command that lists them.
    pub(super) async fn user(&self, name: &str) -> Result<UserRecord, Error> {
        self.store
            .user_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user {name}; see `tessera user list`")))
    }
}
