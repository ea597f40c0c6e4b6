//! The second factor of a sign-in whose password was accepted (a TOTP or recovery code
//! checked by [`crate::mfa`], or a passkey checked by [`crate::passkeys`]), and a passkey
//! alone: throttled like a password on keys of their own (a passkey alone on others than
//! the second factor's), and audited. One implementation
//! for every factor.

use std::sync::Arc;

use serde_json::json;

use tessera_token::TokenHash;

use super::{Attempt, LoginFailure, account_failures, give_back, name_tag};
use crate::audit::audit;
use crate::oauth::OAuthError;
use crate::passkeys::Refused;
use crate::state::Core;
use crate::store::{CeremonyKind, UserRecord};
use crate::throttle;

/// Which second factor completed a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    /// A TOTP code.
    Totp,
    /// A recovery code.
    Recovery,
    /// A passkey (WebAuthn assertion, user verified).
    Passkey,
}

/// What the user sent as their factor.
#[derive(Debug, Clone)]
pub(crate) enum Proof {
    /// A TOTP code or a recovery code, as typed.
    Code(String),
    /// A passkey assertion: the ceremony id and the page's JSON response.
    Passkey {
        /// The ceremony id the page carried.
        ceremony: String,
        /// The credential response (JSON), at most [`crate::passkeys::MAX_RESPONSE`].
        response: String,
    },
}

/// The result of checking a proof: the factor, its audit detail, or why it failed.
enum Outcome {
    Good(Factor, serde_json::Value),
    Bad(&'static str, &'static str),
}

async fn check(
    core: &Core,
    user_id: &str,
    pending: Option<&TokenHash>,
    proof: &Proof,
) -> Result<Outcome, OAuthError> {
    Ok(match proof {
        Proof::Code(code) => match crate::mfa::check(core, user_id, code).await? {
            crate::mfa::Checked::Totp => Outcome::Good(Factor::Totp, json!({ "factor": "totp" })),
            crate::mfa::Checked::Recovery { left } => Outcome::Good(
                Factor::Recovery,
                json!({ "factor": "recovery_code", "recovery_codes_left": left }),
            ),
            crate::mfa::Checked::Replayed => Outcome::Bad("totp", "replayed"),
            crate::mfa::Checked::Wrong => Outcome::Bad("totp", "wrong_code"),
        },
        Proof::Passkey { ceremony, response } => {
            // A second factor is bound to its pending sign-in; a passkey alone to nothing.
            let kind = if pending.is_some() {
                CeremonyKind::SecondFactor
            } else {
                CeremonyKind::FirstFactor
            };
            match crate::passkeys::check(core, user_id, kind, pending, ceremony, response).await? {
                Ok(()) => Outcome::Good(Factor::Passkey, json!({ "factor": "passkey" })),
                Err(r) => Outcome::Bad("passkey", refused(r)),
            }
        }
    })
}

fn refused(r: Refused) -> &'static str {
    r.as_str()
}

/// Wrong codes one pending sign-in takes, from any networks together, before it ends: each
/// further batch of guesses costs a new (throttled) password check.
pub(crate) const CODES_PER_SIGN_IN: u32 = 5;

