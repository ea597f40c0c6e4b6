//! Operator second-factor management: list a user's factors (never a secret) and reset
//! them (removes the factors (TOTP, passkeys) and recovery codes and, in the same transaction, revokes
//! everything the user holds, as `user disable` does without disabling), audited.

use serde_json::json;
use tessera_token::UnixTime;

use super::Admin;
use crate::Error;

/// A user's second factors, as `tessera user mfa` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFactors {
    /// The TOTP factor: when enrolment began and when it was confirmed (`None` while it
    /// waits for its first code and is not asked for).
    pub totp: Option<(UnixTime, Option<UnixTime>)>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// Passkeys, oldest first.
    pub passkeys: Vec<PasskeyListing>,
}

/// One passkey as `user mfa` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyListing {
    /// Its label.
    pub label: String,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it last completed a sign-in.
    pub last_used_at: Option<UnixTime>,
    /// When its counter went back (refused from then on, until `user mfa-reset`).
    pub suspect_at: Option<UnixTime>,
}

impl Admin {
    /// The second factors of user `name`.
    pub async fn user_factors(&self, name: &str) -> Result<UserFactors, Error> {
        let user = self.user(name).await?;
        let totp = self
            .store
            .totp(&user.id)
            .await?
            .map(|t| (t.created_at, t.confirmed_at));
        Ok(UserFactors {
            totp,
            recovery_codes_left: self.store.recovery_codes_left(&user.id).await?,
            passkeys: self
                .store
                .passkeys(&user.id)
                .await?
                .into_iter()
                .map(|p| PasskeyListing {
                    label: p.label,
                    created_at: p.created_at,
                    last_used_at: p.last_used_at,
                    suspect_at: p.suspect_at,
                })
                .collect(),
        })
    }

    /// Removes the second factors of user `name` and ends everything they hold (sessions,
    /// grants, codes, sign-ins waiting for a factor); returns whether a factor was there.
    /// With `mfa = "required"` they enrol again at their next sign-in.
    pub async fn reset_mfa(&self, name: &str) -> Result<bool, Error> {
        let user = self.user(name).await?;
        let had = self.store.totp(&user.id).await?.is_some()
            || !self.store.passkeys(&user.id).await?.is_empty();
        if !self.store.reset_mfa(&user.id, self.revoked()).await? {
            return Err(Error::NotFound(format!(
                "no user {name}; see `tessera user list`"
            )));
        }
        self.audit(
            "mfa.reset",
            None,
            Some(&user.id),
            json!({ "name": name, "had_factor": had, "sessions_revoked": true }),
        )
        .await;
        Ok(had)
    }
}
