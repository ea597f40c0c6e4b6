//! The one password check of every login (the password grant and the browser sign-in
//! form): throttle reservation, the bounded Argon2id check, the failure metric, the audit
//! record and spray detection, in that order, with one answer for an unknown user, a
//! wrong password and a disabled user. The second factor's check, throttled and audited
//! the same way, is [`second_factor`].

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tessera_token::SecretString;

use crate::audit::{RequestContext, audit};
use crate::oauth::OAuthError;
use crate::password::{Admission, Source};
use crate::state::Core;
use crate::store::UserRecord;
use crate::throttle;

mod second_factor;
pub(crate) use second_factor::{Factor, Proof, count_wrong_code, second_factor};

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

/// Checks `username` and `password`, throttled. In memory first, before the store is
/// touched: for an account under attack, its turn unless this network is one it recently
/// signed in from (else 429 at once), and a place in the hash queue this source may take
/// (else 503 at once). Then, in a task of its own that a client
/// going away cannot cancel: reserves the attempt (refusing at once when blocked), checks
/// the password, and settles: a failure is recorded in the metric, the audit log, the
/// throttle and spray detection. An attempt whose hash never started (its client left
/// while it waited) is given back; every attempt whose hash ran counts.
pub(crate) async fn authenticate(
    core: &Arc<Core>,
    username: &str,
    password: SecretString,
    attempt: &Attempt<'_>,
) -> Result<UserRecord, LoginFailure> {
    let tag = name_tag(core, username);
    let now = core.clock.now();
    let source = attempt.ctx.ip.map(|ip| {
        let network = throttle::source_network(ip);
        Source {
            prefix: Some(throttle::source_prefix(ip)),
            account: Some(tag.clone()),
            network: Some(network),
        }
    });
    let known = source
        .as_ref()
        .is_some_and(|s| core.passwords.is_known(s, now));
    let turn = match core.login_limits.turn(&tag, known, now) {
        Ok(turn) => turn,
        Err(retry_after) => {
            metrics::counter!(crate::metrics::THROTTLED).increment(1);
            return Err(LoginFailure::Throttled { retry_after });
        }
    };
    let Some(admission) = core
        .passwords
        .admit_from(&source.clone().unwrap_or_default(), now)
    else {
        return Err(busy(core));
    };
    // Alive while the caller waits: the check skips its hash once it is gone.
    let caller = Arc::new(());
    let check = Check {
        core: Arc::clone(core),
        username: username.to_owned(),
        tag,
        client_id: attempt.client_id.to_owned(),
        ctx: attempt.ctx.clone(),
        via: attempt.via,
        pair: source.and_then(|s| s.account.zip(s.network)),
        caller: Arc::downgrade(&caller),
    };
    let task = tokio::spawn(async move {
        let _turn = turn;
        check.run(admission, password).await
    });
    let out = task.await.map_err(|e| {
        LoginFailure::Unavailable(OAuthError::Server(format!("login check failed: {e}")))
    });
    drop(caller);
    out?
}

/// A login refused for want of a place: counted, and warned about at most every few
/// seconds (a flood of them must not flood the log).
fn busy(core: &Core) -> LoginFailure {
    metrics::counter!(crate::metrics::LOGIN_BUSY).increment(1);
    if let Some(refused) = core.login_limits.busy(core.clock.now()) {
        tracing::warn!(
            refused,
            "password checks refused: the hash queue had no place for their source"
        );
    }
    LoginFailure::Busy {
        retry_after: BUSY_RETRY_AFTER,
    }
}

/// One login's check, owned by its own task.
struct Check {
    core: Arc<Core>,
    username: String,
    tag: String,
    client_id: String,
    ctx: RequestContext,
    via: Via,
    /// The (account, network) pair, remembered on success.
    pair: Option<(String, String)>,
    caller: Weak<()>,
}