/// Counts a wrong code against the pending sign-in `pending` (the code page's and the
/// enrolment page's count together) and ends it at [`CODES_PER_SIGN_IN`]: true when it
/// ended. Each further batch of guesses then costs a new, throttled password check.
pub(crate) async fn count_wrong_code(core: &Core, pending: &TokenHash) -> Result<bool, OAuthError> {
    let wrong = core
        .store
        .record_login_failure(
            &format!("mfa-pending:{}", pending.to_hex()),
            core.clock.now(),
            core.config.login.throttle.window,
        )
        .await?;
    if wrong >= CODES_PER_SIGN_IN {
        core.store.take_pending(pending).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Checks the factor `proof` (a TOTP code, a recovery code or a passkey) of `user`, whose
/// password was accepted in the pending sign-in `pending` (`None`: a passkey alone, the
/// user named on the login page), throttled like a password: its
/// own (account, network) key, so a correct password does not clear the failures of the
/// second factor, and the network's key the passwords share. A passkey alone counts on
/// (account, network) and account keys of its own: failures posted without a password
/// may block passwordless sign-in for the account, never its password-backed factor. A wrong or replayed code
/// counts as a failed login (metric, audit `mfa.failure`, throttle, the account alarm
/// `login.account_targeted`); the pending sign-in ends after [`CODES_PER_SIGN_IN`] wrong
/// codes; once the account's wrong codes from all networks reach the alarm threshold
/// within the window, the account's second factor is blocked from everywhere for the
/// window (the guesser has the password: a locked second factor is the lesser harm). A
/// good code is audited `mfa.success`. Runs in a task of its own, so a client going away
/// cannot cancel a failure before it is counted.
pub(crate) async fn second_factor(
    core: &Arc<Core>,
    user: &UserRecord,
    pending: Option<&TokenHash>,
    proof: Proof,
    attempt: &Attempt<'_>,
) -> Result<Factor, LoginFailure> {
    let core = Arc::clone(core);
    let user_id = user.id.clone();
    let (name, pending) = (user.name.clone(), pending.copied());
    let (client_id, ctx, via) = (
        attempt.client_id.to_owned(),
        attempt.ctx.clone(),
        attempt.via,
    );
    let task = tokio::spawn(async move {
        let core = &*core;
        let ip = ctx.ip;
        // A passkey alone (no password: anyone who knows the username may post one) counts
        // on keys of its own, so its failures never block the password-backed factor.
        let scope = if pending.is_some() {
            "mfa"
        } else {
            "passkey-alone"
        };
        let tag = name_tag(core, &format!("\u{1f}{scope}\u{1f}{user_id}"));
        // The account's failures from all networks (the row `Reservation::failed` counts).
        let account_block = format!("acct:{tag}");
        let now = core.clock.now();
        if let Some(until) = core
            .store
            .login_blocked_until(&account_block, now)
            .await
            .map_err(OAuthError::from)?
        {
            metrics::counter!(crate::metrics::THROTTLED).increment(1);
            let retry_after = u64::try_from(until.secs() - now.secs()).unwrap_or(1).max(1);
            return Err(LoginFailure::Throttled { retry_after });
        }
        let reservation = match throttle::reserve(core, &tag, ip).await? {
            Ok(r) => r,
            Err(retry_after) => {
                metrics::counter!(crate::metrics::THROTTLED).increment(1);
                return Err(LoginFailure::Throttled { retry_after });
            }
        };
        let checked = match check(core, &user_id, pending.as_ref(), &proof).await {
            Ok(c) => c,
            Err(e) => {
                give_back(core, reservation).await;
                return Err(e.into());
            }
        };
        let ip_text = ip.map(|ip| ip.to_string());
        let (factor, detail) = match checked {
            Outcome::Good(factor, detail) => (factor, detail),
            Outcome::Bad(kind, reason) => {
                metrics::counter!(crate::metrics::LOGIN_FAILURES, "reason" => "second_factor")
                    .increment(1);
                let detail = json!({
                    "factor": kind, "reason": reason, "ip": ip_text, "via": via.as_str()
                });
                audit(
                    core,
                    "mfa.failure",
                    Some(&client_id),
                    Some(&user_id),
                    detail,
                )
                .await;
                let failures = reservation.failed(core).await?;
                let attempt = Attempt {
                    client_id: &client_id,
                    ctx: &ctx,
                    via,
                };
                let step = if pending.is_some() {
                    "second"
                } else {
                    "passkey_alone"
                };
                let who = json!({ "username": name, "factor": step });
                account_failures(core, &attempt, &tag, Some(&user_id), who, failures).await;
                let policy = core.config.login.throttle;
                let now = core.clock.now();
                if failures >= policy.account_alarm() {
                    core.store
                        .block_login(&account_block, now.saturating_add(policy.window))
                        .await
                        .map_err(OAuthError::from)?;
                }
                if let Some(pending) = pending {
                    count_wrong_code(core, &pending).await?;
                }
                return Err(LoginFailure::BadCredentials);
            }
        };
        reservation.succeeded(core.clock.now()).await?;
        let mut detail = detail;
        detail["ip"] = json!(ip_text);
        detail["via"] = json!(via.as_str());
        audit(
            core,
            "mfa.success",
            Some(&client_id),
            Some(&user_id),
            detail,
        )
        .await;
        Ok(factor)
    });
    task.await.map_err(|e| {
        LoginFailure::Unavailable(OAuthError::Server(format!(
            "second factor check failed: {e}"
        )))
    })?
}
