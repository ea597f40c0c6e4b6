//! The resource owner password credentials grant (RFC 6749 section 4.3). The credentials
//! go through the one login check ([`crate::login`]): unknown user, wrong password and
//! disabled user give the same error after the same Argon2id work. A DPoP proof is
//! recorded only once the user is signed in.

use std::sync::Arc;

use serde_json::json;
use tessera_token::SecretString;

use crate::audit::{RequestContext, audit};
use crate::dpop::{self, Proof};
use crate::grants::{
    AccessGrant, Params, TokenResponse, first_refresh_token, mint_access_token, refresh_binding,
    resolve_audience, resolve_scope, scope_member,
};
use crate::ids::random_id;
use crate::login::{self, Attempt, LoginFailure, Via};
use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{Amr, ClientRecord, GrantRecord};

const BAD_LOGIN: &str = "invalid username or password";
/// A user with a second factor: the password grant cannot carry it, so it would bypass it.
const NEEDS_SECOND_FACTOR: &str = "this user signs in with a second factor, which the password grant cannot carry; \
     use the authorization code flow";
/// Under `mfa = "required"` every user signs in with a second factor (or enrols one).
const SECOND_FACTOR_REQUIRED: &str = "this server requires a second factor (mfa = required), \
     which the password grant cannot carry; use the authorization code flow";

pub(crate) async fn exchange(
    core: &Arc<Core>,
    client: &ClientRecord,
    params: &Params,
    ctx: RequestContext,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let username = params.require("username")?;
    let password = SecretString::new(params.require("password")?);
    let scope = resolve_scope(params.get("scope"), &client.scope)?;
    let audience = resolve_audience(params.get("resource"), &client.audience, &core.issuer)?;

    // Refused before any password check: no user may skip the factor (or its enrolment)
    // this way, and no guess is checked.
    if core.config.login.mfa == crate::config::MfaMode::Required {
        return Err(OAuthError::InvalidGrant(SECOND_FACTOR_REQUIRED));
    }
    let attempt = Attempt {
        client_id: &client.id,
        ctx: &ctx,
        via: Via::PasswordGrant,
    };
    let user = match login::authenticate(core, username, password, &attempt).await {
        Ok(u) => u,
        Err(LoginFailure::BadCredentials) => return Err(OAuthError::InvalidGrant(BAD_LOGIN)),
        Err(LoginFailure::Throttled { retry_after }) => {
            return Err(OAuthError::TooManyRequests { retry_after });
        }
        Err(LoginFailure::Busy { retry_after }) => return Err(OAuthError::Busy { retry_after }),
        Err(LoginFailure::Unavailable(e)) => return Err(e),
    };
    // Told only after the password was right, so it says nothing to a guesser.
    if crate::mfa::enrolled(core, &user.id).await? {
        audit(
            core,
            "mfa.failure",
            Some(&client.id),
            Some(&user.id),
            json!({ "reason": "password_grant", "via": "password_grant" }),
        )
        .await;
        return Err(OAuthError::InvalidGrant(NEEDS_SECOND_FACTOR));
    }

    // Only a request that signed the user in spends its proof: a wrong password or a
    // throttled attempt leaves it unrecorded.
    if let Some(proof) = proof {
        dpop::record(core, &client.id, proof)?;
    }
    let jkt = proof.map(Proof::jkt);
    let now = core.clock.now();
    let grant = GrantRecord {
        id: random_id("g_")?,
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        scope: scope.clone(),
        audience: audience.clone(),
        created_at: now,
        expires_at: now.saturating_add(core.config.tokens.refresh_absolute_ttl),
        revoked_at: None,
        // Read with the credentials, before the hash was checked: a revoke-all (disable,
        // `sessions revoke --user`, `user passwd`, remove) during the check moves the user
        // on, and the grant is refused below instead of outliving it.
        generation: user.generation,
        amr: Amr::password(),
        dpop_jkt: refresh_binding(client, jkt),
    };
    let (refresh, first) = first_refresh_token(core, client, &grant, now)?;
    if !core.store.insert_grant(&grant, first.as_ref()).await? {
        return Err(OAuthError::InvalidGrant(BAD_LOGIN));
    }
    core.store
        .swap_grant_context(&grant.id, &ctx.grant_context())
        .await?;
    audit(
        core,
        "login.success",
        Some(&client.id),
        Some(&user.id),
        json!({ "sid": grant.id, "refresh_token": refresh.is_some() }),
    )
    .await;

    let (access_token, expires_in) = mint_access_token(
        core,
        &AccessGrant {
            sub: &user.id,
            client_id: &client.id,
            scope: &scope,
            audience: &audience,
            sid: &grant.id,
            auth_time: Some(now),
            amr: Some(&grant.amr),
            alg: client.signing_alg,
            jkt,
        },
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: dpop::token_type(jkt),
        expires_in,
        refresh_token: refresh.map(|t| t.expose().to_owned()),
        scope: scope_member(&scope),
        id_token: None,
    })
}
