//! Operator session tools: a user's live grants, and "log out everywhere".

use serde_json::json;

use super::Admin;
use crate::Error;
use crate::store::GrantRecord;

impl Admin {
    /// Live sessions (grants) of a user.
    pub async fn sessions(&self, name: &str) -> Result<Vec<GrantRecord>, Error> {
        let user = self.user(name).await?;
        Ok(self.store.user_grants(&user.id, self.clock.now()).await?)
    }

    /// Revokes every session of a user ("log out everywhere"); returns how many.
    pub async fn revoke_sessions(&self, name: &str) -> Result<u64, Error> {
        let user = self.user(name).await?;
        let n = self
            .store
            .revoke_user_grants(&user.id, self.revoked())
            .await?;
        self.audit(
            "sessions.revoke",
            None,
            Some(&user.id),
            json!({ "count": n }),
        )
        .await;
        Ok(n)
    }
}