impl Check {
    async fn run(
        self,
        admission: Admission,
        password: SecretString,
    ) -> Result<UserRecord, LoginFailure> {
        let core = &*self.core;
        let (ip, tag) = (self.ctx.ip, self.tag.as_str());
        if self.caller.strong_count() == 0 {
            // Nobody waits for the answer and nothing was reserved yet.
            return Err(LoginFailure::BadCredentials);
        }
        let reservation = match throttle::reserve(core, tag, ip).await? {
            Ok(r) => r,
            Err(retry_after) => {
                metrics::counter!(crate::metrics::THROTTLED).increment(1);
                return Err(LoginFailure::Throttled { retry_after });
            }
        };
        let checked = async {
            let user = core.store.user_by_name(&self.username).await?;
            let phc = user.as_ref().map(|u| u.password_hash.clone());
            let caller = self.caller.clone();
            let wanted = move || caller.strong_count() > 0;
            let matches = core
                .passwords
                .verify_if(admission, password, phc, wanted)
                .await?;
            Ok::<_, OAuthError>((user, matches))
        }
        .await;
        let (user, matches) = match checked {
            Ok((user, Some(matches))) => (user, matches),
            Ok((_, None)) => {
                // The client left before the hash started: the attempt was not evaluated.
                give_back(core, reservation).await;
                return Err(LoginFailure::BadCredentials);
            }
            Err(e) => {
                give_back(core, reservation).await;
                return Err(e.into());
            }
        };
        let attempt = Attempt {
            client_id: &self.client_id,
            ctx: &self.ctx,
            via: self.via,
        };
        match user {
            Some(u) if matches && !u.disabled => {
                let now = core.clock.now();
                reservation.succeeded(now).await?;
                if let Some((account, network)) = &self.pair {
                    core.passwords.remember(account, network, now);
                }
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
                let who = who(&self.username, tag, other.is_some());
                let mut detail = who.clone();
                detail["reason"] = json!(reason);
                detail["ip"] = json!(ip.map(|ip| ip.to_string()));
                detail["via"] = json!(self.via.as_str());
                audit(
                    core,
                    "login.failure",
                    Some(&self.client_id),
                    user_id,
                    detail,
                )
                .await;
                let failures = reservation.failed(core).await?;
                account_failures(core, &attempt, tag, user_id, who, failures).await;
                spray(core, tag, ip, &attempt).await?;
                Err(LoginFailure::BadCredentials)
            }
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
pub(crate) fn name_tag(core: &Core, username: &str) -> String {
    name_tag_with(&core.login_name_key, username)
}

fn name_tag_with(key: &hmac::Key, username: &str) -> String {
    let mac = hmac::sign(key, username.as_bytes());
    // 128 bits of the HMAC-SHA256: collisions are out of reach, the value stays short.
    URL_SAFE_NO_PAD.encode(&mac.as_ref()[..16])
}

/// Best-effort return of the reservations of an attempt that was not evaluated.
async fn give_back(core: &Core, reservation: throttle::Reservation) {
    if let Err(e) = reservation.release(core.clock.now()).await {
        tracing::warn!(error = %e, "could not release a login reservation");
    }
}

/// Many failures against one account from several networks: never a block, but from the
/// alarm level on, this server checks that account's logins one at a time until the
/// window ends (others wait briefly or get 429), and on reaching it, an alarm.
async fn account_failures(
    core: &Core,
    attempt: &Attempt<'_>,
    tag: &str,
    user_id: Option<&str>,
    who: serde_json::Value,
    failures: u32,
) {
    let policy = core.config.login.throttle;
    if failures < policy.account_alarm() {
        return;
    }
    let now = core.clock.now();
    core.login_limits
        .target(tag, now.saturating_add(policy.window), now);
    if failures != policy.account_alarm() {
        return;
    }
    tracing::warn!(failures, "many failed logins against one account");
    let mut detail = who;
    detail["failures"] = json!(failures);
    detail["window_secs"] = json!(core.config.login.throttle.window.as_secs());
    audit(
        core,
        "login.account_targeted",
        Some(attempt.client_id),
        user_id,
        detail,
    )
    .await;
}

/// Flags an address that fails against many accounts (password spraying).
async fn spray(
    core: &Core,
    tag: &str,
    ip: Option<IpAddr>,
    attempt: &Attempt<'_>,
) -> Result<(), OAuthError> {
    if let Some(accounts) = throttle::spray_suspected(core, tag, ip).await? {
        let ip = ip.map(|ip| ip.to_string());
        tracing::warn!(
            ip = ip.as_deref().unwrap_or("-"),
            accounts,
            "password spraying suspected"
        );
        audit(
            core,
            "login.spray_suspected",
            Some(attempt.client_id),
            None,
            json!({ "ip": ip, "accounts": accounts, "window_secs": core.config.login.throttle.window.as_secs() }),
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
