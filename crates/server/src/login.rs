//! The one password check of every login (the password grant and the browser sign-in
//! form): throttle reservation, the bounded Argon2id check, the failure metric, the audit
//! record and spray detection, in that order, with one answer for an unknown user, a
//! wrong password and a disabled user.

use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tessera_token::SecretString;

use crate::grants::{RequestContext, audit};
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::UserRecord;
use crate::throttle;

/// Seconds a login refused for a full hash queue is told to wait.
const BUSY_RETRY_AFTER: u64 = 1;

/// Where a login came from (recorded in its audit events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `POST /token` with `grant_type=password`.
    PasswordGrant,
    /// The sign-in form of `POST /authorize`.
    Browser,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::PasswordGrant => "password_grant",
            Via::Browser => "browser",
        }
    }
}

/// Who is logging in, from where, through which client.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    /// The client the login is for.
    pub(crate) client_id: &'a str,
    /// The peer and its agent.
    pub(crate) ctx: &'a RequestContext,
    /// The path it came by.
    pub(crate) via: Via,
}

/// Why a login did not succeed.
#[derive(Debug)]
pub(crate) enum LoginFailure {
    /// Unknown user, wrong password or disabled user: one answer for all three.
    BadCredentials,
    /// This account from this source network, or this network, is blocked: 429.
    Throttled {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// More password checks are waiting than `password_hash_queue` allows: 503.
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The store failed (503); nothing was decided.
    Unavailable(OAuthError),
}

impl From<OAuthError> for LoginFailure {
    fn from(e: OAuthError) -> Self {
        LoginFailure::Unavailable(e)
    }
}

/// Checks `username` and `password`, throttled: reserves the attempt (refusing at once
/// when blocked), waits for a hashing thread only if the queue has room, and records a
/// failure in the metric, the audit log, the throttle and spray detection.
pub(crate) async fn authenticate(
    state: &AppState,
    username: &str,
    password: SecretString,
    attempt: &Attempt<'_>,
) -> Result<UserRecord, LoginFailure> {
    let ip = attempt.ctx.ip;
    let tag = name_tag(state, username);
    let reservation = match throttle::reserve(state, &tag, ip).await? {
        Ok(r) => r,
        Err(retry_after) => {
            metrics::counter!(crate::metrics::THROTTLED).increment(1);
            return Err(LoginFailure::Throttled { retry_after });
        }
    };
    let Some(admission) = state.passwords.admit() else {
        give_back(state, reservation).await;
        tracing::warn!("password check refused: the hash queue is full");
        return Err(LoginFailure::Busy {
            retry_after: BUSY_RETRY_AFTER,
        });
    };
    let checked = async {
        let user = state.store.user_by_name(username).await?;
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let matches = state.passwords.verify(admission, password, phc).await?;
        Ok::<_, OAuthError>((user, matches))
    }
    .await;
    let (user, matches) = match checked {
        Ok(c) => c,
        Err(e) => {
            give_back(state, reservation).await;
            return Err(e.into());
        }
    };
    match user {
        Some(u) if matches && !u.disabled => {
            reservation.succeeded(state.clock.now()).await?;
            Ok(u)
        }
        other => {
            let reason = match &other {
                None => "unknown_user",
                Some(u) if u.disabled => "disabled",
                Some(_) => "wrong_password",
            };
            // One public reason: the metric must not tell which names exist.
            metrics::counter!(crate::metrics::LOGIN_FAILURES, "reason" => "bad_credentials")
                .increment(1);
            let user_id = other.as_ref().map(|u| u.id.as_str());
            let who = who(username, &tag, other.is_some());
            let mut detail = who.clone();
            detail["reason"] = json!(reason);
            detail["ip"] = json!(ip.map(|ip| ip.to_string()));
            detail["via"] = json!(attempt.via.as_str());
            audit(
                state,
                "login.failure",
                Some(attempt.client_id),
                user_id,
                detail,
            )
            .await;
            if let Some(failures) = reservation.failed(state).await? {
                account_targeted(state, attempt, user_id, who, failures).await;
            }
            spray(state, &tag, ip, attempt).await?;
            Err(LoginFailure::BadCredentials)
        }
    }
}

/// The name as the audit log may keep it: the name itself when it names an account,
/// otherwise only its keyed hash (a password typed as a name must not be kept).
fn who(username: &str, tag: &str, exists: bool) -> serde_json::Value {
    if exists {
        json!({ "username": username })
    } else {
        json!({ "username_hash": tag })
    }
}

/// The keyed hash that stands for a login name: the same name always gives the same
/// value (to correlate a spray), which says nothing of the name without the master key.
pub(crate) fn name_tag(state: &AppState, username: &str) -> String {
    name_tag_with(&state.login_name_key, username)
}

fn name_tag_with(key: &hmac::Key, username: &str) -> String {
    let mac = hmac::sign(key, username.as_bytes());
    // 128 bits of the HMAC-SHA256: collisions are out of reach, the value stays short.
    URL_SAFE_NO_PAD.encode(&mac.as_ref()[..16])
}

/// Best-effort return of the reservations of an attempt that was not evaluated.
async fn give_back(state: &AppState, reservation: throttle::Reservation) {
    if let Err(e) = reservation.release(state.clock.now()).await {
        tracing::warn!(error = %e, "could not release a login reservation");
    }
}

/// Many failures against one account from several networks: an alarm, never a block.
async fn account_targeted(
    state: &AppState,
    attempt: &Attempt<'_>,
    user_id: Option<&str>,
    who: serde_json::Value,
    failures: u32,
) {
    tracing::warn!(failures, "many failed logins against one account");
    let mut detail = who;
    detail["failures"] = json!(failures);
    detail["window_secs"] = json!(state.config.throttle.window.as_secs());
    audit(
        state,
        "login.account_targeted",
        Some(attempt.client_id),
        user_id,
        detail,
    )
    .await;
}

/// Flags an address that fails against many accounts (password spraying).
async fn spray(
    state: &AppState,
    tag: &str,
    ip: Option<IpAddr>,
    attempt: &Attempt<'_>,
) -> Result<(), OAuthError> {
    if let Some(accounts) = throttle::spray_suspected(state, tag, ip).await? {
        let ip = ip.map(|ip| ip.to_string());
        tracing::warn!(
            ip = ip.as_deref().unwrap_or("-"),
            accounts,
            "password spraying suspected"
        );
        audit(
            state,
            "login.spray_suspected",
            Some(attempt.client_id),
            None,
            json!({ "ip": ip, "accounts": accounts, "window_secs": state.config.throttle.window.as_secs() }),
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag is stable for one key and name, differs between names and between keys,
    /// and does not contain the name.
    #[test]
    fn name_tags_are_keyed_and_stable() {
        let k1 = hmac::Key::new(hmac::HMAC_SHA256, b"one key");
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, b"another key");
        let a = name_tag_with(&k1, "Hunter2-typed-as-name");
        assert_eq!(a, name_tag_with(&k1, "Hunter2-typed-as-name"));
        assert_ne!(a, name_tag_with(&k1, "hunter2-typed-as-name"));
        assert_ne!(a, name_tag_with(&k2, "Hunter2-typed-as-name"));
        assert_eq!(a.len(), 22);
        assert!(!a.contains("Hunter2"));
    }

    #[test]
    fn only_an_existing_name_is_kept() {
        assert_eq!(who("alice", "TAG", true), json!({ "username": "alice" }));
        assert_eq!(
            who("s3cret-pass", "TAG", false),
            json!({ "username_hash": "TAG" })
        );
    }
}
